"""Batch planning: which batchings are trusted, the full-graph check, and re-aimed loaders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphtag.errors import GraphtagError
from graphtag.gradients._batches import EXACT_TOL, check_exact, node_batches, plan_batches
from graphtag.loader import make_neighbor_loader
from graphtag.models import ModelConfig, MultiTaskGNN, NodeBatch, call_model, prepare_inputs

from .conftest import NUM_FEATURES, NUM_TASKS


class _Shifted(nn.Module):
    """Row-wise model whose outputs on batches differ from the full graph by ``shift``."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.lin = nn.Linear(NUM_FEATURES, NUM_TASKS)
        self.shift = shift

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        full = x.size(0) == 24  # the test graph's node count
        return self.lin(x) + (0.0 if full else self.shift)


@pytest.mark.parametrize("shift", [0.0, EXACT_TOL / 10])
def test_check_exact_accepts_rounding_level_differences(graph, shift) -> None:
    model = _Shifted(shift)
    plan = plan_batches(make_neighbor_loader(graph, torch.arange(24), [-1], 8), model)
    batch = NodeBatch.from_pyg(next(iter(plan.make(torch.arange(8), 8))))
    assert plan.reference is not None
    assert check_exact(model, batch, plan.reference, what="w", fix="f", inexact_ok=False, where="t")


@pytest.mark.parametrize("shift", [1e-2, float("nan")])
def test_check_exact_refuses_or_warns(graph, shift) -> None:
    model = _Shifted(shift)
    plan = plan_batches(make_neighbor_loader(graph, torch.arange(24), [-1], 8), model)
    batch = NodeBatch.from_pyg(next(iter(plan.make(torch.arange(8), 8))))
    kw = {"what": "the batches", "fix": "do X", "where": "t"}
    with pytest.raises(GraphtagError, match=r"t: the batches are not exact .*; do X; or pass"):
        check_exact(model, batch, plan.reference, inexact_ok=False, **kw)
    with pytest.warns(UserWarning, match="used anyway"):
        assert not check_exact(model, batch, plan.reference, inexact_ok=True, **kw)


def test_prepared_inputs_are_trusted_only_for_their_own_model(graph) -> None:
    inputs = prepare_inputs(graph, ModelConfig("gcn", num_layers=2), "cpu")
    own = MultiTaskGNN(NUM_FEATURES, 6, NUM_TASKS, num_layers=2, encoder="gcn")
    deeper = MultiTaskGNN(NUM_FEATURES, 6, NUM_TASKS, num_layers=3, encoder="gcn")
    sage = MultiTaskGNN(NUM_FEATURES, 6, NUM_TASKS, num_layers=2, encoder="sage")
    assert plan_batches(inputs, own).trusted
    assert not plan_batches(inputs, deeper).trusted and not plan_batches(inputs, sage).trusted
    # the reference is full-graph inference: exact batches of the own model agree with it
    batch = next(inputs.batches(torch.arange(5), 5, train=False))
    with torch.no_grad():
        torch.testing.assert_close(
            call_model(own.eval(), batch), call_model(own, inputs.full_batch(torch.arange(5)))
        )


def test_inexact_nodebatches_of_a_callable_are_refused_unless_allowed(graph) -> None:
    model = _Shifted(0.0)
    sampled = NodeBatch(torch.arange(3), (graph.x[:3], graph.edge_index[:, :0]), torch.arange(3))
    sampled.exact = False
    plan = plan_batches(lambda nodes, size: [sampled], model)
    with pytest.raises(GraphtagError, match="need exact node batches"):
        list(node_batches(plan, model, torch.arange(3), 3))
    assert len(list(node_batches(plan, model, torch.arange(3), 3, inexact_ok=True))) == 1


def test_reaimed_loader_covers_the_nodes_and_leaves_the_global_rng_alone(graph) -> None:
    loader = make_neighbor_loader(graph, torch.arange(4), [2, 2], batch_size=2, backend="torch")
    plan = plan_batches(loader, _Shifted(0.0))
    state = torch.get_rng_state()
    seeds = [NodeBatch.from_pyg(b).nodes for b in plan.make(torch.arange(10, 20), 4)]
    assert torch.equal(state, torch.get_rng_state())
    assert torch.cat(seeds).tolist() == list(range(10, 20)) and len(seeds) == 3
