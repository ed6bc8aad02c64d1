"""Masked multi-task binary cross-entropy."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import GraphtagError

__all__ = ["masked_bce", "per_task_bce"]


def _elementwise(logits: Tensor, y: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    if logits.shape != y.shape or logits.shape != mask.shape:
        raise GraphtagError(
            f"shape mismatch: logits {tuple(logits.shape)}, y {tuple(y.shape)}, "
            f"mask {tuple(mask.shape)}; all three must be [n, T]"
        )
    if mask.dtype != torch.bool:
        raise GraphtagError(f"mask must be a bool tensor, got {mask.dtype}")
    loss = F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction="none")
    return torch.where(mask, loss, torch.zeros_like(loss)), mask.to(logits.dtype)


def masked_bce(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean binary cross-entropy over the labelled (node, task) pairs.

    Args:
        logits: ``[n, T]`` logits.
        y: ``[n, T]`` labels in {0, 1}.
        mask: bool ``[n, T]``, the pairs that count.

    Returns:
        Scalar: ``sum(mask * bce) / sum(mask)``, and ``0`` (still differentiable) when no pair
        is labelled.

    Example:
        >>> masked_bce(torch.zeros(2, 2), torch.ones(2, 2), torch.tensor([[True, False]] * 2))
        tensor(0.6931)
    """
    loss, weight = _elementwise(logits, y, mask)
    return loss.sum() / weight.sum().clamp(min=1.0)


def per_task_bce(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean binary cross-entropy of every task over its labelled rows.

    Args:
        logits: ``[n, T]`` logits.
        y: ``[n, T]`` labels in {0, 1}.
        mask: bool ``[n, T]``.

    Returns:
        ``[T]``, NaN for tasks without a labelled row.

    Example:
        >>> per_task_bce(torch.zeros(2, 2), torch.ones(2, 2), torch.tensor([[True, False]] * 2))
        tensor([0.6931,    nan])
    """
    loss, weight = _elementwise(logits, y, mask)
    count = weight.sum(0)
    mean = loss.sum(0) / count.clamp(min=1.0)
    return torch.where(count > 0, mean, torch.full_like(mean, math.nan))
