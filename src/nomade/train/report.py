"""Write an evaluation result as Markdown + HTML (with the plots) under
<data_dir>/reports/<timestamp>/ and return the JSON-ready summary."""

import html
import json
import time
from pathlib import Path
from typing import Dict, List

from .plots import write_plots

COLUMNS = ("roc_auc", "pr_auc", "brier", "ece", "precision", "recall", "f1", "flagged")


def metrics_table(metrics: Dict[str, Dict[str, object]]) -> List[List[str]]:
    rows = [["model"] + list(COLUMNS)]
    for name, d in metrics.items():
        rows.append([name] + [f"{float(d[c]):.3f}" for c in COLUMNS])
    return rows


def to_markdown(result: Dict[str, object], title: str, plots: Dict[str, str]) -> str:
    rows = metrics_table(result["metrics"])
    lines = [f"# {title}", "",
             f"Stage: {result['stage']}. Jobs: {result['n_jobs']}. Folds: {len(result['folds'])} "
             f"(rolling origin; each model's alert threshold chosen on the training side). "
             f"Pooled test rows: {next(iter(result['metrics'].values()))['n_test']}.", "",
             "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines += ["", f"Ensemble: `{json.dumps(result['ensemble'])}`", ""]
    pub = result.get("published")
    if pub is not None:   # publish_gate.choose_primary: the ensemble did not beat this base
        lines += ["## What is published", "", pub["reason"][0].upper() + pub["reason"][1:] + ".", ""]
    elif "published" in result:
        lines += ["## What is published", "", "The ensemble: it beat each of its bases on the most "
                  "recent window (PR-AUC).", ""]
    lines += ["## Folds", "",
              "| fold | n_train | n_test | threshold | " + " | ".join(
                  f"{n} PR-AUC" for n in result["metrics"]) + " |",
              "|" + "---|" * (4 + len(result["metrics"]))]
    for f in result["folds"]:
        lines.append(f"| {f['fold']} | {f['n_train']} | {f['n_test']} | {f['threshold']:.3f} | " + " | ".join(
            f"{f['metrics'][n]['pr_auc']:.3f}" if n in f["metrics"] else "-" for n in result["metrics"]) + " |")
    lines += ["", "## Choosing the alert threshold", "",
              "Every alert costs a user's attention; every missed failure costs the job. The table "
              "is the ensemble's pooled test windows at fixed thresholds and at alert budgets "
              "(flag the riskiest X % of jobs), per 100 scored jobs. " + policy_text(result), "",
              "| rule | threshold | flagged | precision | recall | false alarms /100 jobs | "
              "missed failures /100 jobs |", "|---|---|---|---|---|---|---|"]
    lines += [threshold_row(r) for r in threshold_table(result)]
    pcr = result["metrics"].get("ensemble", {}).get("per_class_recall", {})
    if pcr:
        lines += ["", "## Recall by failure class (ensemble, at its alert threshold)", "",
                  "| class | recall |", "|---|---|"]
        lines += [f"| {c} | {v:.3f} |" for c, v in pcr.items()]
    lines += [""] + [f"![{k}]({v})" for k, v in plots.items()]
    return "\n".join(lines) + "\n"


BUDGETS = (0.05, 0.10, 0.20, 0.30)


def threshold_table(result: Dict[str, object], name: str = "ensemble") -> List[Dict[str, float]]:
    """Operating points of one model's pooled test predictions: the report's fixed thresholds
    and the alert budgets."""
    from ..evaluate.metrics import at_threshold
    from ..evaluate.thresholds import budget_threshold

    y, p = result.get("_y"), result.get("_curves", {}).get(name)
    if y is None or p is None:
        return []
    rules = [(f"p >= {t:.2f}", t) for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    rules += [(f"top {b:.0%} of jobs", budget_threshold(p, b)) for b in BUDGETS]
    out = []
    m = result.get("metrics", {}).get(name, {})
    if "flagged" in m:   # the alert policy as run: each fold's threshold from its stack window
        tp = float(m["recall"]) * float(y.mean())
        out.append({"rule": "alert policy (each fold's threshold)", "threshold": float("nan"),
                    "flagged": float(m["flagged"]), "precision": float(m["precision"]),
                    "recall": float(m["recall"]), "false_alarms": 100.0 * (float(m["flagged"]) - tp),
                    "missed": 100.0 * (float(y.mean()) - tp)})
    for rule, t in rules:
        d = at_threshold(y, p, t)
        flagged = d["flagged"]
        tp = d["recall"] * float(y.mean())
        out.append({"rule": rule, "threshold": float(t), "flagged": flagged,
                    "precision": d["precision"], "recall": d["recall"],
                    "false_alarms": 100.0 * (flagged - tp), "missed": 100.0 * (float(y.mean()) - tp)})
    return out


def policy_text(result: Dict[str, object]) -> str:
    """How `nomade train` chooses the alert threshold (nomade.risk_scale's alert policy)."""
    pol = result.get("alert_policy") or {}
    budget, floor = pol.get("budget"), pol.get("min_precision")
    said = (f" Here: budget {budget:.0%}, minimum precision {floor:.2f} (from `{pol.get('source')}`)."
            if budget is not None and floor is not None else "")
    return ("`nomade train` chooses the threshold on the stack window: the lowest one that flags at "
            "most `model.alert_budget` of the jobs (0 = the best-F1 threshold), raised until the "
            "precision there is at least `model.min_precision`; the bundle's manifest says which "
            "rule decided (`alert_policy`). To choose another operating point from this table, set "
            "`model.alert_threshold`." + said)


def threshold_row(r: Dict[str, float]) -> str:
    thr = "per fold" if r["threshold"] != r["threshold"] else f"{r['threshold']:.3f}"
    return (f"| {r['rule']} | {thr} | {r['flagged']:.1%} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['false_alarms']:.1f} | {r['missed']:.1f} |")


def to_html(result: Dict[str, object], title: str, plots: Dict[str, str]) -> str:
    rows = metrics_table(result["metrics"])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    imgs = "".join(f'<img src="{html.escape(v)}" alt="{html.escape(k)}">' for k, v in plots.items())
    th_head = "".join(f"<th>{c}</th>" for c in ("rule", "threshold", "flagged", "precision", "recall",
                                                 "false alarms /100 jobs", "missed failures /100 jobs"))
    th_body = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>"
                                       for c in threshold_row(r).strip("|").split("|")) + "</tr>"
                      for r in threshold_table(result))
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>Stage {html.escape(result['stage'])}, "
            f"{result['n_jobs']} jobs, {len(result['folds'])} folds (rolling origin: each fold "
            f"trains on jobs that ended before its test window).</p>"
            f"<table border=1 cellpadding=3><tr>{head}</tr>{body}</table>"
            f"<h2>Choosing the alert threshold (ensemble)</h2>"
            f"<table border=1 cellpadding=3><tr>{th_head}</tr>{th_body}</table>{imgs}\n")


def write_report(result: Dict[str, object], reports_dir: Path, title: str = "nomade evaluation") -> Path:
    out = Path(reports_dir) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while out.exists():
        out = out.with_name(out.name.split("-")[0] + f"-{n}")
        n += 1
    out.mkdir(parents=True)
    plots = write_plots(result["_y"], result["_curves"], out)
    (out / "report.md").write_text(to_markdown(result, title, plots))
    (out / "report.html").write_text(to_html(result, title, plots))
    (out / "metrics.json").write_text(json.dumps(public(result, out), indent=2, default=float))
    return out


def public(result: Dict[str, object], report_dir=None) -> Dict[str, object]:
    """The result without the private arrays, as `nomade evaluate --json` prints it."""
    d = {k: v for k, v in result.items() if not k.startswith("_")}
    d["report"] = str(report_dir) if report_dir is not None else None
    return d
