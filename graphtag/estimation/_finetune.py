"""Real fine-tuning of a task subset from the base model: THE one real-training path.

Every consumer of "train the subset for real" (``check-estimator``, the higher-order and pairwise
affinity methods, the scale benchmarks) goes through :func:`finetune_subset`, so the recipe is
defined in one place: start from theta0 (the base model), train only the subset's outputs with
the base recipe (same optimiser, learning rate and epoch budget, from ``TrainConfig``), select
the checkpoint with the lowest mean validation BCE of the subset's tasks, and report each task's
validation BCE at that checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..models import GraphInputs
from ..training import TrainConfig, fit_model, per_task_bce, predict

__all__ = ["FinetuneResult", "finetune_subset"]


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune_subset`.

    Attributes:
        tasks: The subset (dataset task indices, in the order given).
        val_losses: float64 ``[|S|]`` validation BCE of each task at the selected checkpoint.
        best_epoch: Epoch of the selected checkpoint.
        seconds: Wall-clock seconds of the fine-tune.
    """

    tasks: list[int]
    val_losses: Tensor
    best_epoch: int
    seconds: float


def finetune_subset(
    base_model: nn.Module,
    data: Data,
    inputs: GraphInputs,
    subset: Sequence[int],
    config: TrainConfig,
    *,
    seed: int = 0,
) -> FinetuneResult:
    """Fine-tune ``base_model`` on the tasks of ``subset`` and measure their validation losses.

    Args:
        base_model: theta0, with one output per dataset task (left unchanged).
        data: The multi-label graph.
        inputs: Prepared inputs matching ``base_model``.
        subset: Dataset task indices ``S``.
        config: The base recipe (optimiser settings, epochs, patience).
        seed: Seed of dropout and batching.

    Returns:
        A :class:`FinetuneResult`.
    """
    tasks = [int(t) for t in subset]
    res = fit_model(data, inputs, tasks, config, seed=seed, init=base_model, select="loss")
    val_nodes = torch.nonzero(data.val_mask[:, tasks].any(1)).flatten()
    logits = predict(res.model, inputs, val_nodes, batch_size=config.eval_batch_size)
    losses = per_task_bce(
        logits.double(), data.y[val_nodes][:, tasks].double(), data.val_mask[val_nodes][:, tasks]
    )
    return FinetuneResult(tasks, losses, res.best_epoch, res.seconds)
