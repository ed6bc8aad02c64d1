"""Gradient features of a base model for the train and validation rows of every task."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from tqdm.auto import tqdm

from .._utils import torch_generator
from ..data._validate import as_multilabel
from ..defaults import FEATURE_NODE_BATCH, JVP_CHUNK, MAX_TASK_ROWS
from ..errors import GraphtagError, NumericalError, preview
from ..models._batch import ForwardKwargs
from ..models._config import check_tasks as _check_task_list
from ._batches import BatchSource, node_batches, plan_batches
from ._features import GradientFeatures
from ._jvp import DEFAULT_MAX_CACHE_BYTES, iter_projected_gradients
from ._projector import GradientProjector

__all__ = [
    "MAX_FEATURE_NORM",
    "VAL_SUBSAMPLE_RULE",
    "extract_gradient_features",
    "subsample_val_mask",
]

#: Largest accepted norm of one projected-gradient row (``max_norm`` of
#: :func:`extract_gradient_features`). With entries ``+-1/sqrt(d)`` the projection roughly
#: preserves norms, so a row's norm is about that of the logit's gradient, which is many orders
#: of magnitude below this bound for a trained model on standardised features; only a diverged
#: base model (exploding weights) or huge unscaled inputs reach it, and surrogates fitted on such
#: rows would be meaningless.
MAX_FEATURE_NORM = 1e8

VAL_SUBSAMPLE_RULE = (
    "per task t and class c independently: uniform keys for t's validation nodes (increasing "
    "node order) from torch_generator(seed, 'val_subsample', t); keep the ceil(val_fraction * "
    "n_tc) nodes with the smallest keys"
)

ROW_CAP_RULE = (
    "one uniform key per node from torch_generator(seed, 'row_cap'), shared by all tasks and "
    "both splits; per task and split (validation after val_fraction), when t has n > "
    "max_task_rows rows, n_pos of them positive, keep the min(n_pos, ceil(max_task_rows * "
    "n_pos / n)) positives and the max_task_rows - that many negatives with the smallest keys"
)

#: Default cap on the rows kept per task and split (``max_task_rows`` of
#: :func:`extract_gradient_features`), :data:`graphtag.defaults.MAX_TASK_ROWS`. A surrogate of
#: ``d`` (a few hundred) parameters is fitted on the rows of about ten tasks, so 10,000 rows per
#: task leave hundreds of rows per parameter, while the features, the surrogate's per-task blocks
#: and their cost stop growing with the number of nodes.
DEFAULT_MAX_TASK_ROWS = MAX_TASK_ROWS


def check_tasks(tasks: Sequence[int] | Tensor | None, num_tasks: int) -> Tensor:
    """Validate task indices against ``num_tasks``; return them as int64 ``[T']``."""
    if tasks is None:
        return torch.arange(num_tasks)
    return torch.tensor(_check_task_list(tasks, num_tasks), dtype=torch.long)


def subsample_val_mask(
    val_mask: Tensor, y: Tensor, tasks: Tensor, val_fraction: float, seed: int
) -> Tensor:
    """Seeded, class-stratified subsample of validation nodes, independently per task.

    Rule (:data:`VAL_SUBSAMPLE_RULE`): for task ``t`` (its index in the dataset) and each class,
    draw uniform keys for ``t``'s validation nodes of that class, in increasing node order, from
    ``torch_generator(seed, "val_subsample", t)``, and keep the ``ceil(val_fraction * n)`` nodes
    with the smallest keys. A task's subsample does not depend on which other tasks are selected.

    Args:
        val_mask: bool ``[N, T']`` validation masks of the selected tasks.
        y: ``[N, T']`` labels of the selected tasks.
        tasks: int64 ``[T']`` dataset indices of the selected tasks (seed keys).
        val_fraction: Fraction in ``(0, 1]``; 1 returns ``val_mask`` unchanged.
        seed: Seed of the subsample.

    Returns:
        bool ``[N, T']``, a subset of ``val_mask``.
    """
    if not (0.0 < float(val_fraction) <= 1.0):
        raise GraphtagError(f"val_fraction must lie in (0, 1], got {val_fraction!r}")
    if val_fraction == 1.0:
        return val_mask.clone()
    out = torch.zeros_like(val_mask)
    pos = y > 0.5
    # One generator per task (seeded by the dataset task id); each step is vectorised over nodes.
    for j, t in enumerate(tasks.tolist()):
        col = torch.nonzero(val_mask[:, j]).flatten()
        keys = torch.rand(col.numel(), generator=torch_generator(seed, "val_subsample", t))
        cls = pos[col, j]
        n_pos = int(cls.sum())
        n_neg = col.numel() - n_pos
        # Positives first, each class ordered by key.
        order = torch.argsort(keys - 2.0 * cls.to(keys.dtype))
        k_pos = math.ceil(val_fraction * n_pos)
        k_neg = math.ceil(val_fraction * n_neg)
        chosen = torch.cat([order[:k_pos], order[n_pos : n_pos + k_neg]])
        out[col[chosen], j] = True
    return out


def cap_task_rows(
    mask: Tensor, y: Tensor, max_task_rows: int | None, seed: int, *, task_chunk: int = 64
) -> Tensor:
    """Keep at most ``max_task_rows`` rows per task: a seeded, class-proportional subsample.

    Rule (:data:`ROW_CAP_RULE`): one uniform key per *node*, from ``torch_generator(seed,
    "row_cap")``, shared by every task and split; a task with ``n > max_task_rows`` rows
    (``n_pos`` positive) keeps its ``min(n_pos, ceil(max_task_rows * n_pos / n))`` positives
    and its remaining negatives with the smallest keys. Because the keys are shared, the capped
    tasks keep rows on largely the same nodes, so the gradient pass (whose cost is per node, for
    all tasks at once) shrinks with the cap too. A task's rows do not depend on the other tasks.

    Args:
        mask: bool ``[N, T']`` rows of one split (after any validation subsample).
        y: ``[N, T']`` labels of the same tasks.
        max_task_rows: Most rows kept per task (``None``: ``mask`` is returned as is).
        seed: Seed of the node keys.
        task_chunk: Tasks processed together (memory ``~10 N task_chunk`` bytes).

    Returns:
        bool ``[N, T']``, a subset of ``mask``.

    Raises:
        GraphtagError: When ``max_task_rows`` is not a positive integer or ``None``.

    Example:
        >>> m = torch.ones(10, 2, dtype=torch.bool)
        >>> y = torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 5)
        >>> cap_task_rows(m, y, 4, seed=0).sum(0).tolist()
        [4, 4]
    """
    if max_task_rows is None:
        return mask
    if isinstance(max_task_rows, bool) or not isinstance(max_task_rows, int) or max_task_rows < 1:
        raise GraphtagError(
            f"max_task_rows must be a positive integer or None, got {max_task_rows!r}"
        )
    counts = mask.sum(0)
    if not bool((counts > max_task_rows).any()):
        return mask
    num_nodes = mask.size(0)
    keys = torch.rand(num_nodes, generator=torch_generator(seed, "row_cap"))
    order = torch.argsort(keys)  # nodes by key
    pos = y > 0.5
    n_pos = (mask & pos).sum(0)
    k_pos = torch.minimum(n_pos, torch.ceil(max_task_rows * n_pos / counts.clamp(min=1)).long())
    k_neg = max_task_rows - k_pos
    out = mask.clone()
    for lo in range(0, mask.size(1), task_chunk):
        cols = slice(lo, lo + task_chunk)
        capped = counts[cols] > max_task_rows
        if not bool(capped.any()):
            continue
        m, p = mask[order, cols], pos[order, cols]
        # Rank of each row among its task's rows of the same class, in key order.
        rank_pos = torch.cumsum(m & p, 0, dtype=torch.int32)
        rank_neg = torch.cumsum(m & ~p, 0, dtype=torch.int32)
        keep = m & torch.where(p, rank_pos <= k_pos[cols], rank_neg <= k_neg[cols])
        keep |= m & ~capped  # tasks under the cap keep every row
        out[order, cols] = keep
    return out


def _check_rows(
    grads: Tensor,
    logits: Tensor,
    task: Tensor,
    task_idx: Tensor,
    max_norm: float | None,
    chunk: int,
    num_chunks: int,
) -> None:
    """Refuse NaN/inf or exploding rows of one node chunk, naming tasks and node counts.

    ``grads [k, d]`` and ``logits [k]`` are the kept rows of the chunk, ``task [k]`` their
    position in ``task_idx`` (the dataset task ids).
    """
    norms = grads.double().norm(dim=1)  # float64: a norm of finite float32 rows is finite
    checks: list[tuple[Tensor, str, str]] = [
        (
            ~torch.isfinite(norms) | ~torch.isfinite(logits),
            "NaN/inf projected gradients or base logits",
            "the base model's parameters or the input features hold NaN/inf: check data.x "
            "for NaN/inf and retrain the base model with a lower learning rate",
        )
    ]
    if max_norm is not None:
        huge = torch.isfinite(norms) & (norms > max_norm)
        largest = float(norms[huge].max()) if bool(huge.any()) else 0.0
        checks.append(
            (
                huge,
                f"exploding projected gradients (norm above max_norm={max_norm:g}, largest "
                f"{largest:.3g})",
                "the base model's gradients exploded: retrain it with a lower learning rate or "
                "more weight decay, or standardise data.x (max_norm=None skips this check)",
            )
        )
    for bad, what, hint in checks:
        if not bool(bad.any()):
            continue
        bad = bad.cpu()
        per_task = torch.bincount(task[bad], minlength=task_idx.numel())
        hit = torch.nonzero(per_task).flatten()
        tasks = task_idx[hit].tolist()
        shown = preview([f"{t} ({int(c)} nodes)" for t, c in zip(tasks, per_task[hit].tolist())])
        raise NumericalError(
            f"stage 'gradient features': {what} for {int(per_task.sum())} (node, task) rows "
            f"of tasks [{shown}] in node chunk {chunk} of {num_chunks}; {hint}",
            stage="gradient features",
            tasks=tasks[:5],
        )


def _check_arguments(
    model: object,
    projector: object,
    node_batch_size: object,
    chunk_size: object,
    max_norm: object,
    where: str,
) -> None:
    if not isinstance(model, nn.Module):
        raise GraphtagError(f"{where}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(projector, GradientProjector):
        raise GraphtagError(
            f"{where}: projector must be a GradientProjector (e.g. GradientProjector(seed=0)), "
            f"got {type(projector).__name__}"
        )
    for name, value in (("node_batch_size", node_batch_size), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GraphtagError(f"{where}: {name} must be a positive int, got {value!r}")
    if max_norm is not None and not (
        isinstance(max_norm, int | float) and not isinstance(max_norm, bool) and max_norm > 0
    ):
        raise GraphtagError(
            f"{where}: max_norm must be a positive number or None, got {max_norm!r}"
        )


def _feature_rows(
    data: Data,
    task_idx: Tensor,
    val_fraction: float,
    max_task_rows: int | None,
    max_rows: int | None,
    seed: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(y [N, T'], keep [T', 2, N], rows [R, 3])``: the kept (task, split, node) rows, sorted."""
    y = data.y[:, task_idx].cpu()
    train = cap_task_rows(data.train_mask[:, task_idx].cpu(), y, max_task_rows, seed)
    val = subsample_val_mask(data.val_mask[:, task_idx].cpu(), y, task_idx, val_fraction, seed)
    val = cap_task_rows(val, y, max_task_rows, seed)
    keep = torch.stack([train, val]).permute(2, 0, 1)  # [T', 2, N]: (task, split, node)
    rows = keep.nonzero()  # sorted lexicographically by (task, split, node)
    if max_rows is not None and rows.size(0) > max_rows:
        raise GraphtagError(
            f"gradient features would keep {rows.size(0)} rows (> max_rows={max_rows}); pass "
            "val_fraction < 1, a smaller max_task_rows, fewer tasks, or a larger max_rows"
        )
    if rows.size(0) == 0:
        raise GraphtagError(
            "extract_gradient_features: train_mask and val_mask select no (node, task) row of "
            "the requested tasks; check the masks"
        )
    return y, keep, rows


class _RowTable:
    """The kept ``(task, split, node)`` rows and the buffers their features are written to.

    Args:
        keep: bool ``[T', 2, N]`` kept rows; ``rows``: their ``[R, 3]`` indices, sorted.
        dim: Projection dimension; ``dtype``: storage dtype of the features.
    """

    def __init__(self, keep: Tensor, rows: Tensor, dim: int, dtype: torch.dtype) -> None:
        self.keep, self.rows = keep, rows
        self.num_nodes = keep.size(2)
        self.keys = (rows[:, 0] * 2 + rows[:, 1]) * self.num_nodes + rows[:, 2]
        self.nodes = torch.nonzero(keep.any(dim=(0, 1))).flatten()
        self.features = torch.zeros(rows.size(0), dim, dtype=dtype)
        self.offsets = torch.zeros(rows.size(0), dtype=torch.float32)
        self.filled = torch.zeros(rows.size(0), dtype=torch.bool)

    def write(
        self,
        nodes: Tensor,
        logits: Tensor,
        grads: Tensor,
        task_idx: Tensor,
        max_norm: float | None,
        chunk: int,
        num_chunks: int,
    ) -> None:
        """Store the kept rows of one batch (``logits [B, T']``, ``grads [B, T', d]``)."""
        bnodes = nodes.cpu()
        local = self.keep[:, :, bnodes].nonzero()  # (task, split, position in batch)
        dest = torch.searchsorted(
            self.keys, (local[:, 0] * 2 + local[:, 1]) * self.num_nodes + bnodes[local[:, 2]]
        )
        pos_dev = local[:, 2].to(grads.device)
        task_dev = local[:, 0].to(grads.device)
        rows_g, rows_o = grads[pos_dev, task_dev], logits[pos_dev, task_dev]
        _check_rows(rows_g, rows_o, local[:, 0], task_idx, max_norm, chunk, num_chunks)
        self.features[dest] = rows_g.to(device="cpu", dtype=self.features.dtype)
        self.offsets[dest] = rows_o.to(device="cpu", dtype=torch.float32)
        self.filled[dest] = True

    def check_complete(self, where: str) -> None:
        """Raise unless every kept row was written."""
        if bool(self.filled.all()):
            return
        missing = torch.unique(self.rows[~self.filled, 2])
        raise GraphtagError(
            f"{where}: {int((~self.filled).sum())} feature rows were not produced: the batches "
            f"did not cover {missing.numel()} of the needed nodes (first: "
            f"{preview(missing.tolist())}); pass the Data itself, a loader (re-aimed at the "
            "needed nodes) or graphtag's prepared inputs instead of a fixed list of batches"
        )


def _feature_meta(
    projector: GradientProjector,
    model: nn.Module,
    task_idx: Tensor,
    table: _RowTable,
    rows: Tensor,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """What :func:`extract_gradient_features` computed, for ``GradientFeatures.meta``."""
    num_train = int((rows[:, 1] == 0).sum())
    val_fraction, max_task_rows = settings["val_fraction"], settings["max_task_rows"]
    return {
        "projector": {
            "dim": projector.dim,
            "kind": projector.kind,
            "block": projector.block,
            "seed": projector.seed,
            "num_params": projector.num_params_,
        },
        "tasks": task_idx.tolist(),
        "num_nodes": int(table.nodes.numel()),
        "num_rows": rows.size(0),
        "num_train_rows": num_train,
        "num_val_rows": rows.size(0) - num_train,
        "val_fraction": float(val_fraction),
        "val_subsample": VAL_SUBSAMPLE_RULE if val_fraction < 1.0 else "none",
        "val_subsample_seed": settings["seed"],
        "max_task_rows": max_task_rows,
        "row_cap": ROW_CAP_RULE if max_task_rows is not None else "none",
        "chunk_size": settings["chunk_size"],
        "node_batch_size": settings["node_batch_size"],
        "dtype": str(settings["dtype"]).replace("torch.", ""),
        "model": type(model).__name__,
    }


def extract_gradient_features(
    model: nn.Module,
    inputs: BatchSource,
    data: Data,
    projector: GradientProjector,
    *,
    tasks: Sequence[int] | Tensor | None = None,
    node_batch_size: int = FEATURE_NODE_BATCH,
    chunk_size: int = JVP_CHUNK,
    val_fraction: float = 1.0,
    max_task_rows: int | None = MAX_TASK_ROWS,
    max_rows: int | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
    max_norm: float | None = MAX_FEATURE_NORM,
    forward_kwargs: ForwardKwargs = (),
    inexact_ok: bool = False,
    progress: bool = False,
) -> GradientFeatures:
    """Projected gradients and base logits of the train and validation rows of every task.

    Streams the nodes that are train or (kept) validation nodes of some selected task in chunks
    of ``node_batch_size`` (exact batches, eval mode), computes ``g [B, T', d]`` and the base
    logits of the chunk with :func:`compute_projected_gradients`' batched JVPs, and keeps only
    the rows ``(i, t)`` with ``i`` in ``train_t`` or in the kept ``val_t``. The full
    ``N x T x d`` tensor never exists: peak memory is the kept rows plus one chunk. The model's
    parameters, buffers and training flags are left as they were.

    Batches come from ``inputs``, checked as described in :func:`plan_batches`: a PyG ``Data``
    is run whole (one full-graph forward per direction chunk, for graphs that fit), a PyG
    ``NeighborLoader`` / ``NodeLoader`` is re-aimed at the needed nodes with its own sampler,
    and any batching that is not exact by construction is compared once with full-graph
    inference and refused on a mismatch (``inexact_ok=True``: a warning instead).

    Args:
        model: The base model ``theta0``, called as ``model(*args, **kwargs)`` (PyG inputs:
            ``model(x, edge_index, **forward_kwargs)``); its output column ``tasks[j]`` is task
            ``tasks[j]`` of ``data``.
        inputs: A PyG ``Data`` (full-graph batches), a PyG ``NeighborLoader`` / ``NodeLoader``,
            graphtag's prepared inputs (``graphtag.models.prepare_inputs``), or a callable
            ``(nodes, batch_size) -> Iterable[NodeBatch | Data]``.
        data: The labelled graph: ``y`` ``[N]`` or ``[N, T]`` (0/1, any numeric dtype) and bool
            ``train_mask`` / ``val_mask`` ``[N]`` or ``[N, T]`` (checked with
            :func:`graphtag.data.as_multilabel`); ``x`` and ``edge_index`` are the full-graph
            reference for PyG mini-batches.
        projector: A :class:`GradientProjector`; fitted on ``model`` here if it is not fitted.
        tasks: Dataset task indices to featurise (default all); rows are indexed
            ``0..len(tasks)-1`` in this order and ``meta["tasks"]`` records the mapping.
        node_batch_size: Nodes per chunk (memory: ``chunk_size x node_batch_size x hidden``).
        chunk_size: Projection directions per vmapped JVP.
        val_fraction: Fraction of each task's validation nodes to keep, per class (see
            :data:`VAL_SUBSAMPLE_RULE`); 1 keeps all.
        max_task_rows: Most training and most validation rows kept per task: a seeded,
            class-proportional subsample on shared node keys (:func:`cap_task_rows`, seeded by
            ``seed``) where a task has more (``None``: keep all).
        max_rows: Refuse (before any computation) to keep more than this many rows.
        dtype: Storage dtype of the features (float32 or bfloat16).
        seed: Seed of the validation subsample, of the row cap and of a re-aimed loader.
        max_cache_bytes: See :func:`compute_projected_gradients`.
        max_norm: Refuse rows whose gradient norm exceeds this ("exploding" features, see
            :data:`MAX_FEATURE_NORM`); ``None`` disables the bound (NaN/inf are always
            refused).
        forward_kwargs: Attributes of PyG batches passed to ``model`` as keyword arguments:
            names (``("edge_attr",)``) or ``{argument: attribute}``.
        inexact_ok: Use batches that differ from full-graph inference (with a warning).
        progress: Show a progress bar over node chunks.

    Returns:
        :class:`GradientFeatures` sorted by ``(task, split, node)`` (CPU tensors).

    Raises:
        GraphtagError: For bad arguments or data (naming the field and the fix), inexact
            batches, or batches that miss requested nodes.
        NumericalError: At the first node chunk where a kept row's projected gradient or base
            logit is NaN/inf, or its gradient norm exceeds ``max_norm``; the message names
            the tasks and how many of their nodes are affected, and nothing is returned.

    Example:
        >>> from torch_geometric.data import Data
        >>> from torch_geometric.nn import GCN
        >>> g = torch.Generator().manual_seed(0)
        >>> ei = torch.randint(0, 30, (2, 120), generator=g)
        >>> data = Data(x=torch.randn(30, 4, generator=g), edge_index=ei,
        ...             y=torch.randint(0, 2, (30, 3), generator=g),
        ...             train_mask=torch.arange(30) < 15, val_mask=torch.arange(30) >= 15)
        >>> model = GCN(4, 8, num_layers=2, out_channels=3)
        >>> feats = extract_gradient_features(model, data, data, GradientProjector(dim=16))
        >>> feats.features.shape, feats.num_tasks
        (torch.Size([90, 16]), 3)
    """
    t0 = time.perf_counter()
    where = "extract_gradient_features"
    _check_arguments(model, projector, node_batch_size, chunk_size, max_norm, where)
    data = as_multilabel(data, where=where)
    task_idx = check_tasks(tasks, data.y.size(1))
    if not hasattr(projector, "param_names_"):
        projector.fit(model)
    y, keep, rows = _feature_rows(data, task_idx, val_fraction, max_task_rows, max_rows, seed)
    table = _RowTable(keep, rows, projector.dim, dtype)
    plan = plan_batches(inputs, model, data, forward_kwargs=forward_kwargs, seed=seed, where=where)
    batches = node_batches(
        plan,
        model,
        table.nodes,
        node_batch_size,
        forward_kwargs=forward_kwargs,
        inexact_ok=inexact_ok,
        where=where,
    )
    num_chunks = math.ceil(table.nodes.numel() / node_batch_size)
    with tqdm(total=num_chunks, disable=not progress, desc="gradient features") as bar:
        stream = iter_projected_gradients(
            model,
            batches,
            projector,
            chunk_size=chunk_size,
            tasks=None if tasks is None else task_idx,
            max_cache_bytes=max_cache_bytes,
            inexact_ok=inexact_ok,
        )
        for chunk, (batch, logits, grads) in enumerate(stream, start=1):
            if logits.size(1) != task_idx.numel():
                raise GraphtagError(
                    f"{where}: the model has {logits.size(1)} outputs but data has "
                    f"{data.y.size(1)} tasks; pass tasks= to select the model's columns"
                )
            table.write(batch.nodes, logits, grads, task_idx, max_norm, chunk, num_chunks)
            bar.update(1)
    table.check_complete(where)
    settings = {
        "val_fraction": val_fraction,
        "max_task_rows": max_task_rows,
        "seed": seed,
        "chunk_size": chunk_size,
        "node_batch_size": node_batch_size,
        "dtype": dtype,
    }
    meta = _feature_meta(projector, model, task_idx, table, rows, settings)
    meta["seconds"] = time.perf_counter() - t0
    task, node = rows[:, 0], rows[:, 2]
    return GradientFeatures(
        features=table.features,
        offsets=table.offsets,
        labels=y[node, task].float(),
        task=task,
        node=node,
        split=rows[:, 1].to(torch.int8),
        num_tasks=int(task_idx.numel()),
        meta=meta,
    )
