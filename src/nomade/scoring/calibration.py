"""Piecewise-linear calibration maps (from isotonic regression), applied identically in Python and
in the generated Lua: below the first knot -> first y, above the last -> last y, in between linear
interpolation between the surrounding knots. Runtime-safe: stdlib + numpy."""

from bisect import bisect_right
from typing import Mapping, Sequence

import numpy as np

from ..errors import ModelError


class CalibrationMap:
    def __init__(self, xs: Sequence[float], ys: Sequence[float]):
        if len(xs) != len(ys) or len(xs) == 0:
            raise ModelError("calibration map needs the same, non-zero number of x and y knots; "
                             "rebuild the bundle")
        self.xs = [float(v) for v in xs]
        self.ys = [float(v) for v in ys]

    @classmethod
    def identity(cls) -> "CalibrationMap":
        return cls([0.0, 1.0], [0.0, 1.0])

    @classmethod
    def from_json(cls, obj: Mapping) -> "CalibrationMap":
        return cls(obj["x"], obj["y"])

    def to_json(self) -> dict:
        return {"kind": "piecewise_linear", "x": self.xs, "y": self.ys}

    def one(self, p: float) -> float:
        xs, ys = self.xs, self.ys
        if p <= xs[0]:
            return ys[0]
        if p >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, p)  # xs[i-1] <= p < xs[i]
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if x1 == x0:
            return y1
        return y0 + (y1 - y0) * (p - x0) / (x1 - x0)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        xs = np.asarray(self.xs)
        if len(xs) > 1 and np.all(np.diff(xs) > 0):  # np.interp == one() up to rounding
            return np.interp(p, xs, np.asarray(self.ys))
        return np.array([self.one(float(v)) for v in p.ravel()]).reshape(p.shape)
