"""Cheap scores of a partition of the tasks: surrogates of the group fine-tunes, or short probes.

Both score a partition task by task: each task gets the validation score of its group's model
(predicted by the group's surrogate, or measured after a short warm-started fine-tune), so a
partition's score is the mean over tasks, comparable with the validation macro ROC-AUC of
trained group models (docs/algorithms.md §8).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import GraphtagError

__all__ = ["PartitionScores", "ProbeScorer", "SurrogateScorer", "partition_key"]

Group = tuple[int, ...]


def partition_key(groups: Sequence[Sequence[int]]) -> tuple[Group, ...]:
    """A hashable, canonical form of a partition (sorted groups, sorted by first task)."""
    return tuple(sorted(tuple(sorted(int(t) for t in g)) for g in groups))


class PartitionScores:
    """Per-task validation loss and ROC-AUC of every group scored so far (memoised by group).

    Subclasses implement :meth:`_score_groups` for groups not seen yet.
    """

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks = num_tasks
        self._cache: dict[Group, tuple[np.ndarray, np.ndarray]] = {}

    def _score_groups(self, groups: list[Group]) -> list[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def groups(self, groups: Sequence[Sequence[int]]) -> None:
        """Score the ``groups`` not scored yet (in one batch)."""
        todo = sorted({tuple(sorted(int(t) for t in g)) for g in groups} - set(self._cache))
        if todo:
            self._cache.update(zip(todo, self._score_groups(todo)))

    def group(self, group: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(loss, auc)`` of the tasks of ``group`` (in sorted order) under its own model."""
        key = tuple(sorted(int(t) for t in group))
        self.groups([key])
        return self._cache[key]

    def base(self) -> tuple[np.ndarray, np.ndarray]:
        """``(loss [T], auc [T])`` of the base model itself: the reference of the scores."""
        raise NotImplementedError

    def per_task(self, partition: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(loss [T], auc [T])`` of every task under its group of ``partition``."""
        part = partition_key(partition)
        self.groups(part)
        loss = np.full(self.num_tasks, np.nan)
        auc = np.full(self.num_tasks, np.nan)
        for g in part:
            loss[list(g)], auc[list(g)] = self._cache[g]
        return loss, auc

    def score(self, partition: Sequence[Sequence[int]], metric: str = "auc") -> float:
        """Higher is better: mean validation ROC-AUC, or minus the mean validation BCE.

        Tasks with an undefined value (one class in validation) are left out.
        """
        loss, auc = self.per_task(partition)
        return float(np.nanmean(auc)) if metric == "auc" else -float(np.nanmean(loss))


class SurrogateScorer(PartitionScores):
    """Partition scores predicted by Grad-TAG surrogates, one per group (no training).

    Each group's surrogate is the offset logistic model of docs/algorithms.md §4 fitted on the
    group's training rows with ridge ``l2``; its validation logits ``o + g . w`` give each task's
    predicted loss and ROC-AUC (:func:`graphtag.estimation.estimate_scores`).

    Args:
        features: Projected gradient features of the base model.
        l2: Ridge (smaller: a longer fine-tune is predicted), relative to the curvature scale
            (:func:`graphtag.estimation.l2_scale`) unless ``relative=False``.
        device: Where to compute (default: the features' device).
        relative: Whether ``l2`` is relative.

    Example:
        >>> from graphtag.estimation import make_synthetic_features
        >>> feats = make_synthetic_features(num_tasks=4, num_groups=2, seed=0)
        >>> scorer = SurrogateScorer(feats, l2=0.1, relative=False)
        >>> planted = scorer.score([[0, 1], [2, 3]])
        >>> planted > scorer.score([[0, 2], [1, 3]])
        True
    """

    def __init__(
        self, features: Any, l2: float, device: Any = None, *, relative: bool = True
    ) -> None:
        from ..estimation import l2_scale, task_statistics

        super().__init__(features.num_tasks)
        self.features = features
        self.device = device
        self.stats = task_statistics(features, device=device)
        self.l2 = float(l2) * (l2_scale(self.stats) if relative else 1.0)

    def _score_groups(self, groups: list[Group]) -> list[tuple[np.ndarray, np.ndarray]]:
        from ..estimation import estimate_scores, fit_surrogates

        fit = fit_surrogates(
            self.features, groups, self.l2, l2_relative=False, stats=self.stats, device=self.device
        )
        losses, auc = estimate_scores(self.features, groups, fit.weights, device=self.device)
        return [(losses[k, list(g)].numpy(), auc[k, list(g)].numpy()) for k, g in enumerate(groups)]

    def base(self) -> tuple[np.ndarray, np.ndarray]:
        """``(loss [T], auc [T])`` of the base model (``w = 0``) on the validation rows."""
        from ..estimation import estimate_scores

        groups = [tuple(range(self.num_tasks))]
        zero = torch.zeros(1, self.features.dim, dtype=torch.float64)
        losses, auc = estimate_scores(self.features, groups, zero, device=self.device)
        return losses[0].numpy(), auc[0].numpy()


class ProbeScorer(PartitionScores):
    """Partition scores measured after a short fine-tune of the base model per group.

    Each group's model starts from the base model (its body and the group's output rows) and
    trains ``epochs`` epochs with the run's recipe without weight averaging (an average over
    two epochs would be nearly the first epoch's weights); the best of the start and those
    epochs on the group's mean validation ROC-AUC is kept, and its per-task validation loss and
    ROC-AUC are the group's scores.

    Args:
        data: The multi-label graph.
        inputs: Its prepared inputs.
        base: The base model (one output per task).
        config: The training recipe (``epochs``, ``patience`` and ``ema_decay`` are replaced).
        epochs: Epochs of each probe.
        seed: Seed of the probes.
        score_mask: ``[N, T]`` bool labels the scores are measured on (default
            ``data.val_mask``, the labels the probes also choose their epoch on).
    """

    def __init__(
        self,
        data: Any,
        inputs: Any,
        base: Any,
        config: Any,
        epochs: int,
        seed: int = 0,
        score_mask: Any = None,
    ) -> None:
        from dataclasses import replace

        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise GraphtagError(f"probe epochs must be a positive integer, got {epochs!r}")
        super().__init__(int(data.y.size(1)))
        self.data, self.inputs, self.base_model, self.seed = data, inputs, base, seed
        self.score_mask = data.val_mask if score_mask is None else score_mask
        self.config = replace(config, epochs=epochs, patience=epochs, ema_decay=0.0)

    def _validation(self, logits: Any, tasks: list[int]) -> tuple[np.ndarray, np.ndarray]:
        from ..metrics import Evaluator
        from ..training import per_task_bce

        y, mask = self.data.y[:, tasks], self.score_mask[:, tasks]
        auc = np.asarray(Evaluator().evaluate(y, logits, mask)["auc"], dtype=np.float64)
        return per_task_bce(logits, y, mask).double().numpy(), auc

    def base(self) -> tuple[np.ndarray, np.ndarray]:
        """``(loss [T], auc [T])`` of the base model on the validation labels."""
        from ..training import predict

        logits = predict(self.base_model, self.inputs, batch_size=self.config.eval_batch_size)
        return self._validation(logits, list(range(self.num_tasks)))

    def _score_groups(self, groups: list[Group]) -> list[tuple[np.ndarray, np.ndarray]]:
        from ..grouping import group_model_logits  # the group models' recipe, shortened

        out = []
        for g in groups:
            tasks = list(g)
            logits = group_model_logits(
                self.data, self.inputs, tasks, self.config, self.seed, self.base_model
            )
            out.append(self._validation(logits, tasks))
        return out
