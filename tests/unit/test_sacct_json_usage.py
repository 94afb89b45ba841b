"""``sacct --json`` (Slurm 22.05) fills the steps' NTasks, TRESUsageInTot and TRESUsageInMax as
``sacct -P`` prints them, so the same real jobs give the same efficiency either way.

real_efficiency_cases_22.05.json and .txt: jobs 194-201 of the test cluster (several tasks, per-CPU
request with two steps, an array, a timeout, a cancel, an OOM kill), captured with ``sacct --json``
and ``sacct -P --format=<LIVE_FIELDS>`` for the same ids."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomade.cli.main import cli
from nomade.ingest import sacct as ing
from nomade.slurm.sacct_json import usage_text
from nomade.store.db import open_store
from nomade.store.job_queries import job_steps

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sacct"
CASES = "real_efficiency_cases_22.05"
JOBS = ("194", "195", "196_1", "196_2", "196_3", "197", "198", "199")
PP = 0.01   # one percentage point


@pytest.fixture
def text_and_json(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "j").mkdir()
    a = open_store(tmp_path / "p" / "nomade.db")
    b = open_store(tmp_path / "j" / "nomade.db")
    ing.ingest_file(a, str(FIX / f"{CASES}.txt"))
    res = ing.ingest_json_file(b, str(FIX / f"{CASES}.json"))
    assert res.counts.new == len(JOBS) and res.counts.quarantined == 0
    yield a, b, tmp_path
    a.close()
    b.close()


def test_json_steps_hold_what_sacct_p_prints(text_and_json):
    a, b, _ = text_and_json
    for jid in JOBS:
        p_steps = {s["step_id"]: s for s in job_steps(a, "lab", jid)}
        j_steps = {s["step_id"]: s for s in job_steps(b, "lab", jid)}
        assert p_steps and set(p_steps) == set(j_steps), jid
        for sid, ps in p_steps.items():
            for col in ("ntasks", "tres_usage_in_tot", "tres_usage_in_max"):
                assert j_steps[sid][col] == ps[col], (jid, sid, col)
            assert j_steps[sid]["max_rss_mb"] == pytest.approx(ps["max_rss_mb"]), (jid, sid)


def _report(data_dir, jid):
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "report", jid, "--json"])
    assert res.exit_code == 0, (jid, res.output)
    return json.loads(res.output)


def test_report_json_same_efficiency_from_text_and_json(text_and_json):
    _, _, root = text_and_json
    for jid in JOBS:
        p, j = _report(root / "p", jid), _report(root / "j", jid)
        for key in ("mem_efficiency", "cpu_efficiency"):
            assert p[key] is not None and j[key] is not None, (jid, key)
            assert abs(p[key] - j[key]) < PP, (jid, key, p[key], j[key])
        for key in ("mem_peak_source", "cpu_source", "failure_class"):
            assert p[key] == j[key], (jid, key)
    multitask = _report(root / "j", "194")     # srun -n4: the step's total, not one task x 1
    assert multitask["mem_peak_source"] == "TRESUsageInTot"
    assert abs(multitask["mem_efficiency"] - 1262400 / 1024 / 2048) < PP
    timeout = _report(root / "j", "197")        # the killed children's CPU, from TRESUsageInMax
    assert timeout["cpu_source"] == "TRESUsageInMax"


def _item(kind, count, name=None):
    return {"type": kind, "name": name, "id": 1, "count": count}


def test_usage_text_units_and_hostile_items():
    assert usage_text([_item("mem", 1292697600), _item("cpu", 8970), _item("fs", 179152, "disk"),
                       _item("vmem", 1315454976)]) == \
        "cpu=00:00:08,fs/disk=179152,mem=1262400K,vmem=1284624K"
    assert usage_text([_item("cpu", (2 * 86400 + 3661) * 1000 + 999)]) == "cpu=2-01:01:01"
    assert usage_text([_item("mem", 1023), _item("vmem", 2 * 1024 ** 3)]) == "mem=1023,vmem=2G"
    assert usage_text([_item("mem", 2 ** 64 - 2), _item("cpu", None), _item("cpu", True),
                       _item("mem", -1), _item("gres", 1, "gpu,mem=9G"), _item("x=1", 3),
                       "mem", _item(None, 5), _item("energy", 2 ** 63)]) is None
    assert usage_text(None) is None and usage_text([]) is None
    assert usage_text([_item("pages", 2 ** 63 - 1)]) == f"pages={2 ** 63 - 1}"
