"""The in-run series model: trained on recorder samples of ended jobs, exported to ONNX (torch vs
onnxruntime within 1e-5), loaded from a bundle by the recorder's EarlyWarning, and declined with
a reason when there is too little recorded history."""

import json

import numpy as np
import pytest

from nomade.jobrecord import JobRecord
from nomade.recorder.sample import JobSample
from nomade.scoring.series import N_SERIES_STEP, series_steps
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs

T0 = 1_750_000_000.0
LIMIT = 4000.0


def job_samples(rng, job_id, grows: bool, n: int):
    """One job's samples 30 s apart: failing jobs' memory climbs toward the limit."""
    out, mem = [], float(rng.uniform(0.2, 0.5)) * LIMIT
    for k in range(n):
        mem += (LIMIT * rng.uniform(0.03, 0.08)) if grows else LIMIT * rng.normal(0, 0.005)
        out.append(JobSample(job_id=job_id, node="n1", ts=T0 + 30.0 * k, cluster="c",
                             cpu_eff=float(rng.uniform(0.6, 1.0)), rss_mb=mem, cg_mem_mb=mem,
                             cg_mem_limit_mb=LIMIT, write_bytes=int(1e6 * k)))
    return out


def make_store(tmp_path, n_jobs=400, seed=3):
    rng = np.random.default_rng(seed)
    store = open_store(tmp_path / "nomade.db")
    recs, rows = [], []
    for i in range(n_jobs):
        fails = rng.random() < 0.3
        jid = str(1000 + i)
        recs.append(JobRecord(cluster="c", job_id=jid, job_id_raw=1000 + i, user=f"u{i % 7}",
                              uid=i % 7, submit_time=T0 + 60.0 * i, state="OUT_OF_MEMORY" if fails else "COMPLETED",
                              state_raw="x", is_final=1, start_time=T0 + 60.0 * i, end_time=T0 + 60.0 * i + 600))
        for s in job_samples(rng, jid, fails, int(rng.integers(5, 12))):
            rows.append((s.cluster, s.job_id, s.node, s.ts, s.cpu_eff, s.rss_mb, s.cg_mem_mb,
                         s.cg_mem_limit_mb, s.write_bytes, json.dumps({})))
    upsert_jobs(store, recs, "test")
    with store.transaction() as c:
        c.executemany("INSERT INTO samples (cluster, job_id, node, ts, cpu_eff, rss_mb, cg_mem_mb, "
                      "cg_mem_limit_mb, write_bytes, extra) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    return store


def test_series_steps_shape_and_padding():
    rng = np.random.default_rng(0)
    s = series_steps(job_samples(rng, "1", True, 5), t=8)
    assert s.shape == (8, N_SERIES_STEP)
    assert np.all(s[:3] == 0) and np.all(s[3:, -1] == 1.0)       # zero rows in front, present flag
    assert np.all(np.diff(s[3:, 0]) > 0) and np.all(s[4:, 2] > 0)  # memory share and growth rise
    assert series_steps([], t=4).shape == (4, N_SERIES_STEP)


@pytest.mark.train
def test_fit_series_learns_growth_and_onnx_matches_torch(tmp_path):
    import onnxruntime as ort

    from nomade.config import load_config
    from nomade.train.series_model import fit_series

    store = make_store(tmp_path)
    fit = fit_series(store, load_config(None, {"data_dir": str(tmp_path)}), seed=7)
    store.close()
    assert "skipped" not in fit.spec, fit.spec
    m = fit.spec["metrics"]
    assert m["roc_auc"] > 0.85 and m["n_test"] > 0, m
    sess = ort.InferenceSession(fit.files["series_lstm.onnx"], providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    S = np.stack([series_steps(job_samples(rng, "x", bool(i % 2), int(rng.integers(3, 20))))
                  for i in range(200)])
    onnx = sess.run(["p"], {"SEQ": S, "X": np.ascontiguousarray(S[:, -1, :])})[0]
    np.testing.assert_allclose(onnx, fit.native(S), atol=1e-5, err_msg="series_lstm: onnx vs torch")


@pytest.mark.train
def test_recorder_scores_series_from_the_bundle(tmp_path):
    from nomade.config import load_config
    from nomade.recorder.warning import SERIES_KIND, EarlyWarning
    from nomade.scoring.series import load_series_scorer
    from nomade.train.bundle_writer import write_bundle
    from nomade.train.series_model import fit_series

    store = make_store(tmp_path)
    fit = fit_series(store, load_config(None, {"data_dir": str(tmp_path)}), seed=7)
    store.close()
    man = {"feature_schema": {}, "thresholds": {"alert": 0.5, "high": 0.75},
           "ensemble": {"mode": "single", "primary": {}}, "models": {}, "series": fit.spec}
    path = write_bundle(tmp_path / "reg", "v1", fit.files, man)
    scorer = load_series_scorer(load_config(None, {"data_dir": str(tmp_path), "model.bundle": str(path)}))
    rng = np.random.default_rng(5)
    grow, flat = job_samples(rng, "77", True, 10), job_samples(rng, "78", False, 10)
    assert scorer(grow) > 0.5 > scorer(flat) and scorer(grow[:2]) is None
    ew = EarlyWarning(series_scorer=scorer)
    kinds = set()
    for a, b in zip(grow, flat):
        kinds |= {(e.job_id, e.kind) for e in ew.observe([a, b])}
    assert ("77", SERIES_KIND) in kinds and ("78", SERIES_KIND) not in kinds


@pytest.mark.train
def test_too_little_recorded_history_is_declined(tmp_path):
    from nomade.config import load_config
    from nomade.train.series_model import fit_series

    store = make_store(tmp_path, n_jobs=50)
    fit = fit_series(store, load_config(None, {"data_dir": str(tmp_path)}))
    store.close()
    assert fit.files == {} and "need 200" in fit.spec["skipped"]
