"""Is the [train] extra installed? Checked before a training command starts, without importing
anything heavy (importlib.util.find_spec), so that a slim runtime install gets one clear line
instead of an ImportError half-way through."""

import importlib.util
from typing import List

from ..errors import ModelError

TRAIN_MODULES = ("lightgbm", "xgboost", "sklearn", "torch", "torch_geometric", "onnx", "matplotlib")


def missing_train_modules() -> List[str]:
    return [m for m in TRAIN_MODULES if importlib.util.find_spec(m) is None]


def require_train_extra(what: str) -> None:
    missing = missing_train_modules()
    if missing:
        raise ModelError(f"{what} needs the [train] extra; missing: {', '.join(missing)}",
                         hint="pip install torch==2.13.0 'nomade[train]' (on the training host; the "
                              "hooks and the recorder need only the slim install)")
