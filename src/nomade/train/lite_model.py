"""The Lua submit model (``gbdt_lite``): a LightGBM GBDT on the features job_submit.lua can compute
(nomade.scoring.lite_features), calibrated by centred isotonic regression on the newest 15 % of its
training rows. Uncalibrated and fitted on every row it is also the ensemble's base model "lite". As a TrainedModel it reads its rows from ``fm.meta['lite_X']`` (aligned with the
FeatureMatrix's rows), so the rolling evaluation scores it on the same folds as the ensemble."""

from typing import List, Optional

import numpy as np

from ..errors import ModelError
from ..features.matrix import FeatureMatrix
from ..scoring.calibration import CalibrationMap
from .base import TrainedModel
from .models.gbdt import DEFAULT_ROUNDS, GBDTModel

CAL_SHARE = 0.15


def isotonic_map(p: np.ndarray, y: np.ndarray) -> CalibrationMap:
    """Centred isotonic regression: fit isotonic regression, then put one knot at the mean
    score of each constant block and interpolate linearly between knots. Unlike the raw step
    function it is strictly increasing between the first and last knot, so it keeps the
    model's ranking (PR-AUC) instead of creating ties."""
    from sklearn.isotonic import IsotonicRegression

    p = np.asarray(p, dtype=np.float64)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    fitted = iso.predict(p)
    levels = np.unique(fitted)
    xs = [float(p[fitted == v].mean()) for v in levels]
    ys = [float(v) for v in levels]
    if len(xs) == 1:
        return CalibrationMap([0.0, 1.0], [ys[0], ys[0]])
    return CalibrationMap(xs, ys)


class LiteGBDT(TrainedModel):
    name = "gbdt_lite"
    is_probability = True

    def __init__(self, names: List[str], rounds: int = DEFAULT_ROUNDS, threads: int = 2,
                 calibrated: bool = True):
        self.calibrated = calibrated   # False: the ensemble's base "lite" (raw GBDT probability)
        self.names = list(names)
        self.rounds = rounds
        self.threads = threads
        self.model: Optional[GBDTModel] = None
        self.calibration: Optional[CalibrationMap] = None
        self.cal_rows = np.zeros(0, dtype=np.int64)   # rows (of the fitted matrix) it calibrated on

    @staticmethod
    def rows_of(fm: FeatureMatrix) -> np.ndarray:
        X = fm.meta.get("lite_X")
        if X is None or len(X) != len(fm):
            raise ModelError("gbdt_lite needs the lite feature rows (meta['lite_X']) of the matrix")
        return X

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "LiteGBDT":
        X = self.rows_of(train)
        lab = np.flatnonzero(train.y >= 0)
        cut = int(len(lab) * (1.0 - CAL_SHARE)) if self.calibrated else len(lab)
        fit_rows, cal_rows = lab[:cut], lab[cut:]
        self.model = GBDTModel(name=self.name, rounds=self.rounds, params={"num_threads": self.threads})
        self.model.fit_arrays(X[fit_rows], train.y[fit_rows], self.names, seed)
        self.calibration = isotonic_map(self.model.predict_arrays(X[cal_rows]),
                                        train.y[cal_rows].astype(float)) if self.calibrated else None
        self.cal_rows = cal_rows
        return self

    def export_onnx(self) -> bytes:
        return self.model.export_onnx()

    def dump_trees(self):
        return self.model.dump_trees()

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        if self.model is None:
            raise ModelError("gbdt_lite: predict before fit")
        p = self.model.predict_arrays(self.rows_of(fm))
        return self.calibration(p) if self.calibrated else p
