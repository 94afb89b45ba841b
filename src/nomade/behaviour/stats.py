"""Statistics of the behaviour analysis: Wilson intervals, failure assortativity and
neighbourhood purity of a network with their permutation test, hotspots (feature ranges whose
failure rate is significantly above the base rate) and the paired difference of a matched
comparison. numpy only."""

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

Z95 = 1.959963984540054


def wilson(k: float, n: float, z: float = Z95) -> Tuple[float, float]:
    """Wilson score interval of the proportion k/n (0, 1 when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    d = 1.0 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def z_for(alpha_two_sided: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha_two_sided / 2.0)


def assortativity(u: np.ndarray, v: np.ndarray, lab: np.ndarray) -> float:
    """Newman's assortativity coefficient of a binary node attribute (0/1) on an undirected graph
    given as edges (u, v), each listed once; edges with an unlabelled end (lab < 0) are left out.
    1 = edges only join equal labels, 0 = as by chance, < 0 = mixing. NaN without such edges."""
    a, b = lab[u], lab[v]
    keep = (a >= 0) & (b >= 0)
    a, b = a[keep], b[keep]
    return _assortativity(int(np.count_nonzero((a == 1) & (b == 1))), int(np.count_nonzero((a == 0) & (b == 0))),
                          int(np.count_nonzero(a == 1)) + int(np.count_nonzero(b == 1)), int(a.size))


def _assortativity(same1: int, same0: int, ends1: int, m: int) -> float:
    """The coefficient from counts over the m labelled edges: both ends failed, both succeeded,
    and failed ends."""
    if m == 0:
        return float("nan")
    p1 = float(ends1) / (2 * m)
    expect = p1 * p1 + (1 - p1) * (1 - p1)
    if expect >= 1.0:
        return float("nan")
    return (float(same1) / m + float(same0) / m - expect) / (1.0 - expect)


def purity(u: np.ndarray, v: np.ndarray, lab: np.ndarray) -> Tuple[float, float]:
    """Neighbourhood purity: over labelled nodes with a labelled neighbour, the mean share of
    their neighbours with the same label; and the mean share of failed neighbours of failed jobs
    (failure purity; compare with the base rate). NaN when undefined."""
    n = lab.shape[0]
    a, b = lab[u], lab[v]
    keep = (a >= 0) & (b >= 0)
    uu, vv, a, b = u[keep], v[keep], a[keep], b[keep]
    same = (a == b).astype(np.float64)
    deg = np.bincount(uu, minlength=n) + np.bincount(vv, minlength=n)
    s = np.bincount(uu, weights=same, minlength=n) + np.bincount(vv, weights=same, minlength=n)
    has = deg > 0
    if not has.any():
        return float("nan"), float("nan")
    share = s[has] / deg[has]
    failed = (lab[has] == 1)
    return float(share.mean()), float(share[failed].mean()) if failed.any() else float("nan")


@dataclass
class PermutationResult:
    statistic: float
    p_value: float
    permutations: int
    null_mean: float


def permutation_test(u: np.ndarray, v: np.ndarray, lab: np.ndarray, permutations: int = 199,
                     seed: int = 0) -> PermutationResult:
    """One-sided test of "failures cluster in the network more than by chance": the
    assortativity with labels shuffled among the labelled nodes, ``permutations`` times;
    p = (1 + #{shuffled >= observed}) / (1 + permutations).

    Eight shuffles at a time: bit j of a node's byte says whether it failed in shuffle j, so one
    pass over the edges (two gathers) serves eight shuffles; the counts, and so the statistic,
    are those of ``assortativity`` on each shuffle."""
    obs = assortativity(u, v, lab)
    if math.isnan(obs) or permutations <= 0:
        return PermutationResult(obs, float("nan"), 0, float("nan"))
    rng = np.random.default_rng(seed)
    labelled = np.nonzero(lab >= 0)[0]
    keep = (lab[u] >= 0) & (lab[v] >= 0)
    uu, vv = u[keep].astype(np.int32), v[keep].astype(np.int32)
    m = int(uu.size)
    deg = (np.bincount(uu, minlength=lab.size) + np.bincount(vv, minlength=lab.size))[labelled]
    values = lab[labelled]
    nulls: List[float] = []
    for start in range(0, permutations, 8):
        bits = np.zeros(lab.size, dtype=np.uint8)
        ends1 = []
        for j in range(min(8, permutations - start)):
            failed = rng.permutation(values) == 1
            bits[labelled[failed]] |= np.uint8(1 << j)
            ends1.append(int(deg[failed].sum()))
        a, b = bits[uu], bits[vv]
        both, either = a & b, a | b
        for j, e1 in enumerate(ends1):
            bit = np.uint8(1 << j)
            same1 = int(np.count_nonzero(both & bit))
            same0 = m - int(np.count_nonzero(either & bit))
            nulls.append(_assortativity(same1, same0, e1, m))
    ge = sum(1 for r in nulls if r >= obs - 1e-12)
    return PermutationResult(obs, (1 + ge) / (1 + permutations), permutations, sum(nulls, 0.0) / permutations)


@dataclass
class Hotspot:
    feature: str
    low: float              # the range low <= x <= high, in the feature's own unit
    high: float
    n: int
    failures: int
    failure_rate: float
    ci_low: float           # Wilson interval, Bonferroni-adjusted over the ranges tried
    ci_high: float
    base_rate: float
    kind: str = "danger"    # 'danger': above the base rate; 'safe': below

    def as_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


def hotspots(X: np.ndarray, names: Sequence[str], fail: np.ndarray, bins: int = 10,
             min_count: int = 20, alpha: float = 0.05, safe: bool = False) -> List[Hotspot]:
    """Per feature, the contiguous range of its quantile bins (``bins``; one bin per value when a
    feature has at most ``bins`` distinct values) with the highest Wilson
    lower bound of the failure rate, kept when that bound (Bonferroni-adjusted over every range
    of every feature tried) is above the base rate and the range holds >= ``min_count`` jobs.
    ``fail``: 1 failed, 0 succeeded, -1 left out. With ``safe``, ranges significantly below the
    base rate too (kind 'safe'). Sorted by failure rate, highest first."""
    lab = fail >= 0
    base_k, base_n = int((fail == 1).sum()), int(lab.sum())
    if base_n == 0:
        return []
    base = base_k / base_n
    n_tests = max(1, len(names) * bins * (bins + 1) // 2 * (2 if safe else 1))
    z = z_for(alpha / n_tests)
    out: List[Hotspot] = []
    for j, name in enumerate(names):
        x = X[:, j]
        ok = lab & np.isfinite(x)
        if ok.sum() < min_count:
            continue
        found = _best_range(x[ok], (fail[ok] == 1).astype(np.int64), bins, min_count, z, base, safe)
        for kind, lo, hi, n, k in found:
            ci = wilson(k, n, z)
            out.append(Hotspot(name, lo, hi, n, k, k / n, ci[0], ci[1], base, kind))
    out.sort(key=lambda h: (-h.failure_rate, h.feature))
    return out


def _best_range(x: np.ndarray, f: np.ndarray, bins: int, min_count: int, z: float, base: float,
                safe: bool) -> List[Tuple[str, float, float, int, int]]:
    uniq = np.unique(x)
    if uniq.size < 2:
        return []
    if uniq.size <= bins:           # few distinct values: one bin per value
        idx = np.searchsorted(uniq, x)
        lows, highs = uniq, uniq
    else:
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
        lows, highs = edges[:-1], edges[1:]
    nb = lows.size
    cnt = np.bincount(idx, minlength=nb)
    k = np.bincount(idx, weights=f, minlength=nb)
    cc, kc = np.concatenate([[0], np.cumsum(cnt)]), np.concatenate([[0], np.cumsum(k)])
    best_hi: Optional[Tuple[float, int, int]] = None
    best_lo: Optional[Tuple[float, int, int]] = None
    for a in range(nb):
        for b in range(a, nb):
            n = int(cc[b + 1] - cc[a])
            if n < min_count or n == x.size:
                continue
            kk = int(kc[b + 1] - kc[a])
            lo, hi = wilson(kk, n, z)
            if lo > base and (best_hi is None or lo > best_hi[0]):
                best_hi = (lo, a, b)
            if safe and hi < base and (best_lo is None or hi < best_lo[0]):
                best_lo = (hi, a, b)
    out = []
    for kind, best in (("danger", best_hi), ("safe", best_lo)):
        if best is not None:
            _, a, b = best
            n = int(cc[b + 1] - cc[a])
            out.append((kind, float(lows[a]), float(highs[b]), n, int(kc[b + 1] - kc[a])))
    return out


@dataclass
class PairedDifference:
    pairs: int
    rate_with: float
    rate_without: float
    difference: float       # rate_with - rate_without
    ci_low: float
    ci_high: float


def paired_difference(with_: np.ndarray, without: np.ndarray, z: float = Z95,
                      matched_ids: Optional[np.ndarray] = None) -> PairedDifference:
    """Difference of success rates over matched pairs (0/1 outcome of the job with the practice,
    and of its match without). The interval treats the two sides as independent (conservative
    when matching makes them alike) and, when ``matched_ids`` says which "with" jobs were used,
    counts a job matched several times once per use (matching with replacement):
    var = p(1-p) sum(uses^2) / n^2 + q(1-q) / n."""
    a = np.asarray(with_, dtype=np.float64)
    b = np.asarray(without, dtype=np.float64)
    n = a.size
    if n == 0:
        nan = float("nan")
        return PairedDifference(0, nan, nan, nan, nan, nan)
    p, q = float(a.mean()), float(b.mean())
    reuse = float(n)
    if matched_ids is not None:
        _, uses = np.unique(matched_ids, return_counts=True)
        reuse = float((uses.astype(np.float64) ** 2).sum())
    var = p * (1 - p) * reuse / (n * n) + q * (1 - q) / n
    se = math.sqrt(var) if n > 1 else float("inf")
    mean = p - q
    return PairedDifference(n, p, q, mean, max(-1.0, mean - z * se), min(1.0, mean + z * se))
