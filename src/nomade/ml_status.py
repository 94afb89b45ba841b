"""The current model at a glance, as ``nomade ml status`` prints it and the dashboard's Models
page shows it: version, age (stale when older than ``model.retrain_interval_days``), PR-AUC,
alert threshold and the rule that chose it, and the publish gate's verdict."""

import time
from typing import Any, Dict, Mapping, Optional


def manifest_of(store, version: Optional[str]) -> Dict[str, Any]:
    """The registered manifest of ``version`` ({} for None or an unknown version)."""
    from .store.models import get_model
    if version is None:
        return {}
    m = get_model(store, version)
    return m.manifest if m is not None else {}


def summary(cur: Optional[str], row: Optional[Mapping[str, Any]], manifest: Mapping[str, Any], cfg,
            now: Optional[float] = None) -> Dict[str, Any]:
    """``cur``: the current version; ``row``: its ``scoring.registry.list_models`` row."""
    created = float(manifest.get("created_at") or 0.0)
    now = time.time() if now is None else now
    age = (now - created) / 86400.0 if created else float("nan")
    interval = _setting(cfg, "model.retrain_interval_days")
    policy = (manifest.get("alert_policy") or {}).get("lua") or {}
    gate = manifest.get("publish_gate") or {}
    return {"version": cur, "age_days": age, "stale": bool(interval and age == age and age > float(interval)),
            "jobs": (manifest.get("data_counts") or {}).get("jobs"),
            "pr_auc": (row or {}).get("pr_auc"), "threshold": policy.get("threshold"),
            "policy": policy.get("rule") or policy.get("policy") or "-",
            "gate": ("passed" if gate.get("passed") else "refused: " + "; ".join(gate.get("reasons") or []))
            if gate else "not recorded"}


def current(store, cfg, now: Optional[float] = None) -> Dict[str, Any]:
    """``summary`` of the store's current bundle (version None when none is published)."""
    from .scoring.registry import list_models
    from .store.models import current_version
    cur = current_version(store)
    row = next((m for m in list_models(store) if m["version"] == cur), None)
    return summary(cur, row, manifest_of(store, cur), cfg, now)


def _setting(cfg, name: str):
    try:
        return cfg.get(name)
    except KeyError:
        return None
