"""Structural node features for graphs without attributes.

The features are a randomized range finder on the symmetrically normalised adjacency
``Â = D^-1/2 (A + I) D^-1/2``: starting from a seeded Gaussian matrix ``Ω`` of shape ``[N, dim]``,
compute ``Q = orth(Â^q Ω)`` with ``q`` power iterations (re-orthonormalised after each), then
return ``Q`` scaled to unit column variance. Its columns approximately span the top-``dim``
eigenvectors of ``Â`` (smooth community indicators). Cost: ``O(q · dim · |E|)`` for the sparse
products plus ``O(q · N · dim²)`` for the QR steps, linear in the number of edges.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import torch_generator

__all__ = ["normalized_adjacency", "structural_features"]


def normalized_adjacency(edge_index: Tensor, num_nodes: int, self_loops: bool = True) -> Tensor:
    """Sparse ``D^-1/2 (A [+ I]) D^-1/2`` as a coalesced sparse COO tensor ``[N, N]``.

    Args:
        edge_index: ``[2, E]`` edges (both directions of each undirected edge).
        num_nodes: Number of nodes ``N``.
        self_loops: Add the identity before normalising.
    """
    row, col = edge_index[0], edge_index[1]
    if self_loops:
        loop = torch.arange(num_nodes, device=edge_index.device)
        row = torch.cat([row, loop])
        col = torch.cat([col, loop])
    deg = torch.zeros(num_nodes, device=edge_index.device).index_add_(
        0, row, torch.ones(row.numel(), device=edge_index.device)
    )
    dinv = deg.clamp(min=1).rsqrt()
    val = dinv[row] * dinv[col]
    adj = torch.sparse_coo_tensor(
        torch.stack([row, col]), val, (num_nodes, num_nodes), check_invariants=False
    )
    return adj.coalesce()


def structural_features(
    edge_index: Tensor, num_nodes: int, dim: int = 64, seed: int = 0, power_iters: int = 3
) -> Tensor:
    """Seeded structural embedding ``[N, dim]`` (float32) from the graph alone.

    Args:
        edge_index: ``[2, E]`` undirected edges.
        num_nodes: Number of nodes ``N``.
        dim: Embedding width (capped at ``N``).
        seed: Seed of the random start matrix.
        power_iters: Number of multiplications by ``Â``.

    Example:
        >>> ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> structural_features(ei, 3, dim=2).shape
        torch.Size([3, 2])
    """
    dim = max(1, min(dim, num_nodes))
    adj = normalized_adjacency(edge_index, num_nodes)
    gen = torch_generator(seed, "structural_features")
    q = torch.randn(num_nodes, dim, generator=gen)
    for _ in range(power_iters):
        q = adj @ q
        q, _ = torch.linalg.qr(q)
    # Fix column signs deterministically and standardise.
    sign = torch.sign(q.sum(0))
    sign[sign == 0] = 1
    q = q * sign
    q = (q - q.mean(0)) / q.std(0).clamp(min=1e-12)
    return q.float().contiguous()
