"""ProNE node embedding: sparse matrix factorisation followed by spectral propagation.

:func:`prone_embedding` follows Zhang et al., "ProNE: Fast and Scalable Network Representation
Learning" (IJCAI 2019), implemented here on torch sparse CSR products:

1. **Sparse factorisation.** With ``P = D^-1 A`` (random-walk transitions) and the
   negative-sampling distribution ``q_j ∝ (Σ_i P_ij)^0.75``, the matrix
   ``M_ij = log P_ij - log q_j = -log d_i - log q_j`` is kept on the edges only (``2|E|``
   non-zeros; zero elsewhere). Its rank-``dim`` truncated SVD ``M ≈ U Σ Vᵀ`` is computed by a
   seeded randomized range finder (``power_iters`` power iterations, ``dim + 10`` columns), and
   ``E₁ = U Σ^½`` with unit rows.
2. **Spectral propagation.** ``E₂ = Ã (E₁ - exp(-θ T(L)) E₁)`` with ``Ã = A + I``,
   ``L = I - D̃^-1 Ã`` (eigenvalues in ``[0, 2)``) and ``T(L) = (L - μ I)² / 2 - I``
   (eigenvalues in ``[-1, 1]`` for ``μ <= 1``), so the exponential is a band filter centred near
   ``λ = μ``; it is evaluated by its Chebyshev expansion of order ``order``,
   ``exp(-θ t) = I₀(θ) + 2 Σ_k (-1)^k I_k(θ) T_k(t)`` (modified Bessel functions ``I_k``).
   ``E₂`` is orthonormalised (thin QR, then the SVD of the small factor) into ``U₂ Σ₂^½`` with
   unit rows.

``M`` is never stored with values of its own: since ``M = diag(a) A + A diag(b)`` with
``a = -log d`` and ``b = -log q``, every product needs only the binary adjacency in CSR form.
Cost: ``2 (power_iters + 1)`` products with ``dim + 10`` columns and ``2 order - 1`` with
``dim`` columns, each ``O(|E| · dim)``, plus QR steps ``O(N · dim²)``; memory ``O(|E| + N · dim)``.
Isolated nodes get zero rows. The result is deterministic given ``seed`` (column signs are
fixed).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from .._utils import torch_generator
from ..errors import GraphtagError

__all__ = ["prone_embedding"]

_OVERSAMPLE = 10  # extra columns of the randomized range finder
_NEG_POWER = 0.75  # exponent of the negative-sampling distribution (word2vec's)


class _Adjacency:
    """The binary adjacency ``A`` ``[N, N]`` as CSR and the products the embedding needs."""

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        row, col = edge_index[0].long(), edge_index[1].long()
        key = row * num_nodes + col
        if key.numel() > 1 and not bool((key[1:] >= key[:-1]).all()):
            order = torch.argsort(key)
            row, col = row[order], col[order]
        del key
        small = num_nodes < 2**31 and row.numel() < 2**31
        index = torch.int32 if small else torch.int64
        crow = torch.zeros(num_nodes + 1, dtype=torch.int64)
        crow[1:] = torch.cumsum(torch.bincount(row, minlength=num_nodes), 0)
        self.num_nodes = num_nodes
        self.degree = (crow[1:] - crow[:-1]).double()
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            self.csr = torch.sparse_csr_tensor(
                crow.to(index),
                col.to(index),
                torch.ones(col.numel()),
                (num_nodes, num_nodes),
                check_invariants=False,
            )

    def __matmul__(self, x: Tensor) -> Tensor:
        if self.csr.values().numel() == 0:
            return torch.zeros_like(x)
        return self.csr @ x


def _orthonormal(x: Tensor) -> Tensor:
    q, _ = torch.linalg.qr(x)
    return q


def _factorisation(adj: _Adjacency, dim: int, seed: int, power_iters: int) -> Tensor:
    """``E₁``: the scaled left singular vectors of ``M`` on the edges (step 1), ``[N, dim]``."""
    n = adj.num_nodes
    deg = adj.degree
    has_edges = deg > 0
    inv_deg = torch.where(has_edges, 1.0 / deg.clamp(min=1), torch.zeros_like(deg))
    context = adj @ inv_deg.float().unsqueeze(1)  # Σ_i P_ij (A symmetric)
    weight = context.squeeze(1).double().clamp(min=0) ** _NEG_POWER
    q = weight / weight.sum().clamp(min=1e-300)
    a = torch.where(has_edges, -torch.log(deg.clamp(min=1)), torch.zeros_like(deg)).float()
    b = torch.where(q > 0, -torch.log(q.clamp(min=1e-300)), torch.zeros_like(q)).float()
    a, b = a.unsqueeze(1), b.unsqueeze(1)

    def m_mul(x: Tensor) -> Tensor:  # M x = a ⊙ (A x) + A (b ⊙ x)
        return a * (adj @ x) + adj @ (b * x)

    def mt_mul(x: Tensor) -> Tensor:  # Mᵀ x = A (a ⊙ x) + b ⊙ (A x)
        return adj @ (a * x) + b * (adj @ x)

    k = min(n, dim + _OVERSAMPLE)
    omega = torch.randn(n, k, generator=torch_generator(seed, "prone_embedding"))
    basis = _orthonormal(m_mul(omega))
    del omega
    for _ in range(power_iters):
        basis = _orthonormal(m_mul(_orthonormal(mt_mul(basis))))
    small = mt_mul(basis).T.double()  # [k, N] = Qᵀ M
    u_small, sigma, _ = torch.linalg.svd(small, full_matrices=False)
    del small
    rank = min(dim, k)
    u = basis @ (u_small[:, :rank] * sigma[:rank].sqrt()).float()
    return torch.nn.functional.normalize(u, dim=1)


def _bessel_i(k: int, x: float, terms: int = 40) -> float:
    """Modified Bessel function ``I_k(x) = Σ_m (x/2)^(2m+k) / (m! (m+k)!)`` (series)."""
    return sum(
        math.exp((2 * m + k) * math.log(x / 2) - math.lgamma(m + 1) - math.lgamma(m + k + 1))
        for m in range(terms)
    )


def _chebyshev_coefficients(theta: float, order: int) -> list[float]:
    """``c_k`` with ``exp(-θ t) ≈ Σ_{k<order} c_k T_k(t)`` on ``[-1, 1]``."""
    return [(1.0 if k == 0 else 2.0 * (-1) ** k) * _bessel_i(k, theta) for k in range(order)]


def _propagation(adj: _Adjacency, emb: Tensor, order: int, mu: float, theta: float) -> Tensor:
    """``Ã (E - exp(-θ T(L)) E)`` (step 2), before the final orthonormalisation."""
    inv = (1.0 / (adj.degree + 1.0)).float().unsqueeze(1)

    def shifted(x: Tensor) -> Tensor:  # (L - μ I) x = (1 - μ) x - D̃^-1 (A x + x)
        return (1.0 - mu) * x - inv * (adj @ x + x)

    def t_op(x: Tensor) -> Tensor:  # T(L) x = (L - μ I)² x / 2 - x
        return 0.5 * shifted(shifted(x)) - x

    coeffs = _chebyshev_coefficients(theta, order)
    prev, cur = emb, t_op(emb)
    filtered = coeffs[0] * prev
    if order > 1:
        filtered = filtered + coeffs[1] * cur
    for k in range(2, order):
        prev, cur = cur, 2.0 * t_op(cur) - prev
        filtered = filtered + coeffs[k] * cur
    del prev, cur
    band = emb - filtered
    return adj @ band + band


def _fix_signs(x: Tensor) -> Tensor:
    """``x`` with every column's sign chosen so that its sum is >= 0 (SVD signs are arbitrary)."""
    sign = torch.sign(x.sum(0))
    sign[sign == 0] = 1
    return x * sign


def _scaled_basis(x: Tensor) -> Tensor:
    """``U Σ^½`` of the thin SVD of ``x`` ``[N, d]``, rows of unit length."""
    q, r = torch.linalg.qr(x.double())
    u_small, sigma, _ = torch.linalg.svd(r)
    u = (q @ (u_small * sigma.sqrt())).float()
    return torch.nn.functional.normalize(u, dim=1)


def prone_embedding(
    edge_index: Tensor,
    num_nodes: int,
    dim: int = 128,
    seed: int = 0,
    *,
    order: int = 10,
    mu: float = 0.2,
    theta: float = 0.5,
    power_iters: int = 5,
) -> Tensor:
    """ProNE embedding ``[N, min(dim, N)]`` (float32, unit rows) from the graph alone.

    See the module docstring for the method; cost linear in the number of edges.

    Args:
        edge_index: int64 ``[2, E]``, both directions of every undirected edge, no duplicates
            (any order).
        num_nodes: Number of nodes ``N``.
        dim: Embedding width (capped at ``N``).
        seed: Seed of the randomized SVD's start matrix.
        order: Number of Chebyshev terms of the spectral filter (``1``: no propagation).
        mu: Centre of the band filter on the Laplacian's spectrum, in ``[0, 1]``.
        theta: Width parameter of the filter, ``> 0``.
        power_iters: Power iterations of the randomized SVD.

    Returns:
        float32 ``[N, min(dim, N)]``; isolated nodes have zero rows.

    Raises:
        GraphtagError: For out-of-range arguments.

    Example:
        >>> ring = torch.arange(6)
        >>> ei = torch.cat([torch.stack([ring, (ring + 1) % 6]), torch.stack([(ring + 1) % 6, ring])], 1)
        >>> prone_embedding(ei, 6, dim=4).shape
        torch.Size([6, 4])
    """  # noqa: E501
    if int(dim) < 1:
        raise GraphtagError(f"embedding dim must be >= 1, got {dim}")
    if int(order) < 1 or int(power_iters) < 0:
        raise GraphtagError(f"need order >= 1 and power_iters >= 0, got {order}, {power_iters}")
    if not 0.0 <= float(mu) <= 1.0 or not (float(theta) > 0 and math.isfinite(theta)):
        raise GraphtagError(f"need 0 <= mu <= 1 and theta > 0, got mu={mu}, theta={theta}")
    if num_nodes < 1:
        raise GraphtagError(f"num_nodes must be >= 1, got {num_nodes}")
    adj = _Adjacency(edge_index, num_nodes)
    emb = _factorisation(adj, int(dim), int(seed), int(power_iters))
    if order > 1:
        emb = _scaled_basis(_propagation(adj, emb, int(order), float(mu), float(theta)))
    return _fix_signs(emb) * (adj.degree > 0).float().unsqueeze(1)
