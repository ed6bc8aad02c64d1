"""Train one model per selected (possibly overlapping) task group; serve each task by validation.

TAG's network selection (:func:`graphtag.baselines.select_groups`) chooses groups that may
overlap, so a task can be served by several models. :func:`fit_selected_groups` trains every
chosen group with the grouped-training recipe of :func:`~graphtag.grouping.fit_groups` and lets
each task use the model that predicts it best on ITS validation rows (never on test rows).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from tqdm.auto import tqdm

from ..errors import GraphtagError
from ..metrics import roc_auc_scores
from ..models import GraphInputs
from ..training import TrainConfig, per_task_bce
from ._evaluate import group_model_logits

__all__ = ["SelectedGroupsResult", "assign_by_validation", "fit_selected_groups"]

#: Validation ROC-AUCs closer than this count as a tie (then validation BCE decides).
AUC_TIE_TOL = 1e-12


@dataclass(frozen=True)
class SelectedGroupsResult:
    """Outcome of :func:`fit_selected_groups`.

    Attributes:
        logits: float32 ``[N, T]`` (CPU): column ``t`` is the logits of task ``t`` from the
            model of ``groups[assignment[t]]``.
        groups: The groups that were trained, ``[G]`` lists of task indices: the given groups
            in the given order, then one singleton ``[t]`` for every task no given group
            contains (in increasing ``t``).
        assignment: ``[T]`` index into ``groups`` of the model serving each task.
        val_auc: float64 ``[T]``: validation ROC-AUC of each task under its serving model
            (NaN where the task's validation rows lack a class).
        val_loss: float64 ``[T]``: validation BCE of each task under its serving model (NaN
            where the task has no validation row).
        group_val_auc: float64 ``[G, T]``: validation ROC-AUC of task ``t`` under group ``g``'s
            model, NaN where ``t`` is not in ``groups[g]``.
        group_val_loss: float64 ``[G, T]``: the same for validation BCE.
        added_singletons: The tasks that no given group contained.
    """

    logits: Tensor
    groups: list[list[int]]
    assignment: list[int]
    val_auc: np.ndarray
    val_loss: np.ndarray
    group_val_auc: np.ndarray
    group_val_loss: np.ndarray
    added_singletons: list[int]

    def partition(self) -> list[list[int]]:
        """The tasks each trained model serves, a partition of ``0..T-1``.

        Returns:
            One sorted list per model that serves at least one task, ordered by smallest task.
        """
        blocks: dict[int, list[int]] = {}
        for t, g in enumerate(self.assignment):
            blocks.setdefault(g, []).append(t)
        return sorted(blocks.values(), key=lambda b: b[0])


def _check_groups(groups: Sequence[Sequence[int]], num_tasks: int) -> list[list[int]]:
    if isinstance(groups, (str, bytes, Tensor)) or not isinstance(groups, Sequence):
        raise GraphtagError(
            f"groups must be a list of task-index lists, got {type(groups).__name__}"
        )
    out: list[list[int]] = []
    for k, group in enumerate(groups):
        try:
            if isinstance(group, (str, bytes)):
                raise TypeError
            items = list(group)
        except TypeError:
            raise GraphtagError(
                f"group {k} must be a list of task indices, got {type(group).__name__}"
            ) from None
        tasks = []
        for t in items:
            try:
                if isinstance(t, bool):
                    raise TypeError
                tasks.append(operator.index(t))
            except TypeError:
                raise GraphtagError(f"group {k} has a non-integer task index {t!r}") from None
            if not 0 <= tasks[-1] < num_tasks:
                raise GraphtagError(
                    f"task {tasks[-1]} in group {k} is out of range: the dataset has "
                    f"{num_tasks} tasks (0..{num_tasks - 1})"
                )
        if not tasks:
            raise GraphtagError(f"group {k} is empty; every group needs at least one task")
        if len(set(tasks)) != len(tasks):
            raise GraphtagError(f"group {k} lists a task twice: {tasks}")
        out.append(tasks)
    return out


def assign_by_validation(
    members: np.ndarray, val_auc: np.ndarray, val_loss: np.ndarray
) -> np.ndarray:
    """Each task's serving group: best validation ROC-AUC, then lowest validation BCE.

    For task ``t`` the candidates are the groups containing it. The highest ROC-AUC wins;
    ROC-AUCs within :data:`AUC_TIE_TOL` of the best tie, and the tie (or an undefined ROC-AUC,
    which is undefined for every group alike since it depends only on the labels) is broken by
    the lowest validation BCE, then by the lowest group index (also when the task has no
    validation row at all).

    Args:
        members: bool ``[G, T]``, ``members[g, t]``: task ``t`` is in group ``g``; every column
            has a ``True``.
        val_auc: float ``[G, T]`` validation ROC-AUC (NaN: undefined or not a member).
        val_loss: float ``[G, T]`` validation BCE (NaN: no validation row or not a member).

    Returns:
        int64 ``[T]`` group index of each task.

    Example:
        >>> m = np.array([[True, True], [True, False]])
        >>> auc = np.array([[0.7, 0.6], [0.8, np.nan]])
        >>> loss = np.array([[0.5, 0.4], [0.6, np.nan]])
        >>> assign_by_validation(m, auc, loss).tolist()
        [1, 0]
    """
    members = np.asarray(members, dtype=bool)
    if not members.any(0).all():
        raise GraphtagError("assign_by_validation: a task is in no group")
    auc = np.where(members & ~np.isnan(val_auc), val_auc, -np.inf)
    best_auc = auc.max(0)  # [T]
    cand = members & ((auc >= best_auc - AUC_TIE_TOL) | ~np.isfinite(best_auc))
    loss = np.where(cand & ~np.isnan(val_loss), val_loss, np.inf)
    best_loss = loss.min(0)
    cand &= (loss <= best_loss) | ~np.isfinite(best_loss)
    return np.argmax(cand, axis=0).astype(np.int64)  # first True: lowest index


def fit_selected_groups(
    data: Data,
    inputs: GraphInputs,
    groups: Sequence[Sequence[int]],
    config: TrainConfig,
    *,
    seed: int = 0,
    init: nn.Module | None = None,
    cache: Callable[[Sequence[int], Callable[[], Tensor]], Tensor] | None = None,
    progress: bool = False,
) -> SelectedGroupsResult:
    """Train one model per (possibly overlapping) group; serve each task by its best group.

    Every group is trained like :func:`~graphtag.grouping.fit_groups` trains a group
    (:func:`~graphtag.training.fit_model` on the group's tasks with ``config`` and ``seed``,
    ``select="auto"``, then exact logits of all nodes), so a group that also appears in a
    partition reuses the same model through ``cache``. Identical groups (same tasks in the same
    order) are trained once. Tasks that no group contains get a singleton model of their own
    (appended after the given groups), so every task is served.

    Each task ``t`` is then served by the group, among those containing it, whose model has the
    best ROC-AUC on ``t``'s validation rows; ties and undefined ROC-AUC (a single class in
    validation) are decided by the lowest validation BCE of ``t``, then by the lowest group
    index (see :func:`assign_by_validation`). Test labels are never read.

    Args:
        data: The multi-label graph (``y``, ``train_mask``, ``val_mask`` ``[N, T]``).
        inputs: Prepared model inputs.
        groups: Task groups, each a non-empty list of distinct task indices; groups may
            overlap and need not cover every task.
        config: Training recipe of every group model.
        seed: Seed of every group model (the same seed for each group).
        init: Optional warm start (see :func:`graphtag.training.fit_model`); the warm start
            itself is then a checkpoint (epoch 0), kept when no epoch beats it on validation.
        cache: Optional ``cache(tasks, compute) -> logits [N, len(tasks)]`` wrapper that
            reuses finished group models (the pipeline's per-model checkpoint).
        progress: Progress bar over groups.

    Returns:
        A :class:`SelectedGroupsResult` (logits ``[N, T]``, assignment ``[T]``, per-task and
        per-(group, task) validation scores).

    Raises:
        GraphtagError: An empty group, a task index out of range or repeated in a group, or a
            non-list ``groups``.

    Example:
        >>> from graphtag.data import make_multilabel_graph
        >>> from graphtag.models import prepare_inputs
        >>> data = make_multilabel_graph(num_nodes=200, num_tasks=4, num_groups=2, seed=0)
        >>> config = TrainConfig(hidden_channels=8, epochs=2, device="cpu")
        >>> inputs = prepare_inputs(data, config.model_config, "cpu")
        >>> res = fit_selected_groups(data, inputs, [[0, 1, 2], [1, 2, 3]], config, seed=0)
        >>> res.logits.shape, len(res.assignment), res.assignment[0], res.assignment[3]
        (torch.Size([200, 4]), 4, 0, 1)
    """
    num_nodes, num_tasks = data.y.shape
    given = _check_groups(groups, int(num_tasks))
    covered = np.zeros(num_tasks, dtype=bool)
    for g in given:
        covered[g] = True
    added = np.nonzero(~covered)[0].tolist()
    all_groups = given + [[t] for t in added]

    y = data.y.float()
    val_mask = data.val_mask.bool()
    num_groups = len(all_groups)
    members = np.zeros((num_groups, num_tasks), dtype=bool)
    group_auc = np.full((num_groups, num_tasks), math.nan)
    group_loss = np.full((num_groups, num_tasks), math.nan)
    outputs: list[Tensor] = []
    trained: dict[tuple[int, ...], int] = {}
    for k, tasks in enumerate(tqdm(all_groups, desc="selected groups", disable=not progress)):
        members[k, tasks] = True
        key = tuple(tasks)
        if key in trained:
            j = trained[key]
            outputs.append(outputs[j])
            group_auc[k], group_loss[k] = group_auc[j], group_loss[j]
            continue

        def compute(tasks: list[int] = tasks) -> Tensor:
            return group_model_logits(data, inputs, tasks, config, seed, init)

        out = cache(tasks, compute) if cache is not None else compute()
        out = out.detach().float().cpu()
        if tuple(out.shape) != (num_nodes, len(tasks)):
            raise GraphtagError(
                f"the model of group {k} returned logits of shape {tuple(out.shape)}; expected "
                f"[{num_nodes}, {len(tasks)}] (a stale cache entry? restart the run)"
            )
        cols = torch.tensor(tasks)
        vm = val_mask.index_select(1, cols)
        group_auc[k, tasks] = roc_auc_scores(y.index_select(1, cols), out, vm).numpy()
        group_loss[k, tasks] = per_task_bce(out, y.index_select(1, cols), vm).double().numpy()
        outputs.append(out)
        trained[key] = k

    assign = assign_by_validation(members, group_auc, group_loss)
    logits = torch.full((num_nodes, num_tasks), math.nan)
    for k, tasks in enumerate(all_groups):  # one copy per group, not per task
        served = [j for j, t in enumerate(tasks) if assign[t] == k]
        if served:
            logits[:, [tasks[j] for j in served]] = outputs[k][:, served]
    rows = np.arange(num_tasks)
    return SelectedGroupsResult(
        logits=logits,
        groups=all_groups,
        assignment=assign.tolist(),
        val_auc=group_auc[assign, rows],
        val_loss=group_loss[assign, rows],
        group_val_auc=group_auc,
        group_val_loss=group_loss,
        added_singletons=added,
    )
