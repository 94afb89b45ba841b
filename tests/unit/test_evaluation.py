"""Ensemble, calibration, folds and the evaluation/report pipeline on a small synthetic history."""

import json

import numpy as np
import pytest

from nomade.features.build import build_matrix
from nomade.features.jobtable import table_from_rows
from nomade.jobrecord import JobRecord
from nomade.train.calibration import choose_calibrator, fit_iso, fit_logistic
from nomade.train.folds import rolling_folds


def signal_rows(n=3000, seed=5):
    """Users with different failure propensities; big requests fail more."""
    rng = np.random.default_rng(seed)
    bad = rng.random(30)
    rows, t = [], 1.6e9
    for i in range(n):
        t += float(rng.exponential(300.0))
        u = int(rng.integers(0, 30))
        cpus = int(rng.choice([1, 4, 16, 64]))
        p = 0.05 + 0.5 * bad[u] * (0.5 + cpus / 128)
        failed = rng.random() < p
        run = float(rng.exponential(2000.0))
        rows.append(JobRecord(
            cluster="c", job_id=str(i), job_id_raw=i, name=f"app{u % 7}", user=f"u{u}", uid=u,
            grp=f"g{u % 4}", partition="p1", submit_time=t, req_cpus=cpus, req_nodes=1,
            timelimit_s=7200, state="FAILED" if failed else "COMPLETED", is_final=1,
            start_time=t + 60, end_time=t + 60 + run, elapsed_s=int(run)).__dict__)
    return rows


def test_calibration_pieces():
    rng = np.random.default_rng(0)
    x = rng.random(4000)
    y = (rng.random(4000) < x ** 2).astype(int)
    coef, b = fit_logistic(x[:, None], y)
    assert coef[0] > 0
    iso = fit_iso(x, y)
    z = np.linspace(0, 1, 50)
    assert np.all(np.diff(iso(z)) > 0)           # strictly increasing: ranking kept
    cal = choose_calibrator(x, y)
    assert cal.kind in ("platt", "isotonic")
    assert abs(np.mean(cal(x)) - y.mean()) < 0.03


def test_folds_train_only_on_outcomes_known_before_the_origin():
    fm = build_matrix(table_from_rows(signal_rows(1500)))
    folds = rolling_folds(fm, 3, min_train=200)
    known = fm.meta["outcome_time"]
    for f in folds:
        assert known[f.train].max() < f.origin <= fm.submit_time[f.test].min()


@pytest.mark.train
def test_evaluate_small_history_end_to_end(tmp_path):
    from nomade.train.ensemble import StackedEnsemble, default_bases
    from nomade.train.evaluation import evaluate_matrix
    from nomade.train.report import public, write_report

    fm = build_matrix(table_from_rows(signal_rows()))
    res = evaluate_matrix(fm, n_folds=2, base_names=["gbdt"])
    m = res["metrics"]
    assert set(m) >= {"ensemble", "gbdt", "user_history", "gbdt_hpe"}
    for name, d in m.items():
        assert 0.5 < d["roc_auc"] <= 1 and 0 <= d["ece"] <= 1, name
    assert m["ensemble"]["pr_auc"] > m["gbdt_hpe"]["pr_auc"] - 0.02
    out = write_report(res, tmp_path / "reports")
    for f in ("report.md", "report.html", "roc.png", "pr.png", "calibration.png", "metrics.json"):
        assert (out / f).exists()
    md = (out / "report.md").read_text()
    assert "## Choosing the alert threshold" in md and "| top 10% of jobs |" in md
    assert "| alert policy (each fold's threshold) | per fold |" in md and "`model.min_precision`" in md
    assert "| p >= 0.60 |" in md                       # the trade-off table an admin chooses from
    assert "false alarms /100 jobs" in (out / "report.html").read_text()
    js = json.loads((out / "metrics.json").read_text())
    assert js["report"] == str(out) and "ensemble" in js["metrics"]
    assert public(res)["folds"][0]["ensemble"]["mode"] in ("stacked", "fallback-weights")
    # too few positives in the stack window: fixed weights, said so in the manifest
    ens = StackedEnsemble(default_bases(["gbdt"]), min_stack_pos=10 ** 6).fit(fm)
    assert ens.manifest()["mode"] == "fallback-weights"
    p = ens.predict(fm)
    assert p.shape == (len(fm),) and np.all((p >= 0) & (p <= 1))
    spec = ens.stack_spec("submit")
    assert set(spec) >= {"coef", "intercept", "mu", "sd", "calibration"} and spec["bases"] == ["gbdt_submit"]


@pytest.mark.train
def test_active_sampler_keeps_seed_and_most_uncertain_dense_rows():
    from nomade.train.active_sampling import ActiveSampledGBDT, density, select_rows

    fm = build_matrix(table_from_rows(signal_rows()))
    rows = select_rows(fm, seed=7, budget=0.5, rounds=20)
    lab = np.flatnonzero(fm.y >= 0)
    assert abs(len(rows) - len(lab) // 2) <= 1 and set(rows) <= set(lab)
    assert np.all(np.diff(rows) > 0)
    Z = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    Z[:100] = Z[0]                       # a dense clump of identical rows
    d = density(Z)
    assert d.shape == (300,) and d[:100].mean() > d[100:].mean()
    p = ActiveSampledGBDT(0.5, rounds=20).fit(fm, 7).predict(fm)
    assert p.shape == (len(fm),) and np.all((p >= 0) & (p <= 1))
