"""The multi-label graph contract: clean_edges, build_multilabel_graph, check, task warnings."""

from __future__ import annotations

import pytest
import torch

from graphtag.data import (
    build_multilabel_graph,
    check_multilabel_graph,
    clean_edges,
    task_warnings,
)
from graphtag.errors import GraphtagError


def _reference_clean(pairs, num_nodes):
    loops = sum(u == v for u, v in pairs)
    undirected = [(min(u, v), max(u, v)) for u, v in pairs if u != v]
    unique = set(undirected)
    edges = sorted({(u, v) for a, b in unique for u, v in ((a, b), (b, a))})
    return edges, loops, len(undirected) - len(unique), len(unique)


@pytest.mark.parametrize("seed", range(6))
def test_clean_edges_matches_bruteforce(seed):
    g = torch.Generator().manual_seed(seed)
    num_nodes = 9
    ei = torch.randint(0, num_nodes, (2, 40), generator=g)
    out, counts = clean_edges(ei, num_nodes)
    edges, loops, dups, num_und = _reference_clean(ei.t().tolist(), num_nodes)
    assert [tuple(e) for e in out.t().tolist()] == edges  # sorted by (row, col), symmetric
    assert counts == {
        "self_loops_removed": loops,
        "duplicate_edges_removed": dups,
        "num_undirected_edges": num_und,
    }
    assert out.dtype == torch.int64 and out.size(1) == 2 * num_und


def test_clean_edges_counts_reverse_direction_as_duplicate():
    ei = torch.tensor([[0, 1, 2, 2], [1, 0, 2, 3]])
    out, counts = clean_edges(ei, 4)
    assert out.tolist() == [[0, 1, 2, 3], [1, 0, 3, 2]]
    assert counts == {
        "self_loops_removed": 1,
        "duplicate_edges_removed": 1,
        "num_undirected_edges": 2,
    }


def test_clean_edges_empty():
    out, counts = clean_edges(torch.zeros(2, 0, dtype=torch.long), 3)
    assert out.shape == (2, 0) and counts["num_undirected_edges"] == 0


def _toy(**kwargs):
    ei = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 2, 0, 3, 3, 4]])
    y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]])
    return build_multilabel_graph(ei, y, name="toy", **kwargs)


def test_build_contract_and_meta():
    data = _toy(seed=2, meta={"source": "test"}, feature_dim=4)
    check_multilabel_graph(data)
    assert data.num_nodes == 6 and data.name == "toy"
    assert data.task_names == ["task_0", "task_1"]
    assert data.y.dtype == torch.float32 and data.x.shape == (6, 4)
    assert data.meta["source"] == "test"
    assert data.meta["self_loops_removed"] == 1
    assert data.meta["duplicate_edges_removed"] == 1
    assert data.meta["num_undirected_edges"] == 4
    assert data.meta["split_seed"] == 2
    pairs = set(map(tuple, data.edge_index.t().tolist()))
    assert all((v, u) in pairs for u, v in pairs)
    assert (data.train_mask | data.val_mask | data.test_mask).all()


def test_build_given_features_and_masks():
    x = torch.arange(12.0).reshape(6, 2).double()
    train = torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.bool)
    val = torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.bool)
    test = ~(train | val)
    data = _toy(x=x, masks=(train, val, test), task_names=["a", "b"])  # x as given by default
    assert data.x.dtype == torch.float32 and torch.equal(data.x, x.float())
    assert data.train_mask.shape == (6, 2) and torch.equal(data.train_mask[:, 1], train)
    assert data.meta["split"] == "official" and data.task_names == ["a", "b"]
    assert data.meta["features"] == {"recipe": "given", "given_dim": 2, "num_features": 2}


def test_build_auto_features_concatenate_attributes_and_embedding():
    x = torch.arange(12.0).reshape(6, 2)
    data = _toy(x=x, feature_dim=3, features="auto")
    assert data.x.shape == (6, 5)
    record = data.meta["features"]
    assert record["recipe"] == "given+prone" and record["given_dim"] == 2 and record["dim"] == 3
    # Every column standardised: the attributes keep their order up to scale and shift.
    assert torch.allclose(data.x.mean(0), torch.zeros(5), atol=1e-6)
    assert torch.allclose(data.x[:, :2], (x - x.mean(0)) / x.std(0, unbiased=False))
    assert _toy(feature_dim=3).meta["features"]["recipe"] == "prone"


def test_build_same_seed_same_graph():
    a, b, c = _toy(seed=0), _toy(seed=0), _toy(seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.train_mask, b.train_mask)
    assert not torch.equal(a.train_mask, c.train_mask)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"y": torch.zeros(6)}, r"toy: labels must have shape \[N, T\], got \(6,\)"),
        ({"y": torch.zeros(6, 0)}, r"toy: the dataset has no tasks"),
        ({"y": torch.full((6, 1), float("nan"))}, r"labels contain NaN or inf"),
        (
            {"y": torch.tensor([[0.0], [1.0], [0.5], [0.0], [0.0], [3.0]])},
            r"toy: label of node 2, task 0 is 0\.5; labels must be 0 or 1",
        ),
        ({"edge_index": torch.tensor([[0, 1, 2]])}, r"edge_index must have shape \[2, E\]"),
        ({"edge_index": torch.tensor([[0], [6]])}, r"edge endpoints must lie in \[0, 6\)"),
        ({"x": torch.zeros(5, 3)}, r"features must have shape \[N=6, F\], got \(5, 3\)"),
        ({"task_names": ["only-one"]}, r"toy: 1 task names for 2 tasks"),
    ],
)
def test_build_errors(kwargs, pattern):
    args = {
        "edge_index": torch.tensor([[0, 1], [1, 2]]),
        "y": torch.zeros(6, 2),
        "name": "toy",
    }
    args.update(kwargs)
    with pytest.raises(GraphtagError, match=pattern):
        build_multilabel_graph(**args)


def test_check_detects_broken_graphs():
    data = _toy()
    data.val_mask = data.train_mask.clone()
    with pytest.raises(GraphtagError, match="masks overlap"):
        check_multilabel_graph(data)
    data = _toy()
    data.edge_index = torch.tensor([[0, 1], [0, 2]])
    with pytest.raises(GraphtagError, match="self-loops"):
        check_multilabel_graph(data)
    data = _toy()
    data.test_mask = data.test_mask.long()
    with pytest.raises(GraphtagError, match=r"test_mask must be bool \[N, T\]"):
        check_multilabel_graph(data)
    data = _toy()
    del data.x
    with pytest.raises(GraphtagError, match="graph is missing 'x'"):
        check_multilabel_graph(data)


def test_task_warnings_name_tasks_with_few_training_positives():
    y = torch.zeros(100, 2)
    y[:50, 0] = 1
    y[:3, 1] = 1  # 3 positives: 1 in train
    data = build_multilabel_graph(torch.tensor([[0], [1]]), y, name="w", task_names=["a", "b"])
    (msg,) = task_warnings(data)
    assert msg.startswith("task 1 (b) has 1 training positive(s) (< 5)")
    assert task_warnings(data, min_train_positives=1) == []


def _sort_reference_clean(ei: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The previous implementation: unique undirected keys, then an argsort of both directions."""
    ei = ei[:, ei[0] != ei[1]]
    lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
    key = torch.unique(lo * num_nodes + hi)
    lo, hi = key // num_nodes, key % num_nodes
    both = torch.stack([torch.cat([lo, hi]), torch.cat([hi, lo])])
    return both[:, torch.argsort(both[0] * num_nodes + both[1])]


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_clean_edges_matches_sort_reference_on_a_larger_graph(dtype):
    g = torch.Generator().manual_seed(5)
    num_nodes = 3000
    ei = torch.randint(0, num_nodes, (2, 20000), generator=g)
    ei[1, :8000] = ei[0, :8000]  # many self-loops
    ei[:, 10000:14000] = ei[:, 14000:18000].flip(0)  # many reversed duplicates
    out, counts = clean_edges(ei.to(dtype), num_nodes)
    assert out.dtype == torch.int64 and torch.equal(out, _sort_reference_clean(ei, num_nodes))
    assert counts["self_loops_removed"] == int((ei[0] == ei[1]).sum())
    assert counts["num_undirected_edges"] == out.size(1) // 2
    kept = int((ei[0] != ei[1]).sum())
    assert counts["duplicate_edges_removed"] == kept - out.size(1) // 2 > 3000
    # A transposed (non-contiguous) view gives the same result.
    out_t, counts_t = clean_edges(ei.t().contiguous().t(), num_nodes)
    assert torch.equal(out_t, out) and counts_t == counts


def test_build_bool_labels_equal_float_labels():
    ei = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 2, 0, 3, 3, 4]])
    y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]])
    a = build_multilabel_graph(ei, y.bool(), name="toy", seed=3)
    b = build_multilabel_graph(ei, y.float(), name="toy", seed=3)
    assert a.y.dtype == torch.float32
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key


@pytest.mark.parametrize("row", [0, 17, 40])
def test_check_finds_an_overlap_in_any_block(monkeypatch, row):
    from graphtag.data import _graph

    monkeypatch.setattr(_graph, "_CHECK_BLOCK", 16)  # 82 entries: five blocks of 16, then 2
    y = torch.zeros(41, 2)
    y[::3] = 1
    data = build_multilabel_graph(torch.tensor([[0], [1]]), y, name="blocks")
    check_multilabel_graph(data)  # no overlap anywhere
    data.test_mask[row, 1] = data.train_mask[row, 1] = True
    with pytest.raises(GraphtagError, match="masks overlap"):
        check_multilabel_graph(data)
