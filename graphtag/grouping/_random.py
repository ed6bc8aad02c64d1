"""Random groupings with prescribed group sizes (a floor for any grouping method)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._utils import numpy_generator
from ..errors import GraphtagError

__all__ = ["canonical_groups", "check_partition", "random_groups_like"]


def canonical_groups(groups: Sequence[Sequence[int]]) -> list[list[int]]:
    """Sort each group and order groups by their smallest task index."""
    out = [sorted(int(t) for t in g) for g in groups]
    return sorted(out, key=lambda g: g[0] if g else -1)


def check_partition(groups: Sequence[Sequence[int]], num_tasks: int) -> None:
    """Raise :class:`GraphtagError` unless ``groups`` partitions ``0..num_tasks-1`` (non-empty)."""
    seen = np.zeros(num_tasks, dtype=np.int64)
    for g in groups:
        if len(g) == 0:
            raise GraphtagError("a task group is empty; every group needs at least one task")
        for t in g:
            if not 0 <= int(t) < num_tasks:
                raise GraphtagError(f"task {t} in a group is out of range [0, {num_tasks})")
            seen[int(t)] += 1
    missing = np.nonzero(seen == 0)[0].tolist()
    twice = np.nonzero(seen > 1)[0].tolist()
    if missing or twice:
        raise GraphtagError(
            f"groups are not a partition of the {num_tasks} tasks: missing {missing[:10]}, "
            f"repeated {twice[:10]}"
        )


def random_groups_like(
    groups: Sequence[Sequence[int]], num_tasks: int, seed: int = 0
) -> list[list[int]]:
    """A uniformly random partition of the tasks with the same group sizes as ``groups``.

    Example:
        >>> random_groups_like([[0, 1], [2, 3, 4]], 5, seed=0)  # doctest: +SKIP
        [[0, 3], [1, 2, 4]]
    """
    check_partition(groups, num_tasks)
    perm = numpy_generator(seed, "random_groups").permutation(num_tasks)
    out, start = [], 0
    for g in groups:
        out.append(perm[start : start + len(g)].tolist())
        start += len(g)
    return canonical_groups(out)
