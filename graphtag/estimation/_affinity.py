"""Task affinity from subset losses (ALGORITHMS.md §5).

Orientation: ``A[i, j]`` says how much the presence of task ``j`` in a subset helps task ``i``
(row = recipient, column = partner); higher means more compatible.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..errors import GraphtagError
from ._subsets import check_subsets

__all__ = ["pairwise_affinity", "pairwise_loss_tables", "subset_affinity"]


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


def subset_affinity(
    subsets: Sequence[Sequence[int]],
    losses: object,
    num_tasks: int,
    *,
    symmetric: bool = False,
    zero_variance_tol: float = 1e-10,
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

    Args:
        subsets: ``M`` task subsets.
        losses: ``[M, T]`` losses (tensor or array); entries of tasks outside a subset are
            ignored (typically NaN).
        num_tasks: ``T``.
        symmetric: Return ``(A + A^T) / 2`` (what clustering uses).
        zero_variance_tol: Relative threshold for a zero standard deviation.

    Returns:
        ``[T, T]`` float64 array.

    Raises:
        GraphtagError: If shapes disagree or a task's loss in one of its subsets is not finite.

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
    inc = _incidence(subs, num_tasks)
    bad = inc & ~np.isfinite(table)
    if bad.any():
        k, t = np.argwhere(bad)[0].tolist()
        raise GraphtagError(
            f"loss of task {t} in subset {k} {subs[k]} is {table[k, t]}; every task of a "
            f"subset needs a finite loss ({int(bad.sum())} such entries)"
        )
    weights = inc.astype(np.float64)
    score = np.where(inc, -table, 0.0)
    count = weights.sum(0)
    safe = np.maximum(count, 1.0)
    mean = score.sum(0) / safe
    centred = np.where(inc, score - mean, 0.0)
    std = np.sqrt((centred**2).sum(0) / safe)
    ok = (count > 0) & (std > zero_variance_tol * np.maximum(1.0, np.abs(mean)))
    z = np.where(ok, centred / np.where(ok, std, 1.0), 0.0)
    together = weights.T @ weights  # [T, T] co-occurrence counts
    total = z.T @ weights  # [i, j] = sum over subsets containing i and j of z[i, k]
    affinity = np.divide(total, together, out=np.zeros_like(total), where=together > 0)
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
        raise GraphtagError(
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
