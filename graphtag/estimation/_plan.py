"""The subset plan: how many subsets of which size a subset-based affinity samples for ``T`` tasks.

One rule, used by every subset-based affinity (Grad-TAG, higher-order by real training), by the
memory estimate and by the benchmarks (docs/algorithms.md §5: every pair of tasks must co-occur):

1. the requested size is capped so that subsets are proper: ``s <= max(2, T // 2)``;
2. at most all ``C(T, s)`` distinct subsets are drawn;
3. the pair guarantee is capped at what size ``s`` allows (``C(T - 2, s - 2)``);
4. when ``M`` subsets of size ``s`` cannot pay for the guarantee (``M s (s - 1) / 2`` pair slots
   over ``T (T - 1) / 2`` pairs, with slack 1.5 so that the sampler's repair succeeds), the size
   grows (up to ``max(2, T // 2)``) until they can;
5. only then is the guarantee lowered to what the budget affords (pairs may then never meet and
   get affinity 0).

Every adjustment is reported in :attr:`SubsetPlan.notes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import GraphtagError

__all__ = ["SubsetPlan", "plan_subsets"]

#: Pair slots the sampler needs per required co-occurrence (its repair succeeds from here).
_COVERAGE_SLACK = 1.5


@dataclass(frozen=True)
class SubsetPlan:
    """A resolved subset plan.

    Attributes:
        subset_size: Tasks per subset ``s``.
        num_subsets: Number of distinct subsets ``M``.
        min_pair_count: Co-occurrences guaranteed for every pair of tasks.
        notes: One sentence per adjustment of the requested plan.
    """

    subset_size: int
    num_subsets: int
    min_pair_count: int
    notes: tuple[str, ...] = ()

    def as_key(self) -> list[int]:
        """``[subset_size, num_subsets, min_pair_count]`` (for stage keys)."""
        return [self.subset_size, self.num_subsets, self.min_pair_count]


def plan_subsets(
    num_tasks: int, subset_size: int, num_subsets: int, min_pair_count: int
) -> SubsetPlan:
    """Resolve a requested ``(subset_size, num_subsets, min_pair_count)`` for ``T`` tasks.

    Args:
        num_tasks: ``T >= 2``.
        subset_size: Requested tasks per subset.
        num_subsets: Requested number of subsets.
        min_pair_count: Requested co-occurrences of every pair.

    Returns:
        The :class:`SubsetPlan` (see the module docstring for the rule).

    Raises:
        GraphtagError: When ``T < 2`` (no pairs to group).

    Example:
        >>> plan = plan_subsets(500, 10, 2000, 5)
        >>> plan.subset_size, plan.num_subsets, plan.min_pair_count
        (32, 2000, 5)
        >>> plan_subsets(6, 10, 1000, 5).as_key()
        [3, 20, 2]
    """
    if num_tasks < 2:
        raise GraphtagError("task grouping needs at least 2 tasks")
    notes: list[str] = []
    top = max(2, num_tasks // 2)
    size = max(2, min(subset_size, top))
    if size != subset_size:
        notes.append(
            f"affinity: --subset-size {subset_size} capped to {size}: subsets of {num_tasks} "
            f"tasks hold at most max(2, T // 2) = {size} tasks"
        )
    count = min(num_subsets, math.comb(num_tasks, size))
    if count < num_subsets:
        notes.append(
            f"affinity: only {count} distinct subsets of size {size} exist; using all of them "
            f"instead of {num_subsets}"
        )
    pairs = min(min_pair_count, math.comb(num_tasks - 2, size - 2))
    num_pairs = num_tasks * (num_tasks - 1) // 2

    def affordable(s: int) -> int:
        return int(count * (s * (s - 1) // 2) / (_COVERAGE_SLACK * num_pairs))

    if affordable(size) < pairs:
        grown = size
        while grown < top and affordable(grown) < pairs:
            grown += 1
        if grown != size:
            notes.append(
                f"affinity: subsets of {size} tasks are too small for {count} subsets to make "
                f"every pair of {num_tasks} tasks co-occur {pairs} times; using subsets of "
                f"{grown} tasks (raise --num-subsets to keep the size)"
            )
            size = grown
            pairs = min(pairs, math.comb(num_tasks - 2, size - 2))
    if affordable(size) < pairs:
        notes.append(
            f"affinity: {count} subsets of size {size} cannot make every pair of {num_tasks} "
            f"tasks co-occur {pairs} times; guaranteeing {affordable(size)} instead (raise "
            "--num-subsets for more)"
        )
        pairs = affordable(size)
    return SubsetPlan(size, count, pairs, tuple(notes))
