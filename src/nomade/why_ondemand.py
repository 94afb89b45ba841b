"""nomade-why for a job nothing scored: score it now with the current bundle, as of its submit
time (and its start time once started), and recompute what sbatch told its user (the bundle's
Lua model, ``scoring.lua_verdict``). Nothing is written: the why-service reads the store
read-only. Jobs the store does not hold yet come from Slurm (``live_job.SlurmJobs``)."""

import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .errors import ModelError
from .jobrecord import REQ_MEM_CPU, REQ_MEM_JOB
from .live_job import SlurmJobs
from .store.job_queries import owner_submits_between

RECENT_WINDOW_S = 3600.0   # job_submit.lua's "recent submissions" window

log = logging.getLogger(__name__)


def request_of(job: Mapping[str, Any]) -> Dict[str, Any]:
    """The Lua ``req`` contract for a job: its Slurm/Prolog request when it carries one, else
    built from its jobs row."""
    if isinstance(job.get("request"), Mapping):
        req = dict(job["request"])
    else:
        req = {"name": job.get("name"), "partition": job.get("partition"), "account": job.get("account"),
               "qos": job.get("qos"), "cpus": job.get("req_cpus"), "nodes": job.get("req_nodes"),
               "gpus": job.get("req_gpus"), "mem_mb": job.get("req_mem_mb"),
               "mem_per_cpu": job.get("req_mem_per_cpu") == REQ_MEM_CPU,
               "mem_per_job": job.get("req_mem_per_cpu") == REQ_MEM_JOB, "timelimit_s": job.get("timelimit_s"),
               "submit_time": job.get("submit_time"), "start_time": job.get("start_time"),
               "node_list": job.get("node_list")}
    req["user"] = job.get("user") or ""
    req["name"] = req.get("name") or ""
    return req


class BundleCache:
    """The current bundle's Scorer and Lua model, loaded once per bundle path (the registry's
    current bundle may change while the why-service runs). ``path_of()`` resolves the path."""

    def __init__(self, path_of: Callable[[], Path]):
        self.path_of = path_of
        self._lock = threading.Lock()
        self._loaded: Optional[Tuple[Path, Any, Any]] = None

    @classmethod
    def from_config(cls, cfg) -> "BundleCache":
        from .scoring.registry import resolve_bundle_path
        return cls(lambda: Path(resolve_bundle_path(cfg)))

    def get(self) -> Tuple[Any, Any]:
        """(Scorer, LuaModel or None); ModelError when they cannot be had."""
        try:
            from .scoring.bundle import load_bundle
            from .scoring.lua_verdict import LuaModel
            from .scoring.score import Scorer
        except ImportError as exc:
            raise ModelError(f"on-demand scoring cannot import {exc.name or exc}",
                             hint="install numpy and onnxruntime for nomade serve-why") from None
        path = self.path_of()
        with self._lock:
            if self._loaded is None or self._loaded[0] != path:
                bundle = load_bundle(path)
                lua = LuaModel.from_bundle(bundle) if bundle.manifest.get("lua") else None
                self._loaded = (path, Scorer(bundle), lua)
            return self._loaded[1], self._loaded[2]


class OnDemand:
    """What explain needs to answer for unscored and not yet ingested jobs: the bundle (scoring)
    and, where Slurm can be asked (the why-service, root), a ``SlurmJobs``."""

    def __init__(self, bundles: Optional[BundleCache], live: Optional[SlurmJobs] = None):
        self.bundles, self.live = bundles, live

    @classmethod
    def from_config(cls, cfg, live: bool = True) -> "OnDemand":
        return cls(BundleCache.from_config(cfg), SlurmJobs.from_config(cfg) if live else None)

    def scores(self, store, job: Mapping[str, Any], missing: List[str]) -> Dict[str, Any]:
        """{'submit'/'start': score dict, 'sbatch': Lua verdict dict} for the ``missing`` stages
        (only 'start' once the job started) and the Lua verdict; {} without a bundle."""
        if self.bundles is None:
            return {}
        try:
            scorer, lua = self.bundles.get()
        except ModelError as exc:   # stored scores and similar jobs are still worth showing
            log.warning("nomade-why: no on-demand score for job %s: %s", job.get("job_id"), exc)
            return {}
        req = request_of(job)
        if req.get("recent_submits") is None:
            req["recent_submits"] = _recent_submits(store, job)
        out: Dict[str, Any] = {}
        for stage in missing:
            if stage == "start" and (not job.get("start_time") or job.get("state") == "PENDING"):
                continue
            if stage not in scorer.primary:
                continue
            out[stage] = _score(scorer, req, stage, job)
        if lua is not None:
            out["sbatch"] = lua.verdict(req).as_dict()
        return out


def _recent_submits(store, job: Mapping[str, Any]) -> int:
    t = job.get("submit_time")
    if store is None or t is None or job.get("uid") is None:   # no store yet (nomade predict)
        return 0
    return owner_submits_between(store, job.get("cluster") or "", int(job["uid"]), float(t) - RECENT_WINDOW_S,
                                 float(t), str(job["job_id"]))


def _score(scorer, req: Dict[str, Any], stage: str, job: Mapping[str, Any]) -> Dict[str, Any]:
    [rs] = scorer.score([req], stage=stage)
    as_of = "start" if stage == "start" else "submit"
    return {"risk": rs.risk, "level": rs.level, "model_version": rs.model_version, "model": rs.model,
            "scored": "now", "as_of": job.get(f"{as_of}_time"),
            "reasons": json.dumps(rs.to_json()["reasons"])}
