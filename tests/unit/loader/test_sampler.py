"""Tests for graphtag.loader: UniformNeighborSampler and make_neighbor_loader."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import NodeLoader
from torch_geometric.nn import SAGEConv
from torch_geometric.sampler import NodeSamplerInput

import graphtag.loader._loader as loader_mod
from graphtag.errors import GraphtagError
from graphtag.loader import (
    UniformNeighborSampler,
    check_fanouts,
    make_neighbor_loader,
    pyg_sampling_available,
)
from graphtag.loader._sampler import _floyd_offsets, _key_offsets

METHODS = ["floyd", "keys"]


def random_graph(num_nodes: int, num_edges: int, seed: int, *, directed: bool = False) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=g)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    if not directed:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    key = torch.unique(src * num_nodes + dst)
    return torch.stack([key // num_nodes, key % num_nodes])


def star(num_leaves: int) -> Tensor:
    leaves = torch.arange(1, num_leaves + 1)
    hub = torch.zeros_like(leaves)
    return torch.stack([torch.cat([leaves, hub]), torch.cat([hub, leaves])])


def sample(sampler: UniformNeighborSampler, seeds: Tensor):
    return sampler.sample_from_nodes(NodeSamplerInput(None, seeds))


def in_neighbours(edge_index: Tensor, num_nodes: int) -> list[set[int]]:
    nbrs: list[set[int]] = [set() for _ in range(num_nodes)]
    for s, t in edge_index.t().tolist():
        nbrs[t].add(s)
    return nbrs


def check_sample(edge_index: Tensor, num_nodes: int, fanouts: list[int], seeds: Tensor, out):
    """Brute-force check of every property of one sampled batch (seeds distinct)."""
    nbrs = in_neighbours(edge_index, num_nodes)
    node = out.node.cpu()
    row, col, edge = out.row.cpu(), out.col.cpu(), out.edge.cpu()
    # seeds first, in order; all nodes distinct; per-hop counts add up.
    assert node[: seeds.numel()].tolist() == seeds.tolist()
    assert node.unique().numel() == node.numel()
    assert out.num_sampled_nodes[0] == seeds.numel()
    assert sum(out.num_sampled_nodes) == node.numel()
    assert len(out.num_sampled_nodes) == len(fanouts) + 1
    assert sum(out.num_sampled_edges) == row.numel() == col.numel() == edge.numel()
    # local ids are in range and map to true edges; e_id points at the same edge.
    assert row.numel() == 0 or (int(row.min()) >= 0 and int(row.max()) < node.numel())
    g_src, g_dst = node[row], node[col]
    assert torch.equal(edge_index[0, edge], g_src)
    assert torch.equal(edge_index[1, edge], g_dst)
    edge_set = set(map(tuple, edge_index.t().tolist()))
    assert set(zip(g_src.tolist(), g_dst.tolist())) <= edge_set
    # hop by hop: targets are exactly the frontier, min(fanout, deg) distinct neighbours each,
    # and the next frontier is exactly the newly reached nodes, in order of first appearance.
    seen = set(seeds.tolist())
    n_lo, n_hi, e_lo = 0, seeds.numel(), 0
    for hop, fanout in enumerate(fanouts):
        e_hi = e_lo + out.num_sampled_edges[hop]
        hop_src, hop_dst = g_src[e_lo:e_hi].tolist(), g_dst[e_lo:e_hi].tolist()
        assert all(n_lo <= c < n_hi for c in col[e_lo:e_hi].tolist())
        for local in range(n_lo, n_hi):
            target = int(node[local])
            got = [s for s, t in zip(hop_src, hop_dst) if t == target]
            deg = len(nbrs[target])
            assert len(got) == (deg if fanout < 0 else min(fanout, deg))
            assert len(set(got)) == len(got)
            assert set(got) <= nbrs[target]
        first_seen = list(dict.fromkeys(s for s in hop_src if s not in seen))
        new = node[n_hi : n_hi + out.num_sampled_nodes[hop + 1]].tolist()
        assert new == first_seen
        seen.update(new)
        n_lo, n_hi, e_lo = n_hi, n_hi + len(new), e_hi


@pytest.mark.parametrize("method", ["auto", *METHODS])
@pytest.mark.parametrize("fanouts", [[3, 2], [2, 2, 2], [-1, 1], [0], [5, -1]])
def test_sample_is_valid(method: str, fanouts: list[int]) -> None:
    num_nodes = 40
    edge_index = random_graph(num_nodes, 120, seed=1)
    sampler = UniformNeighborSampler((edge_index, num_nodes), fanouts, seed=3)
    sampler._method = method
    for seeds in (torch.tensor([5, 0, 17, 33]), torch.arange(num_nodes), torch.tensor([9])):
        check_sample(edge_index, num_nodes, fanouts, seeds, sample(sampler, seeds))


def test_directed_graph_samples_in_neighbours() -> None:
    # 0 -> 1, 2 -> 1, 1 -> 3: node 1's in-neighbours are {0, 2}; node 0 has none.
    edge_index = torch.tensor([[0, 2, 1], [1, 1, 3]])
    sampler = UniformNeighborSampler((edge_index, 4), [-1, -1], seed=0)
    out = sample(sampler, torch.tensor([1]))
    assert sorted(out.node[out.row].tolist()) == [0, 2]
    assert out.num_sampled_nodes == [1, 2, 0]
    assert sample(sampler, torch.tensor([0])).row.numel() == 0
    check_sample(edge_index, 4, [-1, -1], torch.tensor([3]), sample(sampler, torch.tensor([3])))


def test_fanout_all_and_isolated_nodes() -> None:
    # Hub 0 with 6 leaves, plus isolated nodes 7 and 8.
    edge_index = star(6)
    sampler = UniformNeighborSampler((edge_index, 9), [-1], seed=0)
    out = sample(sampler, torch.tensor([7, 0, 8]))
    assert out.node[:3].tolist() == [7, 0, 8]
    assert sorted(out.node[3:].tolist()) == [1, 2, 3, 4, 5, 6]
    assert out.num_sampled_edges == [6]
    assert (out.col == 1).all()
    out = sample(sampler, torch.tensor([8]))
    assert out.node.tolist() == [8] and out.row.numel() == 0 and out.num_sampled_nodes == [1, 0]
    # A graph with no edges at all.
    empty = UniformNeighborSampler((torch.empty(2, 0, dtype=torch.long), 3), [2, 2], seed=0)
    out = sample(empty, torch.tensor([2, 0]))
    assert out.node.tolist() == [2, 0] and out.num_sampled_edges == [0, 0]


def test_duplicate_seeds_sample_independently() -> None:
    edge_index = star(10)
    sampler = UniformNeighborSampler((edge_index, 11), [3], seed=0)
    out = sample(sampler, torch.tensor([0, 0]))
    assert out.node[:2].tolist() == [0, 0]
    assert sorted(out.col.tolist()) == [0, 0, 0, 1, 1, 1]
    for copy in (0, 1):
        leaves = out.node[out.row[out.col == copy]].tolist()
        assert len(set(leaves)) == 3 and set(leaves) <= set(range(1, 11))


@pytest.mark.parametrize("method", METHODS)
def test_subsets_are_uniform(method: str) -> None:
    # Every 3-subset of 6 neighbours is equally likely (uniform without replacement).
    reps, deg, k = 6000, 6, 3
    g = torch.Generator().manual_seed(0)
    sampler_fn = _floyd_offsets if method == "floyd" else _key_offsets
    offsets = sampler_fn(torch.full((reps,), deg), k, g)
    assert offsets.shape == (reps, k)
    ordered = offsets.sort(1).values
    assert (ordered[:, 1:] > ordered[:, :-1]).all()  # distinct
    assert ordered.min() >= 0 and ordered.max() < deg
    subsets = list(itertools.combinations(range(deg), k))
    code = {s: i for i, s in enumerate(subsets)}
    counts = torch.bincount(
        torch.tensor([code[tuple(r)] for r in ordered.tolist()]), minlength=len(subsets)
    )
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3
    # A sampler that ignores half of the subsets must fail this test.
    skewed = counts.clone()
    skewed[: len(subsets) // 2] += skewed[len(subsets) // 2 :]
    skewed[len(subsets) // 2 :] = 0
    assert stats.chisquare(skewed.numpy()).pvalue < 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_hub_neighbours_uniform_without_replacement(method: str) -> None:
    # A hub with 20 leaves, fanout 5, sampled for 4000 copies of the hub in one batch.
    reps, leaves, k = 4000, 20, 5
    sampler = UniformNeighborSampler((star(leaves), leaves + 1), [k], seed=7)
    sampler._method = method
    out = sample(sampler, torch.zeros(reps, dtype=torch.long))
    assert out.num_sampled_edges == [reps * k]
    picked = torch.zeros(reps, leaves, dtype=torch.long)
    picked[out.col, out.node[out.row] - 1] += 1
    assert (picked.sum(1) == k).all() and picked.max() == 1  # no duplicates per copy
    counts = picked.sum(0)
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3
    # Pairwise inclusion P(i, j both) = k (k - 1) / (n (n - 1)) = 1/19 without replacement
    # (with replacement plus deduplication it would be about 0.0452 instead of 0.0526).
    pair = (picked.T.double() @ picked.double())[torch.triu_indices(leaves, leaves, 1).unbind()]
    p = k * (k - 1) / (leaves * (leaves - 1))
    z = (pair / reps - p) / math.sqrt(p * (1 - p) / reps)
    assert z.abs().max() < 4.5
    assert abs(float(pair.mean()) / reps - p) < 0.002


def test_determinism_per_seed() -> None:
    edge_index = random_graph(50, 200, seed=2)
    seeds = torch.tensor([1, 2, 3, 4, 5])

    def run(seed: int) -> list[tuple[list[int], list[int]]]:
        s = UniformNeighborSampler((edge_index, 50), [3, 2], seed=seed)
        return [(o.node.tolist(), o.row.tolist()) for o in (sample(s, seeds) for _ in range(3))]

    first = run(0)
    assert first == run(0)
    assert first != run(1)
    assert first[0] != first[1]  # successive batches use successive generator state
    # Library code leaves the global RNG alone.
    state = torch.get_rng_state()
    run(0)
    assert torch.equal(state, torch.get_rng_state())


def graph_data(num_nodes: int = 60, num_edges: int = 150, seed: int = 4) -> Data:
    g = torch.Generator().manual_seed(seed)
    edge_index = random_graph(num_nodes, num_edges, seed=seed)
    return Data(
        x=torch.randn(num_nodes, 8, generator=g),
        edge_index=edge_index,
        y=torch.randint(0, 2, (num_nodes, 3), generator=g).float(),
        task_names=["a", "b", "c"],
    )


def test_node_loader_batches_and_sage_model() -> None:
    data = graph_data()
    inputs = torch.tensor([3, 10, 11, 40, 2, 59, 0])
    loader = make_neighbor_loader(data, inputs, [4, 3], batch_size=3, backend="torch")
    assert isinstance(loader, NodeLoader) and len(loader) == 3
    conv1, conv2 = SAGEConv(8, 16), SAGEConv(16, 2)
    got = []
    for batch in loader:
        assert set(batch.keys()) >= {"x", "edge_index", "n_id", "e_id", "batch_size"}
        assert "y" not in batch and "task_names" not in batch
        assert torch.equal(batch.x, data.x[batch.n_id])
        assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])
        assert batch.num_nodes == batch.n_id.numel()
        out = conv2(conv1(batch.x, batch.edge_index).relu(), batch.edge_index)
        assert out.shape == (batch.num_nodes, 2) and torch.isfinite(out).all()
        got += batch.n_id[: batch.batch_size].tolist()
    assert got == inputs.tolist()
    sizes = [b.batch_size for b in loader]
    assert sizes == [3, 3, 1]


def test_full_fanout_batches_reproduce_full_graph_sage() -> None:
    # With fanout -1 the 2-hop batch holds every edge a 2-layer GNN needs at its seeds.
    data = graph_data()
    conv1, conv2 = SAGEConv(8, 16), SAGEConv(16, 2)

    def model(x: Tensor, ei: Tensor) -> Tensor:
        return conv2(conv1(x, ei).relu(), ei)

    full = model(data.x, data.edge_index)
    mask = torch.zeros(data.num_nodes, dtype=torch.bool)
    mask[::4] = True
    loader = make_neighbor_loader(data, mask, [-1, -1], batch_size=5, backend="torch")
    for batch in loader:
        seeds = batch.n_id[: batch.batch_size]
        out = model(batch.x, batch.edge_index)[: batch.batch_size]
        torch.testing.assert_close(out, full[seeds], rtol=1e-5, atol=1e-5)
    # With a small fanout the outputs differ somewhere (sampling really happens).
    loader = make_neighbor_loader(data, mask, [1, 1], batch_size=15, backend="torch")
    diffs = [
        (model(b.x, b.edge_index)[: b.batch_size] - full[b.n_id[: b.batch_size]]).abs().max()
        for b in loader
    ]
    assert max(diffs) > 1e-3


def test_loader_shuffle_is_seeded() -> None:
    data = graph_data()
    inputs = torch.arange(0, 60, 2)

    def epochs(seed: int, shuffle: bool = True) -> list[list[list[int]]]:
        loader = make_neighbor_loader(
            data, inputs, [2, 2], batch_size=8, shuffle=shuffle, seed=seed, backend="torch"
        )
        return [[b.n_id.tolist() for b in loader] for _ in range(2)]

    a = epochs(0)
    assert a == epochs(0)
    assert a != epochs(1)
    assert a[0] != a[1]  # a new order and new samples every epoch
    seeds_epoch0 = [n for n_id, bs in zip(a[0], [8, 8, 8, 6]) for n in n_id[:bs]]
    assert sorted(seeds_epoch0) == inputs.tolist() and seeds_epoch0 != inputs.tolist()
    plain = epochs(0, shuffle=False)
    assert [n for n_id in plain[0] for n in n_id[:8]][:8] == inputs[:8].tolist()
    state = torch.get_rng_state()
    epochs(0)
    assert torch.equal(state, torch.get_rng_state())


def test_loader_extra_node_attrs() -> None:
    data = graph_data()
    loader = make_neighbor_loader(
        data, torch.tensor([1, 2]), [2], batch_size=2, node_attrs=("x", "y"), backend="torch"
    )
    batch = next(iter(loader))
    assert torch.equal(batch.y, data.y[batch.n_id])


@pytest.mark.filterwarnings("ignore:Using 'NeighborSampler' without:UserWarning")
def test_auto_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch_geometric.typing as pyg_typing

    data = graph_data()
    monkeypatch.setattr(pyg_typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", False)
    assert not pyg_sampling_available()
    loader = make_neighbor_loader(data, torch.tensor([1]), [2], batch_size=1)
    assert isinstance(loader, NodeLoader)
    assert isinstance(loader.node_sampler, UniformNeighborSampler)
    with pytest.raises(GraphtagError, match="backend='pyg' needs pyg-lib or torch-sparse"):
        make_neighbor_loader(data, torch.tensor([1]), [2], batch_size=1, backend="pyg")
    monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", True)
    assert pyg_sampling_available()
    loader = make_neighbor_loader(data, torch.tensor([1]), [2], batch_size=1)
    assert isinstance(loader, loader_mod._SeededGlobalRNG)
    assert type(loader.loader).__name__ == "NeighborLoader"


def test_global_rng_wrapper_is_reproducible_and_restores_state() -> None:
    class GlobalRNGLoader:  # stands in for a compiled sampler that uses the global generator
        def __len__(self) -> int:
            return 3

        def __iter__(self):
            return (torch.randint(0, 10**9, (1,)).item() for _ in range(3))

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = loader_mod._SeededGlobalRNG(GlobalRNGLoader(), seed=5)
    first, second = list(a), list(a)
    assert torch.equal(state, torch.get_rng_state())
    assert len(a) == 3 and len(set(first)) == 3 and first != second
    b = loader_mod._SeededGlobalRNG(GlobalRNGLoader(), seed=5)
    assert [list(b), list(b)] == [first, second]
    assert list(loader_mod._SeededGlobalRNG(GlobalRNGLoader(), seed=6)) != first


@pytest.mark.parametrize(
    ("fanouts", "message"),
    [
        ([], "fanouts is empty"),
        ([2, -2], r"fanouts\[1\] = -2 is invalid"),
        ([2.5], r"fanouts\[0\] = 2.5 is not an int"),
        ([True], r"fanouts\[0\] = True is not an int"),
        (3, "fanouts must be a sequence of ints"),
    ],
)
def test_bad_fanouts(fanouts: object, message: str) -> None:
    with pytest.raises(GraphtagError, match=message):
        check_fanouts(fanouts)  # type: ignore[arg-type]
    with pytest.raises(GraphtagError, match=message):
        make_neighbor_loader(graph_data(), torch.tensor([0]), fanouts, 4)  # type: ignore[arg-type]


def test_fanouts_accept_integral_types() -> None:
    assert check_fanouts((np.int64(3), -1)) == [3, -1]
    assert all(type(f) is int for f in check_fanouts([np.int32(2)]))


def test_user_errors() -> None:
    data = graph_data()
    ids = torch.tensor([0, 1])
    with pytest.raises(GraphtagError, match="batch_size must be a positive int, got 0"):
        make_neighbor_loader(data, ids, [2], batch_size=0)
    with pytest.raises(GraphtagError, match="unknown backend 'dgl'"):
        make_neighbor_loader(data, ids, [2], 2, backend="dgl")  # type: ignore[arg-type]
    with pytest.raises(
        GraphtagError, match=r"input_nodes must lie in \[0, 60\), got min 0 and max 60"
    ):
        make_neighbor_loader(data, torch.tensor([0, 60]), [2], 2)
    with pytest.raises(GraphtagError, match=r"bool input_nodes mask must have shape \[60\]"):
        make_neighbor_loader(data, torch.ones(5, dtype=torch.bool), [2], 2)
    with pytest.raises(GraphtagError, match="input_nodes must be a 1-d tensor"):
        make_neighbor_loader(data, torch.tensor([0.5]), [2], 2)
    with pytest.raises(GraphtagError, match="node attribute 'task_names' must be a tensor"):
        make_neighbor_loader(data, ids, [2], 2, node_attrs=("x", "task_names"))
    with pytest.raises(GraphtagError, match="node attribute 'train_mask' must be a tensor"):
        make_neighbor_loader(data, ids, [2], 2, node_attrs=("train_mask",))
    with pytest.raises(GraphtagError, match=r"edge_index must be a tensor of shape \[2, E\]"):
        UniformNeighborSampler((torch.zeros(3, 4, dtype=torch.long), 5), [2])
    with pytest.raises(GraphtagError, match=r"outside \[0, 3\) \(min 0, max 4\)"):
        UniformNeighborSampler((torch.tensor([[0, 4], [1, 2]]), 3), [2])
    with pytest.raises(GraphtagError, match="edge_index must hold integer node ids"):
        UniformNeighborSampler((torch.zeros(2, 1), 3), [2])
    sampler = UniformNeighborSampler(data, [2])
    assert repr(sampler) == (
        f"UniformNeighborSampler(num_nodes=60, num_edges={data.num_edges}, fanouts=[2], seed=0)"
    )
    with pytest.raises(GraphtagError, match=r"seed node ids must lie in \[0, 60\)"):
        sample(sampler, torch.tensor([-1]))
    with pytest.raises(GraphtagError, match="samples from nodes only"):
        sampler.sample_from_edges(None)


@pytest.mark.gpu
def test_sampling_on_gpu() -> None:
    num_nodes = 40
    edge_index = random_graph(num_nodes, 120, seed=1)
    cuda = torch.device("cuda")
    for method in ("auto", *METHODS):
        sampler = UniformNeighborSampler((edge_index.to(cuda), num_nodes), [3, 2], seed=0)
        sampler._method = method
        seeds = torch.tensor([5, 0, 17, 33])
        out = sample(sampler, seeds)
        assert out.node.device.type == "cuda" and out.row.device.type == "cuda"
        check_sample(edge_index, num_nodes, [3, 2], seeds, out)
        again = UniformNeighborSampler((edge_index.to(cuda), num_nodes), [3, 2], seed=0)
        again._method = method
        assert torch.equal(sample(again, seeds).node, out.node)
    data = graph_data().to(cuda)
    batches = list(make_neighbor_loader(data, torch.arange(10), [3, 2], 4, backend="torch"))
    assert [b.batch_size for b in batches] == [4, 4, 2]
    for b in batches:
        assert b.x.device.type == "cuda" and b.edge_index.device.type == "cuda"
        assert torch.equal(b.x, data.x[b.n_id])
