"""Spectral clustering of tasks: the baseline for the SDP."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import Estimator
from ..errors import GraphtagError
from ._rounding import (
    check_affinity,
    check_num_groups,
    cluster_rows,
    labels_to_groups,
    partition_objective,
)

__all__ = ["SpectralTaskClustering", "spectral_embedding"]

_NEGATIVE = ("clip", "shift")


def spectral_embedding(affinity: Any, num_groups: int, negative: str = "clip") -> np.ndarray:
    """Normalised spectral embedding (Ng, Jordan and Weiss, 2001) of the tasks.

    Spectral clustering needs a non-negative similarity, but task affinities are signed
    (standardised scores, docs/algorithms.md §5). ``negative="clip"`` (default) treats a negative
    affinity as "no affinity" (``max(A, 0)``); ``negative="shift"`` subtracts the smallest
    off-diagonal entry, so the weakest pair gets 0 and the ordering of all pairs is kept. The
    diagonal is set to 0 in both cases. A task whose weights are all zero (e.g. only negative
    affinities, clipped) is embedded at the origin.

    Args:
        affinity: ``[T, T]``.
        num_groups: ``k``, the embedding dimension.
        negative: ``"clip"`` or ``"shift"``.

    Returns:
        Row-normalised top-``k`` eigenvectors of ``D^-1/2 W D^-1/2``, ``[T, k]``.
    """
    A = check_affinity(affinity)
    k = check_num_groups(num_groups, A.shape[0])
    if negative not in _NEGATIVE:
        raise GraphtagError(f"negative must be one of {_NEGATIVE}, got {negative!r}")
    W = A.copy()
    np.fill_diagonal(W, 0.0)
    if negative == "clip":
        W = np.clip(W, 0.0, None)
    elif A.shape[0] > 1:
        off = ~np.eye(A.shape[0], dtype=bool)
        W = np.where(off, W - W[off].min(), 0.0)
    degree = W.sum(1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    L = inv_sqrt[:, None] * W * inv_sqrt[None, :]
    _, evecs = np.linalg.eigh(L)
    emb = evecs[:, ::-1][:, :k]
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.where(norms > 1e-12, emb / np.where(norms > 1e-12, norms, 1.0), 0.0)


class SpectralTaskClustering(Estimator):
    """Spectral clustering of tasks on the affinity (the baseline of docs/algorithms.md §7).

    Follows the scikit-learn estimator contract (:class:`graphtag.base.Estimator`).

    Normalised spectral embedding (see :func:`spectral_embedding` for how negative affinities
    are handled, which the reference code did not do), then k-means with 10 seeded restarts and
    the same deterministic repair as :func:`round_to_groups`: always exactly ``k`` non-empty
    groups.

    Args:
        num_groups: Number of groups ``k`` (``1 <= k <= T``).
        seed: Seed of the k-means restarts.
        negative: ``"clip"`` (default) or ``"shift"``.

    Attributes:
        labels_: Group id per task, int64 ``[T]``, canonical.
        groups_: ``list[list[int]]``, sorted tasks per group, ordered by smallest task.
        status_: Always ``"ok"`` (there is no solver; kept for symmetry with SDPClustering).
        objective_: :func:`partition_objective` of the groups on the (signed) affinity.

    Example:
        >>> A = np.kron(np.eye(2), np.ones((2, 2))) - 0.5
        >>> SpectralTaskClustering(num_groups=2).fit(A).groups_
        [[0, 1], [2, 3]]
    """

    def __init__(self, num_groups: int, seed: int = 0, negative: str = "clip") -> None:
        self.num_groups = num_groups
        self.seed = seed
        self.negative = negative

    def fit(self, affinity: Any) -> SpectralTaskClustering:
        """Cluster the tasks of ``affinity`` (``[T, T]``) and return ``self``.

        Raises:
            GraphtagError: On a bad affinity, ``num_groups`` outside ``[1, T]`` or an unknown
                ``negative``.
        """
        A = check_affinity(affinity)
        k = check_num_groups(self.num_groups, A.shape[0])
        emb = spectral_embedding(A, k, self.negative)
        self.labels_ = cluster_rows(emb, k, self.seed, "spectral")
        self.groups_ = labels_to_groups(self.labels_)
        self.status_ = "ok"
        self.objective_ = partition_objective(A, self.labels_)
        return self
