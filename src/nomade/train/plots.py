"""ROC, precision-recall and calibration plots (matplotlib, Agg backend) as PNG files."""

from pathlib import Path
from typing import Dict

import numpy as np

from ..evaluate.metrics import reliability


def _curves(y: np.ndarray, p: np.ndarray):
    order = np.argsort(-p, kind="mergesort")
    ys = y[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    npos, nneg = max(tp[-1], 1), max(fp[-1], 1)
    return fp / nneg, tp / npos, tp / np.maximum(tp + fp, 1)


def write_plots(y: np.ndarray, preds: Dict[str, np.ndarray], out_dir: Path) -> Dict[str, str]:
    """roc.png, pr.png, calibration.png in ``out_dir``; returns {kind: file name}. Raw scores
    (outside 0..1) appear in the ROC and PR plots only."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(y).astype(np.int64)
    figs = {k: plt.subplots(figsize=(5.5, 4.5)) for k in ("roc", "pr", "calibration")}
    for name, p in preds.items():
        fpr, tpr, prec = _curves(y, np.asarray(p, dtype=np.float64))
        figs["roc"][1].plot(fpr, tpr, label=name, lw=1.2)
        figs["pr"][1].plot(tpr, prec, label=name, lw=1.2)
        p = np.asarray(p, dtype=np.float64)
        if p.size and (p.min() < 0.0 or p.max() > 1.0):
            continue   # a raw score (the autoencoder's error), not a probability: no calibration
        mp, obs, _ = reliability(y, p)
        figs["calibration"][1].plot(mp, obs, marker="o", ms=3, label=name, lw=1.0)
    figs["roc"][1].plot([0, 1], [0, 1], "k:", lw=0.8)
    figs["roc"][1].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    figs["pr"][1].axhline(y.mean(), color="k", ls=":", lw=0.8)
    figs["pr"][1].set(xlabel="recall", ylabel="precision", title="Precision-recall")
    figs["calibration"][1].plot([0, 1], [0, 1], "k:", lw=0.8)
    figs["calibration"][1].set(xlabel="predicted risk", ylabel="observed failure rate",
                               title="Calibration (10 bins)")
    files = {}
    for kind, (fig, ax) in figs.items():
        ax.legend(fontsize=7)
        fig.tight_layout()
        fname = f"{kind}.png"
        fig.savefig(out_dir / fname, dpi=90)
        plt.close(fig)
        files[kind] = fname
    return files
