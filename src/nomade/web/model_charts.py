"""The evaluation charts of a bundle, as plain data that ``static/models.js`` draws (SVG).

Everything comes from the bundle's manifest as ``nomade train`` wrote it (``evaluation.<stage>``:
per-model metrics pooled over the rolling-origin test windows, each model's threshold sweep,
per-fold figures; ``alert_policy.<stage>.table``: the published model's operating points;
``models.<name>.calibration``): no model is loaded and nothing from ``nomade.train`` is imported.
The raw test predictions are not kept in a bundle, so the precision-recall chart shows the
stored operating points (thresholds 0.1 .. 0.9) rather than every threshold, and calibration is
shown as each model's expected calibration error and the stored calibration maps.

A chart: ``{"id", "kind": "bars" | "lines", "title", "x_label", "y_label", ...}``; bars carry
``bars`` ([{label, value, role}]: role 'model', 'published' or 'baseline'), lines carry
``series`` ([{label, role, points: [[x, y], ...], marks: [[x, y, text], ...]}]) and an optional
``x_ticks``; both carry ``refs`` (reference lines: {axis 'y' | 'diagonal', value, label})."""

import math
from typing import Any, Dict, List, Mapping, Optional

# the baselines every evaluation reports next to the models (nomade.train.baselines)
BASELINES = ("user_history", "gbdt_hpe")
STAGES = ("submit", "start")
MAX_MODELS = 12


def _num(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return round(v, 5) if math.isfinite(v) else None


def _role(name: str, published: Optional[str]) -> str:
    if name in BASELINES:
        return "baseline"
    return "published" if published and name == published else "model"


def _published(manifest: Mapping[str, Any], stage: str) -> Optional[str]:
    """The base model published alone for ``stage`` (publish_gate.choose_primary), else the
    ensemble."""
    ens = manifest.get("ensemble") if isinstance(manifest.get("ensemble"), Mapping) else {}
    alone = (ens.get("published_alone") or {}).get(stage) or {}
    stack = (ens.get("stacks") or {}).get(f"ensemble_{stage}") or {}
    single = stack.get("single_base") if isinstance(stack, Mapping) else None
    for found in (alone, single):
        if isinstance(found, Mapping) and found.get("base"):
            return str(found["base"])
    return "ensemble"


def _metric_bars(stage: str, metrics: Mapping[str, Any], key: str, title: str, y_label: str,
                 published: Optional[str], refs: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    bars = [{"label": str(name), "value": _num(m.get(key)), "role": _role(str(name), published)}
            for name, m in list(metrics.items())[:MAX_MODELS] if isinstance(m, Mapping)]
    bars = [b for b in bars if b["value"] is not None]
    if not bars:
        return None
    return {"id": f"{key.replace('_', '-')}-{stage}", "kind": "bars", "stage": stage, "title": title,
            "y_label": y_label, "bars": bars, "refs": refs}


def _pr_points(stage: str, metrics: Mapping[str, Any], policy: Mapping[str, Any], published: Optional[str],
               chance: Optional[float]) -> Optional[Dict[str, Any]]:
    series = []
    for name, m in list(metrics.items())[:MAX_MODELS]:
        if not isinstance(m, Mapping):
            continue
        pts = _operating_points(m.get("sweep"))
        if pts:
            series.append({"label": str(name), "role": _role(str(name), published), "points": pts, "marks": []})
    table = _operating_points(policy.get("table"))
    if table:
        marks = []
        if _num(policy.get("recall")) is not None and _num(policy.get("precision")) is not None:
            marks.append([_num(policy["recall"]), _num(policy["precision"]),
                          f"alert threshold {_num(policy.get('threshold'))}"])
        series.append({"label": "published, stack window", "role": "policy", "points": table, "marks": marks})
    if not series:
        return None
    refs = [{"axis": "y", "value": chance, "label": "chance (the failure rate)"}] if chance is not None else []
    return {"id": f"pr-{stage}", "kind": "lines", "stage": stage, "x_label": "recall", "y_label": "precision",
            "title": f"Precision and recall at thresholds 0.1 .. 0.9 ({stage} stage)",
            "x_range": [0, 1], "y_range": [0, 1], "series": series, "refs": refs}


def _operating_points(rows: Any) -> List[List[float]]:
    """[recall, precision] of each operating point that flags at least one job, by recall."""
    pts = []
    for r in rows if isinstance(rows, list) else []:
        if not isinstance(r, Mapping):
            continue
        rec, prec, flagged = _num(r.get("recall")), _num(r.get("precision")), _num(r.get("flagged"))
        if rec is not None and prec is not None and (flagged is None or flagged > 0):
            pts.append([rec, prec])
    return sorted(pts)


def _fold_lines(stage: str, folds: Any, published: Optional[str]) -> Optional[Dict[str, Any]]:
    folds = [f for f in folds if isinstance(f, Mapping)] if isinstance(folds, list) else []
    if len(folds) < 2:
        return None
    names: List[str] = []
    for f in folds:
        for n in (f.get("metrics") or {}):
            if n not in names and len(names) < MAX_MODELS:
                names.append(str(n))
    series = []
    for n in names:
        pts = [[k, _num(((f.get("metrics") or {}).get(n) or {}).get("pr_auc"))] for k, f in enumerate(folds)]
        pts = [p for p in pts if p[1] is not None]
        if pts:
            series.append({"label": n, "role": _role(n, published), "points": pts, "marks": []})
    ticks = [[k, f"fold {k + 1} ({_num(f.get('n_test'))} jobs)".replace(".0 jobs", " jobs")]
             for k, f in enumerate(folds)]
    return {"id": f"folds-{stage}", "kind": "lines", "stage": stage, "x_label": "test window (oldest first)",
            "y_label": "PR-AUC", "title": f"PR-AUC per test window ({stage} stage)",
            "x_range": [0, len(folds) - 1], "y_range": None, "x_ticks": ticks, "series": series, "refs": []}


def _calibration_maps(manifest: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    series = []
    for name, spec in list((manifest.get("models") or {}).items())[:MAX_MODELS]:
        cal = spec.get("calibration") if isinstance(spec, Mapping) else None
        if not isinstance(cal, Mapping) or cal.get("kind") != "piecewise_linear":
            continue
        xs, ys = cal.get("x") or [], cal.get("y") or []
        pts = [[_num(x), _num(y)] for x, y in zip(xs, ys)]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        if len(pts) >= 2:
            series.append({"label": str(name), "role": "model", "points": pts, "marks": []})
    if not series:
        return None
    return {"id": "calibration-maps", "kind": "lines", "stage": None, "x_label": "model score",
            "y_label": "calibrated risk", "title": "Calibration maps (score to risk, fitted on held-out jobs)",
            "x_range": None, "y_range": [0, 1], "series": series,
            "refs": [{"axis": "diagonal", "value": None, "label": "score = risk"}]}


def evaluation_charts(manifest: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The charts of one bundle's manifest (an empty list when it holds no evaluation)."""
    out: List[Optional[Dict[str, Any]]] = []
    evaluation = manifest.get("evaluation") if isinstance(manifest.get("evaluation"), Mapping) else {}
    for stage in STAGES:
        ev = evaluation.get(stage)
        metrics = ev.get("metrics") if isinstance(ev, Mapping) else None
        if not isinstance(metrics, Mapping) or not metrics:
            continue
        published = _published(manifest, stage)
        rates = [_num(m.get("positive_rate")) for m in metrics.values() if isinstance(m, Mapping)]
        chance = next((r for r in rates if r is not None), None)
        chance_ref = ([{"axis": "y", "value": chance, "label": f"chance: the failure rate, {chance:.1%}"}]
                      if chance is not None else [])
        policy = (manifest.get("alert_policy") or {}).get(stage) or {}
        out += [
            _metric_bars(stage, metrics, "pr_auc", f"PR-AUC by model ({stage} stage, pooled test windows)",
                         "PR-AUC", published, chance_ref),
            _metric_bars(stage, metrics, "roc_auc", f"ROC-AUC by model ({stage} stage)", "ROC-AUC", published,
                         [{"axis": "y", "value": 0.5, "label": "chance"}]),
            _pr_points(stage, metrics, policy if isinstance(policy, Mapping) else {}, published, chance),
            _metric_bars(stage, metrics, "ece", f"Calibration error by model ({stage} stage; lower is better)",
                         "expected calibration error", published, []),
            _fold_lines(stage, ev.get("folds"), published),
        ]
    out.append(_calibration_maps(manifest))
    return [c for c in out if c is not None]


def readiness_notes(manifest: Mapping[str, Any]) -> List[str]:
    """What the bundle says it could not do yet for lack of data (evaluation, stages, the
    ensemble's learned weights, the series model)."""
    notes = []
    if manifest.get("evaluation_skipped"):
        notes.append(f"evaluation: {manifest['evaluation_skipped']}")
    ens = manifest.get("ensemble") if isinstance(manifest.get("ensemble"), Mapping) else {}
    for stage, why in (ens.get("skipped_stages") or {}).items():
        notes.append(f"{stage} stage: {why}")
    for name, stack in (ens.get("stacks") or {}).items():
        if isinstance(stack, Mapping) and stack.get("note"):
            notes.append(f"{name}: {stack['note']}")
    series = manifest.get("series") if isinstance(manifest.get("series"), Mapping) else {}
    if series.get("skipped"):
        notes.append(f"series model: {series['skipped']}")
    return [str(n) for n in notes]
