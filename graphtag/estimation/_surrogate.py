"""Grad-TAG surrogates: offset logistic regression on projected gradients (docs/algorithms.md §4).

For a task subset ``S`` the surrogate is the linearised model ``f_t(x_i; theta0 + P w) ~= o[i, t] +
g[i, t] . w`` fitted on the training rows of the tasks in ``S``:

    w_S = argmin_w F_S(w),
    F_S(w) = (1 / n_S) sum_{r in S} BCE(o_r + g_r . w, y_r) + (lam / 2) ||w||^2

with ``n_S`` the number of training rows of ``S``. The base logit ``o_r`` is part of the model (the
reference code dropped it). ``grad F_S = (1 / n_S) sum (p_r - y_r) g_r + lam w`` and
``hess F_S = (1 / n_S) sum p_r (1 - p_r) g_r g_r^T + lam I``, with ``p_r = sigmoid(o_r + g_r . w)``.

Implementation notes:

* Rows are laid out per task in zero-padded blocks ``[T + 1, n_max, d]`` (block ``T`` is an empty
  padding task). For a batch of subsets, the logits of task ``t``'s rows under *all* subsets
  containing ``t`` are one matrix product ``G_t @ W_t^T`` (batched over tasks with ``bmm``), so a
  pass over the data costs about ``rows * d * M s / T`` multiply-adds and never copies rows per
  subset.
* The first Newton step from ``w = 0`` uses the per-task statistics of :func:`task_statistics`:
  ``w1 = (sum_{t in S} H_t + lam n_S I)^-1 sum_{t in S} b_t`` (a batched ``d x d`` Cholesky
  solve over subsets).
* Later steps are quasi-Newton steps: L-BFGS (last 5 curvature pairs) whose initial inverse
  Hessian is the inverse of the last factorised Hessian (at first the statistics Hessian at
  ``w = 0``; without pairs this is the chord Newton step), with a backtracking (Armijo) line
  search per subset. When the observed rate of a subset predicts more remaining steps than an
  exact Hessian costs (about ``d / 2`` gradient passes: ``2 n_S d^2`` versus ``4 n_S d`` flops),
  or its line search fails, that subset's exact Hessian at the current ``w`` is computed (its rows
  gathered) and factorised. Hard subsets thus get true Newton steps while easy ones only pay for
  gradient passes.
* A subset has converged when ``||grad F_S(w)|| <= tol * ||grad F_S(0)||``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .._utils import resolve_device
from ..errors import GraphtagError, NumericalError, preview
from ..gradients import TRAIN, VAL, GradientFeatures
from ._newton import solve_batch
from ._subsets import check_subsets

__all__ = [
    "DEFAULT_L2",
    "SurrogateFit",
    "TaskStats",
    "fit_surrogates",
    "l2_scale",
    "one_step_surrogates",
    "task_statistics",
]

#: Default ridge strength, *relative* to :func:`l2_scale` (the mean diagonal of the base
#: Hessian), for callers that pass no ridge of their own (evidence: experiments/README.md,
#: ``bench_surrogate.py --l2-check``). The pipeline uses the matched ridge instead.
DEFAULT_L2 = 1.0

# Largest number of elements of one temporary tensor (logits of a subset batch, gathered rows
# for exact Hessians, the batch's d x d factors). 2**25 float64 values are 256 MiB.
SURROGATE_BUDGET = 2**25


@dataclass
class TaskStats:
    """Per-task sufficient statistics of the surrogate objective at ``w = 0`` (training rows).

    With ``p = sigmoid(o)`` on the training rows of task ``t``:

    Attributes:
        H: ``[T, d, d]`` float64, ``sum p (1 - p) g g^T``.
        b: ``[T, d]`` float64, ``sum (y - p) g`` (minus the gradient of the summed BCE).
        n: ``[T]`` int64, number of training rows.
        loss: ``[T]`` float64, summed BCE of the base logits ``o``.
    """

    H: Tensor
    b: Tensor
    n: Tensor
    loss: Tensor

    @property
    def num_tasks(self) -> int:
        """Number of tasks ``T``."""
        return int(self.n.numel())

    @property
    def dim(self) -> int:
        """Projection dimension ``d``."""
        return int(self.b.size(1))


@dataclass
class SurrogateFit:
    """Fitted surrogates of ``M`` subsets (all tensors on CPU).

    Attributes:
        weights: ``[M, d]`` float64 solutions ``w_S``.
        converged: ``[M]`` bool, ``||grad F_S|| <= tol ||grad F_S(0)||`` reached.
        iterations: ``[M]`` int64 accepted Newton steps (the first from the statistics included).
        grad_norm: ``[M]`` float64 final ``||grad F_S(w_S)||``.
        objective: ``[M]`` float64 final ``F_S(w_S)``.
        l2: The absolute ridge strength ``lam`` used.
    """

    weights: Tensor
    converged: Tensor
    iterations: Tensor
    grad_norm: Tensor
    objective: Tensor
    l2: float

    @property
    def num_failed(self) -> int:
        """Number of subsets that did not converge."""
        return int((~self.converged).sum())


# ----------------------------------------------------------------------------------------------
# Layout helpers (shared with _losses.py)


@dataclass
class _Blocks:
    """Rows of one split laid out per task: ``[T + 1, n_max, ...]``, zero padded."""

    g: Tensor  # [T + 1, n_max, d]
    o: Tensor  # [T + 1, n_max]
    y: Tensor  # [T + 1, n_max]
    mask: Tensor  # [T + 1, n_max], 1.0 on real rows
    n: Tensor  # [T + 1] int64
    num_tasks: int
    gy: Tensor  # [T + 1, d], sum of y g over each task's rows
    pad: Tensor  # [T + 1], number of padding rows (n_max - n)

    @property
    def n_max(self) -> int:
        return int(self.g.size(1))

    @property
    def dim(self) -> int:
        return int(self.g.size(2))


def _check_features(features: object) -> GradientFeatures:
    if not isinstance(features, GradientFeatures):
        raise GraphtagError(
            f"expected graphtag.gradients.GradientFeatures, got {type(features).__name__}; "
            "build them with graphtag.gradients.extract_gradient_features"
        )
    g = features.features
    if g.dim() != 2:
        raise GraphtagError(f"GradientFeatures.features must be [R, d], got {tuple(g.shape)}")
    num_rows = g.size(0)
    for name in ("offsets", "labels", "task", "split"):
        t = getattr(features, name)
        if t.dim() != 1 or t.numel() != num_rows:
            raise GraphtagError(
                f"GradientFeatures.{name} must have shape [{num_rows}] (one per row of "
                f"features), got {tuple(t.shape)}"
            )
    if features.num_tasks < 1:
        raise GraphtagError(f"GradientFeatures.num_tasks must be >= 1, got {features.num_tasks}")
    if num_rows:
        task = features.task
        if int(task.min()) < 0 or int(task.max()) >= features.num_tasks:
            raise GraphtagError(
                f"GradientFeatures.task holds indices outside 0..{features.num_tasks - 1}"
            )
        if not bool(((features.split == TRAIN) | (features.split == VAL)).all()):
            raise GraphtagError("GradientFeatures.split must hold only TRAIN (0) or VAL (1)")
        if not bool(((features.labels == 0) | (features.labels == 1)).all()):
            raise GraphtagError("GradientFeatures.labels must be 0 or 1")
        for name, values in (("offsets (base logits)", features.offsets), ("features", g)):
            if not bool(torch.isfinite(values.sum())):  # no temporary unless something is off
                _raise_nonfinite(features, name, values)
    return features


def _raise_nonfinite(features: GradientFeatures, name: str, values: Tensor) -> None:
    """Raise a :class:`NumericalError` naming the tasks whose rows hold NaN/inf in ``values``."""
    bad = ~torch.isfinite(values)
    if bad.dim() > 1:
        bad = bad.any(1)
    if not bool(bad.any()):  # the sum overflowed; every value is finite
        return
    task = features.task.to(bad.device)
    per_task = torch.bincount(task[bad], minlength=features.num_tasks).cpu()
    tasks = torch.nonzero(per_task).flatten().tolist()
    shown = preview([f"{t} ({int(per_task[t])} rows)" for t in tasks])
    raise NumericalError(
        f"GradientFeatures.{name} hold NaN or inf in {int(bad.sum())} rows of tasks [{shown}]; "
        "the base model diverged or its inputs hold NaN/inf: re-extract the features with "
        "graphtag.gradients.extract_gradient_features (which names the cause) or drop these "
        "tasks",
        stage="gradient features",
        tasks=tasks[:5],
    )


def _task_blocks(
    features: GradientFeatures, split: int, dtype: torch.dtype, device: torch.device
) -> _Blocks:
    num_tasks, d = features.num_tasks, features.dim
    rows = torch.nonzero(features.split == split).flatten()
    task = features.task[rows]
    order = torch.argsort(task, stable=True)
    rows, task = rows.to(device)[order.to(device)], task.to(device)[order.to(device)]
    n = torch.bincount(task, minlength=num_tasks + 1)
    start = torch.cumsum(n, 0) - n
    pos = torch.arange(task.numel(), device=device) - start[task]
    n_max = int(n.max()) if task.numel() else 0
    shape = (num_tasks + 1, n_max)
    g = torch.zeros((*shape, d), dtype=dtype, device=device)
    o = torch.zeros(shape, dtype=dtype, device=device)
    y = torch.zeros(shape, dtype=dtype, device=device)
    mask = torch.zeros(shape, dtype=dtype, device=device)
    src = rows.to(features.features.device)
    # Row chunks: gathering every row at once held a float32 and a float64 copy of all of them
    # (12 bytes per element) next to the blocks.
    step = max(1, SURROGATE_BUDGET // max(1, d))
    for lo in range(0, src.numel(), step):
        sl = slice(lo, lo + step)
        g[task[sl], pos[sl]] = features.features[src[sl]].to(device=device, dtype=dtype)
    o[task, pos] = features.offsets[src].to(device=device, dtype=dtype)
    y[task, pos] = features.labels[src].to(device=device, dtype=dtype)
    mask[task, pos] = 1.0
    gy = torch.bmm(y.unsqueeze(1), g).squeeze(1)
    return _Blocks(g, o, y, mask, n, num_tasks, gy, (n_max - n).to(dtype))


def _members(subsets: Sequence[tuple[int, ...]], num_tasks: int, device: torch.device) -> Tensor:
    """``[M, s_max]`` int64 member matrix, padded with the empty task ``T``."""
    s_max = max(len(s) for s in subsets)
    mem = torch.full((len(subsets), s_max), num_tasks, dtype=torch.long)
    for k, s in enumerate(subsets):
        mem[k, : len(s)] = torch.tensor(s, dtype=torch.long)
    return mem.to(device)


def _layout(mem: Tensor, num_tasks: int) -> tuple[Tensor, Tensor]:
    """Per-task slots of a subset batch.

    Returns ``slots [T + 1, m_max]`` (batch index of the subset in each slot, ``B`` = padding)
    and ``where [B, s_max]`` (slot of member ``q`` of subset ``k`` in its task's row; padding
    members point at slot 0 of the empty task ``T``, whose values are zero).
    """
    num, s_max = mem.shape
    device = mem.device
    flat = mem.flatten()
    keep = torch.nonzero(flat < num_tasks).flatten()
    task = flat[keep]
    order = torch.argsort(task, stable=True)
    keep, task = keep[order], task[order]
    count = torch.bincount(task, minlength=num_tasks + 1)
    start = torch.cumsum(count, 0) - count
    pos = torch.arange(task.numel(), device=device) - start[task]
    m_max = max(int(count.max()) if task.numel() else 0, 1)
    slots = torch.full((num_tasks + 1, m_max), num, dtype=torch.long, device=device)
    slots[task, pos] = keep // s_max
    where = torch.zeros(num * s_max, dtype=torch.long, device=device)
    where[keep] = pos
    return slots, where.view(num, s_max)


def _logits(blocks: _Blocks, mem: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Logits of every task's rows under every subset of the batch containing it.

    Returns ``z [T + 1, n_max, m_max]``, ``slots`` and ``where`` of :func:`_layout`.
    """
    slots, where = _layout(mem, blocks.num_tasks)
    w_ext = torch.cat([weights, weights.new_zeros(1, weights.size(1))])
    w_slots = w_ext[slots]  # [T + 1, m_max, d]
    z = torch.baddbmm(blocks.o.unsqueeze(2), blocks.g, w_slots.transpose(1, 2))
    return z, slots, where


def _bce(z: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy with logits, elementwise, stable for any ``z``."""
    return F.softplus(z) - y * z


def _slot_losses(blocks: _Blocks, z: Tensor) -> Tensor:
    """Summed BCE over each task's real rows for every slot: ``[T + 1, m_max]``.

    Padding rows have ``o = 0`` and ``g = 0``, hence ``z = 0`` and ``BCE = log 2`` (``y = 0``),
    which is subtracted instead of multiplying by a mask.
    """
    softplus = F.softplus(z).sum(1)
    yz = torch.bmm(blocks.y.unsqueeze(1), z).squeeze(1)
    return softplus - yz - blocks.pad.unsqueeze(1) * math.log(2.0)


def _loss_and_grad_sums(blocks: _Blocks, mem: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Summed BCE ``[B]`` and summed BCE gradient ``[B, d]`` of each subset's rows.

    The gradient is ``G^T (sigmoid(z) - y) = G^T sigmoid(z) - G^T y`` with ``G^T y`` precomputed
    per task (padding rows have ``g = 0``, so they contribute nothing).
    """
    z, _, where = _logits(blocks, mem, weights)
    loss = _slot_losses(blocks, z)[mem, where].sum(1)
    grad_slots = torch.bmm(torch.sigmoid(z).transpose(1, 2), blocks.g)  # [T + 1, m_max, d]
    grad_slots -= blocks.gy.unsqueeze(1)
    return loss, grad_slots[mem, where].sum(1)


def _exact_hessian_sums(blocks: _Blocks, mem: Tensor, weights: Tensor) -> Tensor:
    """``sum_r p_r (1 - p_r) g_r g_r^T`` over each subset's rows at ``weights``: ``[B, d, d]``."""
    d = blocks.dim
    per = max(1, mem.size(1) * max(blocks.n_max, 1) * d)
    step = max(1, SURROGATE_BUDGET // per)
    out = []
    for lo in range(0, mem.size(0), step):
        m, w = mem[lo : lo + step], weights[lo : lo + step]
        g = blocks.g[m].flatten(1, 2)  # [b, s_max * n_max, d]
        z = blocks.o[m].flatten(1) + torch.bmm(g, w.unsqueeze(2)).squeeze(2)
        p = torch.sigmoid(z)
        v = p * (1 - p) * blocks.mask[m].flatten(1)
        out.append(torch.bmm((g * v.unsqueeze(2)).transpose(1, 2), g))
    return torch.cat(out)


def _cholesky(a: Tensor) -> Tensor:
    chol, info = torch.linalg.cholesky_ex(a)
    bad = info > 0
    if bool(bad.any()):  # PD in exact arithmetic (lam > 0); add jitter if rounding says no
        eye = torch.eye(a.size(-1), dtype=a.dtype, device=a.device)
        scale = a.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(1e-300)
        for eps in (1e-12, 1e-9, 1e-6):
            fixed, info2 = torch.linalg.cholesky_ex(a[bad] + eps * scale[bad, None, None] * eye)
            chol[bad] = fixed
            if not bool((info2 > 0).any()):
                return chol
        raise NumericalError("surrogate Hessian is not positive definite even with jitter")
    return chol


# ----------------------------------------------------------------------------------------------
# Public API


def task_statistics(
    features: GradientFeatures,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> TaskStats:
    """Per-task sufficient statistics of the surrogate at ``w = 0`` (training rows).

    Accumulated in float64 by default.

    Args:
        features: Projected gradient features.
        device: Where to compute (default: the device of ``features``).
        dtype: Accumulation dtype.

    Returns:
        :class:`TaskStats` on ``device``.

    Shapes:
        ``H [T, d, d]``, ``b [T, d]``, ``n [T]``, ``loss [T]``.

    Example:
        >>> from graphtag.estimation import make_synthetic_features
        >>> stats = task_statistics(make_synthetic_features(num_tasks=3, dim=4, seed=0))
        >>> tuple(stats.H.shape), tuple(stats.b.shape)
        ((3, 4, 4), (3, 4))
    """
    features = _check_features(features)
    dev = _device(features, device)
    blocks = _task_blocks(features, TRAIN, dtype, dev)
    num_tasks = blocks.num_tasks
    hs, bs, losses = [], [], []
    step = max(1, SURROGATE_BUDGET // max(1, blocks.n_max * blocks.dim))
    for lo in range(0, num_tasks, step):
        hi = min(lo + step, num_tasks)
        g, o, y, mask = (x[lo:hi] for x in (blocks.g, blocks.o, blocks.y, blocks.mask))
        p = torch.sigmoid(o)
        v = p * (1 - p) * mask
        hs.append(torch.bmm((g * v.unsqueeze(2)).transpose(1, 2), g))
        bs.append(torch.bmm(((y - p) * mask).unsqueeze(1), g).squeeze(1))
        losses.append((_bce(o, y) * mask).sum(1))
    return TaskStats(torch.cat(hs), torch.cat(bs), blocks.n[:num_tasks].clone(), torch.cat(losses))


def l2_scale(stats: TaskStats) -> float:
    """Curvature scale for a relative ridge: mean diagonal of the pooled base Hessian.

    ``sum_t trace(H_t) / (d * sum_t n_t)``, i.e. the average of ``p (1 - p) g_k^2`` over all
    training rows and coordinates. A relative ``l2`` makes the ridge invariant to rescaling the
    features (``g -> c g`` gives ``w -> w / c``). Returns 1.0 when the scale is zero.
    """
    total = float(stats.n.sum())
    trace = float(stats.H.diagonal(dim1=-2, dim2=-1).sum())
    if total <= 0 or trace <= 0 or not math.isfinite(trace):
        return 1.0
    return trace / (stats.dim * total)


def _absolute_l2(stats: TaskStats, l2: float, l2_relative: bool) -> float:
    if isinstance(l2, bool) or not isinstance(l2, int | float) or not l2 > 0:
        raise GraphtagError(f"l2 must be a positive number, got {l2!r}")
    return float(l2) * l2_scale(stats) if l2_relative else float(l2)


def _subset_sums(stats: TaskStats, mem: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sums over each subset's tasks of ``H``, ``b``, ``n`` and ``loss`` (padding = zero)."""
    num_tasks, d = stats.num_tasks, stats.dim
    inc = torch.zeros(mem.size(0), num_tasks + 1, dtype=stats.H.dtype, device=mem.device)
    inc.scatter_(1, mem, 1.0)
    inc = inc[:, :num_tasks]
    if num_tasks <= 24 * mem.size(1):
        # One matrix product (B x T by T x d^2, compute bound) beats s gathers of B x d x d
        # blocks (memory bound) unless T is much larger than s (measured on CPU).
        hs = (inc @ stats.H.reshape(num_tasks, d * d)).view(-1, d, d)
    else:
        padded = torch.cat([stats.H, stats.H.new_zeros(1, d, d)])
        hs = padded[mem[:, 0]]
        for q in range(1, mem.size(1)):
            hs += padded[mem[:, q]]
    return hs, inc @ stats.b, _mem_counts(stats.n, mem), inc @ stats.loss


def _mem_counts(n: Tensor, mem: Tensor) -> Tensor:
    """Total rows ``n_S`` of each subset (int64 ``[B]``)."""
    return torch.cat([n, n.new_zeros(1)])[mem].sum(1)


def _ridge_system(
    stats: TaskStats, mem: Tensor, lam: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``A = sum H / n_S + lam I``, ``rhs = sum b / n_S``, ``n_S`` and ``F_S(0)``."""
    hs, bs, ns, ls = _subset_sums(stats, mem)
    nf = ns.clamp_min(1).to(hs.dtype)
    hs.div_(nf[:, None, None]).diagonal(dim1=-2, dim2=-1).add_(lam)  # in place: B x d x d
    return hs, bs / nf[:, None], ns, ls / nf


def one_step_surrogates(
    stats: TaskStats,
    subsets: Sequence[Sequence[int]],
    l2: float = DEFAULT_L2,
    *,
    l2_relative: bool = True,
) -> Tensor:
    """First Newton step from ``w = 0`` for every subset, from the statistics alone.

    ``w_S = (sum_{t in S} H_t + lam n_S I)^-1 sum_{t in S} b_t``, a batched ``d x d`` Cholesky
    solve. This is exact Newton (the Hessian at ``w = 0`` is the statistics Hessian), without a
    line search.

    Args:
        stats: Output of :func:`task_statistics`.
        subsets: ``M`` task subsets.
        l2: Ridge strength (relative to :func:`l2_scale` when ``l2_relative``).
        l2_relative: Whether ``l2`` is relative.

    Returns:
        ``[M, d]`` float64 on the device of ``stats``.
    """
    subs = check_subsets(subsets, stats.num_tasks)
    lam = _absolute_l2(stats, l2, l2_relative)
    mem = _members(subs, stats.num_tasks, stats.H.device)
    step = max(1, SURROGATE_BUDGET // (2 * stats.dim * stats.dim))
    out = []
    for lo in range(0, len(subs), step):
        a, rhs, _, _ = _ridge_system(stats, mem[lo : lo + step], lam)
        out.append(torch.cholesky_solve(rhs.unsqueeze(2), _cholesky(a)).squeeze(2))
    return torch.cat(out)


def _device(features: GradientFeatures, device: str | torch.device | None) -> torch.device:
    if device is None:
        return features.features.device
    return resolve_device(device)


def _batch_size(batch_size: int | None, blocks: _Blocks, subsets: list[tuple[int, ...]]) -> int:
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise GraphtagError(f"batch_size must be a positive integer, got {batch_size!r}")
        return batch_size
    s_mean = sum(len(s) for s in subsets) / len(subsets)
    by_logits = SURROGATE_BUDGET / (2.0 * max(blocks.n_max, 1) * s_mean)
    by_factors = SURROGATE_BUDGET / (3.0 * blocks.dim * blocks.dim)
    return max(1, min(len(subsets), int(min(by_logits, by_factors))))


def fit_surrogates(
    features: GradientFeatures,
    subsets: Sequence[Sequence[int]],
    l2: float = DEFAULT_L2,
    *,
    l2_relative: bool = True,
    max_iter: int = 50,
    tol: float = 1e-5,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    stats: TaskStats | None = None,
    progress: bool = False,
) -> SurrogateFit:
    """Fit the offset logistic surrogate ``w_S`` of every subset (batched Newton).

    See the module docstring for the objective and the algorithm (statistics Newton step, then
    chord Newton steps with Armijo backtracking and exact-Hessian refreshes where needed).

    Args:
        features: Projected gradient features (training rows are used).
        subsets: ``M`` task subsets.
        l2: Ridge strength ``lam``; relative to :func:`l2_scale` when ``l2_relative`` (default,
            :data:`DEFAULT_L2`), else absolute.
        l2_relative: Whether ``l2`` is relative.
        max_iter: Maximum number of Newton steps per subset (``>= 1``).
        tol: Convergence when ``||grad F_S(w)|| <= tol * ||grad F_S(0)||``.
        batch_size: Subsets solved together (default: sized to keep temporaries near 256 MiB).
        device: Where to compute (default: the device of ``features``).
        dtype: Compute dtype (float64 by default; float32 halves memory but cannot reach a
            ``tol`` much below ``1e-4``).
        stats: Precomputed :func:`task_statistics` (computed if omitted).
        progress: Show a progress bar over subset batches.

    Returns:
        :class:`SurrogateFit` (CPU tensors). Subsets whose tasks have no training rows get
        ``w = 0`` (the optimum of the pure ridge) and count as converged. A trial step whose
        objective or gradient is NaN/inf is rejected by the line search (the step is halved),
        so ``weights`` and ``objective`` are always finite; a subset that finds no finite step
        is reported in ``converged`` as not converged (callers such as
        :class:`~graphtag.estimation.GradTAG` leave it out of the affinity).

    Raises:
        GraphtagError: On invalid subsets or arguments.
        NumericalError: If the features hold NaN/inf (naming the tasks).

    Shapes:
        ``weights [M, d]``, ``converged [M]``.

    Example:
        >>> from graphtag.estimation import make_synthetic_features
        >>> feats = make_synthetic_features(num_tasks=4, dim=5, seed=0)
        >>> fit = fit_surrogates(feats, [(0, 1), (2, 3)])
        >>> tuple(fit.weights.shape), bool(fit.converged.all())
        ((2, 5), True)
    """
    features = _check_features(features)
    subs = check_subsets(subsets, features.num_tasks)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise GraphtagError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not tol > 0:
        raise GraphtagError(f"tol must be positive, got {tol!r}")
    dev = _device(features, device)
    if stats is None:
        stats = task_statistics(features, device=dev, dtype=dtype)
    elif stats.num_tasks != features.num_tasks or stats.dim != features.dim:
        raise GraphtagError(
            f"stats are for {stats.num_tasks} tasks and d={stats.dim}, features for "
            f"{features.num_tasks} tasks and d={features.dim}; recompute task_statistics"
        )
    stats = TaskStats(*(x.to(device=dev) for x in (stats.H, stats.b, stats.n, stats.loss)))
    stats = TaskStats(stats.H.to(dtype), stats.b.to(dtype), stats.n, stats.loss.to(dtype))
    lam = _absolute_l2(stats, l2, l2_relative)
    blocks = _task_blocks(features, TRAIN, dtype, dev)
    mem_all = _members(subs, features.num_tasks, dev)
    step = _batch_size(batch_size, blocks, subs)
    parts = []
    for lo in tqdm(range(0, len(subs), step), disable=not progress, desc="surrogates"):
        parts.append(solve_batch(blocks, stats, mem_all[lo : lo + step], lam, max_iter, tol))
    cat = [torch.cat([p[i] for p in parts]).cpu() for i in range(5)]
    return SurrogateFit(cat[0], cat[1], cat[2], cat[3], cat[4], lam)
