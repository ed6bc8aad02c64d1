"""Per-task and macro metrics (ROC-AUC, average precision, F1) of multi-label predictions."""

from ._evaluator import Evaluator, roc_auc_scores, tune_thresholds

__all__ = ["Evaluator", "roc_auc_scores", "tune_thresholds"]
