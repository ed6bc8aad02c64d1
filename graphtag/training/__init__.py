"""Training: masked multi-task BCE, validation-based model selection, exact prediction."""

from ._config import EMBEDDING_INPUT_DROPOUT, TrainConfig
from ._loop import TrainResult, fit_model, predict
from ._loss import masked_bce, per_task_bce

__all__ = [
    "EMBEDDING_INPUT_DROPOUT",
    "TrainConfig",
    "TrainResult",
    "fit_model",
    "masked_bce",
    "per_task_bce",
    "predict",
]
