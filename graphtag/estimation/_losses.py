"""Estimated validation losses of tasks under subset surrogates (docs/algorithms.md §4)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import GraphtagError, NumericalError
from ..gradients import VAL, GradientFeatures
from ..metrics._evaluator import _auc_labelled
from ._subsets import check_subsets
from ._surrogate import (
    SURROGATE_BUDGET,
    _bce,
    _Blocks,
    _check_features,
    _device,
    _logits,
    _members,
    _slot_losses,
    _task_blocks,
)

__all__ = ["NetworkLossFn", "base_losses", "estimate_losses", "estimate_scores"]

#: ``network_loss_fn(subsets, weights [M, d]) -> [M, T]``: validation loss of every task when the
#: real network is evaluated at ``theta0 + P w_S`` (entries of tasks outside a subset are ignored).
NetworkLossFn = Callable[[list[tuple[int, ...]], Tensor], Tensor]


def estimate_losses(
    features: GradientFeatures,
    subsets: Sequence[Sequence[int]],
    weights: Tensor,
    kind: str = "linear",
    *,
    network_loss_fn: NetworkLossFn | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Validation loss of every task in every subset under that subset's surrogate.

    ``kind="linear"`` (the fast default): mean over the validation rows of task ``t`` of
    ``BCE(o + g . w_S, y)``, computed per task for all subsets containing it at once (one
    batched matrix product), in float64. ``kind="network"``: the real network at
    ``theta0 + P w_S``, computed by ``network_loss_fn`` (provided by the gradients / model side,
    which knows the model and the projection); this function validates its output and blanks
    the tasks outside each subset.

    Args:
        features: Projected gradient features (validation rows are used).
        subsets: ``M`` task subsets.
        weights: ``[M, d]`` surrogate solutions (e.g. ``fit_surrogates(...).weights``).
        kind: ``"linear"`` or ``"network"``.
        network_loss_fn: Required for ``kind="network"``; see :data:`NetworkLossFn`.
        batch_size: Subsets evaluated together (default: sized to the memory budget).
        device: Where to compute (default: the device of ``features``).

    Returns:
        ``[M, T]`` float64 on CPU; ``NaN`` for tasks not in the subset (and for tasks without
        validation rows).

    Raises:
        GraphtagError: On an unknown ``kind``, mismatched shapes or a missing
            ``network_loss_fn``.

    Example:
        >>> from graphtag.estimation import fit_surrogates, make_synthetic_features
        >>> feats = make_synthetic_features(num_tasks=3, dim=4, seed=0)
        >>> fit = fit_surrogates(feats, [(0, 1)])
        >>> estimate_losses(feats, [(0, 1)], fit.weights).isnan().tolist()
        [[False, False, True]]
    """
    features = _check_features(features)
    subs = check_subsets(subsets, features.num_tasks)
    num, num_tasks, d = len(subs), features.num_tasks, features.dim
    if not isinstance(weights, Tensor) or tuple(weights.shape) != (num, d):
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise GraphtagError(f"weights must be a tensor of shape [{num}, {d}], got {shape}")
    inside = torch.zeros(num, num_tasks, dtype=torch.bool)
    for k, s in enumerate(subs):
        inside[k, list(s)] = True
    if kind == "network":
        if network_loss_fn is None:
            raise GraphtagError(
                "kind='network' needs network_loss_fn(subsets, weights) -> [M, T] losses of "
                "the real network at theta0 + P w; pass it or use kind='linear'"
            )
        out = network_loss_fn(subs, weights)
        if not isinstance(out, Tensor) or tuple(out.shape) != (num, num_tasks):
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise GraphtagError(f"network_loss_fn must return [{num}, {num_tasks}], got {shape}")
        out = out.detach().to(device="cpu", dtype=torch.float64)
        if not bool(torch.isfinite(out[inside]).all()):
            raise NumericalError("network_loss_fn returned NaN or inf for a task in its subset")
        return torch.where(inside, out, torch.nan)
    if kind != "linear":
        raise GraphtagError(f"unknown loss kind {kind!r}; use 'linear' or 'network'")
    if network_loss_fn is not None:
        raise GraphtagError("network_loss_fn is only used with kind='network'")
    return _linear_scores(features, subs, weights, batch_size, device, with_auc=False)[0]


def estimate_scores(
    features: GradientFeatures,
    subsets: Sequence[Sequence[int]],
    weights: Tensor,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Validation loss and ROC-AUC of every task in every subset under its linear surrogate.

    The logits of task ``t``'s validation rows under subset ``S`` are ``o + g . w_S``; the loss is
    their mean BCE (as :func:`estimate_losses` with ``kind="linear"``) and the ROC-AUC their
    Mann-Whitney statistic (ties averaged).

    Args:
        features: Projected gradient features (validation rows are used).
        subsets: ``M`` task subsets.
        weights: ``[M, d]`` surrogate solutions.
        batch_size: Subsets evaluated together (default: sized to the memory budget).
        device: Where to compute (default: the device of ``features``).

    Returns:
        ``(losses, auc)``, each ``[M, T]`` float64 on CPU, ``NaN`` outside each subset (and AUC
        ``NaN`` where a task's validation rows hold one class).

    Example:
        >>> from graphtag.estimation import fit_surrogates, make_synthetic_features
        >>> feats = make_synthetic_features(num_tasks=3, dim=4, seed=0)
        >>> fit = fit_surrogates(feats, [(0, 1), (2,)])
        >>> losses, auc = estimate_scores(feats, [(0, 1), (2,)], fit.weights)
        >>> bool(((auc > 0.5) | auc.isnan()).all()), auc.isnan().sum().item()
        (True, 3)
    """
    features = _check_features(features)
    subs = check_subsets(subsets, features.num_tasks)
    num, d = len(subs), features.dim
    if not isinstance(weights, Tensor) or tuple(weights.shape) != (num, d):
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise GraphtagError(f"weights must be a tensor of shape [{num}, {d}], got {shape}")
    losses, auc = _linear_scores(features, subs, weights, batch_size, device, with_auc=True)
    assert auc is not None
    return losses, auc


def _slot_auc(blocks: _Blocks, z: Tensor) -> Tensor:
    """ROC-AUC of every task's real rows under every slot: ``[T + 1, m_max]``."""
    t1, n_max, m_max = z.shape
    scores = z.permute(1, 0, 2).reshape(n_max, t1 * m_max)
    y = (blocks.y > 0.5).t().unsqueeze(2).expand(n_max, t1, m_max).reshape(n_max, -1)
    m = (blocks.mask > 0.5).t().unsqueeze(2).expand(n_max, t1, m_max).reshape(n_max, -1)
    return _auc_labelled(y, scores, m).view(t1, m_max)


def _linear_scores(
    features: GradientFeatures,
    subs: list[tuple[int, ...]],
    weights: Tensor,
    batch_size: int | None,
    device: str | torch.device | None,
    *,
    with_auc: bool,
) -> tuple[Tensor, Tensor | None]:
    """Linear-surrogate validation losses (and ROC-AUC) ``[M, T]`` of the subsets' tasks."""
    num, num_tasks = len(subs), features.num_tasks
    dev = _device(features, device)
    blocks = _task_blocks(features, VAL, torch.float64, dev)
    mem = _members(subs, num_tasks, dev)
    w_all = weights.detach().to(device=dev, dtype=torch.float64)
    if batch_size is None:
        s_mean = sum(len(s) for s in subs) / num
        batch_size = max(1, int(SURROGATE_BUDGET / (2.0 * max(blocks.n_max, 1) * s_mean)))
    elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GraphtagError(f"batch_size must be a positive integer, got {batch_size!r}")
    nf = blocks.n.to(torch.float64)  # [T + 1]; 0 rows -> 0 / 0 = NaN
    out = torch.full((num, num_tasks), torch.nan, dtype=torch.float64)
    auc = torch.full_like(out, torch.nan) if with_auc else None
    for lo in range(0, num, batch_size):
        m = mem[lo : lo + batch_size]
        z, _, where = _logits(blocks, m, w_all[lo : lo + batch_size])
        keep = m < num_tasks
        rows = torch.arange(m.size(0), device=dev).unsqueeze(1).expand_as(m)
        at = ((rows[keep] + lo).cpu(), m[keep].cpu())
        out[at] = (_slot_losses(blocks, z)[m, where] / nf[m])[keep].cpu()
        if auc is not None:
            auc[at] = _slot_auc(blocks, z)[m, where][keep].cpu()
    return out, auc


def base_losses(features: GradientFeatures, *, device: str | torch.device | None = None) -> Tensor:
    """Validation loss of every task at ``w = 0`` (the base model, "nothing changes").

    Args:
        features: Projected gradient features (validation rows and offsets are used).
        device: Accepted for symmetry with :func:`estimate_losses`; the computation (one
            value per row) always runs on CPU.

    Returns:
        ``[T]`` float64 on CPU: mean ``BCE(o, y)`` over each task's validation rows (``NaN`` for
        a task without validation rows).
    """
    features = _check_features(features)
    del device  # a few scalars per row: computed on CPU, deterministically
    split = features.split.cpu()
    rows = torch.nonzero(split == VAL).flatten()
    task = features.task.cpu()[rows]
    o = features.offsets.cpu()[rows].to(torch.float64)
    y = features.labels.cpu()[rows].to(torch.float64)
    sums = torch.zeros(features.num_tasks, dtype=torch.float64)
    sums.index_add_(0, task, _bce(o, y))
    count = torch.bincount(task, minlength=features.num_tasks).to(torch.float64)
    return sums / count
