"""Group tasks from a ``[T, T]`` affinity matrix: the SDP of docs/algorithms.md §7 and baselines.

``SDPClustering`` solves the relaxation (cvxpy's SCS, or the scalable ADMM solver for large ``T``)
and rounds it to exactly ``k`` groups; ``SpectralTaskClustering`` is the spectral baseline. cvxpy
is imported only when a cvxpy solver is used.
"""

from ._rounding import (
    groups_to_labels,
    labels_to_groups,
    partition_objective,
    round_to_groups,
)
from ._sdp import SDP_AUTO_MAX_TASKS, SDPClustering, build_sdp, solve_sdp
from ._spectral import SpectralTaskClustering, spectral_embedding

__all__ = [
    "SDP_AUTO_MAX_TASKS",
    "SDPClustering",
    "SpectralTaskClustering",
    "build_sdp",
    "groups_to_labels",
    "labels_to_groups",
    "partition_objective",
    "round_to_groups",
    "solve_sdp",
    "spectral_embedding",
]
