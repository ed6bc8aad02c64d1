"""Task affinity from subset losses (docs/algorithms.md §5).

Orientation: ``A[i, j]`` says how much the presence of task ``j`` in a subset helps task ``i``
(row = recipient, column = partner); higher means more compatible.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..errors import GraphtagError, NumericalError, preview
from ._subsets import check_subsets

__all__ = [
    "pairwise_affinity",
    "pairwise_loss_tables",
    "pairwise_subset_losses",
    "subset_affinity",
]


def _as_array(values: object, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphtagError(f"{name} must be a numeric array, got {type(values).__name__}") from exc


def _incidence(subsets: list[tuple[int, ...]], num_tasks: int) -> np.ndarray:
    inc = np.zeros((len(subsets), num_tasks), dtype=bool)
    for k, s in enumerate(subsets):
        inc[k, list(s)] = True
    return inc


def _warn_missing(count: np.ndarray, what: str) -> None:
    missing = np.argwhere(np.triu(count == 0, k=1))
    if missing.size:
        shown = ", ".join(f"({i}, {j})" for i, j in missing[:5].tolist())
        more = " ..." if len(missing) > 5 else ""
        warnings.warn(
            f"{len(missing)} task pairs {what}; their affinity is set to 0: {shown}{more}",
            UserWarning,
            stacklevel=3,
        )


def _exclude_mask(exclude: object, num_subsets: int) -> np.ndarray:
    if exclude is None:
        return np.zeros(num_subsets, dtype=bool)
    if isinstance(exclude, torch.Tensor):
        exclude = exclude.detach().cpu().numpy()
    mask = np.asarray(exclude)
    if mask.shape != (num_subsets,) or mask.dtype != bool:
        raise GraphtagError(
            f"exclude must be a bool array [{num_subsets}] (one flag per subset), got "
            f"{mask.dtype} {list(mask.shape)}"
        )
    return mask


def _entries(keys: np.ndarray, subs: list[tuple[int, ...]], table: np.ndarray) -> str:
    """``"subset k (..) task t: value"`` for the first few ``(k, t)`` keys."""
    return preview([f"subset {k} {subs[k]} task {t}: {table[k, t]:g}" for k, t in keys.tolist()])


def subset_affinity(
    subsets: Sequence[Sequence[int]],
    losses: object,
    num_tasks: int,
    *,
    symmetric: bool = False,
    zero_variance_tol: float = 1e-10,
    exclude: object = None,
) -> np.ndarray:
    """Higher-order task affinity from the losses of tasks in random subsets.

    For task ``i`` and each subset ``S_k`` containing it, the score is ``s[i, k] = -L_i(S_k)``.
    Scores are standardised within task ``i`` over its subsets (z-scores with the population
    standard deviation, ``ddof = 0``)::

        z[i, k] = (s[i, k] - mean_k s[i, k]) / std_k s[i, k]
        A[i, j] = mean of z[i, k] over the subsets k containing both i and j

    The diagonal is 0. A task whose scores have (numerically) zero variance, ``std <=
    zero_variance_tol * max(1, |mean|)`` (e.g. a task in a single subset, or one the surrogates
    never change), gets all-zero z-scores, hence a zero row. A pair that never co-occurs gets
    ``A[i, j] = 0`` (no NaN, no division by zero) and a :class:`UserWarning` with the count.

    Missing losses: a NaN/inf loss ``L_i(S_k)`` of a member task, and every loss of a subset
    flagged in ``exclude``, is *missing*, never a number: ``s[i, k]`` is left out of task
    ``i``'s mean, standard deviation and averages (``S_k`` still counts as a subset holding
    ``i``'s partners for their own scores). Non-finite losses that were not excluded are
    reported with one :class:`UserWarning` (count and first entries). Excluding a subset gives
    the affinity of the other subsets (up to rounding). If missing losses leave a sampled task
    without any score, or a pair ``(i, j)`` that co-occurs without any score of ``i`` in a
    subset holding ``j``, a :class:`~graphtag.errors.NumericalError` names them: the matrix is
    never NaN and never silently zero because of a divergence.

    Args:
        subsets: ``M`` task subsets.
        losses: ``[M, T]`` losses (tensor or array); entries of tasks outside a subset are
            ignored (typically NaN).
        num_tasks: ``T``.
        symmetric: Return ``(A + A^T) / 2`` (what clustering uses).
        zero_variance_tol: Relative threshold for a zero standard deviation.
        exclude: Optional bool ``[M]``: subsets whose losses are all missing (e.g. surrogates
            that failed; the caller reports them).

    Returns:
        ``[T, T]`` float64 array, finite.

    Raises:
        GraphtagError: If shapes disagree.
        NumericalError: If missing losses leave a task or a co-occurring pair without a score.

    Example:
        >>> subsets = [(0, 1), (0, 2), (1, 2)]
        >>> losses = [[1.0, 2.0, np.nan], [3.0, np.nan, 1.0], [np.nan, 1.0, 2.0]]
        >>> subset_affinity(subsets, losses, 3).round(3).tolist()
        [[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]]
    """
    subs = check_subsets(subsets, num_tasks)
    table = _as_array(losses, "losses")
    if table.shape != (len(subs), num_tasks):
        raise GraphtagError(
            f"losses must have shape [{len(subs)}, {num_tasks}] (subsets x tasks), "
            f"got {list(table.shape)}"
        )
    drop = _exclude_mask(exclude, len(subs))
    inc = _incidence(subs, num_tasks)
    finite = np.isfinite(table)
    valid = inc & finite & ~drop[:, None]  # [M, T]: task t has a usable score in subset k
    member = inc.astype(np.float64)
    together = member.T @ member  # [T, T] co-occurrence counts (by design)
    usable = valid.astype(np.float64).T @ member  # [i, j]: subsets holding j where i scored
    nonfinite = np.argwhere(inc & ~finite & ~drop[:, None])
    empty = np.flatnonzero(inc.any(0) & ~valid.any(0))
    if empty.size:
        first = np.argwhere(inc[:, empty[0]] & ~finite[:, empty[0]])
        why = (
            f"loss of task {empty[0]} in subset {first[0, 0]} {subs[first[0, 0]]} is "
            f"{table[first[0, 0], empty[0]]}"
            if first.size
            else f"every subset holding task {empty[0]} was excluded"
        )
        raise NumericalError(
            f"tasks [{preview(empty.tolist())}] have no usable (finite, not excluded) loss in "
            f"any of their subsets ({why}); their affinity cannot be estimated. Find why those "
            "losses diverged or were excluded (real training: lower the learning rate; "
            "Grad-TAG: raise max_iter or l2, or loosen tol) or drop these tasks",
            tasks=empty[:5].tolist(),
        )
    lost = np.argwhere((together > 0) & (usable == 0) & ~np.eye(num_tasks, dtype=bool))
    if lost.size:
        shown = preview([f"({i}, {j})" for i, j in lost.tolist()])
        raise NumericalError(
            f"{len(lost)} task pairs (i, j) co-occur only in subsets where task i's loss is "
            f"missing (NaN/inf or excluded): {shown}; A[i, j] cannot be estimated. Sample more "
            "subsets (num_subsets, min_pair_count) or find why those losses diverged",
            tasks=sorted({int(t) for t in lost[:5].ravel()}),
        )
    if nonfinite.size:
        warnings.warn(
            f"{len(nonfinite)} losses of tasks in their subsets are NaN/inf and were left out "
            f"of the affinity as missing: {_entries(nonfinite, subs, table)}",
            UserWarning,
            stacklevel=2,
        )
    weights = valid.astype(np.float64)
    score = np.where(valid, -np.where(finite, table, 0.0), 0.0)
    count = weights.sum(0)
    safe = np.maximum(count, 1.0)
    mean = score.sum(0) / safe
    centred = np.where(valid, score - mean, 0.0)
    std = np.sqrt((centred**2).sum(0) / safe)
    ok = (count > 0) & (std > zero_variance_tol * np.maximum(1.0, np.abs(mean)))
    z = np.where(ok, centred / np.where(ok, std, 1.0), 0.0)
    total = z.T @ member  # [i, j] = sum over subsets holding j where i scored of z[i, k]
    affinity = np.divide(total, usable, out=np.zeros_like(total), where=usable > 0)
    np.fill_diagonal(affinity, 0.0)
    _warn_missing(together, "never co-occur in a subset")
    if symmetric:
        affinity = (affinity + affinity.T) / 2
    return affinity


def pairwise_loss_tables(
    subsets: Sequence[Sequence[int]], losses: object, num_tasks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Extract single-task and pair losses from a subset loss table.

    Args:
        subsets: Subsets including singletons ``(i,)`` and pairs ``(i, j)`` (e.g.
            :func:`graphtag.estimation.pairwise_subsets`); other subsets are ignored.
        losses: ``[M, T]`` losses.
        num_tasks: ``T``.

    Returns:
        ``single [T]`` with ``L_i({i})`` and ``pair [T, T]`` with ``pair[i, j] = L_i({i, j})``;
        ``NaN`` where the subset is absent (and on the diagonal).
    """
    subs = check_subsets(subsets, num_tasks)
    table = _as_array(losses, "losses")
    if table.shape != (len(subs), num_tasks):
        raise GraphtagError(
            f"losses must have shape [{len(subs)}, {num_tasks}], got {list(table.shape)}"
        )
    single = np.full(num_tasks, np.nan)
    pair = np.full((num_tasks, num_tasks), np.nan)
    for k, s in enumerate(subs):
        if len(s) == 1:
            single[s[0]] = table[k, s[0]]
        elif len(s) == 2:
            i, j = s
            pair[i, j] = table[k, i]
            pair[j, i] = table[k, j]
    return single, pair


def pairwise_affinity(
    single_losses: object, pair_losses: object, *, symmetric: bool = False
) -> np.ndarray:
    """Pairwise affinity: relative loss reduction of task ``i`` when trained with ``j``.

    ``A[i, j] = (L_i({i}) - L_i({i, j})) / L_i({i})``; positive when ``j`` helps ``i``. The
    diagonal is 0; a missing pair gets 0 and a :class:`UserWarning` with the count.

    Args:
        single_losses: ``[T]`` losses ``L_i({i})`` (positive, finite).
        pair_losses: ``[T, T]`` array with ``[i, j] = L_i({i, j})`` (NaN = missing), or a mapping
            ``{(i, j): L_i({i, j})}``.
        symmetric: Return ``(A + A^T) / 2``.

    Returns:
        ``[T, T]`` float64 array.

    Raises:
        GraphtagError: On shape mismatches, out-of-range keys or non-positive single losses.
        NumericalError: When a single-task loss is NaN/inf (that task's training diverged).

    Example:
        >>> pairwise_affinity([1.0, 2.0], {(0, 1): 0.5, (1, 0): 3.0}).tolist()
        [[0.0, 0.5], [-0.5, 0.0]]
    """
    single = _as_array(single_losses, "single_losses")
    if single.ndim != 1:
        raise GraphtagError(f"single_losses must be a vector [T], got shape {list(single.shape)}")
    num_tasks = single.size
    if not (np.isfinite(single).all() and (single > 0).all()):
        bad = int(np.argmax(~(np.isfinite(single) & (single > 0))))
        error = GraphtagError if np.isfinite(single[bad]) else NumericalError
        raise error(
            f"single_losses[{bad}] = {single[bad]}; single-task losses must be positive and "
            "finite to divide by them"
        )
    if isinstance(pair_losses, Mapping):
        pair = np.full((num_tasks, num_tasks), np.nan)
        for key, value in pair_losses.items():
            try:
                i, j = (int(x) for x in key)
            except (TypeError, ValueError) as exc:
                raise GraphtagError(f"pair_losses key {key!r} is not a pair (i, j)") from exc
            if not (0 <= i < num_tasks and 0 <= j < num_tasks) or i == j:
                raise GraphtagError(
                    f"pair_losses key {key!r} must be two different tasks in 0..{num_tasks - 1}"
                )
            pair[i, j] = float(value)
    else:
        pair = _as_array(pair_losses, "pair_losses")
        if pair.shape != (num_tasks, num_tasks):
            raise GraphtagError(
                f"pair_losses must have shape [{num_tasks}, {num_tasks}], got {list(pair.shape)}"
            )
    present = np.isfinite(pair)
    np.fill_diagonal(present, True)
    _warn_missing(present & present.T, "have no pair loss (in one or both directions)")
    affinity = np.where(present, (single[:, None] - pair) / single[:, None], 0.0)
    np.fill_diagonal(affinity, 0.0)
    if symmetric:
        affinity = (affinity + affinity.T) / 2
    return affinity


def pairwise_subset_losses(
    subsets: Sequence[Sequence[int]], single: object, pair: object
) -> np.ndarray:
    """Subset loss table of single-task and pair losses (inverse of :func:`pairwise_loss_tables`).

    Args:
        subsets: Singletons ``(i,)`` and pairs ``(i, j)`` (e.g.
            :func:`graphtag.estimation.pairwise_subsets`).
        single: ``[T]`` losses ``L_i({i})``.
        pair: ``[T, T]`` losses, ``pair[i, j] = L_i({i, j})``.

    Returns:
        float64 ``[M, T]``: row ``k`` holds the losses of the tasks of ``subsets[k]``, ``NaN``
        elsewhere.

    Raises:
        GraphtagError: For mismatched shapes or a subset of more than two tasks.
    """
    one = _as_array(single, "single")
    two = _as_array(pair, "pair")
    num_tasks = one.size
    if one.shape != (num_tasks,) or two.shape != (num_tasks, num_tasks):
        raise GraphtagError(
            f"single must have shape [T] and pair [T, T], got {list(one.shape)} and "
            f"{list(two.shape)}"
        )
    subs = check_subsets(subsets, num_tasks)
    sizes = np.array([len(s) for s in subs])
    if (sizes > 2).any():
        k = int(np.argmax(sizes > 2))
        raise GraphtagError(f"subset {k} {subs[k]} has more than two tasks; pass pairs only")
    # Column j of row k holds L_i(S_k) for the tasks i of S_k: the diagonal of ``pair`` is
    # replaced by the single-task losses, so ``table[i, j]`` covers both shapes.
    table = two.copy()
    np.fill_diagonal(table, one)
    first = np.array([s[0] for s in subs], dtype=np.int64)
    last = np.array([s[-1] for s in subs], dtype=np.int64)
    out = np.full((len(subs), num_tasks), np.nan)
    rows = np.arange(len(subs))
    out[rows, first] = table[first, last]
    out[rows, last] = table[last, first]
    return out
