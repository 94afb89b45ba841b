"""Warnings in production (issue 13 item 2): the submit-stage verdict each job got from the bundle
current at its submit time is recorded once, and `models performance` compares the recorded
warnings with the outcomes."""

import json
import shutil
from pathlib import Path

import pytest

from nomade.cli.main import cli, run_cli
from nomade.jobrecord import JobRecord
from nomade.production import performance, record_submit_scores
from nomade.scoring.bundle import load_bundle
from nomade.scoring.lua_verdict import LuaModel
from nomade.scoring.registry import register
from nomade.store import models as store_models
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs

DEFAULT = Path(__file__).resolve().parents[2] / "models" / "default"
T1, T2 = 1_700_000_000.0, 1_700_100_000.0


def _bundle(reg: Path, version: str, threshold: float) -> Path:
    dest = reg / version
    shutil.copytree(DEFAULT, dest)
    man = json.loads((dest / "manifest.json").read_text())
    man["version"] = version
    man["lua"]["threshold"] = threshold
    (dest / "manifest.json").write_text(json.dumps(man))
    return dest


def _job(i: int, submit: float, state: str, user: str = "alice", uid: int = 1000, name: str = "sim") -> JobRecord:
    return JobRecord(cluster="c1", job_id=str(100 + i), user=user, uid=uid, name=name, partition="batch",
                     state=state, submit_time=submit, start_time=submit + 10,
                     end_time=None if state in ("PENDING", "RUNNING") else submit + 100,
                     req_cpus=4, req_nodes=1, req_mem_mb=4096, timelimit_s=3600,
                     is_final=0 if state in ("PENDING", "RUNNING") else 1)


@pytest.fixture()
def env(tmp_path):
    store = open_store(tmp_path / "nomade.db")
    reg = tmp_path / "models"
    # vA warns everyone (threshold 0), vB nobody (threshold 1)
    for v, thr in (("vA", 0.0), ("vB", 1.0)):
        p = _bundle(reg, v, thr)
        register(store, p, load_bundle(p).manifest)
    store_models.make_current(store, "vA", T1)
    store_models.make_current(store, "vB", T2)
    jobs = [_job(0, T1 - 500, "FAILED"),                                   # before any promotion
            _job(1, T1 + 100, "FAILED"), _job(2, T1 + 200, "COMPLETED"),  # vA
            _job(3, T2 + 100, "FAILED"), _job(4, T2 + 200, "COMPLETED"),  # vB
            _job(5, T2 + 300, "PENDING"),
            _job(6, T2 + 400, "TIMEOUT", user="bob\n|x", uid=1001, name="n\x00a\tme;rm -rf"),
            _job(7, T2 + 500, "CANCELLED")]                                 # the owner's own cancel: no label
    upsert_jobs(store, jobs, "test")
    yield store, reg
    store.close()


def _scores(store):
    return {r[0]: (r[1], r[2]) for r in store.conn.execute(
        "SELECT job_id, model_version, risk FROM scores WHERE stage = 'submit'")}


def test_each_job_gets_the_bundle_current_at_its_submit_time(env):
    store, _ = env
    counts = record_submit_scores(store, now=T2 + 1000)
    assert counts.recorded == 7 and counts.skipped == 0
    got = _scores(store)
    assert "100" not in got                       # submitted before the first promotion
    assert {j: v for j, (v, _) in got.items()} == {"101": "vA", "102": "vA", "103": "vB", "104": "vB",
                                                   "105": "vB", "106": "vB", "107": "vB"}
    lua = LuaModel.from_bundle(load_bundle(env[1] / "vA"))
    assert 0.0 <= got["101"][1] <= 1.0 and lua.version == "vA"
    assert record_submit_scores(store, now=T2 + 1000).recorded == 0   # idempotent


def test_rollback_window_uses_the_rolled_back_bundle(env):
    store, _ = env
    store_models.make_current(store, "vA", T2 + 250)        # rolled back to vA
    record_submit_scores(store, now=T2 + 1000)
    got = _scores(store)
    assert got["104"][0] == "vB" and got["105"][0] == "vA" and got["106"][0] == "vA"


def test_a_deleted_bundle_is_counted_not_retried_forever(env):
    store, reg = env
    shutil.rmtree(reg / "vB")
    counts = record_submit_scores(store, now=T2 + 1000)
    assert counts.recorded == 2 and counts.skipped == 5
    assert set(_scores(store)) == {"101", "102"}


def test_performance_against_outcomes(env):
    store, _ = env
    record_submit_scores(store, now=T2 + 1000)
    rows = {(r.stage, r.model_version): r for r in performance(store, since=0.0)}
    a, b, all_ = rows[("submit", "vA")], rows[("submit", "vB")], rows[("submit", "all")]
    assert (a.jobs, a.failed, a.warned, a.precision, a.recall) == (2, 1, 2, 0.5, 1.0)
    assert (b.jobs, b.failed, b.warned, b.precision, b.recall) == (3, 2, 0, None, 0.0)
    assert all_.jobs == 5 and all_.warned == 2      # the pending job has no outcome yet, the owner's cancel no label
    assert sum(band.n for band in all_.bands) == 5
    assert a.promised.get("precision") is not None                  # the evaluation's promise, beside it


def test_models_performance_command(env, tmp_path, capsys, monkeypatch):
    store, _ = env
    monkeypatch.setenv("NOMADE_STORE_PATH", str(store.path))
    monkeypatch.setenv("NOMADE_DATA_DIR", str(tmp_path))
    assert run_cli(cli, ["models", "performance", "--since", "10000d", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {(r["stage"], r["model_version"]) for r in out} >= {("submit", "all"), ("submit", "vA")}
    assert run_cli(cli, ["models", "performance", "--since", "yesterday-ish"]) != 0
    assert "--since" in capsys.readouterr().err


def test_production_metrics_feed_the_alert_rules(env, tmp_path):
    """`ingest sacct` stores precision and calibration as metrics; the default rule
    model_precision_low reads them."""
    from nomade.alerts.defaults import default_rules
    from nomade.config import load_config
    from nomade.production import record_production_metrics
    from nomade.store import metrics as sm
    store, _ = env
    record_submit_scores(store, now=T2 + 1000)
    cfg = load_config(None, {"data_dir": str(tmp_path)}, environ={"NOMADE_CLUSTER": "c1"})
    assert record_production_metrics(store, cfg, now=T2 + 1000, days=10000) >= 2
    got = {(r.metric, r.labels.get("stage")): r.value for r in sm.latest(store, "model.", cluster="c1")}
    assert got[("model.precision", "submit")] == 0.5 and got[("model.recall", "submit")] == 1 / 3
    names = {r.name for r in default_rules(cfg)}
    assert {"model_precision_low", "model_calibration_drift", "behaviour_drift"} <= names
