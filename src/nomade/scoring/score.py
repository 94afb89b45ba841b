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

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .. import risk_scale
from ..errors import ModelError
from .bundle import Bundle
from .calibration import CalibrationMap
from .ensemble import LiteRows, StackedScorer, StageFeatures, onnx_session, stack_specs
from .trees import TreeEnsemble, sigmoid


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


class _GBDT:
    def __init__(self, bundle: Bundle, name: str, spec: Mapping[str, Any], threads: int = 1):
        self.name = name
        self.session = onnx_session(bundle, spec["file"], threads)
        self.trees = TreeEnsemble(bundle.json(spec["trees"]))
        self.calibration = CalibrationMap.from_json(spec["calibration"]) if spec.get("calibration") \
            else CalibrationMap.identity()
        inputs = spec["inputs"]
        if inputs.startswith("lite"):
            self.rows = LiteRows(bundle, spec["history"], with_history=inputs == "lite_history").rows
        else:   # format 1's full submit features
            full = StageFeatures(bundle, "submit", spec["history"], None)
            self.rows = lambda requests: full.rows(requests)[0]

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
        """The level of the one risk scale (nomade.risk_scale; the same for every stage)."""
        return risk_scale.level(risk)

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
            X = m.rows(requests)
            risk = m.calibration(m.probability(X))
            names = m.trees.feature_names
            contrib = m.trees.explain(X) if explain else None
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
        X = m.rows(requests)
        return np.array([m.calibration.one(sigmoid(v)) for v in m.trees.raw(X)])


def load_scorer(cfg) -> Scorer:
    """The scorer for this configuration: model.bundle, else the registry's current bundle,
    else the shipped default bundle."""
    from .bundle import load_bundle
    from .registry import resolve_bundle_path

    return Scorer(load_bundle(resolve_bundle_path(cfg)))
