"""Local search over partitions: move single tasks between groups while a score improves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._scores import PartitionScores, partition_key

__all__ = ["improve_partition"]

Move = tuple[int, int, int]  # (from group, to group, task)


def improve_partition(
    scorer: PartitionScores,
    groups: Sequence[Sequence[int]],
    *,
    proposer: PartitionScores | None = None,
    moves_per_round: int | None = None,
    max_rounds: int = 50,
    min_gain: float = 1e-6,
    metric: str = "loss",
) -> tuple[list[list[int]], int]:
    """Steepest-ascent single-task moves on ``scorer``'s summed per-task validation scores.

    Each round considers every move of one task to another group. Without a ``proposer`` every
    move is scored by ``scorer`` (all new groups in one batch); with one, the moves are ranked by
    the cheap ``proposer`` and only the best ``moves_per_round`` are scored by ``scorer`` (e.g.
    surrogates propose, short fine-tunes decide). The move that raises ``scorer``'s summed score
    most (by more than ``min_gain``) is applied; the search stops when no scored move improves
    or after ``max_rounds``. Groups never become empty, so the number of groups is kept.

    Args:
        scorer: The score being optimised (e.g. :class:`~graphtag.recommend.ProbeScorer`).
        groups: The starting partition.
        proposer: Optional cheap score that pre-ranks the moves.
        moves_per_round: Moves scored by ``scorer`` per round when a proposer is given.
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
        options = _moves(part)
        if not options:
            break
        if proposer is not None:
            options = _best_moves(proposer, part, options, moves_per_round or 1, metric)
        gains = _gains(scorer, part, options, metric)
        best = int(np.argmax(gains)) if gains.size else -1
        if best < 0 or gains[best] <= min_gain:
            break
        a, b, t = options[best]
        part[a] = [u for u in part[a] if u != t]
        part[b] = sorted([*part[b], t])
        moves += 1
    return [list(g) for g in partition_key(part)], moves


def _moves(part: list[list[int]]) -> list[Move]:
    """Every move of one task to another group that leaves no group empty."""
    return [
        (a, b, t)
        for a, ga in enumerate(part)
        if len(ga) > 1
        for t in ga
        for b in range(len(part))
        if b != a
    ]


def _gains(
    scorer: PartitionScores, part: list[list[int]], options: list[Move], metric: str
) -> np.ndarray:
    """Summed-score gain of each move under ``scorer`` (new groups scored in one batch)."""
    new = [g for a, b, t in options for g in ([u for u in part[a] if u != t], [*part[b], t])]
    scorer.groups(new)
    current = [_sum(scorer, g, metric) for g in part]
    return np.array(
        [
            _sum(scorer, [u for u in part[a] if u != t], metric)
            + _sum(scorer, [*part[b], t], metric)
            - current[a]
            - current[b]
            for a, b, t in options
        ]
    )


def _best_moves(
    proposer: PartitionScores, part: list[list[int]], options: list[Move], k: int, metric: str
) -> list[Move]:
    """The ``k`` moves the proposer rates best."""
    gains = _gains(proposer, part, options, metric)
    order = np.argsort(-gains, kind="stable")[:k]
    return [options[i] for i in order]


def _sum(scorer: PartitionScores, group: Sequence[int], metric: str) -> float:
    """Summed per-task score of ``group`` under its own model (NaN tasks count 0)."""
    loss, auc = scorer.group(group)
    return float(np.nansum(auc)) if metric == "auc" else -float(np.nansum(loss))
