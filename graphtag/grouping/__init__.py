"""Grouped training and evaluation: one model per task group versus baselines."""

from ._evaluate import evaluate_logits, fit_groups
from ._random import canonical_groups, check_partition, random_groups_like

__all__ = [
    "canonical_groups",
    "check_partition",
    "evaluate_logits",
    "fit_groups",
    "random_groups_like",
]
