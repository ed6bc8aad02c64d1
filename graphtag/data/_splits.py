"""Per-task stratified train/validation/test masks."""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import torch_generator
from ..errors import GraphtagError

__all__ = ["per_task_split"]


def _split_counts(n: Tensor, ratios: tuple[float, float, float]) -> tuple[Tensor, Tensor]:
    """Number of train and validation items out of ``n`` (per task and class).

    Rounds to nearest; when a class has at least 3 members, train and validation get at least one
    each; with 1 or 2 members, train gets the first one and validation the second.
    """
    r_train, r_val, _ = ratios
    n_train = torch.round(n * r_train).long()
    n_val = torch.round(n * r_val).long()
    small = n < 3
    n_train = torch.where(small, (n >= 1).long(), n_train.clamp(min=1))
    n_val = torch.where(small, (n >= 2).long(), n_val.clamp(min=1))
    return n_train, n_val


def _split_chunk(
    y: Tensor, tasks: range, ratios: tuple[float, float, float], seed: int
) -> tuple[Tensor, Tensor]:
    """Train and validation masks ``[N, len(tasks)]`` of one chunk of tasks."""
    num_nodes = y.size(0)
    pos = y > 0.5
    keys = torch.stack(
        [
            torch.rand(num_nodes, generator=torch_generator(seed, "per_task_split", t))
            for t in tasks
        ],
        dim=1,
    )
    # Sort each column by (class, random key): positives first, in random order. The sorted
    # position p of a positive is its rank among positives; a negative's rank is p - n_pos.
    order = torch.argsort(keys - 2.0 * pos.to(keys.dtype), dim=0)
    del keys
    n_pos = pos.sum(0)
    n_neg = num_nodes - n_pos
    tr_p, va_p = _split_counts(n_pos, ratios)
    tr_n, va_n = _split_counts(n_neg, ratios)
    p = torch.arange(num_nodes).unsqueeze(1)
    neg_start = n_pos + tr_n
    train_sorted = (p < tr_p) | ((p >= n_pos) & (p < neg_start))
    val_sorted = ((p >= tr_p) & (p < tr_p + va_p)) | ((p >= neg_start) & (p < neg_start + va_n))
    train = torch.zeros(num_nodes, len(tasks), dtype=torch.bool)
    val = torch.zeros_like(train)
    train.scatter_(0, order, train_sorted)
    val.scatter_(0, order, val_sorted)
    return train, val


def per_task_split(
    y: Tensor,
    ratios: tuple[float, float, float] = (0.2, 0.2, 0.6),
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Split every task's positives and negatives separately into train/val/test.

    Each task gets its own random permutation (seeded from ``seed`` only), so a node can be a
    training node for one task and a test node for another. Vectorised over tasks: one sort of
    random keys per call, no Python loop over tasks or nodes.

    Args:
        y: Labels, shape ``[N, T]``, values in {0, 1}.
        ratios: Fractions for train, validation and test (summing to 1).
        seed: Seed of the split.

    Returns:
        Boolean masks ``(train, val, test)``, each ``[N, T]``, disjoint and covering every node
        for every task.

    Example:
        >>> y = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0]])
        >>> tr, va, te = per_task_split(y, seed=0)
        >>> bool((tr | va | te).all() and not (tr & va).any())
        True
    """
    if y.dim() != 2:
        raise GraphtagError(f"labels must have shape [N, T], got {tuple(y.shape)}")
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise GraphtagError(
            f"split ratios must be three non-negative numbers summing to 1, got {ratios}"
        )
    num_nodes, num_tasks = y.shape
    train = torch.zeros(num_nodes, num_tasks, dtype=torch.bool)
    val = torch.zeros_like(train)
    # Tasks are processed in chunks so temporaries stay near 64 M elements (1M nodes x 500 tasks
    # fits in a few GB); each task's keys come from its own generator, so chunking never
    # changes the split.
    chunk = max(1, (1 << 26) // max(1, num_nodes))
    for start in range(0, num_tasks, chunk):
        cols = range(start, min(num_tasks, start + chunk))
        tr, va = _split_chunk(y[:, cols.start : cols.stop], cols, ratios, seed)
        train[:, cols.start : cols.stop] = tr
        val[:, cols.start : cols.stop] = va
    test = ~(train | val)
    return train, val, test
