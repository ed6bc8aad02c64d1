"""Projected per-(node, task) gradient features of a trained base model."""

from ._features import TRAIN, VAL, GradientFeatures

__all__ = ["TRAIN", "VAL", "GradientFeatures"]
