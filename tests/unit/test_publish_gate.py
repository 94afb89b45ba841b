"""The publish gate (issue 13, item 5): no constant, near-chance, flat-calibrated or broken model
is ever published; a refused bundle leaves the previous current bundle (or the shipped default)
scoring, with one line that says why; a bundle without metrics never blocks a later promotion;
every option an error names exists. Gate rules on hand-made manifests (no training), then the
histories of a new site (~140, ~600, ~1,100 jobs) and lopsided ones (1 % and 60 % failures)."""

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gbdt_fixtures import synthetic_records

from nomade.cli.main import cli
from nomade.errors import ModelError
from nomade.train.publish_gate import MIN_ROC_AUC, assess, window_checks

SRC = Path(__file__).resolve().parents[2] / "src" / "nomade"


def _met(roc, n=500, rate=0.3, pr=0.5):
    return {"roc_auc": roc, "pr_auc": pr, "n_test": n, "positive_rate": rate}


def _manifest(ens=0.8, bases=(0.8, 0.8), lua=0.75, checks=None, cal=None, coef=(0.5, 0.5)):
    """A two-base (gbdt, lite) submit-stage ensemble and its Lua model, as the pipeline writes."""
    checks = checks or {"jobs": 300, "failed": 90, "mean": 0.3, "spread": 0.12, "roc_auc": 0.8,
                        "base_roc_auc": {"gbdt": 0.8, "lite": 0.78}}
    metrics = {"ensemble": _met(ens), "gbdt": _met(bases[0]), "lite": _met(bases[1]),
               "gbdt_lite": _met(lua)}
    stack = {"stage": "submit", "bases": ["gbdt_submit", "lite_submit"], "coef": list(coef),
             "intercept": 0.0, "calibration": cal or {"kind": "platt", "a": 0.9, "b": -0.2},
             "checks": checks}
    return {"metrics": metrics, "evaluation": {"submit": {"metrics": metrics}},
            "ensemble": {"mode": "stacked", "primary": {"submit": "ensemble_submit"},
                         "stacks": {"ensemble_submit": stack}},
            "models": {"gbdt_lite": {"calibration": {"kind": "isotonic", "x": [0, 1], "y": [0, 1]}}},
            "lua": {"model": "gbdt_lite", "checks": {"jobs": 200, "failed": 60, "mean": 0.3,
                                                     "spread": 0.1, "roc_auc": 0.75}}}


def test_healthy_bundle_passes():
    v = assess(_manifest())
    assert v.passed and v.line == "passed" and v.as_dict()["passed"] is True


def test_constant_model_refused():
    """One tree, every job 'MODERATE 19 %'."""
    man = _manifest(checks={"jobs": 412, "failed": 80, "mean": 0.19, "spread": 0.0, "roc_auc": 0.5,
                            "base_roc_auc": {"gbdt": 0.5, "lite": 0.5}})
    v = assess(man)
    assert not v.passed
    assert v.reasons[0] == ("the submit-stage ensemble is constant: every job of its 412-job "
                            "calibration window gets 19.0% (spread 0)")


def test_flat_and_inverted_calibration_refused():
    """A start model whose calibration slope was -4e-17: every job 34 %, rounding decided."""
    v = assess(_manifest(cal={"kind": "platt", "a": -4e-17, "b": -0.66}))
    assert v.reasons == ["the submit-stage ensemble has a calibration slope of -4e-17 (needs > 0): "
                         "every job gets about the same risk, and rounding decides who is warned"]
    v = assess(_manifest(cal={"kind": "platt", "a": -0.35, "b": 0.1}))
    assert "higher model scores mean lower risk" in v.line


def test_broken_stack_refused():
    """An ensemble with ROC-AUC 0.500 while both its bases scored 1.000."""
    v = assess(_manifest(ens=0.5, bases=(1.0, 1.0)))
    assert v.reasons[0] == ("broken stack: the submit-stage ensemble has ROC-AUC 0.500 on the "
                            "evaluation while its base gbdt scored 1.000")
    v = assess(_manifest(coef=(float("nan"), 0.5)))
    assert v.line.startswith("broken stack: the submit-stage ensemble's weights nan, 0.5")
    v = assess(_manifest(checks={"jobs": 300, "failed": 90, "mean": 0.3, "spread": 0.05,
                                 "roc_auc": 0.5, "base_roc_auc": {"gbdt": 0.97, "lite": 0.9}}))
    assert v.line == ("broken stack: the submit-stage ensemble has ROC-AUC 0.500 on its stack "
                      "window while its base gbdt scored 0.970")


def test_near_chance_refused():
    v = assess(_manifest(ens=0.52, bases=(0.53, 0.51)))
    assert v.reasons == [f"the submit-stage ensemble is near chance: ROC-AUC 0.520 on the evaluation "
                         f"(needs >= {MIN_ROC_AUC})"]
    v = assess(_manifest(lua=0.45))   # the Lua model is what sbatch shows: gated too
    assert v.line.startswith("the Lua submit model (gbdt_lite) is near chance: ROC-AUC 0.450")


def test_too_few_failures_to_judge():
    man = _manifest()
    man["metrics"]["ensemble"] = _met(0.9, n=550, rate=5 / 550)
    v = assess(man)
    assert v.line == ("the submit-stage ensemble cannot be judged: its evaluation windows hold 5 "
                      "failed jobs of 550 (needs 20); keep ingesting")


def test_metric_less_and_experiment_refused():
    man = _manifest()
    man["metrics"], man["evaluation"] = {}, {}
    v = assess(man)
    assert v.reasons == ["not evaluated (train.folds = 0): nothing shows it predicts better than "
                         "chance; retrain with --folds N (N >= 1), or promote by hand with "
                         "`nomade models promote VERSION`"]
    man = _manifest()
    man["experiment"] = {"model": "gbdt"}
    assert assess(man).line == "an experiment (`nomade train --model gbdt`): never published"


def test_reason_is_one_line():
    man = _manifest(ens=0.5, bases=(0.5, 0.5), lua=0.5)
    v = assess(man)
    assert len(v.reasons) == 2 and "\n" not in v.line
    assert v.line.endswith("(+1 more reason in the manifest's publish_gate)")


def test_window_checks():
    y = np.array([0, 1] * 50)
    c = window_checks(y, np.full(100, 0.19), {"gbdt": y * 0.9})
    assert c["spread"] == 0.0 and c["mean"] == pytest.approx(0.19) and c["roc_auc"] == 0.5
    assert c["base_roc_auc"] == {"gbdt": 1.0} and c["jobs"] == 100 and c["failed"] == 50


def test_experiment_is_never_promoted_by_hand(tmp_path):
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.registry import current_version, promote, register
    from nomade.store.db import open_store
    from test_bundle import _manifest as bundle_manifest
    from test_bundle import _write

    man = bundle_manifest()
    man["experiment"] = {"model": "gbdt"}
    reg = tmp_path / "models"
    p = _write(reg, "x1", manifest=man)
    with open_store(tmp_path / "nomade.db") as store:
        register(store, p, load_bundle(p).manifest)
        with pytest.raises(ModelError, match=r"x1 is an experiment \(`nomade train --model gbdt`\)"):
            promote(store, reg, "x1")
    assert current_version(reg) is None


# ---------------------------------------------------------------- options the errors name
def _options_named(path: Path):
    """Every `--option` in the string literals of ``path``."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", node.value))
    return out


def _help(*cmd):
    res = CliRunner().invoke(cli, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    return res.output


def test_every_option_an_error_names_exists():
    """What the training path's errors and the gate's reasons tell an admin to use is in
    `nomade train --help` (folds: in `nomade evaluate --help` too, which shares the folds)."""
    train_help, eval_help = _help("train"), _help("evaluate")
    for rel in ("train/pipeline.py", "train/publish_gate.py", "train/folds.py", "train/ensemble.py",
                "train/stage_bundle.py", "train/extra.py", "scoring/registry.py"):
        for opt in _options_named(SRC / rel):
            assert opt in train_help, f"{rel} names {opt}, which `nomade train` lacks"
    for opt in _options_named(SRC / "train/folds.py"):
        assert opt in eval_help, f"folds.py names {opt}, which `nomade evaluate` lacks"
    assert {"--folds", "--model", "--publish"} <= _options_named(SRC / "train/publish_gate.py") | \
        _options_named(SRC / "scoring/registry.py") | _options_named(SRC / "train/pipeline.py")


@pytest.mark.train   # without the [train] extra, `nomade train` stops before reading its options
def test_model_option_is_never_published():
    res = CliRunner().invoke(cli, ["train", "--model", "gbdt", "--publish"])
    assert res.exit_code == 2 and "--model trains one base model for experiments" in res.output


# ---------------------------------------------------------------- real (small) histories
def lopsided(records, rate: float, seed: int = 5):
    """The records with about ``rate`` of them failed: failures dropped (or successes turned
    into failures) at random, so the users' propensities still carry signal."""
    rng = np.random.default_rng(seed)
    base = np.mean([r.state == "FAILED" for r in records])
    out = []
    for r in records:
        failed = r.state == "FAILED"
        failed = (failed and rng.random() < rate / base) if rate < base else \
            (failed or rng.random() < (rate - base) / (1 - base))
        st = "FAILED" if failed else "COMPLETED"
        out.append(dataclasses.replace(r, state=st, state_raw=st))
    return out


@pytest.fixture()
def site(tmp_path):
    """A new site's store and registry; ``train(records, folds)`` ingests and trains (small
    settings: two tree bases, 25 rounds), ``publish(res)`` runs the gate."""
    from nomade.config import load_config
    from nomade.store.db import open_store
    from nomade.store.jobs import upsert_jobs
    from nomade.train.pipeline import publish, train_bundle

    store = open_store(tmp_path / "nomade.db")

    class Site:
        cfg, n = None, 0

        def train(self, records, folds, only_model=None):
            upsert_jobs(store, records, "test")
            self.cfg = load_config(None, {"data_dir": str(tmp_path), "train.folds": folds,
                                          "train.min_jobs": 100, "train.models": "gbdt,lite"})
            self.n += 1
            return train_bundle(store, self.cfg, self.cfg.registry_dir, rounds=25,
                                only_model=only_model, version=f"b{self.n}")

        def publish(self, res):
            return publish(store, self.cfg.registry_dir, res, 0.01)

    s = Site()
    s.store = store
    yield s
    store.close()


def _assert_refused(res, kept):
    from nomade.scoring.bundle import load_bundle

    line = res.promote_reason
    assert not res.promoted and line.startswith("refused by the publish gate: ") and "\n" not in line
    assert line.endswith(f"kept {kept}" if kept else "the shipped default bundle keeps scoring")
    gate = load_bundle(res.path).manifest["publish_gate"]   # the reason is in the manifest too
    assert gate["passed"] is False and gate["reason"] in line


def _assert_not_degenerate(store, res):
    """A promoted bundle, checked from outside the gate: its risks on new jobs spread, its
    evaluation is clear of chance, its calibration rises."""
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.score import Scorer
    from test_bundle_pipeline import future_jobs

    m = load_bundle(res.path).manifest
    alone = (m["ensemble"]["stacks"]["ensemble_submit"].get("single_base") or {}).get("base")
    assert m["metrics"][alone or "ensemble"]["roc_auc"] >= MIN_ROC_AUC   # the published model's
    for st in m["ensemble"]["stacks"].values():
        assert st["calibration"]["kind"] != "platt" or st["calibration"]["a"] > 0
    _, reqs = future_jobs(store, 40)
    risks = [s.risk for s in Scorer(load_bundle(res.path)).score(reqs)]
    assert np.std(risks) > 1e-4


@pytest.mark.train
def test_new_site_grows_140_600_1100(site):
    """The new admin's path: 140 jobs (folds = 0) -> a constant model, refused, the default
    bundle scores; 600 -> too short to evaluate, refused, then promoted by hand; 1,100 ->
    evaluated, passes the gate, and the metric-less current bundle does not block it."""
    from nomade.scoring.registry import current_version, default_bundle_dir, promote, resolve_bundle_path

    recs = synthetic_records(1100)
    r140 = site.train(recs[:140], folds=0)
    site.publish(r140)
    _assert_refused(r140, None)
    assert "constant" in r140.promote_reason or "calibration slope" in r140.promote_reason
    assert current_version(site.cfg.registry_dir) is None
    assert resolve_bundle_path(site.cfg) == default_bundle_dir()

    r600 = site.train(recs[:600], folds=4)
    site.publish(r600)
    _assert_refused(r600, None)
    assert "not evaluated (only 600 labelled jobs; the rolling evaluation needs at least 1000)" \
        in r600.promote_reason
    promote(site.store, site.cfg.registry_dir, r600.version)   # by hand, as the admin did

    r1100 = site.train(recs, folds=2)
    assert r1100.manifest["publish_gate"]["passed"], r1100.manifest["publish_gate"]
    site.publish(r1100)
    assert r1100.promoted and r1100.promote_reason == f"replaced {r600.version}: it has no evaluation metrics"
    assert current_version(site.cfg.registry_dir) == r1100.version
    _assert_not_degenerate(site.store, r1100)


@pytest.mark.train
@pytest.mark.parametrize("rate", [0.01, 0.6])
def test_lopsided_history_keeps_the_current_bundle(site, rate):
    """After a good bundle is current, the same site's history turns lopsided (1 % or 60 %
    failures): whatever is trained is either clear of every degenerate sign or refused with the
    good bundle kept. With 1 % failures the evaluation holds too few to judge: refused."""
    from nomade.scoring.registry import current_version

    recs = synthetic_records(1100)
    good = site.train(recs, folds=2)
    site.publish(good)
    assert good.promoted
    res = site.train(lopsided(recs, rate), folds=2)
    site.publish(res)
    if rate == 0.01:
        assert "cannot be judged" in res.promote_reason
    if res.promoted:
        _assert_not_degenerate(site.store, res)
    else:
        _assert_refused(res, good.version)
        assert current_version(site.cfg.registry_dir) == good.version


@pytest.mark.train
def test_one_base_model_alone(site):
    """`nomade train --model gbdt`: the ensemble of that base alone, never published."""
    from nomade.scoring.registry import current_version, promote

    recs = synthetic_records(1100)
    res = site.train(recs, folds=0, only_model="gbdt")
    m = res.manifest
    assert m["experiment"]["model"] == "gbdt"
    assert m["ensemble"]["stacks"]["ensemble_submit"]["bases"] == ["gbdt_submit"]
    site.publish(res)
    assert not res.promoted and "an experiment (`nomade train --model gbdt`)" in res.promote_reason
    with pytest.raises(ModelError, match="is an experiment"):
        promote(site.store, site.cfg.registry_dir, res.version)
    assert current_version(site.cfg.registry_dir) is None
    with pytest.raises(ModelError, match="unknown base model 'nope'"):
        site.train(recs, folds=0, only_model="nope")


@pytest.mark.train
def test_train_prints_the_gate_reason_in_one_line(tmp_path):
    """`nomade train --publish --folds 0` on a 140-job site: one 'not promoted' line naming the
    reason; nothing promoted."""
    from nomade.store.db import open_store
    from nomade.store.jobs import upsert_jobs

    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, synthetic_records(140), "test")
    (tmp_path / "nomade.toml").write_text('[train]\nmin_jobs = 100\nmodels = "gbdt,lite"\n')
    res = CliRunner().invoke(cli, ["--config", str(tmp_path / "nomade.toml"), "--data-dir",
                                   str(tmp_path), "train", "--publish", "--folds", "0"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("not promoted: ")]
    assert len(lines) == 1 and lines[0].startswith("not promoted: refused by the publish gate: ")
    assert lines[0].endswith("the shipped default bundle keeps scoring")
    assert not (tmp_path / "models" / "CURRENT").exists()
