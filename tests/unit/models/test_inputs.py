"""prepare_inputs / GraphInputs.batches: exact batches equal full-graph inference."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from graphtag.data import build_multilabel_graph
from graphtag.errors import GraphtagError
from graphtag.models import ModelConfig, build_model, prepare_inputs

NAMES = ["sign", "sage", "gcn", "gat"]


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    # A sparse graph (so 2-hop subgraphs are proper subsets) plus an isolated node.
    ei = torch.randint(0, 79, (2, 120), generator=g)
    y = (torch.rand(80, 3, generator=g) < 0.4).float()
    return build_multilabel_graph(ei, y, name="tiny", feature_dim=6)


def _full(model, inputs):
    if inputs.hops is not None:
        return model(inputs.hops)
    return model(inputs.x, inputs.edge_index)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_exact_batches_equal_full_graph_inference(data, name, batch_size):
    config = ModelConfig(name, hidden_channels=8, num_hops=2, num_layers=2)
    inputs = prepare_inputs(data, config, "cpu")
    torch.manual_seed(1)
    model = build_model(config, inputs.in_channels, 3).eval()
    nodes = torch.tensor([5, 79, 0, 33, 12, 64, 5])
    with torch.no_grad():
        full = _full(model, inputs)
        parts = []
        for b in inputs.batches(nodes, batch_size, train=False):
            assert b.exact
            assert b.out.shape == b.nodes.shape
            parts.append((b.nodes, model(*b.args)[b.out]))
    got_nodes = torch.cat([n for n, _ in parts])
    assert got_nodes.tolist() == nodes.tolist()
    torch.testing.assert_close(torch.cat([o for _, o in parts]), full[nodes], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["sage", "gcn"])
def test_exact_batches_use_proper_subgraphs(data, name):
    # The subgraph of one seed is much smaller than the graph, so equality above is not trivial.
    inputs = prepare_inputs(data, ModelConfig(name, num_layers=2), "cpu")
    (b,) = list(inputs.batches(torch.tensor([5]), 4, train=False))
    assert b.args[0].size(0) < data.num_nodes // 2


def test_bool_mask_none_and_shuffle(data):
    inputs = prepare_inputs(data, ModelConfig("sign", num_hops=1), "cpu")
    mask = torch.zeros(80, dtype=torch.bool)
    mask[[3, 9, 40]] = True
    assert torch.cat([b.nodes for b in inputs.batches(mask, 2, train=False)]).tolist() == [3, 9, 40]
    assert torch.cat([b.nodes for b in inputs.batches(None, 50, train=False)]).tolist() == list(
        range(80)
    )

    def order(seed):
        bs = inputs.batches(None, 30, train=True, shuffle=True, seed=seed)
        return torch.cat([b.nodes for b in bs]).tolist()

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == list(range(80))
    (b,) = list(inputs.batches(torch.tensor([4, 2]), 8, train=False))
    assert b.args[0].shape == (2, 2, 6) and b.out.tolist() == [0, 1]
    torch.testing.assert_close(b.args[0], inputs.hops[[4, 2]])


@pytest.mark.parametrize("name", ["sage", "gcn", "gat"])
def test_training_batches_cover_seeds_once(data, name):
    config = ModelConfig(name, hidden_channels=8, num_layers=2)
    inputs = prepare_inputs(data, config, "cpu")
    model = build_model(config, inputs.in_channels, 3)
    nodes = torch.arange(0, 80, 3)
    seen = []
    for b in inputs.batches(nodes, 10, train=True, shuffle=True, seed=3, fanouts=(3, 2)):
        out = model(*b.args)[b.out]
        assert out.shape == (b.nodes.numel(), 3)
        assert b.args[0].size(1) == 6
        seen.extend(b.nodes.tolist())
    assert sorted(seen) == nodes.tolist()


def test_input_errors(data):
    inputs = prepare_inputs(data, ModelConfig("sage"), "cpu")
    with pytest.raises(GraphtagError, match=r"node ids must lie in \[0, 80\), got range \[0, 80\]"):
        list(inputs.batches(torch.tensor([0, 80]), 4, train=False))
    with pytest.raises(GraphtagError, match=r"boolean node mask must have shape \[80\]"):
        list(inputs.batches(torch.ones(5, dtype=torch.bool), 4, train=False))
    with pytest.raises(GraphtagError, match=r"fanouts \(5,\) must give one sample size"):
        list(inputs.batches(None, 4, train=True, fanouts=(5,)))
    with pytest.raises(GraphtagError, match="batch_size must be >= 1"):
        list(inputs.batches(None, 0, train=False))
    with pytest.raises(GraphtagError, match=r"needs node features x \[N, F\]"):
        prepare_inputs(Data(edge_index=data.edge_index, num_nodes=80), ModelConfig(), "cpu")
    assert inputs.num_nodes == 80 and inputs.in_channels == 6


@pytest.mark.parametrize("name", ["sage", "gcn", "gat"])
def test_sampling_every_neighbour_equals_exact_inference(data, name):
    # fanouts -1 = all neighbours: the sampled batches (with GCN's full-degree edge weights)
    # must reproduce full-graph outputs, which checks the loader wiring and the weight rule.
    config = ModelConfig(name, hidden_channels=8, num_layers=2)
    inputs = prepare_inputs(data, config, "cpu")
    torch.manual_seed(2)
    model = build_model(config, inputs.in_channels, 3).eval()
    nodes = torch.arange(0, 80, 2)
    with torch.no_grad():
        full = _full(model, inputs)
        batches = list(inputs.batches(nodes, 9, train=True, shuffle=True, seed=1, fanouts=(-1, -1)))
        got = torch.cat([model(*b.args)[b.out] for b in batches])
        ids = torch.cat([b.nodes for b in batches])
    assert not batches[0].exact
    assert sorted(ids.tolist()) == nodes.tolist()
    torch.testing.assert_close(got, full[ids], rtol=1e-5, atol=1e-5)
