"""Input checks, rounding of an SDP solution to exactly ``k`` groups, and group bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._utils import numpy_generator
from ..errors import GraphtagError

__all__ = [
    "check_affinity",
    "check_num_groups",
    "groups_to_labels",
    "labels_to_groups",
    "partition_objective",
    "round_to_groups",
]


def check_affinity(affinity: Any, name: str = "affinity") -> np.ndarray:
    """Validate a task-by-task matrix and return its symmetric part as float64.

    Args:
        affinity: Array-like (numpy array, torch tensor, nested lists), shape ``[T, T]``.
        name: Name used in error messages.

    Returns:
        ``(A + A^T) / 2`` as a float64 numpy array, ``[T, T]``.

    Raises:
        GraphtagError: If the input is not a non-empty square matrix of finite numbers.
    """
    if hasattr(affinity, "detach"):  # torch tensor, without importing torch here
        affinity = affinity.detach().cpu().numpy()
    try:
        A = np.asarray(affinity, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphtagError(
            f"{name} must be a square [T, T] matrix of numbers; could not convert it ({exc})"
        ) from exc
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise GraphtagError(
            f"{name} must be a square [T, T] matrix (one row and column per task), "
            f"got shape {tuple(A.shape)}"
        )
    if A.shape[0] == 0:
        raise GraphtagError(f"{name} is empty (0 tasks); nothing to cluster")
    bad = ~np.isfinite(A)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise GraphtagError(
            f"{name} has {int(bad.sum())} non-finite entries (NaN or inf), the first at "
            f"[{i}, {j}]; fix or impute them (e.g. numpy.nan_to_num) before clustering"
        )
    return 0.5 * (A + A.T)


def check_num_groups(num_groups: Any, num_tasks: int) -> int:
    """Validate ``1 <= num_groups <= num_tasks`` and return it as an ``int``.

    Raises:
        GraphtagError: If ``num_groups`` is not an integer in ``[1, num_tasks]``.
    """
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)):
        raise GraphtagError(f"num_groups must be an integer, got {num_groups!r}")
    k = int(num_groups)
    if k < 1:
        raise GraphtagError(f"num_groups must be at least 1, got {k}")
    if k > num_tasks:
        raise GraphtagError(
            f"num_groups={k} exceeds the number of tasks T={num_tasks}; "
            f"choose 1 <= num_groups <= {num_tasks}"
        )
    return k


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel to ``0..g-1`` so that group ids appear in order of their smallest task index."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)]


def labels_to_groups(labels: Any) -> list[list[int]]:
    """Turn a label vector into groups: sorted task lists, ordered by their smallest task.

    Args:
        labels: Integer group id per task, shape ``[T]`` (any ids, need not be contiguous).

    Returns:
        The groups as ``list[list[int]]``; ``groups[g]`` lists the tasks of group ``g`` of the
        canonical labelling (groups numbered by their smallest task index).

    Example:
        >>> labels_to_groups([2, 0, 2, 1])
        [[0, 2], [1], [3]]
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise GraphtagError(
            f"labels must be a non-empty 1-D array of integer group ids, got dtype {arr.dtype} "
            f"and shape {tuple(arr.shape)}"
        )
    canon = _canonical(arr)
    order = np.argsort(canon, kind="stable")
    bounds = np.cumsum(np.bincount(canon))[:-1]
    return [part.tolist() for part in np.split(order, bounds)]


def groups_to_labels(groups: Sequence[Sequence[int]], num_tasks: int) -> np.ndarray:
    """Inverse of :func:`labels_to_groups`, checking that ``groups`` partition ``range(T)``.

    Args:
        groups: Non-empty groups of task indices.
        num_tasks: ``T``.

    Returns:
        Canonical labels, int64 ``[T]``.

    Raises:
        GraphtagError: If a group is empty, or a task is missing, repeated or out of range.

    Example:
        >>> groups_to_labels([[3], [0, 2], [1]], 4).tolist()
        [0, 1, 0, 2]
    """
    labels = np.full(num_tasks, -1, dtype=np.int64)
    for g, group in enumerate(groups):
        idx = np.asarray(list(group), dtype=np.int64)
        if idx.size == 0:
            raise GraphtagError(f"group {g} is empty; every group needs at least one task")
        if idx.min() < 0 or idx.max() >= num_tasks:
            raise GraphtagError(f"group {g} has a task outside 0..{num_tasks - 1}: {idx.tolist()}")
        if (labels[idx] >= 0).any() or np.unique(idx).size != idx.size:
            raise GraphtagError(f"group {g} repeats a task already assigned: {idx.tolist()}")
        labels[idx] = g
    if (labels < 0).any():
        missing = np.flatnonzero(labels < 0).tolist()
        raise GraphtagError(f"tasks {missing} belong to no group; groups must cover every task")
    return _canonical(labels)


def partition_objective(affinity: Any, labels: Any) -> float:
    """Summed average density ``sum_c (1 / |C_c|) sum_{i, j in C_c} A[i, j]`` of a partition.

    This is ``<A, X>`` for the partition matrix ``X = sum_c 1_c 1_c^T / |C_c|``, i.e. the SDP
    objective at an integral point, in the units of ``A`` (diagonal included).

    Args:
        affinity: ``[T, T]``.
        labels: Group id per task, ``[T]``.

    Returns:
        The objective value.
    """
    A = check_affinity(affinity)
    lab = np.asarray(labels)
    if lab.shape != (A.shape[0],):
        raise GraphtagError(
            f"labels must have shape ({A.shape[0]},) to match the affinity, got {lab.shape}"
        )
    canon = _canonical(lab)
    onehot = np.zeros((canon.size, int(canon.max()) + 1))
    onehot[np.arange(canon.size), canon] = 1.0
    sums = np.einsum("ic,ij,jc->c", onehot, A, onehot)
    return float((sums / onehot.sum(0)).sum())


def _repair_empty(points: np.ndarray, labels: np.ndarray, num_groups: int) -> np.ndarray:
    """Make all ``num_groups`` groups non-empty, deterministically.

    While a group id is unused, the member farthest from its centroid (ties: smallest task index)
    of the largest group (ties: smallest id) moves to it. At most ``num_groups`` moves.
    """
    labels = labels.copy()
    counts = np.bincount(labels, minlength=num_groups)
    for empty in np.flatnonzero(counts == 0):
        donor = int(np.argmax(counts))  # counts[donor] >= 2 because k <= T
        members = np.flatnonzero(labels == donor)
        dist = ((points[members] - points[members].mean(0)) ** 2).sum(1)
        mover = int(members[int(np.argmax(dist))])
        labels[mover] = empty
        counts[donor] -= 1
        counts[empty] += 1
    return labels


def _kmeans(
    points: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 10, max_iter: int = 100
) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; the best of ``n_init`` runs (lowest inertia).

    Vectorised over points (one ``[T, k]`` distance matrix per step); the only Python loops are
    over restarts, iterations and the ``k`` seeding steps. Groups may come out empty when there
    are fewer distinct points than ``k``; the caller repairs them.
    """
    num, _ = points.shape
    sq = (points**2).sum(1)
    best_inertia, best_labels = np.inf, np.zeros(num, dtype=np.int64)
    for _ in range(n_init):
        centers = np.empty((k, points.shape[1]))
        centers[0] = points[rng.integers(num)]
        d2 = ((points - centers[0]) ** 2).sum(1)
        for c in range(1, k):
            total = float(d2.sum())
            i = int(rng.integers(num)) if total <= 0 else int(rng.choice(num, p=d2 / total))
            centers[c] = points[i]
            d2 = np.minimum(d2, ((points - centers[c]) ** 2).sum(1))
        labels = np.zeros(num, dtype=np.int64)
        for it in range(max_iter):
            dist = sq[:, None] - 2.0 * points @ centers.T + (centers**2).sum(1)[None, :]
            new_labels = dist.argmin(1)
            if it > 0 and np.array_equal(new_labels, labels):
                break
            labels = new_labels
            onehot = np.eye(k)[labels]
            counts = onehot.sum(0)
            sums = onehot.T @ points
            centers = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        inertia = float(((points - centers[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best_labels = inertia, labels
    return best_labels


def cluster_rows(points: np.ndarray, num_groups: int, seed: int, key: str) -> np.ndarray:
    """k-means (10 restarts) on the rows of ``points`` plus repair: exactly ``k`` groups.

    Args:
        points: ``[T, D]`` float embedding of the tasks.
        num_groups: ``k`` with ``1 <= k <= T``.
        seed: Seed of the k-means++ seeding (via ``numpy_generator(seed, key)``).
        key: Stream name, so different callers get independent initialisations.

    Returns:
        Canonical labels, int64 ``[T]``, using every id in ``0..k-1``.
    """
    num_tasks = points.shape[0]
    if num_groups == 1:
        return np.zeros(num_tasks, dtype=np.int64)
    if num_groups == num_tasks:
        return np.arange(num_tasks, dtype=np.int64)
    scale = float(np.abs(points).max())
    pts = points / scale if scale > 0 else points
    labels = _kmeans(pts, num_groups, numpy_generator(seed, key))
    return _canonical(_repair_empty(pts, labels, num_groups))


def round_to_groups(X: Any, num_groups: int, seed: int = 0) -> np.ndarray:
    """Round a relaxed solution ``X`` to exactly ``num_groups`` non-empty groups.

    The tasks are embedded by the top-``k`` eigenvectors of ``X`` scaled by the square roots of
    their (clipped) eigenvalues, so for a partition matrix ``X = sum_c 1_c 1_c^T / |C_c|`` every
    task of a group lands on the same point; then k-means (10 seeded restarts) and a deterministic
    repair that refills empty groups (see ``_repair_empty``). Unlike threshold rounding this
    never drops a task and always returns exactly ``k`` groups, whatever ``X`` is.

    Args:
        X: Relaxed co-membership matrix, ``[T, T]`` (symmetrised here).
        num_groups: ``k`` with ``1 <= k <= T``.
        seed: Seed of the k-means initialisation.

    Returns:
        Canonical labels (group ids ordered by smallest task index), int64 ``[T]``, with every id
        in ``0..k-1`` used.

    Example:
        >>> X = np.kron(np.eye(2), np.full((2, 2), 0.5))
        >>> round_to_groups(X, 2).tolist()
        [0, 0, 1, 1]
    """
    M = check_affinity(X, name="X")
    k = check_num_groups(num_groups, M.shape[0])
    evals, evecs = np.linalg.eigh(M)
    top = np.argsort(evals)[::-1][:k]
    embedding = evecs[:, top] * np.sqrt(np.clip(evals[top], 0.0, None))
    return cluster_rows(embedding, k, seed, "round_to_groups")
