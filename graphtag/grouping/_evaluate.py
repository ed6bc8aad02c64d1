"""Score predictions the reporting way and train one model per task group."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from tqdm.auto import tqdm

from ..metrics import Evaluator, tune_thresholds
from ..models import GraphInputs
from ..training import TrainConfig, fit_model, predict

__all__ = ["evaluate_logits", "fit_groups", "group_model_logits"]


def _nan_to_none(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def evaluate_logits(
    data: Data, logits: Tensor, tasks: Sequence[int] | None = None
) -> dict[str, Any]:
    """Test metrics of logits, with per-task thresholds tuned on validation.

    Args:
        data: The multi-label graph.
        logits: ``[N, T]`` logits of every task, or ``[N, len(tasks)]`` when ``tasks`` is given.
        tasks: Dataset task indices of the columns of ``logits`` (default: all tasks).

    Returns:
        ``{"metrics": {macro_auc, macro_ap, macro_f1, macro_f1_tuned}, "per_task": [...]}`` where
        each per-task entry holds ``task``, ``name``, ``auc``, ``ap``, ``f1``, ``f1_tuned``,
        ``train_positives`` (``None`` where a metric is undefined: a single class in the test
        mask).
    """
    cols = list(range(data.y.size(1))) if tasks is None else [int(t) for t in tasks]
    y = data.y[:, cols]
    val_mask, test_mask = data.val_mask[:, cols], data.test_mask[:, cols]
    thresholds = tune_thresholds(y, logits, val_mask)
    out = Evaluator().evaluate(y, logits, test_mask, thresholds)
    train_pos = ((y > 0.5) & data.train_mask[:, cols]).sum(0).tolist()
    names = list(getattr(data, "task_names", [str(t) for t in range(data.y.size(1))]))
    per_task = [
        {
            "task": t,
            "name": names[t],
            "auc": _nan_to_none(out["auc"][j]),
            "ap": _nan_to_none(out["ap"][j]),
            "f1": _nan_to_none(out["f1"][j]),
            "f1_tuned": _nan_to_none(out["f1_tuned"][j]),
            "train_positives": int(train_pos[j]),
        }
        for j, t in enumerate(cols)
    ]
    metrics = {
        k: _nan_to_none(out[k]) for k in ("macro_auc", "macro_ap", "macro_f1", "macro_f1_tuned")
    }
    skipped = [cols[j] for j in out.get("skipped", [])]
    return {"metrics": metrics, "per_task": per_task, "skipped": skipped}


def fit_groups(
    data: Data,
    inputs: GraphInputs,
    groups: Sequence[Sequence[int]],
    config: TrainConfig,
    *,
    seed: int = 0,
    init: nn.Module | None = None,
    cache: Callable[[Sequence[int], Callable[[], Tensor]], Tensor] | None = None,
    progress: bool = False,
) -> Tensor:
    """Train one model per group and assemble every task's logits from its group's model.

    Args:
        data: The multi-label graph.
        inputs: Prepared model inputs.
        groups: A partition of the tasks.
        config: Training recipe of every group model.
        seed: Seed of every group model (the same seed for each group).
        init: Optional warm start (see :func:`graphtag.training.fit_model`); the warm start
            itself is then a checkpoint (epoch 0), kept when no epoch beats it on validation.
        cache: Optional ``cache(tasks, compute) -> logits`` wrapper that reuses finished group
            models (the pipeline passes one that checkpoints each model's logits).
        progress: Show a progress bar over the groups.

    Returns:
        float32 logits ``[N, T]`` (on the CPU).
    """
    num_nodes, num_tasks = data.y.shape
    logits = torch.full((num_nodes, num_tasks), float("nan"))
    for group in tqdm(groups, desc="group models", unit="model", disable=not progress):
        tasks = [int(t) for t in group]

        def compute(tasks: list[int] = tasks) -> Tensor:
            return group_model_logits(data, inputs, tasks, config, seed, init)

        out = cache(tasks, compute) if cache is not None else compute()
        logits[:, tasks] = out
    return logits


def group_model_logits(
    data: Data,
    inputs: GraphInputs,
    tasks: list[int],
    config: TrainConfig,
    seed: int,
    init: nn.Module | None,
) -> Tensor:
    """Exact logits ``[N, len(tasks)]`` of one group's model (the recipe of every group model).

    Selection on the group's mean validation ROC-AUC (the loss when no task of the group has
    both classes in validation); a warm start is itself a checkpoint (epoch 0).
    """
    res = fit_model(
        data,
        inputs,
        tasks,
        config,
        seed=seed,
        init=init,
        select="auto",
        evaluate_init=init is not None,
    )
    return predict(res.model, inputs, batch_size=config.eval_batch_size)
