"""Synthetic jobs for the GBDT / bundle / Lua tests: users with different failure propensities,
job names, requests and outcomes that depend on them (so models have signal), submit times over
60 days. Deterministic for a seed."""

import numpy as np

from nomade.jobrecord import JobRecord

T0 = 1_700_000_000.0


def synthetic_records(n: int = 3000, seed: int = 3, cluster: str = "synth"):
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in range(40)]
    prop = rng.uniform(0.05, 0.7, len(users))
    subs = np.sort(rng.uniform(0, 60 * 86400, n)) + T0
    out = []
    for i in range(n):
        u = int(rng.integers(len(users)))
        app = int(rng.integers(8))
        cpus = int(rng.choice([1, 4, 16, 64]))
        nodes = max(1, cpus // 16)
        tl = None if rng.random() < 0.05 else int(rng.choice([600, 3600, 4 * 3600, 24 * 3600]))
        mem = None if rng.random() < 0.1 else float(rng.choice([500, 2000, 8000]))
        p = prop[u] * (1.3 if app == 3 else 1.0) * (1.2 if cpus == 64 else 1.0)
        failed = rng.random() < min(p, 0.95)
        run = float(rng.uniform(30, (tl or 7200) * (1.0 if failed else 0.8)))
        start = subs[i] + float(rng.uniform(0, 1800))
        out.append(JobRecord(
            cluster=cluster, job_id=str(1000 + i), job_id_raw=1000 + i, name=f"app{app}",
            user=users[u], uid=1000 + u, submit_time=float(subs[i]), req_cpus=cpus, req_nodes=nodes,
            req_mem_mb=mem, req_mem_per_cpu=0 if mem is not None else None, timelimit_s=tl,
            state="FAILED" if failed else "COMPLETED", state_raw="FAILED" if failed else "COMPLETED",
            is_final=1, start_time=start, end_time=start + run, elapsed_s=int(run)))
    return out


def lite_jobs(n: int = 3000, seed: int = 3):
    """The records as request dicts for nomade.scoring.lite_features.build_lite_rows."""
    rows = []
    for r in synthetic_records(n, seed):
        rows.append({"user": r.user, "name": r.name, "cpus": r.req_cpus, "nodes": r.req_nodes,
                     "gpus": None, "mem_mb": r.req_mem_mb, "mem_per_cpu": False,
                     "timelimit_s": r.timelimit_s, "submit_time": r.submit_time,
                     "runtime": r.end_time - r.start_time, "end_time": r.end_time,
                     "y": 1 if r.state == "FAILED" else 0})
    return rows


def make_store(tmp_path, n: int = 3000, seed: int = 3):
    from nomade.store.db import open_store
    from nomade.store.jobs import upsert_jobs

    store = open_store(tmp_path / "nomade.db")
    upsert_jobs(store, synthetic_records(n, seed), "synthetic")
    return store
