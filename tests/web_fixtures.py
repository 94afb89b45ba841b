"""A small store for the dashboard's tests (unit and browser): two users' jobs with hostile
names, scores with factors, a job's recorder samples, alerts when the alert engine is there."""

import json
import os
from pathlib import Path
from typing import Dict, Optional

from nomade.jobrecord import JobRecord
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs
from nomade.store.recorder import SAMPLE_COLS, add_samples
from nomade.store.scores import Score, write_scores
from nomade.web import auth

CLUSTER = "c1"
T0 = 1_700_000_000.0
ALICE = ("daemon", 1)      # real passwd entries, so names resolve; neither is root or an admin
BOB = ("bin", 2)
HOSTILE = '<script>alert("x")</script>\n\x1b[31m|;'
N_ALICE, N_BOB = 12, 7


def _job(n: int, user, state: str, **kw) -> JobRecord:
    final = 0 if state in ("RUNNING", "PENDING") else 1
    return JobRecord(CLUSTER, str(n), job_id_raw=n, user=user[0], uid=user[1], name=kw.pop("name", f"sim{n % 3}"),
                     state=state, is_final=final, submit_time=T0 + 60 * n, start_time=T0 + 60 * n + 5,
                     end_time=(T0 + 60 * n + 600) if final else None, elapsed_s=595 if final else None,
                     partition="batch", req_cpus=4, req_mem_mb=4096.0, timelimit_s=3600,
                     exit_code=0 if state == "COMPLETED" else 1, exit_signal=0, **kw)


def build_store(data_dir: Path, with_alerts: bool = True, location=None) -> Dict[str, object]:
    """Write the store into ``data_dir``/nomade.db (or ``location``: a PostgreSQL URL); returns
    what the tests check against."""
    states = ["COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "COMPLETED", "RUNNING"]
    jobs = [_job(100 + i, ALICE, states[i % len(states)], name=(HOSTILE if i == 1 else None) or f"sim{i % 3}")
            for i in range(N_ALICE)]
    jobs += [_job(200 + i, BOB, states[(i + 1) % len(states)]) for i in range(N_BOB)]
    reasons = json.dumps([{"feature": "user_fail_rate", "value": 0.4, "contribution": 0.9},
                          {"feature": "req_mem_mb", "value": 4096, "contribution": -0.3},
                          {"feature": "timelimit_s", "value": 3600, "contribution": 0.5}])
    scores = [Score(CLUSTER, str(100 + i), "submit", "m1", 0.1 + 0.07 * i, None, reasons, T0 + 60 * i)
              for i in range(N_ALICE)]
    scores.append(Score(CLUSTER, "101", "start", "m1", 0.85, None, reasons, T0 + 70))
    with open_store(location or data_dir / "nomade.db") as store:
        upsert_jobs(store, jobs, "test")
        write_scores(store, scores)
        samples = []
        for k in range(12):
            row = {c: None for c in SAMPLE_COLS}
            row.update(cluster=CLUSTER, job_id="105", node="n1", ts=T0 + 600 + 30 * k,
                       cg_mem_mb=1000.0 + 150.0 * k, cg_mem_limit_mb=4096.0, cpu_eff=0.8, extra="{}")
            samples.append(tuple(row[c] for c in SAMPLE_COLS))
        add_samples(store, samples)
        alert_ids = _alerts(store) if with_alerts else None
    return {"alice_jobs": {str(100 + i) for i in range(N_ALICE)},
            "bob_jobs": {str(200 + i) for i in range(N_BOB)}, "alert_ids": alert_ids}


RUNNING_ALICE, RUNNING_BOB = ("105", "111", "130"), ("204",)     # RUNNING in build_store (130: here)


def add_running_samples(store, step: int) -> None:
    """Recorder samples of the running jobs (three per job, after those of ``step - 1``; runs
    about as long as ``zone_jobs``' ended jobs), their summaries rebuilt as the spool ingestion
    does; step 0 also adds alice's running job 130 with a hostile name and node list."""
    from nomade.ingest.spool import rebuild_summaries
    if step == 0:
        upsert_jobs(store, [_job(130, ALICE, "RUNNING", name=HOSTILE, node_list='n1,"<x>\n;')], "test")
    rows = []
    for job in RUNNING_ALICE + RUNNING_BOB:
        start = T0 + 60 * int(job) + 5
        for k in range(3 * step, 3 * step + 3):
            row = {c: None for c in SAMPLE_COLS}
            row.update(cluster=CLUSTER, job_id=job, node="n1", ts=start + 250 + 30 * (int(job) % 5) + 40 * k, cpu_eff=0.5,
                       rss_mb=500.0 + 100.0 * k, cg_mem_mb=600.0 + 100.0 * k, cg_mem_limit_mb=4096.0,
                       write_bytes=2 ** 20 * (1 + k) ** 2, write_network_bytes=2 ** 20 * (1 + k),
                       write_local_bytes=2 ** 19 * (1 + k), extra="{}")
            rows.append(tuple(row[c] for c in SAMPLE_COLS))
    add_samples(store, rows)
    rebuild_summaries(store, [(CLUSTER, j) for j in RUNNING_ALICE + RUNNING_BOB], now=T0)


def _alerts(store) -> Optional[Dict[str, int]]:
    try:
        from nomade.store import alerts as store_alerts
    except ImportError:
        return None
    base = dict(cluster=CLUSTER, severity="warning", state="firing", value=1.0, description="",
                started_at=T0, fired_at=T0, resolved_at=None, updated_at=T0, last_sent_at=None,
                last_sent_status=None, acked_at=None, acked_until=None, acked_by=None, ack_note=None)
    rows = [dict(base, fingerprint="fs", rule="disk_full", labels={"mount": "/scratch"}, owner=None,
                 summary="/scratch fills in 3h"),
            dict(base, fingerprint="j1", rule="high_risk_job", labels={"job_id": "101", "user": ALICE[0]},
                 owner=ALICE[0], summary="job 101 of daemon is at high risk"),
            dict(base, fingerprint="j2", rule="high_risk_job", labels={"job_id": "201", "user": BOB[0]},
                 owner=BOB[0], summary="job 201 of bin is at high risk")]
    return store_alerts.save_pass(store, rows, [], lambda ids: [])


def token_for(data_dir: Path, uid: int) -> str:
    """A token for ``uid`` made as that user would (the verifier owned by uid; we are root)."""
    directory = data_dir / "web-tokens"
    tok = auth.make_token(directory, uid, data_dir / f"token-{uid}")
    if os.getuid() == 0:
        os.chown(directory / str(uid), uid, -1)
        os.chmod(directory, 0o1733)
    return tok


HOSTILE_MODEL = '</script><img src=x onerror=alert(1)>'


def evaluated_manifest(version: str, created_at: float) -> Dict[str, object]:
    """A manifest shaped like ``nomade train``'s with an evaluation of the submit stage: two
    folds, the models, both baselines, a threshold sweep, the alert policy's table, a piecewise
    calibration map; one model name is hostile text."""
    def model(pr, roc, ece, shift):
        sweep = [{"threshold": t, "precision": min(1.0, 0.2 + shift + 0.5 * t), "recall": max(0.0, 1.0 - t - shift),
                  "f1": 0.3, "flagged": max(0.0, 0.9 - t)} for t in (0.1, 0.2, 0.3, 0.5, 0.7)]
        return {"roc_auc": roc, "pr_auc": pr, "brier": 0.1, "ece": ece, "precision": 0.4, "recall": 0.5,
                "f1": 0.44, "flagged": 0.2, "n_test": 400, "positive_rate": 0.2,
                "per_class_recall": {"failed": 0.5}, "sweep": sweep}
    metrics = {"ensemble": model(0.52, 0.81, 0.03, 0.0), "gbdt": model(0.47, 0.78, 0.05, 0.05),
               HOSTILE_MODEL: model(0.41, 0.74, 0.04, 0.1), "user_history": model(0.30, 0.62, 0.02, 0.2),
               "gbdt_hpe": model(0.33, 0.66, 0.06, 0.15)}
    folds = [{"fold": k, "n_train": 800 + 200 * k, "n_test": 200,
              "metrics": {n: {"pr_auc": m["pr_auc"] + 0.02 * k, "roc_auc": m["roc_auc"], "ece": m["ece"]}
                          for n, m in metrics.items()}} for k in range(2)]
    table = [{"threshold": t, "precision": 0.25 + 0.6 * t, "recall": 1.0 - t, "f1": 0.4, "flagged": 1.0 - t}
             for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    return {"version": version, "created_at": created_at, "format_version": 2,
            "data_counts": {"jobs": 2000, "labelled": 2000, "failed": 400},
            "metrics": metrics,
            "evaluation": {"submit": {"protocol": "rolling origin, 2 folds over the newest half of the history",
                                      "folds": folds, "metrics": metrics, "report": "/srv/nomade/reports/x"}},
            "alert_policy": {"submit": {"threshold": 0.6, "rule": "alert budget: at most 10% of jobs flagged",
                                        "precision": 0.61, "recall": 0.4, "flagged": 0.1, "table": table},
                             "lua": {"threshold": 0.55, "rule": "alert budget: at most 10% of jobs flagged"}},
            "thresholds": {"alert": 0.6, "high": 0.8},
            "ensemble": {"mode": "stacked", "primary": {"submit": "ensemble_submit"},
                         "stacks": {"ensemble_submit": {"stage": "submit", "mode": "stacked"}},
                         "skipped_stages": {"start": "only 900 labelled jobs have a start time (need 1000)"}},
            "models": {"gbdt_lite": {"calibration": {"kind": "piecewise_linear", "x": [0.1, 0.3, 0.6, 0.9],
                                                     "y": [0.05, 0.2, 0.55, 0.8]}}},
            "series": {"skipped": "0 ended jobs with >= 3 recorder samples"},
            "publish_gate": {"passed": True, "reason": "passed", "reasons": []}}


def add_bundle(store, version: str = "20261101T000000Z", current: bool = True) -> None:
    """Register an evaluated bundle (``evaluated_manifest``), made current when ``current``."""
    from nomade.store.models import add_model, make_current
    add_model(store, version, f"/srv/nomade/models/{version}", "candidate", T0, evaluated_manifest(version, T0))
    if current:
        make_current(store, version, T0 + 60)


def zone_jobs(n: int = 240, seed: int = 3):
    """``n`` ended jobs of both users (ids 1000..) whose failures depend on their core count
    (most jobs on 32 or more cores fail, few on fewer): the behaviour analysis finds a danger
    and a safe zone in them."""
    import random
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        user = ALICE if i % 2 else BOB
        cores = rnd.choice([1, 2, 4, 8, 16, 32, 64])
        state = "FAILED" if rnd.random() < (0.8 if cores >= 32 else 0.1) else "COMPLETED"
        submit = T0 + 86400 + 120 * i
        out.append(JobRecord(CLUSTER, str(1000 + i), job_id_raw=1000 + i, user=user[0], uid=user[1],
                             name=f"zone{i % 5}", state=state, is_final=1, submit_time=submit,
                             start_time=submit + 10, end_time=submit + 10 + 300 + 30 * (i % 20),
                             elapsed_s=300 + 30 * (i % 20), partition="batch", req_cpus=cores,
                             req_mem_mb=2048.0 * (1 + i % 3), timelimit_s=7200,
                             exit_code=0 if state == "COMPLETED" else 1, exit_signal=0))
    return out


def zone_site(data_dir: Path, monkeypatch, running: bool = False) -> Dict[str, object]:
    """A store with ``zone_jobs`` (and running jobs with samples when ``running``), no NOMADE_*
    environment, and the dashboard app over it: {"dir", "app"}."""
    import os

    from nomade.store.db import open_store
    from nomade.store.jobs import upsert_jobs
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    build_store(data_dir, with_alerts=False)
    with open_store(data_dir / "nomade.db") as store:
        upsert_jobs(store, zone_jobs(), "test")
        if running:
            add_running_samples(store, 0)
    (data_dir / "none.toml").write_text("")
    return {"dir": data_dir, "app": web_app(data_dir)}


def web_app(data_dir: Path, **settings):
    """The dashboard over ``data_dir`` with no admin group members (only root is an admin)."""
    from nomade.config import load_config
    from nomade.web.app import create_app
    return create_app(load_config(str(data_dir / "none.toml"), {
        "data_dir": str(data_dir), "privacy.admin_group": "nomade-test-no-such-group", **settings}))


def logged_in(app, data_dir: Path, uid: int):
    """A TestClient logged in as ``uid`` with its token."""
    from starlette.testclient import TestClient
    c = TestClient(app, client=("127.0.0.1", 50000), follow_redirects=False)
    assert c.get("/login", params={"token": token_for(data_dir, uid)}).status_code == 303
    return c
