"""The in-run series model: the history LSTM's ``SequenceNet`` trained on the node recorder's
per-job samples (nomade.scoring.series for the inputs), so that a running job can be scored from
how it behaves. Training examples are prefixes of ended jobs' series - the job as the recorder
saw it part-way through - labelled with how the job ended.

Honest split by the jobs' submit time: fit on the oldest 70 %, Platt calibration on the next
15 %, test on the newest 15 % (metrics in the manifest, next to the newest sample's memory /
limit ratio as a baseline). The shipped model is that one (not refitted). Without enough
recorded jobs (``MIN_JOBS`` ended jobs with at least ``MIN_SAMPLES`` samples, ``MIN_FAILED``
of them failed) no series model is trained and the manifest says why."""

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..evaluate.metrics import pr_auc, roc_auc
from ..features.labels import label_from_class
from ..recorder.sample import JobSample
from ..scoring.series import DEFAULT_T, N_SERIES_STEP, SERIES_FILE, series_steps
from ..states import failure_class
from ..store.recorder import ended_job_samples

MIN_JOBS = 200
MIN_FAILED = 20
MIN_SAMPLES = 3
PREFIXES_PER_JOB = 4
MAX_JOBS = 50_000


def load_series(store, cluster: Optional[str] = None, owner_cancel_is_failure: bool = False
                ) -> List[Tuple[float, int, List[JobSample]]]:
    """(submit time, label, samples) per ended, labelled job and node, oldest submission first."""
    groups: Dict[Tuple[str, str, str], List[JobSample]] = {}
    meta: Dict[Tuple[str, str, str], Tuple[float, int]] = {}
    for r in ended_job_samples(store, cluster):
        key = (r["cluster"], r["job_id"], r["node"])
        if key not in meta:
            cls = failure_class(r["state"], r["cancelled_by"], r["uid"], r["exit_code"])
            meta[key] = (float(r["submit_time"] or 0.0), label_from_class(cls, owner_cancel_is_failure))
        groups.setdefault(key, []).append(JobSample(
            job_id=r["job_id"], node=r["node"], ts=r["ts"], cluster=r["cluster"], cpu_eff=r["cpu_eff"],
            rss_mb=r["rss_mb"], cg_mem_mb=r["cg_mem_mb"], cg_mem_limit_mb=r["cg_mem_limit_mb"],
            write_bytes=r["write_bytes"], extra=json.loads(r["extra"]) if r["extra"] else {}))
    out = [(meta[k][0], meta[k][1], v) for k, v in groups.items()
           if meta[k][1] in (0, 1) and len(v) >= MIN_SAMPLES]
    out.sort(key=lambda x: x[0])
    return out[-MAX_JOBS:]


def examples(series, t: int, rng: np.random.Generator, prefixes: int = PREFIXES_PER_JOB):
    """(SEQ (n, t, f), y (n,)) from up to ``prefixes`` prefixes of each job's series."""
    seqs, ys = [], []
    for _, y, samples in series:
        n = len(samples)
        ks = sorted(set(rng.choice(np.arange(MIN_SAMPLES, n + 1), size=min(prefixes, n - MIN_SAMPLES + 1),
                                   replace=False).tolist()))
        for k in ks:
            seqs.append(series_steps(samples[:k], t))
            ys.append(y)
    return (np.stack(seqs) if seqs else np.zeros((0, t, N_SERIES_STEP), np.float32),
            np.asarray(ys, dtype=np.float32))


@dataclass
class SeriesFit:
    files: Dict[str, Any]                 # bundle files (the ONNX graph)
    spec: Dict[str, Any]                  # manifest entry ``series``; ``skipped`` = why not trained
    native: Optional[Callable[[np.ndarray], np.ndarray]] = None   # torch probabilities (tests)


def fit_series(store, cfg, seed: int = 7, t: int = DEFAULT_T) -> SeriesFit:
    """Train (or decline to train) the series model from the store's samples."""
    series = load_series(store, cfg.get("cluster") or None, bool(cfg.get("model.owner_cancel_is_failure")))
    failed = sum(1 for s in series if s[1] == 1)
    if len(series) < MIN_JOBS or failed < MIN_FAILED:
        return SeriesFit({}, {"skipped": f"{len(series)} ended jobs with >= {MIN_SAMPLES} recorder "
                                         f"samples, {failed} failed (need {MIN_JOBS} and {MIN_FAILED}); "
                                         "the memory projection still warns"})
    import torch
    from torch import nn

    from .calibration import fit_platt
    from .models.lstm import SequenceNet, SequenceProbability
    from .models.torch_training import (ZScore, deterministic, fit_loop, onnx_bytes,
                                        positive_weight, temporal_split)
    from ..scoring.neighbours import fit_scaler

    gen = deterministic(seed)
    rng = np.random.default_rng(seed)
    n = len(series)
    a, b = int(n * 0.70), int(n * 0.85)
    S_fit, y_fit = examples(series[:a], t, rng)
    S_cal, y_cal = examples(series[a:b], t, rng)
    S_test, y_test = examples(series[b:], t, rng)
    X_fit = S_fit[:, -1, :]
    mean, std = fit_scaler(X_fit)
    net = SequenceNet(N_SERIES_STEP, ZScore(mean, std), hidden=32)
    St, Xt, yt = (torch.from_numpy(np.ascontiguousarray(S_fit)), torch.from_numpy(np.ascontiguousarray(X_fit)),
                  torch.from_numpy(y_fit))
    fit_i, val_i = temporal_split(len(y_fit))
    bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight(y_fit[fit_i])))

    def loss_fn(batch: np.ndarray) -> torch.Tensor:
        sel = fit_i[batch]
        return bce(net(St[sel], Xt[sel]), yt[sel])

    val = (lambda: float(bce(net(St[val_i], Xt[val_i]), yt[val_i]))) if len(val_i) else None
    log = fit_loop(loss_fn, net.parameters(), len(fit_i), val, gen, 20, 256, 3e-3, patience=3,
                   modules=[net])

    def predict(S: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(net(torch.from_numpy(np.ascontiguousarray(S)),
                                     torch.from_numpy(np.ascontiguousarray(S[:, -1, :])))).numpy().astype(np.float64)

    cal = fit_platt(predict(S_cal), y_cal.astype(int))
    p_test = cal(predict(S_test))
    base = S_test[:, -1, 0].astype(np.float64)   # memory / limit of the newest sample
    metrics = {"n_test": int(len(y_test)), "positive_rate": float(y_test.mean()) if len(y_test) else 0.0}
    if len(y_test) and 0 < y_test.sum() < len(y_test):
        metrics.update(roc_auc=roc_auc(y_test, p_test), pr_auc=pr_auc(y_test, p_test),
                       baseline_mem_frac_roc_auc=roc_auc(y_test, base),
                       baseline_mem_frac_pr_auc=pr_auc(y_test, base))
    onnx = onnx_bytes(SequenceProbability(net), (torch.zeros(2, t, N_SERIES_STEP), torch.zeros(2, N_SERIES_STEP)),
                      ["SEQ", "X"], ["p"], {"SEQ": {0: "n", 1: "T"}, "X": {0: "n"}, "p": {0: "n"}})
    spec = {"file": SERIES_FILE, "steps": t, "min_samples": MIN_SAMPLES,
            "calibration": cal.to_json(),
            "jobs": {"fit": a, "calibrate": b - a, "test": n - b, "failed": failed},
            "protocol": "jobs by submit time: fit oldest 70 %, Platt on the next 15 %, test newest 15 %; "
                        f"up to {PREFIXES_PER_JOB} prefixes of each job's series",
            "metrics": metrics, "epochs": log.get("epochs")}
    return SeriesFit({SERIES_FILE: onnx}, spec, predict)
