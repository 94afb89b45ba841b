"""Where the safe and danger zones lie in the network view.

A zone is a hotspot of the analysis (``stats.hotspots``: a range of one feature whose failure
rate is significantly above the base rate, 'danger', or below it, 'safe'). The network view
places jobs by the design's axes (``xyz``, scaled 0..1) or by principal components (``pca``),
so a zone is drawn where its jobs sit: per layout, the median position of the jobs in the
feature range and, per axis, half the spread between their 10th and 90th percentiles (at least
``MIN_RADIUS`` of that axis' span): an ellipsoid in 3D, an ellipse in 2D. Positions are in the
same coordinates as the exported nodes, so the page scales zones and points alike.

A shape summarises every job of the zone (at least ``min_count`` of them, like the zone
itself); it names no job."""

from typing import Any, Dict, List, Optional

import numpy as np

from .analysis import Analysis, Options, analyse
from .export import axes_01, export_analysis, pca3
from .vectors import AXES, LABELS, readable

MIN_RADIUS = 0.03         # of the layout's span on that axis
SPREAD = (10.0, 90.0)     # percentiles that bound a zone's extent


def layouts(a: Analysis) -> Dict[str, np.ndarray]:
    """Every job's position in each layout, as ``export.export_analysis`` gives the nodes."""
    from .network import Scaled
    b = a.bset
    xyz = axes_01(b.X, [b.names.index(x) for x in AXES if x in b.names])
    if xyz.shape[1] < 3:
        xyz = np.hstack([xyz, np.full((xyz.shape[0], 3 - xyz.shape[1]), np.nan)])
    pca = pca3(Scaled.of(b.X).Z.astype(np.float64), seed=a.options.seed)
    return {"xyz": xyz, "pca": pca}




def layout_fit(a: Analysis) -> Dict[str, Any]:
    """What ``layouts`` fitted on the analysis' jobs, as plain numbers, so that jobs outside it
    (running ones) are placed by ``place`` exactly as its nodes are: per design axis the 1st and
    99th percentiles (``export.axes_01``; None for an axis no job has), the z-score scaler
    (``network.Scaled``) and the mean and first three principal axes of the z-scores
    (``export.pca3``, same sample and seed). Aggregates only: no job is named."""
    from .export import axis_bounds, pca_fit
    from .network import Scaled
    b = a.bset
    cols = [b.names.index(x) for x in AXES if x in b.names]
    sc = Scaled.of(b.X)
    mu, comps = pca_fit(sc.Z.astype(np.float64), seed=a.options.seed)
    return {"names": list(b.names), "axes": cols, "bounds": axis_bounds(b.X, cols), "mean": sc.mean.tolist(),
            "std": sc.std.tolist(), "pca_mean": mu.tolist(), "pca_axes": comps.tolist()}


def place(fit: Dict[str, Any], X: np.ndarray) -> Dict[str, np.ndarray]:
    """Positions of the rows of ``X`` (behaviour vectors, ``fit["names"]`` columns) in each
    layout, by the transform ``layout_fit`` read off an analysis: {"xyz": (n, 3), "pca": (n, 3)}."""
    from ..scoring.neighbours import zscore
    from .export import apply_axes, pca_apply
    X = np.asarray(X, dtype=np.float64)
    xyz = np.full((X.shape[0], 3), np.nan)
    xyz[:, :len(fit["axes"])] = apply_axes(X, fit["axes"], fit["bounds"])
    Z = zscore(X, np.asarray(fit["mean"], dtype=np.float32),
               np.asarray(fit["std"], dtype=np.float32)).astype(np.float64)
    comps = np.asarray(fit["pca_axes"], dtype=np.float64).reshape(-1, X.shape[1])
    return {"xyz": xyz, "pca": pca_apply(Z, np.asarray(fit["pca_mean"], dtype=np.float64), comps)}


def ellipsoid(P: np.ndarray, span: np.ndarray) -> Optional[Dict[str, List[Optional[float]]]]:
    """Centre and radii of the rows of ``P`` (n, 3; NaN = unknown); None when no row is known."""
    centre: List[Optional[float]] = []
    radii: List[Optional[float]] = []
    for k in range(P.shape[1]):
        v = P[:, k][np.isfinite(P[:, k])]
        if v.size == 0:
            centre.append(None)
            radii.append(None)
            continue
        lo, mid, hi = np.percentile(v, [SPREAD[0], 50.0, SPREAD[1]])
        centre.append(round(float(mid), 5))
        radii.append(round(float(max((hi - lo) / 2.0, MIN_RADIUS * span[k])), 5))
    if all(c is None for c in centre):
        return None
    return {"centre": centre, "radii": radii}


def _span(P: np.ndarray) -> np.ndarray:
    out = np.ones(P.shape[1])
    for k in range(P.shape[1]):
        v = P[:, k][np.isfinite(P[:, k])]
        if v.size:
            out[k] = max(float(v.max() - v.min()), 1e-9)
    return out


def zone_shapes(a: Analysis) -> List[Dict[str, Any]]:
    """One entry per zone the exporter lists (hotspots of >= min_count jobs, same order): the
    feature's name and range as people read them (``label``, ``range``), the zone's jobs
    (``members``) and its shape per layout (``shape``: {layout: {centre, radii}})."""
    b, pos = a.bset, layouts(a)
    spans = {name: _span(P) for name, P in pos.items()}
    out = []
    for h in a.hotspots:
        if h.n < a.options.min_count:
            continue
        x = b.X[:, b.names.index(h.feature)]
        with np.errstate(invalid="ignore"):
            inside = np.isfinite(x) & (x >= h.low) & (x <= h.high)
        shape = {name: ellipsoid(P[inside], spans[name]) for name, P in pos.items()} if inside.any() else {}
        out.append({"label": LABELS.get(h.feature, h.feature),
                    "range": f"{readable(h.feature, h.low)} .. {readable(h.feature, h.high)}",
                    "members": int(inside.sum()), "shape": shape})
    return out


def network_export(store, cluster: Optional[str] = None, *, viewer=None, limit: Optional[int] = None,
                   options: Optional[Options] = None) -> Dict[str, Any]:
    """``export.network_export`` with each zone's ``members`` and ``shape`` (``zone_shapes``) and
    the layouts' transform (``layout_fit``)."""
    from .vectors import load
    opts = options or Options(permutations=0)
    a = analyse(load(store, cluster), opts)
    data = with_shapes(a, export_analysis(a, viewer=viewer, limit=limit, cluster=cluster))
    data["layout_fit"] = layout_fit(a)        # for running jobs (the dashboard keeps it server-side)
    return data


def with_shapes(a: Analysis, data: Dict[str, Any]) -> Dict[str, Any]:
    """``data`` (an export of ``a``) with the shapes added to its zones."""
    shapes = zone_shapes(a)
    zones = data.get("zones") or []
    if len(shapes) != len(zones):       # not this analysis' export: leave the zones as they are
        return data
    data["zones"] = [dict(z, **s) for z, s in zip(zones, shapes)]
    return data
