"""One run of the behaviour analysis over a BehaviourSet: network and its measures, hotspots,
profiles; and what each command shows of it to whom (docs/behaviour.md, "Privacy").

``viewer`` is None for root and admins (everything), else the non-admin caller
(``nomade.whyservice.access.Caller``): details of their own jobs only, aggregates over groups of
at least ``min_count`` jobs only."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import ConfigError, NomadeError
from . import network as net
from . import profiles as prof
from . import stats
from .vectors import LABELS, BehaviourSet, is_own, readable  # noqa: F401 (is_own: analysis.is_own for callers)


@dataclass
class Options:
    threshold: float = 0.7
    k: int = 10
    metric: str = net.COSINE
    permutations: int = 199
    min_count: int = 20
    max_profiles: int = 8
    exact_limit: int = 20000
    seed: int = 0
    drift_days: float = 30.0
    train_days: float = 180.0
    drift_threshold: float = 0.2
    anomaly_percentile: float = 1.0
    recent_jobs: int = 50

    @classmethod
    def from_config(cls, cfg) -> "Options":
        g = cfg.get
        metric = g("behaviour.similarity")
        if metric not in net.METRICS:
            raise ConfigError(f"behaviour.similarity = {metric!r}: not one of {', '.join(net.METRICS)}")
        if g("behaviour.neighbours") < 1 or g("behaviour.min_count") < 1 or g("behaviour.max_profiles") < 1:
            raise ConfigError("behaviour.neighbours, behaviour.min_count and behaviour.max_profiles "
                              "must be at least 1")
        return cls(threshold=g("behaviour.similarity_threshold"), k=g("behaviour.neighbours"),
                   metric=g("behaviour.similarity"), permutations=g("behaviour.permutations"),
                   min_count=g("behaviour.min_count"), max_profiles=g("behaviour.max_profiles"),
                   exact_limit=g("behaviour.exact_limit"), seed=g("behaviour.seed"),
                   drift_days=g("behaviour.drift_days"), train_days=g("behaviour.train_days"),
                   drift_threshold=g("behaviour.drift_threshold"),
                   anomaly_percentile=g("behaviour.anomaly_percentile"),
                   recent_jobs=g("behaviour.recent_jobs"))


@dataclass
class Analysis:
    bset: BehaviourSet
    options: Options
    network: Optional[net.Network] = None
    permutation: Optional[stats.PermutationResult] = None
    purity: Any = None
    hotspots: List[stats.Hotspot] = field(default_factory=list)
    model: Optional[prof.ProfileModel] = None
    profile: Optional[np.ndarray] = None
    anomaly: Optional[np.ndarray] = None       # log-likelihood per known feature


def analyse(b: BehaviourSet, opts: Options, *, with_network: bool = True,
            with_profiles: bool = True) -> Analysis:
    if len(b) < 2:
        raise NomadeError(f"behaviour analysis needs at least 2 ended jobs; the store has {len(b)}",
                          hint="ingest accounting first: nomade ingest sacct")
    a = Analysis(b, opts)
    if with_network:
        a.network = net.build_network(b.X, k=opts.k, threshold=opts.threshold, metric=opts.metric,
                                      exact_limit=opts.exact_limit, seed=opts.seed)
        g = a.network
        a.permutation = stats.permutation_test(g.u, g.v, b.y, opts.permutations, opts.seed)
        a.purity = stats.purity(g.u, g.v, b.y)
        a.hotspots = stats.hotspots(b.X, b.names, b.y, min_count=opts.min_count, safe=True)
    if with_profiles:
        a.model = prof.fit_profiles(b.X, b.names, max_k=opts.max_profiles, seed=opts.seed,
                                    anomaly_percentile=opts.anomaly_percentile)
        a.profile, a.anomaly = a.model.assign(b.X)
    return a


def need(value, what: str):
    """``value``, or ValueError when the analysis was run without ``what``."""
    if value is None:
        raise ValueError(f"this needs the analysis' {what}: run analyse() with it")
    return value


def _r(v: Optional[float], nd: int = 4) -> Optional[float]:
    return None if v is None or v != v else round(float(v), nd)


def regions(a: Analysis, limit: int = 10) -> List[Dict[str, Any]]:
    """Connected regions of >= min_count jobs, highest failure rate first, with Wilson intervals."""
    g, b = need(a.network, "network"), a.bset
    lab = b.y >= 0
    sizes = np.bincount(g.region, minlength=g.n)
    big = np.nonzero(sizes >= a.options.min_count)[0]
    n_lab = np.bincount(g.region[lab], minlength=g.n)
    k_fail = np.bincount(g.region[b.y == 1], minlength=g.n)
    out = []
    for r in big:
        if n_lab[r] < a.options.min_count:
            continue
        lo, hi = stats.wilson(k_fail[r], n_lab[r])
        out.append({"size": int(sizes[r]), "labelled": int(n_lab[r]), "failures": int(k_fail[r]),
                    "failure_rate": _r(k_fail[r] / n_lab[r]), "ci": [_r(lo), _r(hi)]})
    out.sort(key=lambda d: (-d["failure_rate"], -d["size"]))
    return out[:limit]


def network_summary(a: Analysis) -> Dict[str, Any]:
    """``nomade similarity``: aggregates only (every group shown holds >= min_count jobs)."""
    g, b, p = need(a.network, "network"), a.bset, need(a.permutation, "permutation test")
    lab = b.y >= 0
    sizes = np.bincount(g.region, minlength=g.n)
    deg = np.bincount(g.u, minlength=g.n) + np.bincount(g.v, minlength=g.n)
    return {
        "jobs": len(b), "labelled": int(lab.sum()), "failures": int((b.y == 1).sum()),
        "base_failure_rate": _r(float((b.y == 1).sum()) / max(1, int(lab.sum()))),
        "similarity": g.metric, "threshold": g.threshold, "neighbours": g.k, "search": g.method,
        "edges": int(g.u.size), "mean_degree": _r(float(deg.mean()) if g.n else 0.0, 3),
        "isolated_jobs": int((deg == 0).sum()),
        "regions": int((sizes >= 2).sum()), "largest_region": int(sizes.max()) if g.n else 0,
        "assortativity": _r(p.statistic), "assortativity_p_value": _r(p.p_value),
        "permutations": p.permutations, "assortativity_null_mean": _r(p.null_mean),
        "purity": _r(a.purity[0]), "failure_purity": _r(a.purity[1]),
        "failure_regions": regions(a),
        "hotspots": [_hotspot(h) for h in a.hotspots],
    }


def _hotspot(h: stats.Hotspot) -> Dict[str, Any]:
    return {"kind": h.kind, "feature": h.feature, "label": LABELS.get(h.feature, h.feature),
            "low": _r(h.low, 6), "high": _r(h.high, 6),
            "range": f"{readable(h.feature, h.low)} .. {readable(h.feature, h.high)}", "n": h.n, "failures": h.failures,
            "failure_rate": _r(h.failure_rate), "ci": [_r(h.ci_low), _r(h.ci_high)],
            "base_rate": _r(h.base_rate)}


def profiles_summary(a: Analysis, viewer=None) -> Dict[str, Any]:
    """``nomade profiles``: every profile with >= min_count jobs (all of them for admins), with
    the viewer's own jobs per profile."""
    model, profile, anomaly = need(a.model, "profiles"), need(a.profile, "profiles"), need(a.anomaly, "profiles")
    b = a.bset
    rows = prof.summarize(model, profile, b.y, list(b.outcome))
    mine = is_own(b, np.arange(len(b)), viewer)
    shown = []
    for p in rows:
        if viewer is not None and p.size < a.options.min_count:
            continue
        d = p.as_dict()
        d["your_jobs"] = int(((profile == p.id) & mine).sum())
        shown.append(d)
    anomalous = anomaly < model.anomaly_threshold
    return {"jobs": len(b), "profiles": shown, "chosen_k": model.mixture.k,
            "bic": {str(k): _r(v, 1) for k, v in model.bic_by_k.items()},
            "anomaly_threshold": _r(model.anomaly_threshold),
            "anomalies": int(anomalous.sum()),
            "anomaly_jobs": [str(j) for j in b.job_id[anomalous & mine]][:50],
            "hidden_profiles": len(rows) - len(shown)}
