"""``nomade similarity --find-similar JOBID``: a job's most similar ended jobs, the failure rate
of its wider neighbourhood, and how it differs from its successful neighbours.

The caller must be allowed to see the job (``whyservice.access.check_access``). Neighbours that
belong to other users are listed only to admins; a user gets their own similar jobs and the
neighbourhood's aggregate (``AGGREGATE`` jobs, at least ``min_count``)."""

from typing import Any, Dict, Optional

import numpy as np

from ..errors import NomadeError
from ..whyservice.access import check_access
from .network import SimilarityIndex
from .stats import wilson
from .vectors import LABELS, BehaviourSet, is_own

AGGREGATE = 50


def locate(b: BehaviourSet, job_id: str, cluster: Optional[str] = None) -> int:
    """The row of ``job_id`` (as people type it: nomade.jobid; BadJobId for other text)."""
    from ..jobid import parse_job_ref
    job_id = parse_job_ref(job_id).job_id
    i = b.index_of(job_id, cluster)
    if i is None:
        raise NomadeError(f"job {job_id!r} is not an ended job in the store"
                          + (f" of cluster {cluster!r}" if cluster else ""),
                          hint="behaviour is known only for ended jobs; check the id with: nomade jobs -j ID")
    return i


def find_similar(b: BehaviourSet, index: SimilarityIndex, job_id: str, *, viewer=None,
                 admin_group: str = "", cluster: Optional[str] = None, k: int = 10,
                 min_count: int = 20) -> Dict[str, Any]:
    """The warm look-up: ``index`` built once over ``b``."""
    i = locate(b, job_id, cluster)
    if viewer is not None:
        uid = b.uid[i]
        check_access(viewer, {"job_id": job_id, "uid": None if uid != uid else int(uid),
                              "user": b.user[i]}, admin_group)
    wide = max(k, AGGREGATE, min_count)
    idx, sims = index.query(i, wide)
    top, top_s = idx[:k], sims[:k]
    own = is_own(b, top, viewer)
    listed = [{"job_id": str(b.job_id[j]), "cluster": b.cluster[j],
               "user": b.user[j] if viewer is None else None, "outcome": b.outcome[j],
               "health": _r(b.health[j]), "similarity": _r(s)}
              for j, s, mine in zip(top, top_s, own) if mine]
    lab = b.y[idx] >= 0
    fails = int((b.y[idx] == 1).sum())
    n_lab = int(lab.sum())
    hood: Dict[str, Any] = {"jobs": int(idx.size), "labelled": n_lab}
    if n_lab >= min_count:
        lo, hi = wilson(fails, n_lab)
        hood.update(failures=fails, failure_rate=_r(fails / n_lab), ci=[_r(lo), _r(hi)])
    return {"job_id": str(b.job_id[i]), "cluster": b.cluster[i], "outcome": b.outcome[i],
            "health": _r(b.health[i]), "similar": listed, "hidden": int((~own).sum()),
            "neighbourhood": hood, "differences": differences(b, index, i, idx, min_count)}


def differences(b: BehaviourSet, index: SimilarityIndex, i: int, idx: np.ndarray,
                min_count: int, limit: int = 3):
    """The features where the job differs most (in z units) from the mean of its successful
    neighbours, when there are >= min_count of them (a mean over fewer says little)."""
    ok = idx[b.y[idx] == 0]
    if ok.size < min_count:
        return []
    Z = index.scaled.Z
    known = np.isfinite(b.X[i])
    gap = Z[i] - Z[ok].mean(axis=0)
    gap[~known] = 0.0
    out = []
    for j in np.argsort(-np.abs(gap), kind="stable")[:limit]:
        if abs(gap[j]) < 0.5:
            break
        col = b.X[ok, j]
        col = col[np.isfinite(col)]
        out.append({"feature": b.names[j], "label": LABELS.get(b.names[j], b.names[j]),
                    "job": _r(b.X[i, j]), "successful_neighbours": _r(float(col.mean())) if col.size else None,
                    "z_gap": _r(float(gap[j]))})
    return out


def _r(v) -> Optional[float]:
    return None if v is None or v != v else round(float(v), 4)
