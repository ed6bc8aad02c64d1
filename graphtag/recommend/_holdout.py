"""A held-out part of the validation labels, for comparing candidates without selection bias.

Every trained candidate picks its checkpoint (and each group model its own) on validation
labels. Scoring the candidates on those same labels favours the candidates with more models:
one model per task takes the best epoch of every task separately, so its validation score rises
further above its test score than one model's does (experiments/README.md, "The recommendation's
held-out validation"). Splitting each task's validation labels in two, one part for choosing
checkpoints and the other for comparing candidates, removes that bias.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from .._utils import torch_generator
from ..errors import GraphtagError

__all__ = ["holdout_mask", "holdout_split"]


def holdout_mask(y: Tensor, val_mask: Tensor, fraction: float, seed: int = 0) -> Tensor:
    """The held-out part of every task's validation labels, stratified by class.

    Within each (task, class), the labelled validation nodes are ordered by a seeded uniform key
    and the first ``ceil(fraction * count)`` are held out, so a class with 2 or more validation
    nodes has some in both parts and a class with 1 node is held out.

    Args:
        y: ``[N, T]`` labels in {0, 1}.
        val_mask: ``[N, T]`` bool validation mask.
        fraction: Share of each class held out, in ``(0, 1)``.
        seed: Seed of the keys.

    Returns:
        ``[N, T]`` bool, a subset of ``val_mask``.

    Example:
        >>> y = torch.tensor([[1.0], [0.0], [1.0], [0.0], [0.0], [1.0]])
        >>> held = holdout_mask(y, torch.ones(6, 1, dtype=torch.bool), 0.5)
        >>> int(held[y > 0.5].sum()), int(held[y < 0.5].sum())
        (2, 2)
    """
    if not 0.0 < float(fraction) < 1.0:
        raise GraphtagError(f"the held-out fraction must lie in (0, 1), got {fraction!r}")
    if y.shape != val_mask.shape or y.dim() != 2:
        raise GraphtagError(
            f"y {tuple(y.shape)} and val_mask {tuple(val_mask.shape)} must be the same [N, T]"
        )
    num_tasks = int(y.size(1))
    held = torch.zeros_like(val_mask, dtype=torch.bool)
    pairs = val_mask.bool().nonzero()
    if pairs.numel() == 0:
        return held
    node, task = pairs[:, 0], pairs[:, 1]
    group = task * 2 + (y[node, task] > 0.5).long()  # (task, class)
    key = torch.rand(node.numel(), generator=torch_generator(seed, "holdout"), dtype=torch.float64)
    order = torch.argsort(group.double() + 0.5 * key)  # by group, then by key
    counts = torch.bincount(group, minlength=2 * num_tasks)
    start = torch.cumsum(counts, 0) - counts
    sorted_group = group[order]
    rank = torch.arange(order.numel()) - start[sorted_group]
    keep = rank < torch.ceil(counts.double() * float(fraction)).long()[sorted_group]
    held[node[order[keep]], task[order[keep]]] = True
    return held


def holdout_split(data: Any, fraction: float, seed: int = 0) -> tuple[Any, Tensor]:
    """``(training data, comparison mask)`` of :func:`holdout_mask`'s split of ``data``.

    The training data is a shallow copy of ``data`` (unchanged) whose validation mask lacks the
    held-out labels; the comparison mask ``[N, T]`` holds them. ``fraction <= 0`` holds nothing
    out: ``(data, data.val_mask)``.
    """
    if fraction <= 0:
        return data, data.val_mask
    held = holdout_mask(data.y, data.val_mask, fraction, seed=seed)
    train = copy.copy(data)
    train.val_mask = data.val_mask & ~held
    return train, held
