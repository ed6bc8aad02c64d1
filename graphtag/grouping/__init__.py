"""Grouped training and evaluation: one model per task group versus baselines."""

from ._evaluate import evaluate_logits, fit_groups, group_model_logits
from ._partition import GROUPINGS, Grouping, get_grouping
from ._random import canonical_groups, check_partition, random_groups_like
from ._select import SelectedGroupsResult, assign_by_validation, fit_selected_groups

__all__ = [
    "GROUPINGS",
    "Grouping",
    "SelectedGroupsResult",
    "assign_by_validation",
    "canonical_groups",
    "check_partition",
    "evaluate_logits",
    "fit_groups",
    "fit_selected_groups",
    "get_grouping",
    "group_model_logits",
    "random_groups_like",
]
