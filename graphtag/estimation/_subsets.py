"""Random task subsets for Grad-TAG (docs/algorithms.md §5).

The sampler draws distinct subsets uniformly at random, then repairs the sample so that every pair
of tasks co-occurs in at least ``min_pair_count`` subsets (an affinity ``A[i, j]`` is a mean over
the subsets containing both ``i`` and ``j``, so a pair that never co-occurs has no estimate).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np

from .._utils import numpy_generator
from ..errors import GraphtagError

__all__ = ["check_subsets", "pair_counts", "pairwise_subsets", "sample_task_subsets"]

# All subsets are enumerated (instead of rejection sampling) when more than half of them are
# requested and there are at most this many: rejection sampling would then redraw a lot.
_ENUMERATE_LIMIT = 2_000_000


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise GraphtagError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise GraphtagError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_subsets(subsets: Iterable[Iterable[int]], num_tasks: int) -> list[tuple[int, ...]]:
    """Validate task subsets and return them as sorted tuples.

    Args:
        subsets: Subsets of task indices (any iterables of ints).
        num_tasks: Number of tasks ``T``; indices must lie in ``0..T-1``.

    Returns:
        One sorted tuple per subset, in the given order.

    Raises:
        GraphtagError: If there are no subsets, a subset is empty, repeats a task, holds a
            non-integer or an index out of range.
    """
    out: list[tuple[int, ...]] = []
    for k, subset in enumerate(subsets):
        try:
            items = list(subset)
        except TypeError as exc:
            raise GraphtagError(
                f"subset {k} is not a collection of task indices: {subset!r}"
            ) from exc
        for t in items:
            if isinstance(t, bool) or not isinstance(t, int | np.integer):
                raise GraphtagError(f"subset {k} holds a non-integer task index {t!r}")
            if not 0 <= t < num_tasks:
                raise GraphtagError(
                    f"subset {k} holds task {t}, outside 0..{num_tasks - 1} ({num_tasks} tasks)"
                )
        tup = tuple(sorted(int(t) for t in items))
        if not tup:
            raise GraphtagError(f"subset {k} is empty; every subset needs at least one task")
        if len(set(tup)) != len(tup):
            raise GraphtagError(f"subset {k} repeats a task: {tup}")
        out.append(tup)
    if not out:
        raise GraphtagError("no task subsets given; pass at least one subset")
    return out


def pair_counts(subsets: Sequence[Sequence[int]], num_tasks: int) -> np.ndarray:
    """Co-occurrence counts of task pairs.

    Args:
        subsets: Subsets of task indices.
        num_tasks: Number of tasks ``T``.

    Returns:
        ``[T, T]`` int64 matrix ``C`` with ``C[i, j]`` = number of subsets containing both ``i``
        and ``j`` (``C[i, i]`` = number of subsets containing ``i``).
    """
    inc = np.zeros((len(subsets), num_tasks), dtype=np.int64)
    for k, subset in enumerate(subsets):
        inc[k, list(subset)] = 1
    return inc.T @ inc


def pairwise_subsets(num_tasks: int) -> list[tuple[int, ...]]:
    """All singletons then all pairs: ``[(0,), ..., (T-1,), (0, 1), (0, 2), ...]``.

    Feed them to the surrogate and loss estimation, then to
    :func:`graphtag.estimation.pairwise_affinity` (via
    :func:`graphtag.estimation.pairwise_loss_tables`).

    Args:
        num_tasks: Number of tasks ``T``.

    Returns:
        ``T + T (T - 1) / 2`` sorted tuples.
    """
    num_tasks = _check_int("num_tasks", num_tasks, 1)
    singles = [(t,) for t in range(num_tasks)]
    return singles + list(itertools.combinations(range(num_tasks), 2))


def sample_task_subsets(
    num_tasks: int,
    subset_size: int,
    num_subsets: int,
    seed: int = 0,
    min_pair_count: int = 5,
    max_draws: int | None = None,
) -> list[tuple[int, ...]]:
    """Draw distinct task subsets uniformly, then make every pair co-occur often enough.

    Procedure:

    1. **Uniform draw.** Subsets of size ``subset_size`` are drawn uniformly at random; a subset
       already drawn is *redrawn* (never skipped, never returned twice), which is the same as
       sampling ``num_subsets`` distinct subsets without replacement. When more than half of all
       ``C(T, s)`` subsets are requested (and there are at most two million), all subsets are
       enumerated and a random selection of them is taken instead.
    2. **Coverage repair** (only when ``subset_size >= 2`` and ``min_pair_count > 0``). Let the
       deficit be ``D = sum over pairs of max(0, min_pair_count - C_ij)`` (``C_ij`` = number of
       subsets holding both tasks). For each pair ``(i, j)`` below target (random order), a
       subset holding one of the two and not the other gets one of its other members swapped
       for the missing task, choosing the swap that lowers ``D`` most (random tie-break; never
       creating a duplicate subset). Swaps that leave ``D`` unchanged are allowed a limited
       number of times (they move a stubborn deficit elsewhere). Every other swap strictly
       lowers ``D``, so the repair ends: with ``D = 0``, or with an error after rounds without
       progress. Subsets not touched by the repair keep their uniform draw; in the usual regime
       (expected co-occurrence comfortably above the target) nothing or little is changed.

    The result has exactly ``num_subsets`` subsets (a fixed compute budget; ``num_subsets`` is
    never raised silently). If the target coverage is provably impossible (fewer than
    ``ceil(min_pair_count T (T - 1) / (s (s - 1)))`` subsets), or the repair gets stuck, a
    :class:`~graphtag.errors.GraphtagError` says how many subsets are needed. :func:`plan_subsets`
    plans budgets the repair can meet. The expected co-occurrence count of a pair under
    uniform sampling is ``M s (s - 1) / (T (T - 1))``.

    Args:
        num_tasks: Number of tasks ``T``.
        subset_size: Size ``s`` of every subset, ``1 <= s <= T``.
        num_subsets: Number ``M`` of distinct subsets, ``1 <= M <= C(T, s)``.
        seed: Seed of the draw (same seed, same subsets, in the same order).
        min_pair_count: Minimum number of subsets every pair of tasks must share; ``0``
            disables the repair. Ignored when ``s == 1`` (no pairs).
        max_draws: Maximum number of random draws in step 1 (default ``10 M + 1000``).

    Returns:
        ``M`` distinct sorted tuples of task indices.

    Raises:
        GraphtagError: On impossible sizes (``s > T``, ``s < 1``, ``M > C(T, s)``), when the
            pair coverage cannot be reached with ``M`` subsets, or when ``max_draws`` is exceeded.

    Example:
        >>> subsets = sample_task_subsets(6, 3, 12, seed=0, min_pair_count=1)
        >>> len(subsets), len(set(subsets)), all(len(s) == 3 for s in subsets)
        (12, 12, True)
    """
    num_tasks = _check_int("num_tasks", num_tasks, 1)
    subset_size = _check_int("subset_size", subset_size, 1)
    num_subsets = _check_int("num_subsets", num_subsets, 1)
    min_pair_count = _check_int("min_pair_count", min_pair_count, 0)
    if subset_size > num_tasks:
        raise GraphtagError(
            f"subset_size={subset_size} is larger than the number of tasks ({num_tasks}); "
            f"use subset_size <= {num_tasks}"
        )
    total = math.comb(num_tasks, subset_size)
    if num_subsets > total:
        raise GraphtagError(
            f"num_subsets={num_subsets} exceeds the {total} distinct subsets of size "
            f"{subset_size} of {num_tasks} tasks; use num_subsets <= {total}"
        )
    repair = subset_size >= 2 and min_pair_count > 0
    if repair:
        _check_coverage_feasible(num_tasks, subset_size, num_subsets, min_pair_count)

    rng = numpy_generator(seed, "sample_task_subsets", num_tasks, subset_size)
    if num_subsets > total // 2 and total <= _ENUMERATE_LIMIT:
        everything = list(itertools.combinations(range(num_tasks), subset_size))
        pick = rng.choice(total, size=num_subsets, replace=False)
        subsets = [everything[int(k)] for k in pick]
    else:
        limit = 10 * num_subsets + 1000 if max_draws is None else int(max_draws)
        subsets = _rejection_sample(rng, num_tasks, subset_size, num_subsets, limit)
    if repair:
        subsets = _repair_coverage(rng, subsets, num_tasks, subset_size, min_pair_count)
    return subsets


def _check_coverage_feasible(
    num_tasks: int, subset_size: int, num_subsets: int, min_pair_count: int
) -> None:
    per_pair = math.comb(num_tasks - 2, subset_size - 2)
    if min_pair_count > per_pair:
        raise GraphtagError(
            f"min_pair_count={min_pair_count} is impossible: only {per_pair} distinct subsets "
            f"of size {subset_size} of {num_tasks} tasks contain a given pair; use "
            f"min_pair_count <= {per_pair} (0 disables the check) or a larger subset_size"
        )
    num_pairs = num_tasks * (num_tasks - 1) // 2
    pairs_per_subset = subset_size * (subset_size - 1) // 2
    needed = -(-min_pair_count * num_pairs // pairs_per_subset)
    if num_subsets < needed:
        raise GraphtagError(
            f"num_subsets={num_subsets} is too small for every pair of {num_tasks} tasks to "
            f"co-occur {min_pair_count} times in subsets of size {subset_size}: at least "
            f"{needed} subsets are needed (about {2 * needed} for uniform sampling to do it by "
            f"itself); increase num_subsets or subset_size, or lower min_pair_count "
            f"(0 disables the check)"
        )


def _rejection_sample(
    rng: np.random.Generator, num_tasks: int, subset_size: int, num_subsets: int, limit: int
) -> list[tuple[int, ...]]:
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    draws = 0
    while len(out) < num_subsets:
        if draws >= limit:
            raise GraphtagError(
                f"drew {draws} random subsets without finding {num_subsets} distinct ones "
                f"(max_draws={limit}); request fewer subsets or raise max_draws"
            )
        batch = min(limit - draws, max(16, int(1.2 * (num_subsets - len(out))) + 8))
        keys = rng.random((batch, num_tasks))
        if subset_size < num_tasks:  # the s smallest of T i.i.d. keys: a uniform s-subset
            rows = np.argpartition(keys, subset_size - 1, axis=1)[:, :subset_size]
        else:
            rows = np.broadcast_to(np.arange(num_tasks), (batch, num_tasks))
        rows = np.sort(rows, axis=1)
        for row in rows.tolist():
            draws += 1
            tup = tuple(row)
            if tup not in seen:
                seen.add(tup)
                out.append(tup)
                if len(out) == num_subsets:
                    break
    return out


def _repair_coverage(
    rng: np.random.Generator,
    subsets: list[tuple[int, ...]],
    num_tasks: int,
    subset_size: int,
    min_pair_count: int,
) -> list[tuple[int, ...]]:
    """Swap members until every pair co-occurs ``min_pair_count`` times (see the sampler)."""
    m = min_pair_count
    s = subset_size
    arr = np.asarray(subsets, dtype=np.int64).reshape(len(subsets), s)
    pa, pb = np.triu_indices(s, k=1)
    counts = np.zeros((num_tasks, num_tasks), dtype=np.int64)
    np.add.at(counts, (arr[:, pa], arr[:, pb]), 1)
    counts = counts + counts.T
    inc = np.zeros((num_tasks, len(subsets)), dtype=bool)  # task-major: rows are contiguous
    inc[arr, np.arange(len(subsets))[:, None]] = True
    upper = np.triu(np.ones((num_tasks, num_tasks), dtype=bool), k=1)
    off_diag = ~np.eye(s, dtype=bool)
    seen = set(subsets)
    # Neutral swaps (total deficit unchanged) move a stubborn deficit elsewhere, like a random
    # walk; they are capped so that the repair always ends.
    neutral_budget = int((upper & (counts < m)).sum()) + 100
    stalled_rounds = 0
    while True:
        ii, jj = np.nonzero(upper & (counts < m))
        if ii.size == 0:
            return subsets
        progress = False
        for idx in rng.permutation(ii.size):
            i, j = int(ii[idx]), int(jj[idx])
            if counts[i, j] >= m:
                continue
            move = _best_member_swap(rng, arr, inc, counts, seen, i, j, m, off_diag)
            if move is None:
                continue
            delta, k, p, b = move
            if delta > 0 or (delta == 0 and neutral_budget <= 0):
                continue
            neutral_budget -= int(delta == 0)
            u = int(arr[k, p])
            rest = np.delete(arr[k], p)
            counts[u, rest] -= 1
            counts[rest, u] -= 1
            counts[b, rest] += 1
            counts[rest, b] += 1
            inc[u, k] = False
            inc[b, k] = True
            new = tuple(sorted([*rest.tolist(), b]))
            seen.discard(subsets[k])
            seen.add(new)
            subsets[k] = new
            arr[k] = new
            progress = True
        stalled_rounds = 0 if progress else stalled_rounds + 1
        if stalled_rounds > 5:
            remaining = int((upper & (counts < m)).sum())
            raise GraphtagError(
                f"could not make every pair of {num_tasks} tasks co-occur {m} times with "
                f"num_subsets={len(subsets)} of size {s} ({remaining} pairs still below); "
                f"increase num_subsets or lower min_pair_count (0 disables the check)"
            )


def _best_member_swap(
    rng: np.random.Generator,
    arr: np.ndarray,
    inc: np.ndarray,
    counts: np.ndarray,
    seen: set[tuple[int, ...]],
    i: int,
    j: int,
    m: int,
    off_diag: np.ndarray,
) -> tuple[int, int, int, int] | None:
    """Best swap putting ``i`` and ``j`` together: ``(deficit change, subset, position, task)``.

    Candidates: a subset holding one task of the pair but not the other, one of its other members
    ``u`` replaced by the missing task ``b``. Removing ``u`` raises the total deficit by the
    number of its pairs in the subset with count ``<= m``; adding ``b`` lowers it by the number
    of ``b``'s new pairs with count ``< m`` (at least one: the pair ``(i, j)``).
    """
    deltas, ks, ps, bs = [], [], [], []
    for a, b in ((i, j), (j, i)):
        rows = np.nonzero(inc[a] & ~inc[b])[0]
        if rows.size == 0:
            continue
        sub = arr[rows]
        cc = counts[sub[:, :, None], sub[:, None, :]]
        loss = ((cc <= m) & off_diag).sum(axis=2)
        gb = counts[b, sub] < m
        gain = gb.sum(axis=1, keepdims=True) - gb
        delta = loss - gain
        kk, pp = np.nonzero(sub != a)
        deltas.append(delta[kk, pp])
        ks.append(rows[kk])
        ps.append(pp)
        bs.append(np.full(kk.size, b))
    if not deltas:
        return None
    delta = np.concatenate(deltas)
    k_all, p_all, b_all = np.concatenate(ks), np.concatenate(ps), np.concatenate(bs)
    key = delta + 0.5 * rng.random(delta.size)  # smallest change first, random tie-break
    for _ in range(min(64, key.size)):
        c = int(np.argmin(key))
        k, p, b = int(k_all[c]), int(p_all[c]), int(b_all[c])
        new = tuple(sorted([*np.delete(arr[k], p).tolist(), b]))
        if new not in seen:
            return int(delta[c]), k, p, b
        key[c] = np.inf
    return None
