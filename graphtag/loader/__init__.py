"""Neighbour-sampled mini-batches that work with or without pyg-lib/torch-sparse."""

from ._loader import make_neighbor_loader, pyg_sampling_available
from ._sampler import UniformNeighborSampler, check_fanouts

__all__ = [
    "UniformNeighborSampler",
    "check_fanouts",
    "make_neighbor_loader",
    "pyg_sampling_available",
]
