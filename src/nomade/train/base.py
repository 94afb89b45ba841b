"""The protocol every model (base models, baselines, the ensemble) follows in training and
evaluation."""

from typing import Dict, Optional

import numpy as np

from ..features.matrix import FeatureMatrix


class TrainedModel:
    """fit on past rows, predict on later rows. ``predict`` returns a float64 array (n,):
    a failure probability for classifiers, or a raw score (e.g. reconstruction error) for the
    autoencoder - the stacker turns raw scores into probabilities."""

    name: str = "model"
    is_probability: bool = True

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "TrainedModel":
        raise NotImplementedError

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        raise NotImplementedError

    def export_onnx(self) -> Optional[bytes]:
        """The model as an ONNX graph (None for models that are not shipped, e.g. baselines)."""
        return None

    def export_arrays(self, until: Optional[float] = None) -> Dict[str, np.ndarray]:
        """Extra arrays the ONNX scoring path needs (neighbour bank, scalers...), saved as .npy
        files in the bundle (never pickles). Data tables hold what was known before ``until``
        (default: when the training window closed, its last submission; ``math.inf`` = all of
        the data the training rows belong to, which is what a bundle ships)."""
        return {}
