"""`nomade ingest sacct` against the real cluster (tests/slurm/cluster.sh): a matrix of real jobs
ending in every state nomade cares about, submitted as root and as alice, ingested through the CLI
(subprocess, as root); the stored rows must match what Slurm did, and a second run must be a no-op.

Run alone: ``python tests/slurm/test_ingest_real.py capture DIR`` runs the matrix and writes the
real sacct captures (the files in tests/fixtures/sacct/real_*) to DIR."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from nomade.jobrecord import REQ_MEM_JOB

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.slurm

PY = "/usr/bin/python3"  # the system python: readable by the test users, unlike pyenv's shims
CAPTURE_FIELDS = ("JobID,JobIDRaw,JobName,User,UID,Group,Account,Partition,QOS,State,ExitCode,"
                  "DerivedExitCode,Submit,Eligible,Start,End,Elapsed,Timelimit,ReqMem,ReqCPUS,"
                  "ReqNodes,ReqTRES,AllocCPUS,NNodes,AllocTRES,NodeList,MaxRSS,TotalCPU,Cluster,"
                  "WorkDir,SubmitLine")
WEIRD_NAME = "naïve ünïcode | job with spaces"
ALLOC_MB = 200
BURN = (f"{PY} -c 'import time; b=bytearray({ALLOC_MB}*2**20); b[::4096]=b\"x\"*len(b[::4096]); "
        "t=time.time()\nwhile time.time()-t<5: pass\ntime.sleep(3)'")


def node_fail_case(node: str) -> str:
    """A running job killed by taking the node down -> NODE_FAIL; the node is resumed after."""
    harness.wait_queue_empty(timeout=60)  # taking the node down kills every running job on it
    jid = harness.submit("root", "-J", "nf_root", wrap="sleep 300")
    harness.wait_state(jid, ["RUNNING"], timeout=60)
    time.sleep(1)
    harness.sh(["scontrol", "update", f"nodename={node}", "state=down", "reason=nomade-test-node-fail"])
    try:
        harness.wait_done([jid], timeout=60)
    finally:
        harness.resume_node(node, timeout=60)
    return jid


def cancel_running_case() -> str:
    """alice's running job cancelled by root -> 'CANCELLED by 0'."""
    jid = harness.submit("alice", "-J", "cancel_running_alice", wrap="sleep 300")
    harness.wait_state(jid, ["RUNNING"], timeout=60)
    time.sleep(2)
    harness.sh(["scancel", jid])
    return jid


def cancel_pending_case() -> str:
    """alice's held job cancelled by alice while pending -> 'CANCELLED by <alice uid>'."""
    jid = harness.submit("alice", "-J", "cancel_pending_alice", "--hold", wrap="sleep 1")
    harness.wait_state(jid, ["PENDING"], timeout=30)
    harness.sh(["scancel", jid], user="alice")
    return jid


def run_state_matrix(cluster: "harness.SlurmCluster") -> Dict[str, str]:
    """Submit every case; returns {case: job id} once all have ended. About 80-90 s (TIMEOUT)."""
    jobs = {"node_fail_root": node_fail_case(cluster.node)}
    jobs["timeout_root"] = harness.submit("root", "-J", "timeout_root", "--time=1", wrap="sleep 600")
    jobs["completed_root"] = harness.submit(
        "root", "-J", "completed_root", "--time=5", "--cpus-per-task=2", "--mem=300M", wrap="sleep 2")
    jobs["completed_alice"] = harness.submit("alice", "-J", "completed_alice", wrap="echo hello")
    jobs["failed_exit3_alice"] = harness.submit("alice", "-J", "failed_exit3_alice", wrap="exit 3")
    jobs["oom_root"] = harness.submit(
        "root", "-J", "oom_root", "--mem=64M",
        wrap=f"{PY} -c 'b=bytearray(400*2**20); b[::4096]=b\"x\"*len(b[::4096]); import time; time.sleep(5)'")
    jobs["alloc_cpu_alice"] = harness.submit("alice", "-J", "alloc_cpu_alice", "--mem=1G", wrap=BURN)
    jobs["array_alice"] = harness.submit(
        "alice", "-J", "array_alice", "--array=1-3", wrap='sleep 1; exit $(( SLURM_ARRAY_TASK_ID == 2 ))')
    jobs["srun_steps_root"] = harness.submit(
        "root", "-J", "srun_steps_root", wrap="srun -n1 sleep 1; srun -n1 false; exit 0")
    jobs["weird_name_alice"] = harness.submit(
        "alice", "-J", WEIRD_NAME, wrap="echo 'line one'\necho \"line | two\"")
    jobs["cancel_pending_alice"] = cancel_pending_case()
    jobs["cancel_running_alice"] = cancel_running_case()
    harness.wait_done(list(jobs.values()), timeout=200)
    # let slurmdbd receive the last step records and derived exit codes (a CI run once read
    # srun_steps_root's DerivedExitCode as 0:0 two seconds after the jobs had ended)
    harness.wait_accounting_settled(list(jobs.values()),
                                    ["JobID", "State", "ExitCode", "DerivedExitCode", "MaxRSS", "End"])
    return jobs


def capture(jobs: Dict[str, str], start: str, out_dir: Path) -> None:
    """Write the real sacct captures for the matrix (fixtures for the parsers)."""
    ids = ",".join(jobs.values())
    common = ["sacct", "-a", "-D", "-S", start, "-E", "now", "-j", ids]
    text = harness.sh(common + ["-P", f"--format={CAPTURE_FIELDS}"]).stdout
    (out_dir / "real_state_matrix_p.txt").write_text(text, encoding="utf-8")
    raw = harness.sh(common + ["--json"]).stdout
    json.loads(raw)  # must be valid JSON
    (out_dir / "real_state_matrix.json").write_text(raw, encoding="utf-8")
    (out_dir / "real_helpformat_22.05.txt").write_text(harness.sh(["sacct", "--helpformat"]).stdout,
                                                       encoding="utf-8")
    (out_dir / "real_state_matrix_cases.json").write_text(json.dumps(jobs, indent=1) + "\n",
                                                          encoding="utf-8")


# ---------------------------------------------------------------------------------- fixtures
def nomade(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", "from nomade.cli.main import main; main()",
            "--data-dir", str(data_dir)] + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd="/tmp")
    assert proc.returncode == 0, f"{argv} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def matrix(slurm_cluster) -> Dict[str, str]:
    reuse = os.environ.get("NOMADE_TEST_REUSE_MATRIX")  # {case: job id} JSON of an earlier run (dev only)
    if reuse:
        return json.loads(Path(reuse).read_text(encoding="utf-8"))
    return run_state_matrix(slurm_cluster)


@pytest.fixture(scope="module")
def ingested(matrix, tmp_path_factory):
    """The matrix ingested twice through the CLI; returns (data_dir, first counts, second counts)."""
    data = tmp_path_factory.mktemp("ingest-real")
    # every job of the day is ingested, the other test files' too: wait until all of them have
    # left the queue and their accounting is quiet, so the second run has nothing left to update
    harness.wait_queue_empty()
    harness.wait_all_accounting_settled()
    first = json.loads(nomade(data, "ingest", "sacct", "--json").stdout)
    second_text = nomade(data, "ingest", "sacct").stdout
    return data, first, second_text


@pytest.fixture(scope="module")
def rows(ingested, matrix) -> Dict[str, dict]:
    data = ingested[0]
    dbs = list(data.glob("*.db"))
    assert dbs, f"no store under {data}"
    conn = sqlite3.connect(str(dbs[0]))
    conn.row_factory = sqlite3.Row
    out = {}
    for r in conn.execute("SELECT * FROM jobs"):
        out[r["job_id"]] = dict(r)
    steps: Dict[str, List[dict]] = {}
    for r in conn.execute("SELECT * FROM job_steps"):
        steps.setdefault(r["job_id"], []).append(dict(r))
    for jid, rec in out.items():
        rec["steps"] = {s["step_id"]: s for s in steps.get(jid, [])}
    conn.close()
    return out


def job(rows, matrix, case) -> dict:
    jid = matrix[case]
    assert jid in rows, f"{case}: job {jid} not stored (stored: {sorted(rows)[:20]}...)"
    return rows[jid]


# ---------------------------------------------------------------------------------- tests
def test_second_run_is_a_no_op(ingested, matrix):
    _, first, second = ingested
    assert set(first) >= {"new", "updated", "unchanged", "quarantined"}
    assert first["new"] >= len(matrix) + 2, first  # the array adds two more task rows
    assert "sacct: 0 new, 0 updated," in second, second
    assert ", 0 quarantined" in second, second


def test_completed(rows, matrix):
    r = job(rows, matrix, "completed_root")
    assert (r["state"], r["exit_code"], r["exit_signal"], r["is_final"]) == ("COMPLETED", 0, 0, 1)
    assert (r["user"], r["uid"], r["account"], r["partition"]) == ("root", 0, "research", "debug")
    assert r["req_cpus"] == 2 and r["alloc_cpus"] == 2 and r["req_nodes"] == 1
    assert r["req_mem_mb"] == 300 and r["req_mem_per_cpu"] == REQ_MEM_JOB   # 22.05: the job's total
    assert r["timelimit_s"] == 300 and r["timelimit_raw"] in ("00:05:00", "5")
    assert 1 <= r["elapsed_s"] <= 30 and r["end_time"] >= r["start_time"] >= r["submit_time"]
    assert r["work_dir"] == "/tmp" and r["node_list"] == os.uname().nodename.split(".")[0]
    a = job(rows, matrix, "completed_alice")
    assert (a["state"], a["user"], a["uid"]) == ("COMPLETED", "alice", harness.user_uid("alice"))
    assert a["req_mem_mb"] == 500  # DefMemPerCPU=500 (22.05's sacct -P prints '500M', no per-CPU mark)


def test_failed_exit_3(rows, matrix):
    r = job(rows, matrix, "failed_exit3_alice")
    assert (r["state"], r["exit_code"], r["exit_signal"], r["user"]) == ("FAILED", 3, 0, "alice")


def test_timeout(rows, matrix):
    r = job(rows, matrix, "timeout_root")
    assert r["state"] == "TIMEOUT" and r["timelimit_s"] == 60
    assert 60 <= r["elapsed_s"] <= 150


def test_cancelled_pending_by_owner(rows, matrix):
    # `sacct -S .. -E ..` without --state leaves out jobs that were never eligible: ingest must not
    r = job(rows, matrix, "cancel_pending_alice")
    assert r["state"] == "CANCELLED" and r["cancelled_by"] == harness.user_uid("alice")
    assert r["state_raw"].startswith("CANCELLED by")
    assert r["elapsed_s"] == 0 and r["total_cpu_s"] in (0, None)  # Start = the cancel time
    assert r["timelimit_s"] is None and r["timelimit_raw"] == "Partition_Limit"


def test_cancelled_running_by_root(rows, matrix):
    r = job(rows, matrix, "cancel_running_alice")
    assert (r["state"], r["cancelled_by"], r["user"]) == ("CANCELLED", 0, "alice")
    assert r["elapsed_s"] >= 2


def test_out_of_memory(rows, matrix):
    r = job(rows, matrix, "oom_root")
    assert r["state"] == "OUT_OF_MEMORY", r["state_raw"]
    assert r["req_mem_mb"] == 64 and r["req_mem_per_cpu"] == REQ_MEM_JOB


def test_node_fail(rows, matrix):
    r = job(rows, matrix, "node_fail_root")
    assert r["state"] == "NODE_FAIL" and r["is_final"] == 1


def test_used_resources(rows, matrix):
    r = job(rows, matrix, "alloc_cpu_alice")
    assert r["state"] == "COMPLETED" and r["req_mem_mb"] == 1024
    assert ALLOC_MB * 0.8 <= r["max_rss_mb"] <= ALLOC_MB * 1.5, r["max_rss_mb"]
    assert 1.0 <= r["total_cpu_s"] <= 10, r["total_cpu_s"]  # 5 s busy loop on a shared 2-core box
    assert r["elapsed_s"] >= 7
    assert "batch" in r["steps"] and r["steps"]["batch"]["max_rss_mb"] >= ALLOC_MB * 0.8


def test_array(rows, matrix):
    base = matrix["array_alice"]
    tasks = {f"{base}_{i}": rows.get(f"{base}_{i}") for i in (1, 2, 3)}
    assert all(tasks.values()), f"array tasks missing: {[k for k, v in tasks.items() if not v]}"
    assert [tasks[f"{base}_{i}"]["state"] for i in (1, 2, 3)] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert {t["array_job_id"] for t in tasks.values()} == {int(base)}
    assert sorted(t["array_task_id"] for t in tasks.values()) == ["1", "2", "3"]
    assert len({t["job_id_raw"] for t in tasks.values()}) == 3


def test_srun_steps(rows, matrix):
    r = job(rows, matrix, "srun_steps_root")
    assert r["state"] == "COMPLETED" and r["exit_code"] == 0
    assert {"batch", "0", "1"} <= set(r["steps"]), sorted(r["steps"])
    assert r["steps"]["0"]["state"] == "COMPLETED"
    assert r["steps"]["1"]["state"] == "FAILED" and r["steps"]["1"]["exit_code"] == 1
    assert r["derived_exit_code"] == 1


def test_unicode_pipe_name_and_newline_wrap(rows, matrix):
    r = job(rows, matrix, "weird_name_alice")
    assert r["name"] == WEIRD_NAME and r["state"] == "COMPLETED"
    assert r["submit_line"] is None or "sbatch" in r["submit_line"]


def _forged_row(delimiter: str, job_id: str, user: str, uid: int) -> str:
    """A complete row in the live field order claiming ``user`` (and ``job_id``), FAILED."""
    from nomade.ingest.sacct import LIVE_FIELDS
    vals = dict(JobID=job_id, JobIDRaw=job_id, Cluster="lab", User=user, UID=str(uid), Group=user,
                Account="research", Partition="debug", QOS="normal", State="FAILED", ExitCode="1:0",
                DerivedExitCode="0:0", Submit="2026-01-01T00:00:00", Eligible="2026-01-01T00:00:00",
                Start="2026-01-01T00:00:01", End="2026-01-01T00:00:02", Elapsed="00:00:01",
                Timelimit="01:00:00", ReqMem="500M", ReqCPUS="1", ReqNodes="1", AllocCPUS="1",
                NNodes="1", NodeList="vm", JobName="forged", WorkDir=f"/home/{user}",
                SubmitLine="sbatch secret.sh")
    return delimiter.join(vals.get(f, "") for f in LIVE_FIELDS)


def test_forged_rows_in_a_wrap_never_become_another_users_job(slurm_cluster, tmp_path):
    """alice's --wrap holds newlines, each followed by a complete row in the live field order
    (with the delimiter nomade used before, with '|', with a guessed token) claiming bob: a job id
    that does not exist, and bob's real job. Live ingestion stores alice's job as hers, bob's job
    as Slurm has it, and never the forged job id."""
    bob_uid, alice_uid = harness.user_uid("bob"), harness.user_uid("alice")
    bob_job = harness.submit("bob", "-J", "bobs-real-job", wrap="true")
    harness.wait_done([bob_job])
    forged_id = "987654321"
    rows = [_forged_row(d, j, "bob", bob_uid) for d in ("\x1f", "|", "\x1f" + "0" * 32)
            for j in (forged_id, bob_job)]
    wrap = "cat >/dev/null <<'EOF'\n" + "\n".join(rows) + "\nEOF\ntrue"
    alice_job = harness.submit("alice", "-J", "alice-forger", wrap=wrap)
    harness.wait_done([alice_job])
    harness.wait_accounting_settled([bob_job, alice_job], ["JobID", "State", "SubmitLine"])
    # slurmdbd may hold a half record (uid 0, QOS Unknown) until it has the job's start: nomade
    # quarantines that (test_a_partial_dbd_record_never_pins_a_wrong_owner); wait for the real one
    harness.wait_field(alice_job, "UID", str(alice_uid))
    data = tmp_path / "data"
    counts = json.loads(nomade(data, "ingest", "sacct", "--json").stdout)
    conn = sqlite3.connect(str(next(data.glob("*.db"))))
    stored = {r[0]: r[1:] for r in conn.execute("SELECT job_id, user, uid, name, state, submit_line FROM jobs")}
    conn.close()
    assert forged_id not in stored, counts
    assert stored[bob_job][:4] == ("bob", bob_uid, "bobs-real-job", "COMPLETED")
    assert stored[alice_job][:2] == ("alice", alice_uid)
    assert rows[0] in (stored[alice_job][4] or ""), stored[alice_job]
    for job_id, (user, uid, *_rest) in stored.items():
        if user in harness.TEST_USERS:
            assert uid == harness.user_uid(user), (job_id, user, uid)


# ---------------------------------------------------------------------------------- efficiency
HOLD = ("import sys, time\n"
        "b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b'x' * len(b[::4096])\n"
        "t = time.time()\n"
        "while time.time() - t < float(sys.argv[2]): pass\n"
        "time.sleep(float(sys.argv[3]))\n")
EFF_FIELDS = ["JobID", "JobIDRaw", "State", "Elapsed", "AllocCPUS", "ReqMem", "ReqTRES", "MaxRSS",
              "TotalCPU", "NTasks", "TRESUsageInTot", "TRESUsageInMax"]


@pytest.fixture(scope="module")
def efficiency_jobs(slurm_cluster, tmp_path_factory):
    """Jobs with known behaviour (python processes holding a known memory and spinning a known
    time), their raw sacct rows, and a store holding them (ingested from a dump of them)."""
    work = harness.user_tmpdir("root", "nomade-eff-")
    (work / "hold.py").write_text(HOLD, encoding="utf-8")
    hold = f"{PY} {work}/hold.py"
    jobs = {
        # 4 tasks x ~300 MB under --mem=2G: ~60 % (MaxRSS alone, one task, reads ~15 %)
        "multitask": harness.submit("root", "-J", "eff_multitask", "-n4", "--mem=2G", "-t", "5",
                                    output_dir=work, wrap=f"srun -n4 {hold} 300 4 3"),
        # per-CPU request, a batch step then a 2-task step
        "percpu": harness.submit("root", "-J", "eff_percpu", "-n2", "--mem-per-cpu=600M", "-t", "5",
                                 output_dir=work, wrap=f"{hold} 250 3 0; srun -n2 {hold} 200 3 0"),
        "array": harness.submit("root", "-J", "eff_array", "--array=1-2", "--mem=1G", "-t", "5",
                                output_dir=work, wrap=f"{hold} 100 2 0"),
        # two children spinning until the 1-minute limit kills them: TotalCPU misses their CPU
        "timeout": harness.submit("root", "-J", "eff_timeout", "-c2", "--mem=1G", "-t", "1",
                                  output_dir=work, wrap=f"{hold} 150 200 0 & {hold} 100 200 0; wait"),
    }
    harness.wait_done(list(jobs.values()), timeout=240)
    harness.wait_accounting_settled(list(jobs.values()), EFF_FIELDS, timeout=60)
    from nomade.ingest.sacct import LIVE_FIELDS
    dump = harness.sh(["sacct", "-a", "-D", "-P", "-j", ",".join(jobs.values()),
                       "--format=" + ",".join(LIVE_FIELDS)], timeout=30).stdout
    data = tmp_path_factory.mktemp("eff-real")
    (data / "dump.txt").write_text(dump, encoding="utf-8")
    nomade(data, "ingest", "sacct", "--file", str(data / "dump.txt"))
    raw = {r["JobID"]: r for r in harness.sacct_rows(jobs.values(), EFF_FIELDS)}
    return jobs, raw, data


def _report(data: Path, job_id: str):
    return json.loads(nomade(data, "report", job_id, "--json").stdout)


def _mib(text: str) -> float:
    from nomade.efficiency import tres_mem_mb
    return tres_mem_mb("mem=" + text)


def _tres(text: str, key: str) -> str:
    return dict(p.split("=", 1) for p in text.split(",") if "=" in p)[key]


def test_efficiency_multitask_step(efficiency_jobs):
    jobs, raw, data = efficiency_jobs
    jid = jobs["multitask"]
    step = raw[f"{jid}.0"]
    hand = _mib(_tres(step["TRESUsageInTot"], "mem")) / 2048          # the 4 tasks / --mem=2G
    r = _report(data, jid)
    assert abs(r["mem_efficiency"] - hand) < 0.01 and 0.45 < hand < 0.75, (r, step)
    assert r["mem_peak_source"] == "TRESUsageInTot"
    assert _mib(step["MaxRSS"]) / 2048 < 0.25          # what MaxRSS alone would have said


def test_efficiency_per_cpu_request_several_steps(efficiency_jobs):
    jobs, raw, data = efficiency_jobs
    jid = jobs["percpu"]
    req = _mib(_tres(raw[jid]["ReqTRES"], "mem"))                     # 2 x 600M = 1200M
    peak = max(_mib(_tres(raw[f"{jid}.{s}"]["TRESUsageInTot"], "mem")) for s in ("batch", "0"))
    r = _report(data, jid)
    assert req == 1200 and abs(r["mem_efficiency"] - peak / req) < 0.01, r


def test_efficiency_array_ids(efficiency_jobs):
    jobs, raw, data = efficiency_jobs
    base = jobs["array"]
    tasks = _report(data, base)
    assert [t["job_id"] for t in tasks["jobs"]] == [f"{base}_1", f"{base}_2"]
    assert tasks["summary"]["jobs"] == 2
    raw_id = raw[f"{base}_1"]["JobIDRaw"]
    assert _report(data, raw_id)["job_id"] == f"{base}_1"              # the task's SLURM_JOB_ID
    for t in tasks["jobs"]:
        hand = _mib(_tres(raw[t["job_id"] + ".batch"]["TRESUsageInTot"], "mem")) / 1024
        assert abs(t["mem_efficiency"] - hand) < 0.01


def test_efficiency_timeout_cpu_of_killed_children(efficiency_jobs):
    jobs, raw, data = efficiency_jobs
    jid = jobs["timeout"]
    from nomade.slurm.sacct_fields import parse_duration as d
    batch = raw[f"{jid}.batch"]
    cpu = max(d(batch["TotalCPU"]), d(_tres(batch["TRESUsageInTot"], "cpu")), d(_tres(batch["TRESUsageInMax"], "cpu")))
    hand = cpu / (d(raw[jid]["Elapsed"]) * int(raw[jid]["AllocCPUS"]))
    r = _report(data, jid)
    assert r["failure_class"] == "timeout"
    assert abs(r["cpu_efficiency"] - hand) < 0.01 and hand > 0.2, (r, batch)
    assert r["cpu_source"].startswith("TRESUsageIn")


# ---------------------------------------------------------------------------------- capture
def main(argv: List[str]) -> int:
    if len(argv) != 2 or argv[0] != "capture":
        print("usage: test_ingest_real.py capture OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    cluster = harness.ensure_cluster()
    t0 = time.time()
    jobs = run_state_matrix(cluster)
    print(f"matrix done in {time.time() - t0:.0f}s: {jobs}")
    capture(jobs, start, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
