"""The publish gate: what a bundle must show before ``nomade train --publish`` makes it current.

A bundle is refused, with one line that says why, when any model a user would meet (each
stage's primary model, the Lua submit model) is

- **not evaluated**: no rolling evaluation (``train.folds = 0``, or a history too short for it) -
  nothing shows it beats chance;
- **too thinly evaluated**: fewer than ``MIN_EVAL_FAILURES`` failures in its test windows, or one
  class only (no ROC-AUC);
- **near chance**: ROC-AUC below ``MIN_ROC_AUC`` on the evaluation; when a base model of the same
  ensemble did reach it, by ``BROKEN_GAP`` or more, the reason says *broken stack*;
- **constant**: its outputs on its own calibration window (the ensemble's stack window, the Lua
  model's calibration window) spread less than ``SPREAD_EPS`` (standard deviation);
- **flat or inverted calibration**: a Platt slope <= ``SLOPE_EPS`` (the calibrated risk no longer
  follows the model: every job gets about the same number, rounding decides the alert);
- **a broken stack**: non-finite or non-positive total stacking weight, or a stack-window ROC-AUC
  near chance while one of its bases is not;
- **an experiment** (``nomade train --model NAME``): never published.

Before that, ``choose_primary`` decides what a stage publishes: when the ensemble does not beat
its best single base on the most recent window (the evaluation's last fold, PR-AUC), that base is
published alone (nomade.train.ensemble.StackedEnsemble.use_single) and the manifest and the train
report say so.

The gate reads only the manifest (``window_checks`` puts the window figures there at training
time), so it judges the current bundle the same way as the new one: a current bundle that
fails it, or has no metrics, never blocks a later promotion. Imports numpy only.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

MIN_ROC_AUC = 0.55        # ROC-AUC within 0.05 of chance (0.5), or below, is refused
MIN_EVAL_FAILURES = 20    # failures the evaluation's test windows need for a ROC-AUC to mean anything
SPREAD_EPS = 1e-4         # standard deviation of the calibrated risk below which a model is constant
SLOPE_EPS = 1e-6          # a Platt slope at or below this is flat or inverted
BROKEN_GAP = 0.1          # a near-chance ensemble whose best base scores this much more: a broken stack


@dataclass
class GateVerdict:
    """The gate's answer: ``passed``, and every reason it refused (first = the headline)."""
    reasons: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def line(self) -> str:
        """One line: 'passed', or the first reason (and how many more the manifest holds)."""
        if self.passed:
            return "passed"
        more = len(self.reasons) - 1
        return self.reasons[0] + (f" (+{more} more reason{'s' if more > 1 else ''} in the manifest's "
                                  "publish_gate)" if more else "")

    def as_dict(self) -> Dict[str, Any]:
        return {"passed": self.passed, "reason": self.line, "reasons": list(self.reasons),
                "limits": {"min_roc_auc": MIN_ROC_AUC, "min_eval_failures": MIN_EVAL_FAILURES,
                           "spread_eps": SPREAD_EPS, "slope_eps": SLOPE_EPS}}


def window_checks(y: np.ndarray, p: np.ndarray,
                  bases: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, Any]:
    """What the gate needs to know of a model's own calibration window: jobs, failures, the mean
    and spread (std) of its calibrated outputs, its ROC-AUC there and (stacks) each base's."""
    from ..evaluate.metrics import roc_auc

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    out: Dict[str, Any] = {"jobs": int(len(y)), "failed": int((y == 1).sum()),
                           "mean": _num(np.mean(p)) if len(p) else None,
                           "spread": _num(round(float(np.std(p)), 12)) if len(p) else None,
                           "roc_auc": _num(roc_auc(y, p)) if len(p) else None}
    if bases:
        out["base_roc_auc"] = {n: _num(roc_auc(y, np.asarray(v, dtype=np.float64)))
                               for n, v in bases.items()}
    return out


def choose_primary(evaluation: Dict[str, Any], bases: Iterable[str]) -> Optional[Dict[str, Any]]:
    """What the stage publishes when its ensemble does not earn its place: None when the ensemble's
    PR-AUC on the most recent window (the last evaluation fold's test window) is above every
    base's, else {"base", "reason", and the figures}: the best base there, published alone."""
    folds = evaluation.get("folds") or []
    if not folds:
        return None
    last = folds[-1]
    met = last.get("metrics") or {}
    ens = _finite((met.get("ensemble") or {}).get("pr_auc"))
    cand = {b: v for b in bases for v in [_finite((met.get(b) or {}).get("pr_auc"))] if v is not None}
    if ens is None or not cand:
        return None
    best = max(cand, key=lambda b: cand[b])
    if ens > cand[best]:
        return None
    window = f"fold {int(last.get('fold', len(folds) - 1)) + 1}'s {last.get('n_test', '?')} test jobs"
    return {"base": best, "ensemble_pr_auc": ens, "base_pr_auc": cand[best], "window": window,
            "reason": (f"the ensemble did not beat its base {best} on the most recent window ({window}: "
                       f"PR-AUC {ens:.3f} vs {cand[best]:.3f}); {best} is published alone")}


def _finite(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _num(v) -> Optional[float]:
    v = float(v)
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------- the checks
def _window_reasons(label: str, checks: Optional[Dict[str, Any]]) -> List[str]:
    if not checks or checks.get("spread") is None:
        return []
    if checks["spread"] < SPREAD_EPS:
        return [f"{label} is constant: every job of its {checks['jobs']}-job calibration window gets "
                f"{checks['mean']:.1%} (spread {checks['spread']:.1g})"]
    return []


def _calibration_reasons(label: str, cal: Optional[Dict[str, Any]]) -> List[str]:
    if not (cal and cal.get("kind") == "platt") or float(cal.get("a", 1.0)) > SLOPE_EPS:
        return []
    a = float(cal["a"])
    what = ("higher model scores mean lower risk" if a < -SLOPE_EPS else
            "every job gets about the same risk, and rounding decides who is warned")
    return [f"{label} has a calibration slope of {a:.2g} (needs > 0): {what}"]


def _stack_reasons(label: str, stack: Dict[str, Any]) -> List[str]:
    coef = [float(c) for c in stack.get("coef", [])]
    if not coef or not all(math.isfinite(c) for c in coef) or sum(coef) <= 0 \
            or not math.isfinite(float(stack.get("intercept", 0.0))):
        return [f"broken stack: {label}'s weights {', '.join(f'{c:.3g}' for c in coef) or 'none'} "
                "do not add up to a positive combination of its bases"]
    out = _calibration_reasons(label, stack.get("calibration"))
    checks = stack.get("checks") or {}
    out += _window_reasons(label, checks)
    auc, bases = checks.get("roc_auc"), {n: v for n, v in (checks.get("base_roc_auc") or {}).items()
                                         if v is not None}
    if not out and auc is not None and auc < MIN_ROC_AUC and bases:
        best = max(bases, key=bases.get)
        if bases[best] >= max(MIN_ROC_AUC, auc + BROKEN_GAP):
            out.append(f"broken stack: {label} has ROC-AUC {auc:.3f} on its stack window while its "
                       f"base {best} scored {bases[best]:.3f}")
    return out


def _eval_reasons(label: str, met: Optional[Dict[str, Any]],
                  bases: Dict[str, Dict[str, Any]]) -> List[str]:
    if met is None:
        return [f"{label} has no evaluation metrics"]
    failures = int(round(float(met.get("n_test", 0)) * float(met.get("positive_rate") or 0.0)))
    auc = met.get("roc_auc")
    auc = None if auc is None or not math.isfinite(float(auc)) else float(auc)
    if auc is None or failures < MIN_EVAL_FAILURES:
        return [f"{label} cannot be judged: its evaluation windows hold {failures} failed jobs of "
                f"{met.get('n_test', 0)} (needs {MIN_EVAL_FAILURES}); keep ingesting"]
    if auc >= MIN_ROC_AUC:
        return []
    good = {n: float(m["roc_auc"]) for n, m in bases.items()
            if m and m.get("roc_auc") is not None and float(m["roc_auc"]) >= MIN_ROC_AUC}
    best = max(good, key=good.get) if good else ""
    if best and good[best] >= auc + BROKEN_GAP:
        return [f"broken stack: {label} has ROC-AUC {auc:.3f} on the evaluation while its base "
                f"{best} scored {good[best]:.3f}"]
    return [f"{label} is near chance: ROC-AUC {auc:.3f} on the evaluation (needs >= {MIN_ROC_AUC})"]


def _stage_metrics(manifest: Dict[str, Any], stage: str) -> Dict[str, Any]:
    ev = manifest.get("evaluation", {}).get(stage, {})
    if ev.get("metrics"):
        return ev["metrics"]
    return manifest.get("metrics", {}) if stage == "submit" else {}


def _base_names(stack: Dict[str, Any], stage: str) -> Iterable[str]:
    return [b[: -len(stage) - 1] if b.endswith("_" + stage) else b for b in stack.get("bases", [])]


def assess(manifest: Dict[str, Any]) -> GateVerdict:
    """The publish gate on a bundle's manifest (module doc)."""
    v = GateVerdict()
    exp = manifest.get("experiment")
    if exp:
        v.reasons.append(f"an experiment (`nomade train --model {exp.get('model', '?')}`): never published")
    ens = manifest.get("ensemble", {})
    stacks = ens.get("stacks", {})
    judged = set()
    for stage, name in ens.get("primary", {}).items():
        met = _stage_metrics(manifest, stage)
        stack = stacks.get(name)
        if stack is not None:
            label = f"the {stage}-stage ensemble"
            v.reasons += _stack_reasons(label, stack)
            alone = (stack.get("single_base") or {}).get("base")
            if alone:
                label = f"the {stage}-stage model {alone} (published alone)"
            if manifest.get("metrics") and not any("broken stack" in r and label in r for r in v.reasons):
                v.reasons += _eval_reasons(label, met.get(alone or "ensemble"),
                                           {} if alone else {b: met.get(b) for b in _base_names(stack, stage)})
        else:
            judged.add(name)
            v.reasons += _single_reasons(manifest, met, name, stage)
    lua = manifest.get("lua", {}).get("model", "gbdt_lite")
    if lua not in judged:
        v.reasons += _single_reasons(manifest, _stage_metrics(manifest, "submit"), lua, "submit")
    if not manifest.get("metrics"):   # after the model's own defects: those say more
        why = manifest.get("evaluation_skipped") or "train.folds = 0"
        todo = ("retrain with --folds N (N >= 1)" if why == "train.folds = 0"
                else "keep ingesting and retrain")
        v.reasons.append(f"not evaluated ({why}): nothing shows it predicts better than chance; "
                         f"{todo}, or promote by hand with `nomade models promote VERSION`")
    return v


def _single_reasons(manifest: Dict[str, Any], met: Dict[str, Any], name: str, stage: str) -> List[str]:
    """A model that is not a stack: the Lua model, or a stage's single primary model."""
    lua = manifest.get("lua", {})
    label = f"the Lua submit model ({name})" if name == lua.get("model") else f"the {stage}-stage model {name}"
    out = _calibration_reasons(label, manifest.get("models", {}).get(name, {}).get("calibration"))
    if name == lua.get("model"):
        out += _window_reasons(label, lua.get("checks"))
    if manifest.get("metrics") and not out:
        short = name[: -len(stage) - 1] if name.endswith("_" + stage) else name
        out += _eval_reasons(label, met.get(name) or met.get(short), {})
    return out
