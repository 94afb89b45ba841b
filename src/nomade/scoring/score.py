"""Score jobs with a bundle: features from the bundle's history tables, ONNX model(s) through
onnxruntime, the calibration, and reasons from exact tree contributions. A format-2 bundle's
primary model per stage is a stacked ensemble (nomade.scoring.ensemble); a format-1 bundle's is a
single calibrated GBDT.

Runtime-safe: stdlib + numpy + onnxruntime only (a test asserts it); Python 3.9.

Usage::

    scorer = Scorer(load_bundle(path))
    [rs] = scorer.score([{"user": "alice", "cpus": 4, "timelimit_s": 3600, "submit_time": t}])
    rs.risk, rs.level, rs.reasons   # reasons: [(feature, value, contribution), ...]
"""

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError
from .bundle import Bundle
from .calibration import CalibrationMap
from .ensemble import StackedScorer, onnx_session, stack_specs
from .lite_features import LiteHistory
from .trees import TreeEnsemble, sigmoid

SINGLE_EXPLAIN_MAX = 16


@dataclass
class RiskScore:
    risk: float
    level: str
    reasons: List[Tuple[str, float, float]] = field(default_factory=list)
    model_version: str = ""
    model: str = ""

    def to_json(self) -> Dict[str, Any]:
        return {"risk": self.risk, "level": self.level, "model_version": self.model_version,
                "model": self.model,
                "reasons": [{"feature": f, "value": None if v != v else v, "contribution": c}
                            for f, v, c in self.reasons]}


class _FeatureSource:
    """Features for one model's ``inputs`` from the bundle's history tables."""

    def __init__(self, bundle: Bundle, spec: Mapping[str, Any]):
        self.inputs = spec["inputs"]
        text = bundle.read_bytes(spec["history"]).decode()
        if self.inputs.startswith("lite"):
            self.lite = LiteHistory.from_json(json.loads(text))
            self.full = None
        else:
            from ..features.history import HistoryState  # runtime-safe module of nomade.features
            self.full = HistoryState.from_json(text)
            self.lite = None

    def rows(self, requests: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if self.lite is not None:
            hist = self.inputs == "lite_history"
            X = [self.lite.features(r, hist) for r in requests]
        else:
            X = [self.full.features_for(r, float(r.get("submit_time") or 0.0)) for r in requests]
        return np.asarray(X, dtype=np.float64).reshape(len(requests), -1)


class _GBDT:
    def __init__(self, bundle: Bundle, name: str, spec: Mapping[str, Any], threads: int = 1):
        self.name = name
        self.session = onnx_session(bundle, spec["file"], threads)
        self.trees = TreeEnsemble(bundle.json(spec["trees"]))
        self.calibration = CalibrationMap.from_json(spec["calibration"]) if spec.get("calibration") \
            else CalibrationMap.identity()
        self.features = _FeatureSource(bundle, spec)

    def probability(self, X: np.ndarray) -> np.ndarray:
        out = self.session.run(["probability"], {"X": X.astype(np.float32)})[0]
        return out[:, 0].astype(np.float64)


class Scorer:
    """Scores requests (dicts of the Lua ``req`` contract) with one loaded bundle."""

    def __init__(self, bundle: Bundle, threads: int = 1):
        self.bundle = bundle
        self.threads = threads   # onnxruntime threads per graph (1 for hooks; more for batches)
        man = bundle.manifest
        self.thresholds = man["thresholds"]
        self.stage_thresholds = dict(man.get("stage_thresholds", {}))
        self.primary = dict(man["ensemble"].get("primary", {}))
        self._stacks = stack_specs(man)
        self._models: Dict[str, Any] = {}

    def model_for(self, stage: str):
        name = self.primary.get(stage)
        if name is None:
            raise ModelError(f"bundle {self.bundle.version} has no model for the {stage} stage",
                             hint="score at the submit stage or retrain")
        return self.model(name)

    def model(self, name: str):
        if name not in self._models:
            if name in self._stacks:
                self._models[name] = StackedScorer(self.bundle, name, self._stacks[name], self.threads)
                return self._models[name]
            spec = self.bundle.models.get(name)
            if spec is None or spec.get("kind") != "gbdt":
                raise ModelError(f"bundle {self.bundle.version}: model {name!r} cannot be scored by "
                                 "this nomade", hint="upgrade nomade or retrain")
            self._models[name] = _GBDT(self.bundle, name, spec, self.threads)
        return self._models[name]

    def thresholds_for(self, stage: str) -> Mapping[str, float]:
        return self.stage_thresholds.get(stage, self.thresholds)

    def level(self, risk: float, stage: str = "submit") -> str:
        th = self.thresholds_for(stage)
        if risk >= th["high"]:
            return "high"
        if risk >= th["alert"]:
            return "elevated"
        return "low"

    def score(self, requests: Sequence[Mapping[str, Any]], stage: str = "submit",
              explain: bool = True, top: int = 3) -> List[RiskScore]:
        m = self.model_for(stage)
        if not requests:
            return []
        if isinstance(m, StackedScorer):
            ev = m.evaluate(requests)
            risk = m.risk(ev)
            names, contrib, values = m.contributions(ev) if explain else ([], None, ev.X)
        else:
            X = m.features.rows(requests)
            risk = m.calibration(m.probability(X))
            names = m.trees.feature_names
            if not explain:
                contrib = None
            elif len(requests) <= SINGLE_EXPLAIN_MAX:
                contrib = np.vstack([m.trees.contributions_one(list(x))[1] for x in X])
            else:
                contrib = m.trees.contributions(X)
            values = X
        out = []
        for i in range(len(requests)):
            reasons = []
            if contrib is not None:
                order = np.argsort(-contrib[i])[:top]
                reasons = [(names[j], float(values[i, j]), float(contrib[i, j]))
                           for j in order if contrib[i, j] > 0]
            r = float(risk[i])
            out.append(RiskScore(risk=r, level=self.level(r, stage), reasons=reasons,
                                 model_version=self.bundle.version, model=m.name))
        return out

    def lua_reference_risk(self, requests: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """What submit_model.lua returns, computed in Python: the bundle's Lua model through the
        numpy tree walk in double precision and the same calibration map."""
        m = self.model(self.bundle.manifest["lua"]["model"])
        X = m.features.rows(requests)
        return np.array([m.calibration.one(sigmoid(v)) for v in m.trees.raw(X)])


def load_scorer(cfg) -> Scorer:
    """The scorer for this configuration: model.bundle, else the registry's current bundle,
    else the shipped default bundle."""
    from .bundle import load_bundle
    from .registry import resolve_bundle_path

    return Scorer(load_bundle(resolve_bundle_path(cfg)))
