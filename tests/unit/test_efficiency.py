"""Efficiency numbers (nomade.efficiency) on captured and hand-written sacct rows of Slurm 20.11,
21.08, 22.05 and 23.02: each case's CPU and memory efficiency within one percentage point of a hand
computation from the raw fields, the same in the report, nomade-why's advice, the history
features and the Epilog mail. Job ids (raw ids, arrays, JOBID_TASK) and any column order."""

import math
import re
from pathlib import Path

import pytest

from nomade import efficiency
from nomade.config import load_config
from nomade.features.build import end_event_inputs
from nomade.features.jobtable import load_jobs
from nomade.hooks.mailprog import report_text
from nomade.ingest import sacct as ing
from nomade.jobid import BadJobId, parse_job_ref
from nomade.jobrecord import REQ_MEM_CPU, REQ_MEM_JOB, REQ_MEM_NODE
from nomade.jobs_query import JobQuery, list_jobs
from nomade.report import SeveralJobs, find_job, format_reports, load_report, load_reports
from nomade.slurm.sacct_fields import parse_duration
from nomade.store.db import open_store
from nomade.why import SimilarJob, recommend

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sacct"
PP = 0.01   # one percentage point
K = 1 / 1024.0          # KiB -> MiB


def d(text):
    return parse_duration(text)


@pytest.fixture(params=[None, False], ids=["fast", "python"])
def store_of(request, tmp_path):
    """Ingest fixture dumps into a fresh store with the C reader (when built) or the Python one."""
    stores = []

    def make(*names):
        st = open_store(tmp_path / f"s{len(stores)}.db")
        stores.append(st)
        for name in names:
            with open(FIX / name, encoding="utf-8", newline="\n") as f:
                res = ing.ingest_text(st, f, qsource=f"file:{name}", fast=request.param)
            assert res.counts.quarantined == 0, name
        return st
    yield make
    for st in stores:
        st.close()


# ---------------------------------------------------------------- the real cluster (22.05)
REAL = "real_efficiency_cases_22.05.txt"


def test_multitask_step_reads_its_total_not_one_task(store_of):
    """srun -n4, four tasks each holding ~300 MB under --mem=2G: TRESUsageInTot mem=1262400K."""
    r = load_report(store_of(REAL), "194")
    assert abs(r.mem_efficiency - 1262400 * K / 2048) < PP          # 60.2 %, not MaxRSS's 15 %
    assert r.mem_peak_source == "TRESUsageInTot" and r.mem_requested_source == "ReqTRES"
    assert abs(r.cpu_efficiency - (d("00:00.013") + d("00:09.119")) / (12 * 4)) < PP
    assert r.mem_task_peak_mb == pytest.approx(315716 * K) and r.mem_node_peak_mb == pytest.approx(4 * 315716 * K)


def test_per_cpu_request_several_steps(store_of):
    """--mem-per-cpu=600M -n2 (22.05 prints the job's 1200M); a batch step then a 2-task step."""
    r = load_report(store_of(REAL), "195")
    assert abs(r.mem_efficiency - max(265860, 426488) * K / 1200) < PP
    assert abs(r.cpu_efficiency - (d("00:02.410") + d("00:05.315")) / (14 * 2)) < PP


def test_timeout_cpu_from_tres_max(store_of):
    """A timed-out job: TotalCPU 00:00.001 and TRESUsageInTot cpu=0 miss the killed children;
    TRESUsageInMax cpu=00:01:37 has them."""
    r = load_report(store_of(REAL), "197")
    assert r.failure_class == "timeout" and r.cpu_source == "TRESUsageInMax"
    assert abs(r.cpu_efficiency - d("00:01:37") / (79 * 2)) < PP
    assert abs(r.mem_efficiency - 274372 * K / 1024) < PP
    from nomade.report import format_report
    assert "from TRESUsageInMax" in format_report(r)


def test_cancelled_cpu_from_tres_max(store_of):
    r = load_report(store_of(REAL), "198")
    assert r.failure_class == "cancelled_owner" and r.cpu_source == "TRESUsageInMax"
    assert abs(r.cpu_efficiency - 26 / (33 * 1)) < PP
    assert abs(r.mem_efficiency - 132864 * K / 1024) < PP


def test_oom(store_of):
    r = load_report(store_of(REAL), "199")
    assert r.failure_class == "oom"
    assert abs(r.mem_efficiency - 3292 * K / 300) < PP
    assert any("--mem=500M" in n for n in r.notes)     # 1.5 x the 300M request, rounded up


def test_array_ids(store_of):
    st = store_of(REAL)
    tasks = load_reports(st, "196")                      # the array: every task, in task order
    assert [r.job_id for r in tasks] == ["196_1", "196_2", "196_3"]
    for r, rss in zip(tasks, (112500, 112368, 112444)):
        assert abs(r.mem_efficiency - rss * K / 1024) < PP
    text = format_reports(tasks, "196")
    assert text.splitlines()[-1].startswith("Summary of 196: 3 jobs (3 success)")
    assert load_report(st, "200").job_id == "196_1"      # a task's own SLURM_JOB_ID
    assert load_report(st, "196_2").job_id == "196_2"
    assert load_report(st, " 196_2.batch ").job_id == "196_2"
    with pytest.raises(SeveralJobs):
        find_job(st, "196")
    rows = list_jobs(st, JobQuery(job_ids=("196",), limit=10))
    assert sorted(r.job_id for r in rows) == ["196_1", "196_2", "196_3"]
    assert [r.job_id for r in list_jobs(st, JobQuery(job_ids=("201",)))] == ["196_2"]


@pytest.mark.parametrize("text", ["", "abc", "12;rm", "1_", "+1", "9" * 20, "12\n13", "12 13"])
def test_bad_job_ids(text):
    with pytest.raises(BadJobId):
        parse_job_ref(text)


def test_job_id_forms():
    assert parse_job_ref("123") == ("123", 123)
    assert parse_job_ref("123_4.0") == ("123_4", None)
    assert parse_job_ref("123+1.batch") == ("123+1", None)
    assert parse_job_ref("123_[5-9%2]") == ("123_[5-9%2]", None)


# ---------------------------------------------------------------- other versions and sites
def test_whole_job_request_on_two_nodes_21_08(store_of):
    """ReqMem 32G without suffix on 2 nodes is 32 GiB for the job, not 64 (reportseff issue #16)."""
    st = store_of("multinode_reqmem_whole_job_21.08.txt")
    r = load_report(st, "6563")
    assert r.mem_requested_mb == 32768
    assert abs(r.mem_efficiency - 8075100 * K / 32768) < PP            # 24.1 %, not 12 %
    cpu = d("07:30:20") + d("00:00.001") + d("4-16:26:00")
    assert abs(r.cpu_efficiency - cpu / (d("07:36:03") * 16)) < PP
    assert find_job(st, "6563")["req_mem_per_cpu"] == REQ_MEM_JOB
    assert r.mem_node_peak_mb == pytest.approx(4037550 * K)            # 1 task per node


def test_maxrss_times_ntasks_fallback_23_02(store_of):
    """No TRES usage fields: MaxRSS x NTasks (srun -n 8, reportseff issue #41)."""
    r = load_report(store_of("multitask_step_maxrss_only_23.02.txt"), "131042")
    assert r.mem_peak_source == "MaxRSS x NTasks"
    assert r.mem_requested_source == "ReqMem (whole job)"
    assert abs(r.mem_efficiency - 1947276 * 8 * K / 16000) < PP        # 95 %, not 11.9 %
    assert abs(r.cpu_efficiency - d("06:57.815") / (53 * 8)) < PP


def test_suffixed_reqmem_20_11(store_of):
    st = store_of("reqmem_suffix_per_node_per_cpu_20.11.txt")
    node = load_report(st, "7001")                                         # 4000Mn on 2 nodes
    assert node.mem_requested_source == "ReqMem per node x nodes"
    assert abs(node.mem_efficiency - 6144000 * K / (4000 * 2)) < PP
    assert abs(node.cpu_efficiency - (d("00:00:10") + d("05:59:50")) / (3600 * 8)) < PP
    assert node.mem_node_peak_mb == pytest.approx(1536000 * K * 4)       # 8 tasks on 2 nodes
    cpu = load_report(st, "7002")                                          # 2000Mc x 4 CPUs
    assert cpu.mem_requested_source == "ReqMem per CPU x CPUs"
    assert abs(cpu.mem_efficiency - 3072000 * K / (2000 * 4)) < PP
    assert abs(cpu.cpu_efficiency - 3600 / (1800 * 4)) < PP
    assert any("--mem-per-cpu=" in n for n in cpu.notes) is False        # 37 % of 7.8 GiB: no note
    assert find_job(st, "7001")["req_mem_per_cpu"] == REQ_MEM_NODE
    assert find_job(st, "7002")["req_mem_per_cpu"] == REQ_MEM_CPU


def test_gpu_site_timeout_two_nodes_23_02(store_of):
    st = store_of("gpu_site_multinode_tres_23.02.txt")
    r = load_report(st, "88001")
    assert r.failure_class == "timeout"
    assert abs(r.mem_efficiency - 88080384 * K / (128 * 1024)) < PP
    cpu = d("00:02:10") + d("00:00.002") + d("03:58:30")                # step 0 from TRESUsageInMax
    assert r.cpu_source == "TRESUsageInMax"
    assert abs(r.cpu_efficiency - cpu / (d("04:00:07") * 32)) < PP
    # nomade-why's --mem after similar OOMs: at least one task's peak x 4 tasks per node
    job = find_job(st, "88001")
    sim = [SimilarJob("1", "x", "OUT_OF_MEMORY", "oom", 10, 100, 4000.0, 131072.0, "same name")]
    recs = recommend(job, sim)
    need = 11010048 * K * 4
    m = re.match(r"--mem=(\d+)([MG]):", [x for x in recs if x.startswith("--mem=")][0])
    assert int(m.group(1)) * (1024 if m.group(2) == "G" else 1) >= need     # 63G, not 6G


def test_any_column_order_and_repeated_header(store_of):
    st = store_of("header_any_column_order_repeated_22.05.txt")
    a, b = load_report(st, "9100"), load_report(st, "9101")
    assert abs(a.mem_efficiency - 409600 * K / 1024) < PP and abs(a.cpu_efficiency - 900 / (600 * 2)) < PP
    assert abs(b.mem_efficiency - 256000 * K / 500) < PP and abs(b.cpu_efficiency - 240 / 300) < PP


def test_format_style_header_with_fields_given_is_not_quarantined(tmp_path):
    text = "JobID%20|State|ReqMem%8|MaxRSS\n5|COMPLETED|1G|\n5.batch|COMPLETED||2048K\n"
    with open_store(tmp_path / "s.db") as st:
        res = ing.ingest_text(st, text.splitlines(True), qsource="t", fields=["JobID", "State", "ReqMem", "MaxRSS"])
        assert res.counts.new == 1 and res.counts.quarantined == 0
        assert abs(load_report(st, "5").mem_efficiency - 2 / 1024) < PP


# ---------------------------------------------------------------- the same numbers elsewhere
ALL = ("real_efficiency_cases_22.05.txt", "multinode_reqmem_whole_job_21.08.txt",
       "multitask_step_maxrss_only_23.02.txt", "reqmem_suffix_per_node_per_cpu_20.11.txt",
       "gpu_site_multinode_tres_23.02.txt")


def test_history_feature_uses_the_report_numbers(store_of):
    """u_mem_ratio's input (peak / requested) is the report's memory efficiency."""
    st = store_of(*ALL)
    jt = load_jobs(st)
    _rt, _ratio, mem_ratio = end_event_inputs(jt)
    checked = 0
    for i, jid in enumerate(jt["job_id"]):
        r = load_report(st, str(jid))
        if r.mem_efficiency is None or math.isnan(mem_ratio[i]):
            continue
        assert abs(mem_ratio[i] - r.mem_efficiency) < PP, jid
        checked += 1
    assert checked >= 13


def test_epilog_mail_uses_the_report(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path / "data")})
    Path(cfg.store_path).parent.mkdir(parents=True, exist_ok=True)
    with open_store(cfg.store_path) as st:
        ing.ingest_file(st, str(FIX / REAL))
    text = report_text(cfg, "194")
    assert "Memory efficiency: 60.2%" in text and "peak from TRESUsageInTot" in text
    assert "Summary of 196: 3 jobs" in report_text(cfg, "196")


def test_units_of_tres_values():
    assert efficiency.tres_mem_mb("cpu=00:00:01,mem=1262400K") == pytest.approx(1262400 / 1024)
    assert efficiency.tres_mem_mb("mem=1.5G,gres/gpumem=30G") == pytest.approx(1536)
    assert efficiency.tres_mem_mb("mem=512") == pytest.approx(512 / 2 ** 20)     # bytes
    assert efficiency.tres_mem_mb("mem=x") is None and efficiency.tres_mem_mb(None) is None
    assert efficiency.tres_cpu_s("cpu=1-00:00:01,mem=0") == 86401
    assert efficiency.tres_cpu_s("energy=0") is None
