"""The one risk scale (nomade.risk_scale): levels, threshold resolution, the alert policy on
synthetic scores, and the same scale in job_submit.lua and the compiled Lua model."""

import re
from pathlib import Path

import numpy as np
import pytest

from nomade import risk_scale
from nomade.config import load_config
from nomade.errors import ConfigError
from nomade.evaluate.thresholds import choose_alert_threshold

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("risk,name", [
    (0.0, "LOW"), (0.2999, "LOW"), (0.3, "MODERATE"), (0.5999, "MODERATE"), (0.6, "HIGH"),
    (0.7999, "HIGH"), (0.8, "CRITICAL"), (1.0, "CRITICAL"),
])
def test_design_bands(risk, name):
    assert risk_scale.level(risk) == name


def test_resolution_order():
    assert risk_scale.resolve_threshold(0.7, 0.2) == 0.7          # configured override
    assert risk_scale.resolve_threshold(0.0, 0.2) == 0.2          # 0 = the bundle's
    assert risk_scale.resolve_threshold(None, None) == risk_scale.DEFAULT_ALERT
    man = {"thresholds": {"alert": 0.4}, "stage_thresholds": {"start": {"alert": 0.25}}}
    assert risk_scale.bundle_threshold(man, "start") == 0.25
    assert risk_scale.bundle_threshold(man, "submit") == 0.4
    assert risk_scale.bundle_threshold(None) is None


@pytest.mark.parametrize("cuts,ok", [
    ((0.3, 0.6, 0.8), True), ([0.0, 0.5, 1.0], True), ((0.3, 0.6), False), ((0.3, 0.6, 0.8, 0.9), False),
    ((0.6, 0.3, 0.8), False), ((0.3, 0.3, 0.8), False), ((0.3, 0.6, 1.2), False),
    ((float("nan"), 0.6, 0.8), False), (("0.3", 0.6, 0.8), False), ((True, 0.6, 0.8), False), (0.3, False),
])
def test_cutoff_validation(cuts, ok):
    assert risk_scale.valid_cutoffs(cuts) is ok


def test_scale_itself_is_valid():
    assert risk_scale.valid_cutoffs(risk_scale.CUTOFFS)
    assert len(risk_scale.LEVELS) == len(risk_scale.CUTOFFS) + 1


# ------------------------------------------------------------------ the alert policy
def _scores(n=10000, seed=3):
    """Failure probability rises with the score; ~20 % fail."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = (rng.random(n) < 0.4 * p ** 2 + 0.05).astype(int)
    return y, p


def test_budget_rule_flags_at_most_the_budget():
    y, p = _scores()
    c = choose_alert_threshold(y, p, 0.10, 0.0)
    assert c.rule.startswith("alert budget")
    assert c.flagged <= 0.10 and c.flagged > 0.099
    assert np.isclose(c.flagged, np.mean(p >= c.threshold))
    lower = np.max(p[p < c.threshold])   # the next lower threshold breaks the budget
    assert np.mean(p >= lower) > 0.10


def test_min_precision_raises_the_threshold():
    y, p = _scores()
    at_budget = choose_alert_threshold(y, p, 0.30, 0.0)
    assert at_budget.precision < 0.4
    c = choose_alert_threshold(y, p, 0.30, 0.4)
    assert c.rule.startswith("min precision") and c.threshold > at_budget.threshold
    assert c.precision >= 0.4 and c.flagged < at_budget.flagged
    flag = p >= c.threshold
    assert np.isclose(c.precision, y[flag].mean()) and np.isclose(c.recall, flag[y == 1].mean())


def test_unreachable_precision_warns_nobody():
    y, p = _scores()
    c = choose_alert_threshold(y, p, 0.10, 0.99)
    assert c.threshold == 1.0 and c.flagged == 0.0 and "nobody warned" in c.rule


def test_budget_zero_is_best_f1():
    from nomade.evaluate.thresholds import max_f1_threshold
    y, p = _scores()
    c = choose_alert_threshold(y, p, 0.0, 0.0)
    assert c.rule.startswith("best F1") and c.threshold == max_f1_threshold(y, p)


def test_ties_and_degenerate_windows():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.full(10, 0.7)                       # one tie block: flagging any flags all
    c = choose_alert_threshold(y, p, 0.10, 0.0)
    assert c.flagged == 0.0 and c.threshold > 0.7 and "no score fits" in c.rule
    c = choose_alert_threshold(np.zeros(5), np.linspace(0, 1, 5), 0.1, 0.5)
    assert c.threshold == 0.5 and "no failures" in c.rule


def test_tradeoff_table_rows():
    y, p = _scores()
    c = choose_alert_threshold(y, p, 0.10, 0.5)
    assert [r["threshold"] for r in c.table] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert all({"flagged", "precision", "recall"} <= set(r) for r in c.table)
    assert c.as_dict()["rule"] == c.rule


# ------------------------------------------------------------------ settings
def test_policy_defaults_and_deprecated_key(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path)})
    pol = risk_scale.alert_policy(cfg)
    assert (pol.budget, pol.min_precision, pol.source) == (0.10, 0.5, "model.alert_budget")
    old = tmp_path / "old.toml"
    old.write_text("[train]\nalert_budget = 0.0\n")          # an admin's existing choice: best F1
    pol = risk_scale.alert_policy(load_config(old, {"data_dir": str(tmp_path)}))
    assert pol.budget == 0.0 and pol.source.startswith("train.alert_budget (deprecated")
    both = tmp_path / "both.toml"
    both.write_text("[train]\nalert_budget = 0.3\n[model]\nalert_budget = 0.05\n")
    assert risk_scale.alert_policy(load_config(both, {"data_dir": str(tmp_path)})).budget == 0.05


@pytest.mark.parametrize("body", ["[model]\nalert_budget = 1.5\n", "[model]\nmin_precision = -0.1\n"])
def test_policy_settings_validated(tmp_path, body):
    f = tmp_path / "c.toml"
    f.write_text(body)
    with pytest.raises(ConfigError, match="expected 0..1"):
        load_config(f, {"data_dir": str(tmp_path)})


# ------------------------------------------------------------------ the same scale in Lua
def test_job_submit_lua_fallback_is_the_scale():
    text = (ROOT / "lua" / "job_submit.lua").read_text()
    names = re.search(r"local LEVEL_NAMES = \{([^}]*)\}", text).group(1)
    cuts = re.search(r"local LEVEL_CUTS = \{([^}]*)\}", text).group(1)
    assert tuple(n.strip().strip('"') for n in names.split(",")) == risk_scale.LEVELS
    assert tuple(float(c) for c in cuts.split(",")) == risk_scale.CUTOFFS
    assert "m.threshold or 0.5" in text and risk_scale.DEFAULT_ALERT == 0.5


def test_compiled_and_shipped_models_carry_the_cutoffs():
    import json

    from nomade.scoring.calibration import CalibrationMap
    from nomade.scoring.lite_features import SITE_INDEPENDENT, LiteHistory
    from nomade.train.lua_compile import compile_submit_lua

    tree = {"feature": [-1], "value": [0.0], "threshold": [0.0], "nan_to_zero": [False],
            "default_left": [True], "left": [-1], "right": [-1]}
    trees = {"feature_names": list(SITE_INDEPENDENT), "trees": [tree]}
    text = compile_submit_lua(trees, LiteHistory(), CalibrationMap([0.0, 1.0], [0.0, 1.0]), "v", 0.4, False)
    shipped = (ROOT / "models" / "default" / "submit_model.lua").read_text()
    for t in (text, shipped):
        cuts = re.search(r"^M\.levels = \{([^}]*)\}$", t, re.M).group(1)
        assert tuple(float(c) for c in cuts.split(",")) == risk_scale.CUTOFFS
    man = json.loads((ROOT / "models" / "default" / "manifest.json").read_text())
    th = re.search(r"^M\.threshold = (\S+)$", shipped, re.M).group(1)
    assert float(th) == man["lua"]["threshold"] == man["thresholds"]["alert"]
