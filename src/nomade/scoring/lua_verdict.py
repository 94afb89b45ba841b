"""What sbatch told the user: the verdict of the bundle's Lua model (``submit_model.lua``, run by
job_submit.lua), recomputed in Python - the risk by the numpy tree walk and the same calibration
map (``Scorer.lua_reference_risk``, parity with Lua tested in tests/unit/test_lua_parity.py), the
reasons and the suggestion by a line-by-line port of ``M.predict``'s (nomade.train.lua_compile),
and the message job_submit.lua prints at or above the model's threshold.

Runtime-safe: stdlib + numpy (nomade.scoring); Python 3.9."""

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from .. import risk_scale
from .calibration import CalibrationMap
from .lite_features import KEY_SEP, LiteHistory, lite_names
from .trees import TreeEnsemble, sigmoid

QUIET_TAG = "nomade:quiet"   # job_submit.lua's QUIET_TAG


@dataclass
class LuaVerdict:
    """The Lua model's answer for one request and what job_submit.lua made of it."""
    risk: float
    level: str
    threshold: float
    warned: bool                 # job_submit.lua printed a message (risk >= threshold)
    reasons: List[str] = field(default_factory=list)
    suggestion: Optional[str] = None
    model_version: str = ""
    message: str = ""            # the lines sbatch printed ('' when nothing was printed)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _hms(s: float) -> str:
    s = math.ceil(s / 300) * 300
    return "%02d:%02d:00" % (math.floor(s / 3600), math.floor(s % 3600 / 60))


def _human(s: float) -> str:
    s = math.floor(s + 0.5)
    if s >= 3600:
        return "%dh%02dm" % (math.floor(s / 3600), math.floor(s % 3600 / 60))
    return "%dm" % math.floor(s / 60)


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def lua_reason(f: int, v: float, x: List[float]) -> Optional[str]:
    """``reason(f, v, x)`` of submit_model.lua: feature number ``f`` (1-based, lite schema) with
    value ``v`` (``x``: all the features, 0-based here, NaN for Lua's nil) in words, or None."""
    floor = math.floor
    if f in (19, 14):
        return "your last %d jobs%s failed" % (floor(v), " with this name" if f == 19 else "") if v >= 2 else None
    if f in (17, 12):
        n = x[15 if f == 17 else 10]
        n = 0.0 if n != n else n
        return "%d%% of your past jobs%s failed (%d of %d)" % (
            floor(v * 100 + 0.5), " with this name" if f == 17 else "", floor(v * n + 0.5), floor(n))
    if f in (18, 13):
        return ("your previous job" + (" with this name" if f == 18 else "") + " failed") if v == 1 else None
    if f == 20:   # only the way the --time suggestion points
        tl = x[4]
        if 0 < v < 1 and tl == tl:
            return "time limit of " + _human(tl) + ", shorter than the " + _human(tl / v) + \
                " your similar jobs needed"
        return None
    if f == 3:
        return "%d GPUs requested" % floor(v) if v >= 1 else "no GPUs requested"
    texts = {15: lambda: "your successful jobs ran up to " + _human(v),
             5: lambda: "time limit of " + _human(v), 4: lambda: "memory request of %.1f GiB" % (v / 1024),
             7: lambda: "%.1f GiB of memory per CPU" % (v / 1024),
             1: lambda: "%d CPUs requested" % floor(v), 2: lambda: "%d nodes requested" % floor(v),
             6: lambda: "%d CPUs per node" % floor(v),
             8: lambda: "submitted at %02d:00 UTC" % floor(v),
             9: lambda: "submitted on a " + _WEEKDAYS[floor(v) % 7]}
    if f in texts:
        return texts[f]()
    if f == 10:
        return "%d submissions in the last hour" % floor(v) if v >= 3 else None
    if f in (11, 16):
        return ("little history for this " + ("job name" if f == 16 else "user")) if v < 5 else None
    return None


# submit_model.lua's FAMILY and TWIN (1-based feature numbers): at most one reason of a family;
# a user-level reason gives way to its job-name twin when that one raises the risk too
FAMILY = {11: 1, 12: 1, 13: 1, 14: 1, 16: 1, 17: 1, 18: 1, 19: 1, 5: 2, 15: 2, 20: 2, 4: 3, 7: 3,
          1: 4, 2: 4, 6: 4, 8: 5, 9: 5}
TWIN = {11: 16, 12: 17, 13: 18, 14: 19}


def lua_reasons(x: List[float], contrib) -> List[str]:
    """``reasons_of(x, c)`` of submit_model.lua: at most 3 reasons, by contribution."""
    order = sorted((i for i in range(len(x)) if contrib[i] > 0 and x[i] == x[i]), key=lambda i: -contrib[i])
    reasons: List[str] = []
    used = set()
    for i in order:
        f = i + 1
        fam = FAMILY.get(f)
        if fam is None or fam not in used:
            s = None
            t = TWIN.get(f)
            if t is not None and contrib[t - 1] > 0 and x[t - 1] == x[t - 1]:
                s = lua_reason(t, x[t - 1], x)
            if s is None:
                s = lua_reason(f, x[i], x)
            if s is not None:
                reasons.append(s)
                if fam is not None:
                    used.add(fam)
        if len(reasons) >= 3:
            break
    return reasons


def message(risk: float, reasons: List[str], suggestion: Optional[str]) -> str:
    """job_submit.lua's ``message``: what sbatch prints for a warned job."""
    text = "nomade: %s failure risk (%d%%)" % (risk_scale.level(risk), math.floor(risk * 100 + 0.5))
    if reasons:
        text += ": " + "; ".join(reasons)
    text += "."
    if suggestion:
        text += "\nnomade: suggestion: " + suggestion
    return text + "\nnomade: details after submission: nomade-why JOBID; silence: --comment=" + QUIET_TAG


class LuaModel:
    """The bundle's Lua model, as Python: ``verdict(req)`` -> LuaVerdict. Built once per bundle."""

    def __init__(self, trees: TreeEnsemble, calibration: CalibrationMap, history: LiteHistory,
                 with_history: bool, threshold: float, version: str):
        self.trees, self.calibration, self.history = trees, calibration, history
        self.with_history, self.threshold, self.version = with_history, float(threshold), version
        self.names = lite_names(with_history)

    @classmethod
    def from_bundle(cls, bundle) -> "LuaModel":
        lua = bundle.manifest["lua"]
        spec = bundle.models[lua["model"]]
        with_history = spec["inputs"] == "lite_history"
        return cls(TreeEnsemble(bundle.json(spec["trees"])),
                   CalibrationMap.from_json(spec["calibration"]) if spec.get("calibration")
                   else CalibrationMap.identity(),
                   LiteHistory.from_json(bundle.json(spec["history"])) if with_history else LiteHistory(),
                   with_history, lua["threshold"], bundle.version)

    def features(self, req: Mapping[str, Any]) -> List[float]:
        return self.history.features(req, self.with_history)

    def _suggestion(self, req: Mapping[str, Any], x: List[float]) -> Optional[str]:
        if not self.with_history:
            return None
        user, name = str(req.get("user") or ""), str(req.get("name") or "")
        k, u = self.history.names.get(user + KEY_SEP + name), self.history.users.get(user)
        p90 = k.p90() if k is not None else float("nan")   # x[20]'s reference: the name's, else the user's
        if p90 != p90 and u is not None:
            p90 = u.p90()
        tl = x[4]
        if p90 == p90 and p90 > 0 and tl == tl and tl < p90:
            return "--time=" + _hms(p90 * 1.2) + " (similar jobs needed " + _human(p90) + ")"
        return None

    def suggestion(self, req: Mapping[str, Any]) -> Optional[str]:
        """The sbatch option submit_model.lua suggests for ``req`` (``--time=...``), or None."""
        return self._suggestion(req, self.features(req))

    def verdict(self, req: Mapping[str, Any]) -> LuaVerdict:
        x = self.features(req)
        _, contrib = self.trees.contributions_one(x)
        risk = float(self.calibration.one(sigmoid(float(self.trees.raw(np.array([x]))[0]))))
        suggestion = self._suggestion(req, x)
        warned = risk >= self.threshold
        reasons = lua_reasons(x, contrib) if warned else []
        return LuaVerdict(risk=risk, level=risk_scale.level(risk), threshold=self.threshold, warned=warned,
                          reasons=reasons, suggestion=suggestion, model_version=self.version,
                          message=message(risk, reasons, suggestion) if warned else "")
