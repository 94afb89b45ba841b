"""The in-run series model's runtime half: a running job's recorder samples on one node as an
(1, T, f) tensor, and the bundle's ``series_lstm.onnx`` (the same SequenceNet module as the
history LSTM, trained by nomade.train.series_model) scoring it. The recorder calls it every pass
(``EarlyWarning(series_scorer=...)``). Runtime-safe: stdlib, numpy, onnxruntime.

Per sample (``STEP_NAMES``), all known at that sample's time: memory used / cgroup limit and
whether the limit is known, memory growth per minute as a share of the limit, CPU efficiency
over the last interval, log1p(write bytes/s over the last interval), log1p(minutes since the
job's first sample), and a 'present' flag. The last ``T`` samples, oldest first, zero rows in
front when there are fewer."""

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..errors import ModelError

STEP_NAMES = ("mem_frac", "limit_known", "mem_growth_per_min", "cpu_eff", "write_rate_log",
              "minutes_log", "present")
N_SERIES_STEP = len(STEP_NAMES)
DEFAULT_T = 16
SERIES_FILE = "series_lstm.onnx"


def _num(v: Optional[float]) -> Optional[float]:
    return None if v is None or v != v else float(v)


def series_steps(samples: Sequence[Any], t: int = DEFAULT_T) -> np.ndarray:
    """(t, f) float32 for one job's samples on one node (nomade.recorder.sample.JobSample:
    memory is its ``memory_mb``, the figure the memory projection uses too), sorted by time;
    the last ``t`` samples, oldest first."""
    rows = sorted(samples, key=lambda s: s.ts)
    out = np.zeros((t, N_SERIES_STEP), dtype=np.float32)
    if not rows:
        return out
    t0 = rows[0].ts
    feats = []
    prev = None
    for s in rows:
        mem, limit = _num(s.memory_mb), _num(s.cg_mem_limit_mb)
        frac = mem / limit if mem is not None and limit else 0.0
        growth, wrate = 0.0, 0.0
        if prev is not None:
            dt = max(s.ts - prev[0], 1e-3)
            if mem is not None and prev[1] is not None and limit:
                growth = (mem - prev[1]) / limit / dt * 60.0
            w, pw = _num(s.write_bytes), prev[2]
            if w is not None and pw is not None:
                wrate = max(w - pw, 0.0) / dt
        cpu = _num(s.cpu_eff)
        feats.append((min(frac, 4.0), 1.0 if limit else 0.0, max(min(growth, 4.0), -4.0),
                      0.0 if cpu is None else min(max(cpu, 0.0), 4.0), math.log1p(wrate),
                      math.log1p(max(s.ts - t0, 0.0) / 60.0), 1.0))
        prev = (s.ts, mem, _num(s.write_bytes))
    tail = np.asarray(feats[-t:], dtype=np.float32)
    out[t - len(tail):] = tail
    return out


class SeriesScorer:
    """Calibrated failure risk of a running job from its samples (the bundle's series model)."""

    def __init__(self, bundle, spec: Mapping[str, Any]):
        from .ensemble import Calibration, onnx_session

        self.t = int(spec.get("steps", DEFAULT_T))
        self.min_samples = int(spec.get("min_samples", 3))
        self.session = onnx_session(bundle, spec["file"])
        self.calibration = Calibration(spec.get("calibration", {"kind": "identity"}))
        self.version = bundle.version

    def __call__(self, samples: Sequence[Any]) -> Optional[float]:
        if len(samples) < self.min_samples:
            return None
        seq = series_steps(samples, self.t)[None, :, :]
        p = self.session.run(["p"], {"SEQ": seq, "X": np.ascontiguousarray(seq[:, -1, :])})[0]
        return float(self.calibration(np.asarray(p, dtype=np.float64).reshape(-1))[0])


def load_series_scorer(cfg) -> Optional[SeriesScorer]:
    """The series scorer of the configured bundle, or None when that bundle has none (a site
    without enough recorded jobs yet). Raises ModelError when the bundle cannot be read."""
    from .bundle import load_bundle
    from .registry import resolve_bundle_path

    bundle = load_bundle(resolve_bundle_path(cfg))
    spec = bundle.manifest.get("series")
    if not spec or not spec.get("file"):
        return None
    if spec["file"] not in bundle.manifest.get("files", {}):
        raise ModelError(f"bundle {bundle.path}: series model file {spec['file']} is not listed",
                         hint="retrain the model")
    return SeriesScorer(bundle, spec)
