"""Projected per-(node, task) gradient features of a trained base model."""

from ._extract import (
    DEFAULT_MAX_TASK_ROWS,
    MAX_FEATURE_NORM,
    ROW_CAP_RULE,
    VAL_SUBSAMPLE_RULE,
    cap_task_rows,
    extract_gradient_features,
    subsample_val_mask,
)
from ._features import TRAIN, VAL, GradientFeatures
from ._jvp import compute_projected_gradients, iter_projected_gradients
from ._naive import naive_projected_gradients
from ._network import network_subset_losses
from ._projector import GradientProjector

__all__ = [
    "DEFAULT_MAX_TASK_ROWS",
    "MAX_FEATURE_NORM",
    "ROW_CAP_RULE",
    "TRAIN",
    "VAL",
    "VAL_SUBSAMPLE_RULE",
    "GradientFeatures",
    "GradientProjector",
    "cap_task_rows",
    "compute_projected_gradients",
    "extract_gradient_features",
    "iter_projected_gradients",
    "naive_projected_gradients",
    "network_subset_losses",
    "subsample_val_mask",
]
