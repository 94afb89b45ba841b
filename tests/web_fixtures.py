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
