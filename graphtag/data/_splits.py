"""Per-task stratified train/validation/test masks.

Every task ``t`` draws one uniform key per node from its own generator
(``torch_generator(seed, "per_task_split", t)``, float32 ``torch.rand``: multiples of
``2^-24``). Within each class (positives, negatives) of the task, nodes are ranked by
(key, node index); the first ``n_train`` ranks train, the next ``n_val`` validate, the rest
test. This is a uniformly random split of each class with exact counts.

The ranks are found without sorting: keys fall into ``2^_BUCKET_BITS`` equal buckets, a
histogram per (task, class) locates the buckets that hold the train/validation and
validation/test boundaries, every node outside those buckets is classified from its bucket alone,
and only the few nodes inside them (about ``4 N / 2^_BUCKET_BITS`` per task) are sorted. Tasks are
processed in chunks of about ``_CHUNK_ELEMENTS`` (node, task) pairs; since every task has its own
key stream, neither the chunking nor the other tasks change a task's split.

Cost: ``O(N T)`` element-wise work (about a dozen passes, no sort of all nodes); memory: the
three ``[N, T]`` masks, a transposed copy of the labels and about ``16 x _CHUNK_ELEMENTS`` bytes
of reused chunk buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._utils import torch_generator
from ..errors import GraphtagError

__all__ = ["per_task_split"]

_CHUNK_ELEMENTS = 1 << 24  # (node, task) pairs per chunk of tasks
_BUCKET_BITS = 12  # key buckets per (task, class): 4096
_KEY_BITS = 24  # torch.rand float32 keys are multiples of 2^-24

# Category codes of the per-bucket lookup table.
_TRAIN, _VAL, _TEST, _BOUNDARY = 0, 1, 2, 3


def _split_counts(n: Tensor, ratios: tuple[float, float, float]) -> tuple[Tensor, Tensor]:
    """Number of train and validation items out of ``n`` (per task and class).

    Rounds to nearest; when a class has at least 3 members, train and validation get at least one
    each; with 1 or 2 members, train gets the first one and validation the second.
    """
    r_train, r_val, _ = ratios
    n_train = torch.round(n * r_train).long()
    n_val = torch.round(n * r_val).long()
    small = n < 3
    n_train = torch.where(small, (n >= 1).long(), n_train.clamp(min=1))
    n_val = torch.where(small, (n >= 2).long(), n_val.clamp(min=1))
    return n_train, n_val


def _task_keys(num_nodes: int, tasks: range, seed: int, out: Tensor | None = None) -> np.ndarray:
    """Uniform keys ``[len(tasks), N]`` float32, row ``i`` from task ``tasks[i]``'s generator.

    Args:
        num_nodes: Number of nodes ``N``.
        tasks: Task indices (each selects its key stream).
        seed: Seed of the split.
        out: Optional contiguous float32 buffer of at least ``len(tasks) * N`` elements.
    """
    size = len(tasks) * num_nodes
    keys = (torch.empty(size) if out is None else out[:size]).view(len(tasks), num_nodes)
    for i, t in enumerate(tasks):  # one generator call per task; the work is in torch.rand
        torch.rand(num_nodes, generator=torch_generator(seed, "per_task_split", t), out=keys[i])
    return keys.numpy()


def _split_chunk(
    pos: np.ndarray,
    tasks: range,
    ratios: tuple[float, float, float],
    seed: int,
    work: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation masks ``[c, N]`` (task-major) of one chunk of ``c`` tasks.

    Element-wise work is done by numpy in the reused buffers of ``work`` (fresh allocations of
    this size cost a page fault per 4 KiB; numpy's casts and gathers are also faster than
    torch's CPU kernels here).

    Args:
        pos: ``[c, N]`` bool, positives of the chunk's tasks (task-major, C-contiguous).
        tasks: The chunk's task indices (they select the key streams).
        ratios: Split fractions.
        seed: Seed of the split.
        work: Flat buffers of at least ``c * N`` elements: ``keys`` (float32 tensor), ``ids``
            (int64), ``category`` (int8), ``train``, ``val`` and ``flag`` (bool). The returned
            masks are views of ``train`` and ``val``.
    """
    c, num_nodes = pos.shape
    size = c * num_nodes
    num_buckets = 1 << _BUCKET_BITS
    keys = _task_keys(num_nodes, tasks, seed, out=work["keys"])
    ids, category, train, val, flag = (
        work[k][:size].reshape(c, num_nodes) for k in ("ids", "category", "train", "val", "flag")
    )
    # Slot of every (task, node): ((task * buckets + floor(key * buckets)) << 1) | class. Scaling
    # by a power of two is exact, so bucket order agrees with key order. int64 slots index the
    # lookup table below without a hidden cast.
    np.multiply(keys, num_buckets, out=ids, casting="unsafe")
    ids += np.arange(0, c * num_buckets, num_buckets)[:, None]
    ids <<= 1
    ids |= pos.view(np.uint8)
    hist = torch.bincount(torch.from_numpy(ids.reshape(-1)), minlength=2 * c * num_buckets)
    hist = hist.numpy().reshape(c, num_buckets, 2).transpose(0, 2, 1)  # [task, class, bucket]
    cum = hist.cumsum(-1)
    n_train, n_val = _split_counts(torch.from_numpy(cum[:, :, -1]), ratios)
    first = n_train.numpy()[:, :, None]  # [c, 2, 1] rank limits of train and validation
    second = first + n_val.numpy()[:, :, None]
    # Buckets holding the item of rank first-1 / second-1 (the first bucket whose cumulative
    # count reaches first / second); items before them are below that limit, items after above.
    b1 = (cum < first).sum(-1, keepdims=True)
    b2 = (cum < second).sum(-1, keepdims=True)
    bucket = np.arange(num_buckets)
    table = np.full((c, 2, num_buckets), _TEST, dtype=np.int8)
    table[np.broadcast_to(bucket < b2, table.shape)] = _VAL
    table[np.broadcast_to(bucket < b1, table.shape)] = _TRAIN
    table[(bucket == b1) | (bucket == b2)] = _BOUNDARY
    # Same layout as the slots: [task, bucket, class].
    np.take(table.transpose(0, 2, 1).reshape(-1), ids, out=category, mode="clip")
    np.equal(category, _TRAIN, out=train)
    np.equal(category, _VAL, out=val)
    # Items in a boundary bucket: exact rank by (key, node index) inside their bucket.
    flat = np.flatnonzero(np.equal(category, _BOUNDARY, out=flag))
    if flat.size:
        slot = ids.reshape(-1)[flat]
        shift = _KEY_BITS - _BUCKET_BITS
        low = (keys.reshape(-1)[flat] * (1 << _KEY_BITS)).astype(np.int64) & ((1 << shift) - 1)
        order = np.argsort(((slot << shift) | low) * num_nodes + flat % num_nodes)
        flat, slot = flat[order], slot[order]
        task, cls = slot >> (_BUCKET_BITS + 1), slot & 1
        bucket_of = (slot >> 1) & (num_buckets - 1)
        start = np.searchsorted(slot, slot)
        rank = np.arange(slot.size) - start + (cum - hist)[task, cls, bucket_of]
        is_train = rank < first[task, cls, 0]
        train.reshape(-1)[flat] = is_train
        val.reshape(-1)[flat] = ~is_train & (rank < second[task, cls, 0])
    return train, val


def per_task_split(
    y: Tensor,
    ratios: tuple[float, float, float] = (0.2, 0.2, 0.6),
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Split every task's positives and negatives separately into train/val/test.

    Each task gets its own random order of nodes (seeded from ``seed`` and the task index only),
    so a node can be a training node for one task and a test node for another, and a task's split
    does not depend on the other tasks. Vectorised over nodes and tasks (see the module
    docstring): ``O(N T)`` work, memory bounded by chunks of tasks.

    Args:
        y: Labels, shape ``[N, T]``, values in {0, 1} (float; a bool tensor is used as is).
        ratios: Fractions for train, validation and test (summing to 1). Per task and class of
            ``n`` members: ``round(n * ratio)`` train and validation items, at least one each
            when ``n >= 3``; a single member trains, two members give one train, one validation.
        seed: Seed of the split.

    Returns:
        Boolean masks ``(train, val, test)``, each ``[N, T]``, disjoint and covering every node
        for every task.

    Example:
        >>> y = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0]])
        >>> tr, va, te = per_task_split(y, seed=0)
        >>> bool((tr | va | te).all() and not (tr & va).any())
        True
    """
    if y.dim() != 2:
        raise GraphtagError(f"labels must have shape [N, T], got {tuple(y.shape)}")
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise GraphtagError(
            f"split ratios must be three non-negative numbers summing to 1, got {ratios}"
        )
    num_nodes, num_tasks = y.shape
    pos = y if y.dtype == torch.bool else y > 0.5
    # One transpose: every chunk then reads contiguous task rows.
    pos_t = pos.T.contiguous().cpu().numpy()
    train = np.empty((num_nodes, num_tasks), dtype=bool)
    val = np.empty_like(train)
    chunk = max(1, min(num_tasks, _CHUNK_ELEMENTS // max(1, num_nodes)))
    size = chunk * num_nodes
    work: dict[str, Any] = {"keys": torch.empty(size), "ids": np.empty(size, np.int64)}
    work.update(category=np.empty(size, np.int8), flag=np.empty(size, bool))
    work.update(train=np.empty(size, bool), val=np.empty(size, bool))
    for lo in range(0, num_tasks, chunk):
        hi = min(num_tasks, lo + chunk)
        tr, va = _split_chunk(pos_t[lo:hi], range(lo, hi), ratios, seed, work)
        np.copyto(train[:, lo:hi], tr.T)
        np.copyto(val[:, lo:hi], va.T)
    del pos_t, work
    test = np.logical_or(train, val)
    np.logical_not(test, out=test)
    return torch.from_numpy(train), torch.from_numpy(val), torch.from_numpy(test)
