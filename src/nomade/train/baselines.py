"""The two baselines every evaluation reports next to the ensemble.

- ``user_history``: the user's smoothed past failure rate at scoring time (feature
  ``u_fail_rate``; new users get the global rate so far). No fitting.
- ``gbdt_hpe``: XGBoost with ``scale_pos_weight = neg/pos`` on the submit-time fields of the HPE
  study - user, group, requested CPUs, memory, nodes and the submit calendar - plus every other
  request field known at submit that nomade's own models get, so the comparison is fair: the
  time limit, the partition, the QOS (SWF: the queue), the account, the GPUs and the job name
  (as the features encode it: its vocabulary code, length and digit count). No runtime, CPU time
  or anything else known only after the job, and no history of past jobs (that is the
  ``user_history`` baseline's and the ensemble's).
"""

from typing import Dict

import numpy as np

from ..errors import ModelError
from ..features.matrix import FeatureMatrix
from .base import TrainedModel

HPE_STUDY_FEATURES = ("user_code", "group_code", "req_cpus", "req_mem_node_log", "req_mem_cpu_log",
                      "req_nodes", "submit_hour", "submit_weekday")
# the other request fields of nomade.features.schema.REQUEST_NAMES (the study's data had no more)
HPE_REQUEST_FEATURES = ("timelimit_log", "timelimit_unset", "partition_code", "qos_code",
                        "account_code", "req_gpus", "cpus_per_node", "req_mem_unset",
                        "name_code", "name_len", "name_digits", "name_is_shell")
HPE_FEATURES = HPE_STUDY_FEATURES + HPE_REQUEST_FEATURES


class UserHistoryBaseline(TrainedModel):
    name = "user_history"

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "UserHistoryBaseline":
        return self

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        return np.nan_to_num(fm.column("u_fail_rate").astype(np.float64), nan=0.5)


class GbdtHpeBaseline(TrainedModel):
    name = "gbdt_hpe"

    def __init__(self, rounds: int = 200, threads: int = 1):
        self.rounds = rounds
        self.threads = threads
        self.model = None

    def _X(self, fm: FeatureMatrix) -> np.ndarray:
        return np.stack([fm.column(c) for c in HPE_FEATURES], axis=1).astype(np.float32)

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "GbdtHpeBaseline":
        import xgboost as xgb

        m = train.y >= 0
        y = train.y[m].astype(np.float64)
        pos = float(y.sum())
        if pos == 0 or pos == len(y):
            raise ModelError("gbdt_hpe: training data has only one outcome class; use a longer window")
        self.model = xgb.XGBClassifier(
            n_estimators=self.rounds, max_depth=6, learning_rate=0.1, subsample=1.0,
            scale_pos_weight=(len(y) - pos) / pos, tree_method="hist", n_jobs=self.threads,
            random_state=seed, eval_metric="logloss")
        self.model.fit(self._X(train)[m], y)
        return self

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        if self.model is None:
            raise ModelError("gbdt_hpe: predict before fit")
        return self.model.predict_proba(self._X(fm))[:, 1].astype(np.float64)


def baseline_models() -> Dict[str, TrainedModel]:
    return {"user_history": UserHistoryBaseline(), "gbdt_hpe": GbdtHpeBaseline()}
