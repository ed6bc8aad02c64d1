"""Turn raw edges and labels into graphtag's multi-label PyG ``Data`` and validate it.

Contract of a multi-label graph (every loader returns one):

* ``x``: float32 ``[N, F]`` node features (see :mod:`graphtag.data._features`: the source's
  attributes, a graph embedding, or both);
* ``edge_index``: int64 ``[2, E]``, undirected (both directions), deduplicated, no self-loops;
* ``y``: float32 ``[N, T]`` with values in {0, 1};
* ``train_mask``, ``val_mask``, ``test_mask``: bool ``[N, T]``, disjoint, covering every node for
  every task (each task's positives and negatives split 20/20/60 separately);
* ``task_names``: list of ``T`` strings; ``name``: dataset name;
* ``meta``: dict with provenance and cleaning counts (``self_loops_removed``,
  ``duplicate_edges_removed``, ``split_seed``, ...) and ``features``, the resolved feature recipe
  (:func:`~graphtag.data.node_features`);
* ``planted_groups`` (synthetic data only): list of lists of task indices, a partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..errors import GraphtagError
from ._features import node_features
from ._splits import per_task_split

__all__ = ["build_multilabel_graph", "check_multilabel_graph", "clean_edges", "task_warnings"]

MIN_TRAIN_POSITIVES = 5
_CHECK_BLOCK = 1 << 22  # (node, task) entries per block of the mask-overlap check


def clean_edges(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, dict[str, int]]:
    """Make ``edge_index`` undirected, deduplicated and free of self-loops.

    One sort: every non-loop input edge contributes both directions as a key ``row * N + col``;
    the sorted distinct keys are the output, in (row, col) order. Vectorised (numpy's sort),
    ``O(E log E)``.

    Args:
        edge_index: int64 ``[2, E]``, any direction convention, ids in ``[0, num_nodes)``.
        num_nodes: Number of nodes.

    Returns:
        The cleaned ``[2, E']`` edges, sorted by (row, col), and counts
        ``{"self_loops_removed", "duplicate_edges_removed", "num_undirected_edges"}``.
        Duplicates are counted as repeated undirected pairs among the input lines.
    """
    if edge_index.numel() == 0:
        return edge_index.reshape(2, 0).long(), {
            "self_loops_removed": 0,
            "duplicate_edges_removed": 0,
            "num_undirected_edges": 0,
        }
    src, dst = (v.numpy() for v in edge_index.long().cpu().unbind(0))
    keep = src != dst
    src, dst = src[keep], dst[keep]
    num_kept = src.size
    keys = np.empty(2 * num_kept, dtype=np.int64)
    np.multiply(src, num_nodes, out=keys[:num_kept])
    keys[:num_kept] += dst
    np.multiply(dst, num_nodes, out=keys[num_kept:])
    keys[num_kept:] += src
    del src, dst
    keys.sort()
    if keys.size:
        first = np.empty(keys.size, dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        keys = keys[first]
    num_undirected = keys.size // 2  # every pair appears once per direction
    row, col = np.divmod(keys, num_nodes)
    return torch.from_numpy(np.stack([row, col])), {
        "self_loops_removed": int(edge_index.size(1) - num_kept),
        "duplicate_edges_removed": int(num_kept - num_undirected),
        "num_undirected_edges": int(num_undirected),
    }


def _float_labels(y: Tensor, name: str) -> Tensor | None:
    """``y`` as float after checking it is 0/1; ``None`` for bool labels (0/1 already)."""
    # Bool labels are 0/1 by construction; their float copy is made after the split, which then
    # does not hold it (2 GiB at 1M nodes x 500 tasks).
    yf = None if y.dtype == torch.bool else y.float()
    if yf is not None:
        if not torch.isfinite(yf).all():
            raise GraphtagError(f"{name}: labels contain NaN or inf; labels must be 0 or 1")
        bad = (yf != 0) & (yf != 1)
        if bad.any():
            i, t = (int(v) for v in bad.nonzero()[0])
            value = float(yf[i, t])
            raise GraphtagError(
                f"{name}: label of node {i}, task {t} is {value!r}; labels must be 0 or 1"
            )
    return yf


def build_multilabel_graph(
    edge_index: Tensor,
    y: Tensor,
    *,
    name: str,
    x: Tensor | None = None,
    task_names: Sequence[str] | None = None,
    seed: int = 0,
    features: str | None = None,
    feature_dim: int | None = None,
    meta: dict[str, Any] | None = None,
    masks: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Data:
    """Assemble and validate a multi-label graph from raw parts.

    Args:
        edge_index: int64 ``[2, E]`` raw edges (duplicates, self-loops, one or both directions
            allowed: they are cleaned and counted in ``meta``).
        y: ``[N, T]`` labels in {0, 1} (any numeric or bool dtype).
        name: Dataset name.
        x: Optional ``[N, F]`` node attributes.
        task_names: ``T`` names (default ``"task_0"``, ...).
        seed: Seed of the per-task split and of the embedding.
        features: Feature recipe (:func:`~graphtag.data.node_features`): ``"auto"`` (an
            embedding, concatenated with ``x`` when given: what the dataset loaders use),
            ``"given"``, ``"prone"``, ``"structural"``, ``"given+prone"``, ... ``None`` (the
            default): ``x`` as given when given, else ``"auto"``.
        feature_dim: Width of the embedding (default: the method's).
        meta: Extra provenance to keep in ``data.meta``.
        masks: Optional official ``(train, val, test)`` boolean masks ``[N, T]`` (or ``[N]``,
            broadcast to every task) used instead of the per-task random split.

    Returns:
        A validated :class:`torch_geometric.data.Data` (see the module docstring).
    """
    if y.dim() != 2:
        raise GraphtagError(f"{name}: labels must have shape [N, T], got {tuple(y.shape)}")
    num_nodes, num_tasks = y.shape
    if num_tasks == 0:
        raise GraphtagError(f"{name}: the dataset has no tasks (label matrix has 0 columns)")
    yf = _float_labels(y, name)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise GraphtagError(
            f"{name}: edge_index must have shape [2, E], got {tuple(edge_index.shape)}"
        )
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise GraphtagError(
            f"{name}: edge endpoints must lie in [0, {num_nodes}); got range "
            f"[{int(edge_index.min())}, {int(edge_index.max())}]"
        )
    ei, counts = clean_edges(edge_index, num_nodes)
    info: dict[str, Any] = dict(meta or {})
    info.update(counts)
    if x is not None and (x.dim() != 2 or x.size(0) != num_nodes):
        raise GraphtagError(
            f"{name}: features must have shape [N={num_nodes}, F], got {tuple(x.shape)}"
        )
    try:
        recipe = features if features is not None else ("auto" if x is None else "given")
        x, info["features"] = node_features(
            ei, num_nodes, features=recipe, given=x, dim=feature_dim, seed=seed
        )
    except GraphtagError as exc:
        raise GraphtagError(f"{name}: {exc}") from None
    if masks is None:
        train, val, test = per_task_split(y if yf is None else yf, seed=seed)
        info["split"] = "per-task stratified 20/20/60"
        info["split_seed"] = seed
    else:
        train, val, test = (
            (m.bool().unsqueeze(1).expand(-1, num_tasks) if m.dim() == 1 else m.bool()).contiguous()
            for m in masks
        )
        info.setdefault("split", "official")
    names = list(task_names) if task_names is not None else [f"task_{t}" for t in range(num_tasks)]
    if len(names) != num_tasks:
        raise GraphtagError(f"{name}: {len(names)} task names for {num_tasks} tasks")
    if yf is None:
        yf = y.float()
    data = Data(
        x=x.contiguous(),
        edge_index=ei,
        y=yf.contiguous(),
        train_mask=train,
        val_mask=val,
        test_mask=test,
        num_nodes=num_nodes,
    )
    data.task_names = [str(n) for n in names]
    data.name = name
    data.meta = info
    check_multilabel_graph(data)
    return data


def _masks_overlap(train: Tensor, val: Tensor, test: Tensor) -> bool:
    """Whether two of the ``[N, T]`` masks share a (node, task).

    Works on the flat bytes in blocks of ``_CHECK_BLOCK``, eight entries at a time (bool bytes
    are 0 or 1, so word-wise ``&``/``|`` equal entry-wise ones): a few passes over cache-sized
    blocks instead of full-size temporaries.
    """
    flat = [m.reshape(-1).cpu().numpy() for m in (train, val, test)]
    step = max(8, _CHECK_BLOCK // 8 * 8)
    for lo in range(0, flat[0].size, step):
        a, b, c = (m[lo : lo + step] for m in flat)
        if a.size % 8 == 0:
            a, b, c = (m.view(np.uint64) for m in (a, b, c))
        if ((a & (b | c)) | (b & c)).any():
            return True
    return False


def check_multilabel_graph(data: Data) -> None:
    """Validate the multi-label graph contract; raise :class:`GraphtagError` naming the defect."""
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        if getattr(data, key, None) is None:
            raise GraphtagError(f"graph is missing {key!r}; build it with build_multilabel_graph")
    n, t = data.y.shape
    if data.x.size(0) != n:
        raise GraphtagError(f"x has {data.x.size(0)} rows but y has {n}")
    for key in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, key)
        if tuple(m.shape) != (n, t) or m.dtype != torch.bool:
            raise GraphtagError(
                f"{key} must be bool [N, T] = [{n}, {t}], got {m.dtype} {tuple(m.shape)}"
            )
    if _masks_overlap(data.train_mask, data.val_mask, data.test_mask):
        raise GraphtagError("train/val/test masks overlap for some (node, task)")
    if data.edge_index.numel() and (data.edge_index[0] == data.edge_index[1]).any():
        raise GraphtagError("edge_index contains self-loops")


def task_warnings(data: Data, min_train_positives: int = MIN_TRAIN_POSITIVES) -> list[str]:
    """Human-readable warnings about tasks with few training positives (they are still trained)."""
    pos = ((data.y > 0.5) & data.train_mask).sum(0)
    out = []
    names = getattr(data, "task_names", None) or [f"task_{i}" for i in range(data.y.size(1))]
    for t in torch.nonzero(pos < min_train_positives).flatten().tolist():
        out.append(
            f"task {t} ({names[t]}) has {int(pos[t])} training positive(s) "
            f"(< {min_train_positives}); its metrics are unreliable"
        )
    return out
