"""Start-time scoring for the Prolog, behind one small adapter.

``load_scorer(cfg)`` returns a callable ``request dict -> StartScore``. By default it is the model
bundle's ONNX ensemble (``nomade.scoring``); ``hooks.scorer = "module:function"`` plugs in a site
scorer (and tests use it for a stub). Everything that can go wrong becomes a ModelError whose
message says what to fix; the Prolog logs it and the job starts unaffected."""

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from .. import risk_scale
from ..config import Config
from ..errors import ModelError


@dataclass
class StartScore:
    risk: float
    reasons: List[Any] = field(default_factory=list)  # text, or {feature, value, contribution}
    model_version: str = "unknown"
    threshold: Optional[float] = None
    suggestion: Optional[str] = None


def risk_level(risk: float) -> str:
    """The level of the one risk scale (nomade.risk_scale)."""
    return risk_scale.level(risk)


def alert_threshold(cfg: Config, score: StartScore) -> float:
    """model.alert_threshold > the scoring stage's threshold > the scale's default."""
    return risk_scale.resolve_threshold(cfg.get("model.alert_threshold"), score.threshold)


def _coerce(result: Any, version: str) -> StartScore:
    if isinstance(result, StartScore):
        return result
    if isinstance(result, tuple):
        reasons = result[1] if len(result) > 1 else []
        version = result[2] if len(result) > 2 else version
        return StartScore(float(result[0]), [str(r) for r in reasons or []], str(version))
    if isinstance(result, Mapping):
        return StartScore(float(result["risk"]), list(result.get("reasons") or []),
                          str(result.get("model_version") or version), result.get("threshold"),
                          result.get("suggestion"))
    for attr in ("risk", "probability"):
        if hasattr(result, attr):
            reasons = getattr(result, "reasons", None) or []
            return StartScore(float(getattr(result, attr)), [str(r) for r in reasons],
                              str(getattr(result, "model_version", version)),
                              getattr(result, "threshold", None))
    raise ModelError(f"scorer returned {type(result).__name__}, expected a risk; check hooks.scorer")


def _site_scorer(spec: str) -> Callable[[Dict[str, Any]], StartScore]:
    mod, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"hooks.scorer = {spec!r} cannot be loaded: {exc}",
                         hint="set it to module:function, importable by the hook's Python") from None
    return lambda req: _coerce(fn(req), spec)


def _reason(item: Any) -> Any:
    """(feature, value, contribution) from the tree explainer -> the JSON form nomade-why reads."""
    if isinstance(item, (tuple, list)) and len(item) == 3:
        f, v, c = item
        return {"feature": str(f), "value": None if v != v else v, "contribution": float(c)}
    return item


def _bundle_scorer(cfg: Config) -> Callable[[Dict[str, Any]], StartScore]:
    """nomade.scoring: Scorer(load_bundle(path)).score([req], stage='start') -> [RiskScore]."""
    try:
        from ..scoring.bundle import load_bundle
        from ..scoring.registry import resolve_bundle_path
        from ..scoring.score import Scorer
    except ImportError as exc:
        raise ModelError(f"start-time scoring cannot import {exc.name or exc}",
                         hint="install numpy and onnxruntime in the hooks' Python") from None
    path = Path(resolve_bundle_path(cfg))
    if not path.exists():
        raise ModelError(f"no model bundle at {path}", hint="run `nomade train --publish` or set model.bundle")
    bundle = load_bundle(path)
    scorer = Scorer(bundle)
    stage = "start" if "start" in scorer.primary else "submit"  # bundles without a start stage
    alert = scorer.thresholds_for(stage).get("alert")   # the threshold of the model that scores
    suggest = _suggester(bundle)

    def score(req: Dict[str, Any]) -> StartScore:
        try:
            [rs] = scorer.score([req], stage=stage)
        except ImportError as exc:
            raise ModelError(f"start-time scoring cannot import {exc.name or exc}",
                             hint="install numpy and onnxruntime in the hooks' Python") from None
        return StartScore(float(rs.risk), [_reason(r) for r in rs.reasons], str(rs.model_version),
                          alert, suggest(req))
    return score


def _suggester(bundle) -> Callable[[Mapping[str, Any]], Optional[str]]:
    """The --time option sbatch suggested (the bundle's Lua model and its history), for the start
    line of a job that still asks for less time than its similar jobs needed; none without one."""
    if not (getattr(bundle, "manifest", None) or {}).get("lua"):
        return lambda req: None
    from ..scoring.lua_verdict import LuaModel
    try:
        model = LuaModel.from_bundle(bundle)
    except (KeyError, TypeError, ValueError):   # a bundle without a usable Lua model: no option
        return lambda req: None
    return model.suggestion


def load_scorer(cfg: Config) -> Callable[[Dict[str, Any]], StartScore]:
    spec = cfg.get("hooks.scorer")
    return _site_scorer(spec) if spec else _bundle_scorer(cfg)
