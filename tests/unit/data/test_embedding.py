"""prone_embedding: a dense brute-force reference, structure recovery, determinism, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch

from graphtag.data import clean_edges, prone_embedding
from graphtag.errors import GraphtagError


def _random_graph(num_nodes: int, num_edges: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ei, _ = clean_edges(torch.randint(0, num_nodes, (2, num_edges), generator=g), num_nodes)
    return ei


def _dense_prone(ei: torch.Tensor, n: int, dim: int, mu: float, theta: float) -> np.ndarray:
    """The method of the module docstring with dense matrices, full SVDs and expm."""
    a = np.zeros((n, n))
    a[ei[0].numpy(), ei[1].numpy()] = 1.0
    deg = a.sum(1)
    p = a / deg[:, None]
    q = p.sum(0) ** 0.75
    q /= q.sum()
    m = np.where(a > 0, -np.log(deg)[:, None] - np.log(q)[None, :], 0.0)
    u, s, _ = np.linalg.svd(m)
    e1 = u[:, :dim] * np.sqrt(s[:dim])
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    at = a + np.eye(n)
    lap = np.eye(n) - at / at.sum(1)[:, None]
    shifted = lap - mu * np.eye(n)
    t_op = shifted @ shifted / 2 - np.eye(n)
    e2 = at @ (e1 - scipy.linalg.expm(-theta * t_op) @ e1)
    u2, s2, _ = np.linalg.svd(e2, full_matrices=False)
    out = u2 * np.sqrt(s2)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out * np.where(out.sum(0) < 0, -1.0, 1.0)


def test_matches_dense_reference_on_a_small_graph():
    # 14 nodes: the randomized range finder keeps dim + 10 >= N columns, so it is exact, and
    # 10 Chebyshev terms approximate exp(-θ t) on [-1, 1] to ~1e-13 at θ = 0.5.
    ei = _random_graph(14, 40, seed=3)
    assert torch.bincount(ei[0], minlength=14).min() > 0  # no isolated node
    got = prone_embedding(ei, 14, dim=4, seed=0).double().numpy()
    want = _dense_prone(ei, 14, dim=4, mu=0.2, theta=0.5)
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_chebyshev_expansion_of_the_filter():
    from graphtag.data._embedding import _chebyshev_coefficients

    t = np.linspace(-1, 1, 101)
    coeffs = _chebyshev_coefficients(0.5, 10)
    approx = np.polynomial.chebyshev.chebval(t, coeffs)
    np.testing.assert_allclose(approx, np.exp(-0.5 * t), atol=1e-12)
    assert coeffs[0] == pytest.approx(scipy.special.iv(0, 0.5))


def test_separates_planted_communities():
    # Two dense communities joined by a few edges: the embedding's rows separate them.
    g = torch.Generator().manual_seed(0)
    n = 60
    side = torch.arange(n) >= n // 2
    src, dst = torch.randint(0, n, (2, 900), generator=g)
    keep = (side[src] == side[dst]) | (torch.rand(900, generator=g) < 0.03)
    ei, _ = clean_edges(torch.stack([src[keep], dst[keep]]), n)
    x = prone_embedding(ei, n, dim=8, seed=1)
    centre = torch.stack([x[~side].mean(0), x[side].mean(0)])
    nearest = torch.cdist(x, centre).argmin(1).bool()
    assert (nearest == side).float().mean() >= 0.95


def test_shape_rows_determinism_and_edge_order():
    ei = _random_graph(200, 1500, seed=1)
    x = prone_embedding(ei, 200, dim=16, seed=5)
    assert x.shape == (200, 16) and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=1), torch.ones(200))
    assert torch.equal(x, prone_embedding(ei, 200, dim=16, seed=5))
    perm = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prone_embedding(ei[:, perm], 200, dim=16, seed=5), x)
    other = prone_embedding(ei, 200, dim=16, seed=6)
    assert not torch.equal(other, x)
    # Another start matrix spans nearly the same leading subspace.
    cos = torch.linalg.svdvals(
        torch.linalg.qr(x.double())[0].T @ torch.linalg.qr(other.double())[0]
    )
    assert float(cos[:8].min()) > 0.9


def test_isolated_nodes_tiny_graphs_and_no_edges():
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    x = prone_embedding(ei, 5, dim=3)
    assert x.shape == (5, 3) and torch.equal(x[3:], torch.zeros(2, 3))
    assert prone_embedding(ei, 3, dim=8).shape == (3, 3)  # capped at N
    empty = prone_embedding(torch.zeros(2, 0, dtype=torch.long), 4, dim=2)
    assert torch.equal(empty, torch.zeros(4, 2))
    assert torch.isfinite(prone_embedding(ei, 3, dim=2, order=1)).all()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"dim": 0}, r"embedding dim must be >= 1, got 0"),
        ({"order": 0}, r"need order >= 1 and power_iters >= 0"),
        ({"mu": 1.5}, r"need 0 <= mu <= 1 and theta > 0, got mu=1.5"),
        ({"theta": 0.0}, r"theta > 0"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(GraphtagError, match=pattern):
        prone_embedding(ei, 2, **kwargs)
