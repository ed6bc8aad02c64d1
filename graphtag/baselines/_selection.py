"""TAG's network selection: choose at most B (possibly overlapping) task groups.

Given an affinity ``A`` ``[T, T]`` (``A[t][u]``: how much a step on task ``u`` helps task ``t``,
row = recipient, as stored by :class:`~graphtag.baselines.TAGAffinity`), a group ``G`` scores
task ``t in G`` by ``s(G, t) = mean_{u in G, u != t} A[t][u]``. A selection of at most ``B``
groups scores ``mean_t max_{G chosen, t in G} s(G, t)``; a task in no chosen group scores
``-inf``, so every valid selection covers all tasks. See docs/algorithms.md §9.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import GraphtagError

__all__ = ["SelectionResult", "select_groups"]

_METHODS = ("auto", "exact", "greedy")
#: ``method="auto"`` runs the exact search up to this many tasks (2^T candidate groups).
AUTO_EXACT_MAX_TASKS = 12
#: ``method="exact"`` refuses more tasks than this.
EXACT_MAX_TASKS = 14
#: The greedy search restarts from the candidates with the largest standalone gains: this many
#: for up to ``GREEDY_RESTART_MAX_TASKS`` tasks, else one start.
GREEDY_STARTS = 8
GREEDY_RESTART_MAX_TASKS = 64


@dataclass(frozen=True)
class SelectionResult:
    """The chosen groups of a network selection.

    Attributes:
        groups: The chosen groups, each a sorted list of task indices, in lexicographic order.
            Groups that are no task's best group are dropped (they cannot change the score),
            so there may be fewer than ``max_groups``.
        assignment: ``[T]`` index into ``groups`` of each task's best group (the lowest index
            on ties): the model that serves the task.
        score: ``mean_t s(groups[assignment[t]], t)``, the objective value.
        method: ``"exact"`` (optimal) or ``"greedy"`` (heuristic).
    """

    groups: list[list[int]]
    assignment: list[int]
    score: float
    method: str


def select_groups(
    affinity: np.ndarray | torch.Tensor,
    max_groups: int,
    method: str = "auto",
    min_size: int = 2,
) -> SelectionResult:
    """Choose at most ``max_groups`` task groups maximising TAG's selection objective.

    ``method="exact"`` returns an optimal selection. The candidates are all groups of
    ``min_size..T`` tasks. Instead of a branch and bound over sets of candidates (slow: the
    bounds are loose), it uses that the optimum equals
    the best partition of the tasks into at most ``B`` blocks ``P`` (the tasks each chosen
    group serves), a block scoring ``v(P) = max_{G >= P} sum_{t in P} s(G, t)``; a dynamic
    programme over task subsets solves this in ``O(B 3^T)`` time and ``O(3^T)`` memory.
    ``method="greedy"`` builds candidates around every task (the task plus its ``k - 1``
    strongest partners by ``A[t][u]`` and by ``(A[t][u] + A[u][t]) / 2``, for ``k`` =
    ``min_size..16`` then geometrically (x1.25) up to ``T``, plus the group of all tasks),
    adds the candidate of largest gain ``max_groups`` times, then replaces single groups by a
    candidate or by a neighbour of a chosen group (one task added or removed), or moves one
    task from a chosen group to another, while the objective improves; for ``T <= 64`` it
    restarts from each of the 8 candidates of largest standalone gain and keeps the best (its
    gap to the optimum: experiments/README.md). ``"auto"`` is exact for ``T <= 12`` and greedy
    above.

    Both methods return a selection covering every task (the group of all tasks alone is
    valid, so one always exists); the greedy search gives uncovered tasks a finite penalty
    below any covering selection's objective instead of ``-inf``.

    Args:
        affinity: ``[T, T]`` affinity, row = recipient task, column = source task (the
            diagonal is ignored; off-diagonal entries must be finite). Not symmetrised here:
            pass ``TAGAffinity.symmetric()`` for a symmetric objective.
        max_groups: Largest number of groups ``B >= 1``.
        method: ``"auto"``, ``"exact"`` (``T <= 14``) or ``"greedy"``.
        min_size: Smallest group size (default 2: no singletons, as in TAG). With
            ``min_size=1`` a singleton scores 0 (no transfer from other tasks).

    Returns:
        A :class:`SelectionResult`.

    Raises:
        GraphtagError: ``max_groups < 1``, ``T < 2``, a non-square or non-finite affinity, a
            bad ``min_size`` or ``method``.

    Example:
        >>> import numpy as np
        >>> A = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0.0]])
        >>> select_groups(A, max_groups=2).groups
        [[0, 1], [2, 3]]
    """
    a = _check_affinity(affinity)
    num_tasks = a.shape[0]
    if isinstance(max_groups, bool) or not isinstance(max_groups, (int, np.integer)):
        raise GraphtagError(f"select_groups: max_groups={max_groups!r} must be an integer >= 1")
    if max_groups < 1:
        raise GraphtagError(f"select_groups: max_groups={max_groups} must be >= 1")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)):
        raise GraphtagError(f"select_groups: min_size={min_size!r} must be an integer")
    if not 1 <= min_size <= num_tasks:
        raise GraphtagError(
            f"select_groups: min_size={min_size} must be between 1 and the number of tasks "
            f"({num_tasks})"
        )
    if method not in _METHODS:
        raise GraphtagError(
            f"select_groups: method={method!r} is unknown; use one of {', '.join(_METHODS)}"
        )
    if method == "exact" and num_tasks > EXACT_MAX_TASKS:
        raise GraphtagError(
            f"select_groups: method='exact' enumerates 2^T candidate groups and supports at "
            f"most {EXACT_MAX_TASKS} tasks, got {num_tasks}; use method='greedy' (or 'auto')"
        )
    if method == "exact" or (method == "auto" and num_tasks <= AUTO_EXACT_MAX_TASKS):
        members = _exact_groups(a, int(max_groups), int(min_size))
        return _result(members, _group_scores(a, members), list(range(len(members))), "exact")
    members = _partner_groups(a, min_size)
    scores = _group_scores(a, members)
    penalty = _penalty(scores, num_tasks)
    pen = np.where(members, scores, penalty)
    best: tuple[float, np.ndarray] | None = None
    gains = np.maximum(pen - penalty, 0.0).sum(1)
    starts = GREEDY_STARTS if num_tasks <= GREEDY_RESTART_MAX_TASKS else 1
    for first in np.argsort(-gains, kind="stable")[:starts]:
        sel, sel_p = _local_search(
            a, members, pen, _greedy(pen, max_groups, penalty, first), penalty
        )
        value = float(sel_p.max(0).sum())
        if best is None or value > best[0]:
            best = (value, sel)
    assert best is not None
    sel = best[1]
    return _result(sel, _group_scores(a, sel), list(range(len(sel))), "greedy")


# ---------------------------------------------------------------------- candidates and scores


def _check_affinity(affinity: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(affinity, torch.Tensor):
        affinity = affinity.detach().cpu().double().numpy()
    try:
        a = np.array(affinity, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphtagError(f"select_groups: affinity is not a numeric matrix ({exc})") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise GraphtagError(
            f"select_groups: affinity must be a square [T, T] matrix, got shape {a.shape}"
        )
    if a.shape[0] < 2:
        raise GraphtagError(
            f"select_groups: need at least 2 tasks to form groups, got T = {a.shape[0]}"
        )
    off = ~np.eye(a.shape[0], dtype=bool)
    bad = np.argwhere(~np.isfinite(a) & off)
    if bad.size:
        t, u = (int(v) for v in bad[0])
        raise GraphtagError(
            f"select_groups: affinity[{t}][{u}] = {a[t, u]} is not finite ({len(bad)} such "
            "off-diagonal entries); fill unmeasured pairs (e.g. with 0) before selecting groups"
        )
    a[~off] = 0.0
    return a


def _partner_groups(a: np.ndarray, min_size: int) -> np.ndarray:
    """Candidate groups for the greedy search (see :func:`select_groups`), deduplicated."""
    num_tasks = a.shape[0]
    sizes = list(range(max(min_size, 1), min(16, num_tasks) + 1))
    k = float(sizes[-1]) if sizes else float(min_size)
    while k < num_tasks:
        k *= 1.25
        sizes.append(min(round(k), num_tasks))
    sizes = sorted(set(sizes))
    rows = [np.ones((1, num_tasks), dtype=bool)]
    for m in (a, (a + a.T) / 2.0):
        m = m.copy()
        np.fill_diagonal(m, np.inf)  # each task first in its own partner list
        order = np.argsort(-m, axis=1, kind="stable")  # [T, T]
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(num_tasks)[None, :], axis=1)
        for size in sizes:
            rows.append(rank < size)
    members = np.unique(np.concatenate(rows), axis=0)
    return members[members.sum(1) >= min_size]


def _group_scores(a: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``[C, T]``: ``s(G, t)`` for ``t in G`` (0 for singletons), garbage elsewhere."""
    m = members.astype(np.float64)
    sizes = m.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (m @ a.T) / (sizes - 1.0)  # diagonal of a is 0, so the sum skips u == t
    s[(sizes == 1).ravel()] = 0.0
    return s


def _penalty(scores: np.ndarray, num_tasks: int) -> float:
    """A finite score for uncovered tasks below any covering selection's total."""
    finite = scores[np.isfinite(scores)]
    lo, hi = float(finite.min()), float(finite.max())
    return num_tasks * lo - (num_tasks - 1) * hi - 1.0 - abs(lo) - abs(hi)


# ---------------------------------------------------------------------- search


def _greedy(pen: np.ndarray, budget: int, penalty: float, first: int | None = None) -> list[int]:
    """Add the candidate of largest gain ``budget`` times (starting from ``first`` if given)."""
    cur = np.full(pen.shape[1], penalty)
    chosen: list[int] = []
    if first is not None:
        chosen.append(first)
        cur = np.maximum(cur, pen[first])
    for _ in range(min(budget, pen.shape[0]) - len(chosen)):
        gains = np.maximum(pen - cur, 0.0).sum(1)
        c = int(np.argmax(gains))
        if gains[c] <= 0:
            break
        chosen.append(c)
        cur = np.maximum(cur, pen[c])
    return chosen


def _local_search(
    a: np.ndarray,
    members: np.ndarray,
    pen: np.ndarray,
    chosen: list[int],
    penalty: float,
    max_rounds: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Improve the chosen groups by single moves while the objective strictly improves.

    Moves: replace one chosen group by any pooled candidate or by a neighbour of any chosen
    group (one task added or removed); transfer one task from one chosen group to another.
    Returns the chosen groups' membership and penalised scores (``[B, T]`` each).
    """
    num_tasks = members.shape[1]
    min_size = int(members.sum(1).min())
    sel_m, sel_p = members[chosen].copy(), pen[chosen].copy()
    near = [_neighbours(a, g, min_size, penalty) for g in sel_m]
    pool_value = np.empty(len(pen))
    best = float(sel_p.max(0).sum())

    def better(value: float) -> bool:
        return value > best + 1e-12 * max(1.0, abs(best))

    def base_without(*slots: int) -> np.ndarray:
        others = np.delete(sel_p, list(slots), axis=0)
        return others.max(0) if len(others) else np.full(num_tasks, penalty)

    for _ in range(max_rounds):
        improved = False
        for k in range(len(sel_m)):  # replace group k
            base = base_without(k)
            np.maximum(pen, base).sum(1, out=pool_value)
            near_m = np.concatenate([n[0] for n in near])
            near_p = np.concatenate([n[1] for n in near])
            values = np.concatenate([pool_value, np.maximum(near_p, base).sum(1)])
            c = int(np.argmax(values))
            if better(float(values[c])):
                if c < len(pen):
                    sel_m[k], sel_p[k] = members[c], pen[c]
                else:
                    sel_m[k], sel_p[k] = near_m[c - len(pen)], near_p[c - len(pen)]
                near[k] = _neighbours(a, sel_m[k], min_size, penalty)
                best, improved = float(values[c]), True
        for src, dst in itertools.permutations(range(len(sel_m)), 2):  # move a task src -> dst
            m_src, p_src, t_src, add_src = near[src]
            m_dst, p_dst, t_dst, add_dst = near[dst]
            rem = np.full(num_tasks, -1)
            rem[t_src[~add_src]] = np.nonzero(~add_src)[0]
            add = np.full(num_tasks, -1)
            add[t_dst[add_dst]] = np.nonzero(add_dst)[0]
            tasks = np.nonzero((rem >= 0) & (add >= 0))[0]
            if not tasks.size:
                continue
            base = base_without(src, dst)
            values = np.maximum(np.maximum(p_src[rem[tasks]], p_dst[add[tasks]]), base).sum(1)
            i = int(np.argmax(values))
            if better(float(values[i])):
                r, q = rem[tasks[i]], add[tasks[i]]
                sel_m[src], sel_p[src] = m_src[r], p_src[r]
                sel_m[dst], sel_p[dst] = m_dst[q], p_dst[q]
                near[src] = _neighbours(a, sel_m[src], min_size, penalty)
                near[dst] = _neighbours(a, sel_m[dst], min_size, penalty)
                best, improved = float(values[i]), True
        if not improved:
            break
    return sel_m, sel_p


def _neighbours(
    a: np.ndarray, group: np.ndarray, min_size: int, penalty: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Groups one task away from ``group`` (``[T] bool``).

    Returns membership ``[n, T]``, penalised scores ``[n, T]``, the task added or removed
    ``[n]`` and whether it was added ``[n]``. Member sums are updated incrementally,
    ``O(T^2)`` instead of rescoring in ``O(T^3)``.
    """
    num_tasks = group.size
    eye = np.eye(num_tasks, dtype=bool)
    size = int(group.sum())
    sums = a[:, group].sum(1)  # [T]: sum_{u in G} A[t][u] (diagonal of a is 0)
    out_m, out_p, out_t, out_add = [], [], [], []
    add = np.nonzero(~group)[0]
    if add.size:
        p = np.where(group[None, :], (sums[None, :] + a[:, add].T) / size, penalty)
        p[np.arange(add.size), add] = sums[add] / size
        out_m.append(group[None, :] | eye[add])
        out_p.append(p)
        out_t.append(add)
        out_add.append(np.ones(add.size, dtype=bool))
    if size - 1 >= max(min_size, 1):
        rem = np.nonzero(group)[0]
        m = group[None, :] & ~eye[rem]
        if size - 1 == 1:
            p = np.where(m, 0.0, penalty)
        else:
            p = np.where(m, (sums[None, :] - a[:, rem].T) / (size - 2), penalty)
        out_m.append(m)
        out_p.append(p)
        out_t.append(rem)
        out_add.append(np.zeros(rem.size, dtype=bool))
    if not out_m:
        empty = np.zeros((0, num_tasks))
        return empty.astype(bool), empty, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    return (
        np.concatenate(out_m),
        np.concatenate(out_p),
        np.concatenate(out_t),
        np.concatenate(out_add),
    )


def _exact_groups(a: np.ndarray, budget: int, min_size: int) -> np.ndarray:
    """Optimal groups by dynamic programming over task subsets; ``[G, T]`` bool membership.

    A selection's value is ``max`` over assignments of tasks to chosen groups containing them,
    so the optimum equals the best partition of the tasks into at most ``budget`` blocks ``P``
    (the tasks each group serves), each scored by ``v(P) = max_{G >= P} sum_{t in P} s(G, t)``.
    ``v`` is computed for all ``2^T`` blocks from the ``3^T`` pairs ``P <= G``, then
    ``f_k(S) = max(f_{k-1}(S), max_{P <= S, P contains min(S)} v(P) + f_{k-1}(S - P))``; the
    maximising blocks are recovered by backtracking and each is replaced by its best group.
    Cost ``O(budget 3^T)`` time and ``O(3^T)`` memory.
    """
    num_tasks = a.shape[0]
    n = 1 << num_tasks
    bits = ((np.arange(n)[:, None] >> np.arange(num_tasks)) & 1).astype(bool)  # [2^T, T]
    group_ok = bits.sum(1) >= min_size
    score = _group_scores(a, bits)  # [2^T, T], valid where bits
    # All pairs (P <= G) as base-3 numbers: digit 0 = not in G, 1 = in G only, 2 = in P too.
    rest = np.arange(3**num_tasks, dtype=np.int64)
    g_mask = np.zeros_like(rest)
    p_mask = np.zeros_like(rest)
    for t in range(num_tasks):
        digit = rest % 3
        rest //= 3
        g_mask |= (digit >= 1).astype(np.int64) << t
        p_mask |= (digit == 2).astype(np.int64) << t
    del rest, digit
    keep = (p_mask != 0) & group_ok[g_mask]
    g_k, p_k = g_mask[keep], p_mask[keep]
    total = np.zeros(g_k.size)
    for t in range(num_tasks):
        total += np.where((p_k >> t) & 1, score[g_k, t], 0.0)
    value = np.full(n, -np.inf)  # v(P); finite for every P != 0 (the all-task group)
    np.maximum.at(value, p_k, total)
    del g_k, p_k, total, keep
    # Partition DP over (S, P) pairs with P containing the lowest task of S.
    lowest = g_mask & -g_mask
    keep = (p_mask & lowest) != 0
    s_k, p_k = g_mask[keep], p_mask[keep]
    del g_mask, p_mask, lowest, keep
    r_k = s_k ^ p_k
    v_k = value[p_k]
    best = [np.full(n, -np.inf)]
    best[0][0] = 0.0
    for _ in range(min(budget, num_tasks)):
        f = np.full(n, -np.inf)
        np.maximum.at(f, s_k, v_k + best[-1][r_k])
        best.append(np.maximum(f, best[-1]))
    # Backtrack the optimal blocks.
    blocks = []
    state, k = n - 1, len(best) - 1
    while state:
        if best[k][state] == best[k - 1][state]:
            k -= 1
            continue
        low = state & -state
        sub = _submasks(state)
        sub = sub[(sub & low) != 0]
        p = int(sub[np.argmax(value[sub] + best[k - 1][state ^ sub])])
        blocks.append(p)
        state ^= p
        k -= 1
    groups = set()
    for p in blocks:
        in_p = bits[p]
        ok = group_ok & bits[:, in_p].all(1)
        gain = np.where(ok, score[:, in_p].sum(1), -np.inf)
        groups.add(int(np.argmax(gain)))
    return bits[sorted(groups)]


def _submasks(mask: int) -> np.ndarray:
    """All submasks of ``mask`` (int64 ``[2^popcount]``, including 0 and ``mask``)."""
    pos = np.array([t for t in range(mask.bit_length()) if mask >> t & 1], dtype=np.int64)
    sel = (np.arange(1 << pos.size)[:, None] >> np.arange(pos.size)) & 1
    return (sel << pos).sum(1)


def _result(
    members: np.ndarray, scores: np.ndarray, chosen: list[int], method: str
) -> SelectionResult:
    rows = sorted(set(chosen), key=lambda c: np.nonzero(members[c])[0].tolist())
    pen = np.where(members[rows], scores[rows], -np.inf)  # [G, T]
    assign = np.argmax(pen, axis=0)
    if not np.isfinite(pen.max(0)).all():  # pragma: no cover - the penalty guarantees coverage
        raise AssertionError("selection does not cover every task")
    used = sorted(set(assign.tolist()))
    rows = [rows[g] for g in used]
    pen = pen[used]
    assign = np.argmax(pen, axis=0)
    groups = [np.nonzero(members[c])[0].tolist() for c in rows]
    score = float(pen.max(0).mean())
    return SelectionResult(groups, [int(g) for g in assign], score, method)
