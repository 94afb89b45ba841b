"""An ensemble that earns its place (issue 13, item 4): stacking weights are non-negative, their
L1 strength and the bases kept are chosen by time-ordered validation on the stack window (a base
that does not help gets weight 0), and when the ensemble does not beat its best base on the most
recent window the publish gate publishes that base alone and says so."""

import numpy as np
import pytest

pytestmark = pytest.mark.train   # the stacking fit needs scipy ([train])

from nomade.train.ensemble import choose_stack, fit_nonneg_logistic
from nomade.train.publish_gate import choose_primary


def _stack_window(seed, n=4000):
    """Standardised base outputs in time order: a good base, a weaker view of the same signal,
    and pure noise."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * s - 1.5)))).astype(int)
    Z = np.stack([s + 0.5 * rng.normal(size=n), s + 2.0 * rng.normal(size=n), rng.normal(size=n)], 1)
    return (Z - Z.mean(0)) / Z.std(0), y


@pytest.mark.parametrize("seed", range(6))
def test_a_noise_base_gets_weight_zero(seed):
    Z, y = _stack_window(seed)
    pick = choose_stack(Z, y)
    coef = pick["coef"]
    assert np.all(coef >= 0) and coef[0] > 0.5
    assert coef[2] == 0.0, coef
    assert pick["strength"] in (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    assert set(pick["validation"]) == {"0", "0.0001", "0.001", "0.003", "0.01", "0.03"}


def test_weights_are_never_negative():
    """An inverted base (higher output, lower risk) is not used upside down: weight 0."""
    Z, y = _stack_window(1)
    w, _ = fit_nonneg_logistic(np.stack([-Z[:, 0], Z[:, 2]], 1), y, 0.0)
    assert np.all(w >= 0) and w[0] == 0.0


def test_a_stack_of_only_useless_bases_keeps_one():
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.3).astype(int)
    pick = choose_stack(rng.normal(size=(3000, 2)), y)
    assert np.sum(pick["coef"] > 0) == 1     # never an all-zero (broken) stack


def _evaluation(ens, bases):
    fold = {"fold": 1, "n_test": 500, "metrics": {"ensemble": {"pr_auc": ens}}}
    fold["metrics"].update({b: {"pr_auc": v} for b, v in bases.items()})
    return {"folds": [{"fold": 0, "metrics": {"ensemble": {"pr_auc": 0.9}, "gbdt": {"pr_auc": 0.1}}}, fold]}


def test_the_gate_picks_a_dominant_base_on_the_most_recent_window():
    got = choose_primary(_evaluation(0.36, {"gbdt": 0.40, "autoencoder": 0.12}), ["gbdt", "autoencoder"])
    assert got["base"] == "gbdt" and got["reason"] == (
        "the ensemble did not beat its base gbdt on the most recent window (fold 2's 500 test jobs: "
        "PR-AUC 0.360 vs 0.400); gbdt is published alone")
    assert choose_primary(_evaluation(0.41, {"gbdt": 0.40}), ["gbdt"]) is None   # it earns its place
    assert choose_primary(_evaluation(0.40, {"gbdt": 0.40}), ["gbdt"])["base"] == "gbdt"   # a tie
    # only the stack's own bases compete (not the baselines), and nothing to judge is no choice
    assert choose_primary(_evaluation(0.3, {"gbdt_hpe": 0.5}), ["gbdt"]) is None
    assert choose_primary({"folds": []}, ["gbdt"]) is None


class NoiseBase:
    """A base model that knows nothing: a probability drawn at random per row."""
    name = "noise"
    is_probability = True

    def fit(self, fm, seed=7):
        return self

    def predict(self, fm):
        return np.random.default_rng(len(fm)).uniform(0.05, 0.95, len(fm))


@pytest.mark.train
def test_the_fitted_ensemble_zeroes_noise_and_can_publish_one_base():
    from test_evaluation import signal_rows

    from nomade.features.build import build_matrix
    from nomade.features.jobtable import table_from_rows
    from nomade.train.ensemble import StackedEnsemble, default_bases

    fm = build_matrix(table_from_rows(signal_rows()))
    bases = dict(default_bases(["gbdt"]), noise=NoiseBase())
    ens = StackedEnsemble(bases, min_stack_pos=50).fit(fm)
    w = ens.manifest()["weights"]
    assert ens.mode == "stacked" and w["gbdt"] > 0 and w["noise"] == 0.0, w
    assert ens.manifest()["selection"]["zeroed"] == ["noise"]
    ens.use_single("gbdt", "the ensemble did not beat its base gbdt")
    spec = ens.stack_spec("submit")
    assert spec["mode"] == "single-base" and spec["coef"] == [1.0, 0.0]
    assert spec["single_base"] == {"base": "gbdt", "model": "gbdt_submit",
                                   "reason": "the ensemble did not beat its base gbdt"}
    p = ens.predict(fm)
    assert np.all((p >= 0) & (p <= 1)) and np.std(p) > 0.01


@pytest.mark.train
def test_train_publishes_the_base_and_says_so(tmp_path, monkeypatch):
    """When the gate chooses a base, the bundle's stack is that base alone; the manifest, the
    train report and `describe` say so; the registry's PR-AUC is the base's; the bundle scores."""
    from gbdt_fixtures import synthetic_records
    from test_bundle_pipeline import future_jobs

    from nomade.config import load_config
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.ensemble import describe
    from nomade.scoring.registry import primary_pr_auc
    from nomade.scoring.score import Scorer
    from nomade.store.db import open_store
    from nomade.store.jobs import upsert_jobs
    from nomade.train import evaluation, pipeline

    real = evaluation.choose_primary
    seen = {}

    def dominant(evaluation, bases):   # the real rule, with the last fold's ensemble made to lose
        last = evaluation["folds"][-1]["metrics"]
        seen["base"] = max(bases, key=lambda b: last[b]["pr_auc"])
        last["ensemble"] = dict(last["ensemble"], pr_auc=last[seen["base"]]["pr_auc"] - 0.01)
        return real(evaluation, bases)
    monkeypatch.setattr(evaluation, "choose_primary", dominant)
    store = open_store(tmp_path / "nomade.db")
    upsert_jobs(store, synthetic_records(1100), "test")
    cfg = load_config(None, {"data_dir": str(tmp_path), "train.folds": 2, "train.min_jobs": 100,
                             "train.models": "gbdt,lite", "train.stages": "submit"})
    res = pipeline.train_bundle(store, cfg, cfg.registry_dir, rounds=25, version="b1")
    m = load_bundle(res.path).manifest
    base = seen["base"]
    stack = m["ensemble"]["stacks"]["ensemble_submit"]
    assert stack["mode"] == "single-base" and stack["single_base"]["base"] == base
    assert m["ensemble"]["published_alone"]["submit"]["base"] == base
    assert m["evaluation"]["submit"]["published"]["base"] == base
    assert "is published alone" in stack["note"]
    assert primary_pr_auc(m) == m["metrics"][base]["pr_auc"]
    assert describe(m) == f"ensemble_submit: {base} alone (the ensemble did not beat it)"
    report = (m["evaluation"]["submit"]["report"] + "/report.md")
    assert f"{base} is published alone" in open(report).read()
    _, reqs = future_jobs(store, 20)
    risks = [s.risk for s in Scorer(load_bundle(res.path)).score(reqs)]
    assert np.std(risks) > 1e-4
    store.close()
