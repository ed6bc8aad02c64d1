"""Local search over partitions: move single tasks between groups while a score improves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._scores import PartitionScores, partition_key

__all__ = ["improve_partition"]


def improve_partition(
    scorer: PartitionScores,
    groups: Sequence[Sequence[int]],
    *,
    max_rounds: int = 50,
    min_gain: float = 1e-6,
    metric: str = "loss",
) -> tuple[list[list[int]], int]:
    """Steepest-ascent single-task moves on ``scorer``'s per-task validation scores.

    Each round scores every move of one task to another group (all new groups in one batch),
    applies the move that raises the partition's summed per-task score most (by more than
    ``min_gain``), and stops when no move does or after ``max_rounds``. Groups never become
    empty, so the number of groups is kept.

    Args:
        scorer: Partition scores (e.g. :class:`~graphtag.recommend.SurrogateScorer`).
        groups: The starting partition.
        max_rounds: Most moves applied.
        min_gain: Smallest summed gain (over tasks) that counts as an improvement.
        metric: ``"loss"`` (minus the summed validation BCE) or ``"auc"`` (summed ROC-AUC).

    Returns:
        ``(partition, number of moves applied)``; the partition in canonical order.

    Example:
        >>> from graphtag.estimation import make_synthetic_features
        >>> from graphtag.recommend import SurrogateScorer
        >>> feats = make_synthetic_features(num_tasks=6, num_groups=2, seed=0)
        >>> scorer = SurrogateScorer(feats, l2=0.1, relative=False)
        >>> improve_partition(scorer, [[0, 1, 3], [2, 4, 5]])
        ([[0, 1, 2], [3, 4, 5]], 2)
    """
    part = [list(g) for g in partition_key(groups)]
    moves = 0
    for _ in range(max_rounds):
        options = []  # (from group, to group, task)
        new_groups = []
        for a, ga in enumerate(part):
            if len(ga) < 2:
                continue
            for t in ga:
                for b, gb in enumerate(part):
                    if b != a:
                        options.append((a, b, t))
                        new_groups += [[u for u in ga if u != t], [*gb, t]]
        if not options:
            break
        scorer.groups(new_groups)
        current = [_sum(scorer, g, metric) for g in part]
        best_gain, best = min_gain, None
        for a, b, t in options:
            na = [u for u in part[a] if u != t]
            nb = sorted([*part[b], t])
            gain = _sum(scorer, na, metric) + _sum(scorer, nb, metric) - current[a] - current[b]
            if gain > best_gain:
                best_gain, best = gain, (a, b, t)
        if best is None:
            break
        a, b, t = best
        part[a] = [u for u in part[a] if u != t]
        part[b] = sorted([*part[b], t])
        moves += 1
    return [list(g) for g in partition_key(part)], moves


def _sum(scorer: PartitionScores, group: Sequence[int], metric: str) -> float:
    """Summed per-task score of ``group`` under its own model (NaN tasks count 0)."""
    loss, auc = scorer.group(group)
    return float(np.nansum(auc)) if metric == "auc" else -float(np.nansum(loss))
