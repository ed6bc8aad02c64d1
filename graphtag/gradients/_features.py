"""Container of projected gradient features, indexed by (node, task) rows."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TRAIN", "VAL", "GradientFeatures"]

TRAIN = 0
VAL = 1


@dataclass
class GradientFeatures:
    """Projected gradients ``g[i, t] = P^T grad f_t(x_i; theta0)`` for labelled (node, task) rows.

    Only rows needed by Grad-TAG are kept: the training rows of every task (to fit surrogates) and
    its validation rows (to estimate losses), possibly subsampled (``meta["val_subsample"]``).
    Rows are sorted by ``(task, split, node)``.

    Shapes:
        R = number of kept rows, d = projection dimension, T = number of tasks.

    Attributes:
        features: ``[R, d]`` float32 (or bfloat16) projected gradients.
        offsets: ``[R]`` float32 base-model logits ``o[i, t]`` (eval mode).
        labels: ``[R]`` float32 labels in {0, 1}.
        task: ``[R]`` int64 task index of each row (``0..T-1``, indices into the task list that
            was featurised, which is all tasks of the dataset unless stated otherwise).
        node: ``[R]`` int64 node id of each row.
        split: ``[R]`` int8, :data:`TRAIN` (0) or :data:`VAL` (1).
        num_tasks: ``T``.
        meta: Provenance (projection seed and dimension, parameter block, model config, ...).

    Example:
        >>> from graphtag.estimation import make_synthetic_features
        >>> feats = make_synthetic_features(num_tasks=2, train_rows=3, val_rows=2, dim=4)
        >>> feats.dim, feats.rows(task=1, split=VAL).tolist()
        (4, [8, 9])
    """

    features: Tensor
    offsets: Tensor
    labels: Tensor
    task: Tensor
    node: Tensor
    split: Tensor
    num_tasks: int
    meta: dict

    @property
    def dim(self) -> int:
        """Projection dimension ``d``."""
        return int(self.features.size(1))

    def rows(self, task: int, split: int) -> Tensor:
        """Indices of the rows of ``task`` in ``split`` (int64 ``[n]``)."""
        return torch.nonzero((self.task == task) & (self.split == split)).flatten()

    def to(self, device: torch.device | str) -> GradientFeatures:
        """A copy with every tensor moved to ``device``."""
        return GradientFeatures(
            self.features.to(device),
            self.offsets.to(device),
            self.labels.to(device),
            self.task.to(device),
            self.node.to(device),
            self.split.to(device),
            self.num_tasks,
            dict(self.meta),
        )
