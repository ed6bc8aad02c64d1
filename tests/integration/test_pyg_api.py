"""graphtag's estimators from a PyG user's own code (issue 15, findings 1-3).

A PyG researcher has a multi-label ``Data`` with PyG's ``[N]`` masks, a ``torch_geometric.nn``
model and a training loop of their own. These tests call graphtag as that user would and check
that (1) no call changes the user's model, even with an aliased output layer, (2) PyG's
conventions (``[N]`` masks, int labels, the ``Data`` itself or a loader as inputs, keyword
arguments of ``forward``) work, and (3) a batching that is not exact for the model is refused.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GCN, GCNConv, GraphSAGE

from graphtag.baselines import TAGAffinity
from graphtag.data import load_dataset
from graphtag.errors import GraphtagError
from graphtag.gradients import (
    GradientProjector,
    extract_gradient_features,
    naive_projected_gradients,
    network_subset_losses,
)
from graphtag.loader import make_neighbor_loader
from graphtag.models import ModelConfig, MultiTaskGNN, NodeBatch, prepare_inputs

NUM_TASKS = 4


def _pyg_data(num_nodes: int = 120, seed: int = 0) -> Data:
    """A planted multi-label graph as a PyG user holds it: int ``y`` and ``[N]`` masks."""
    g = load_dataset(f"synthetic:num_nodes={num_nodes},num_tasks={NUM_TASKS},num_groups=2")
    perm = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed))
    masks = [torch.zeros(num_nodes, dtype=torch.bool) for _ in range(3)]
    for m, part in zip(masks, perm.tensor_split([num_nodes // 2, 3 * num_nodes // 4])):
        m[part] = True
    return Data(
        x=g.x,
        edge_index=g.edge_index,
        y=g.y.long(),
        train_mask=masks[0],
        val_mask=masks[1],
        test_mask=masks[2],
    )


class Net(nn.Module):
    """A user's model: PyG's GraphSAGE body and a linear output layer ``lin``."""

    def __init__(self, in_channels: int, hidden: int = 8, num_layers: int = 2) -> None:
        super().__init__()
        self.gnn = GraphSAGE(in_channels, hidden, num_layers=num_layers)
        self.lin = nn.Linear(hidden, NUM_TASKS)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.lin(self.gnn(x, edge_index).relu())


def _snapshot(model: nn.Module) -> list[tuple[str, torch.Tensor, torch.Tensor, bool]]:
    named = list(model.named_parameters(remove_duplicate=False))
    named += list(model.named_buffers(remove_duplicate=False))
    return [(n, t, t.detach().clone(), t.requires_grad) for n, t in named]


def _assert_untouched(model: nn.Module, before: list, what: str) -> None:
    after = dict(model.named_parameters(remove_duplicate=False))
    after.update(dict(model.named_buffers(remove_duplicate=False)))
    for name, obj, value, requires_grad in before:
        assert after[name] is obj, f"{what} replaced {name}"
        assert isinstance(obj, nn.Parameter) == isinstance(after[name], nn.Parameter), what
        assert torch.equal(after[name], value), f"{what} changed the values of {name}"
        assert after[name].requires_grad == requires_grad, f"{what} changed {name}.requires_grad"


def _train_step(model: nn.Module, data: Data, opt: torch.optim.Optimizer) -> None:
    model.train()
    opt.zero_grad()
    out = model(data.x, data.edge_index)
    loss = F.binary_cross_entropy_with_logits(out[data.train_mask], data.y[data.train_mask].float())
    loss.backward()
    opt.step()


# ------------------------------------------------------------------ finding 1: no corruption


def test_aliased_head_is_left_intact_and_keeps_training() -> None:
    data = load_dataset(f"synthetic:num_nodes=80,num_tasks={NUM_TASKS},num_groups=2")
    torch.manual_seed(0)
    model = Net(data.num_features)
    model.head = model.lin  # the natural fix for "needs a .head": an alias of the output layer
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    _train_step(model, data, opt)
    inputs = prepare_inputs(data, ModelConfig("sage", num_layers=2), "cpu")
    before = _snapshot(model)
    projector = GradientProjector(dim=8, block="body").fit(model)
    _assert_untouched(model, before, "GradientProjector.fit")
    extract_gradient_features(model, inputs, data, projector)
    _assert_untouched(model, before, "extract_gradient_features")
    batch = next(inputs.batches(torch.arange(40), 40, train=True, fanouts=(3, 3)))
    rows = batch.nodes.cpu()
    TAGAffinity(every=1).step(model, batch, data.y[rows], data.train_mask[rows], lr=0.05)
    _assert_untouched(model, before, "TAGAffinity.step")
    head_before = model.lin.weight.detach().clone()
    _train_step(model, data, opt)  # the user's loop still trains the output layer
    assert model.lin.weight is model.head.weight
    assert (model.lin.weight - head_before).abs().max() > 1e-4


def test_no_public_call_changes_any_parameter_or_buffer() -> None:
    data = _pyg_data()
    torch.manual_seed(0)
    model = nn.ModuleDict({"net": Net(data.num_features)})["net"]
    model.gnn.norm = nn.BatchNorm1d(8)  # a buffer-holding, unused module must survive too
    model.head = model.lin
    before = _snapshot(model)
    projector = GradientProjector(dim=6, block="body", head="lin").fit(model)
    feats = extract_gradient_features(model, data, data, projector)
    _assert_untouched(model, before, "extract_gradient_features")
    subsets = [(0, 1), (2, 3)]
    network_subset_losses(model, data, data, projector, subsets, torch.zeros(2, 6))
    _assert_untouched(model, before, "network_subset_losses")
    naive_projected_gradients(model, [NodeBatch.from_pyg(data)], projector)
    _assert_untouched(model, before, "naive_projected_gradients")
    tag = TAGAffinity(every=1, head=model.lin)
    tag.step(model, data, lr=0.1)
    tag.fit(model, [data], lr=0.1)
    _assert_untouched(model, before, "TAGAffinity")
    assert feats.features.shape[1] == 6 and model.training


# ------------------------------------------------------------------ finding 2: PyG conventions


def test_pyg_masks_int_labels_and_data_as_inputs() -> None:
    data = _pyg_data()
    torch.manual_seed(0)
    model = GCN(data.num_features, 8, num_layers=2, out_channels=NUM_TASKS)
    projector = GradientProjector(dim=6, seed=1)
    feats = extract_gradient_features(model, data, data, projector)
    expanded = data.clone()
    expanded.y = data.y.float()
    for name in ("train_mask", "val_mask", "test_mask"):
        expanded[name] = data[name].unsqueeze(1).expand(-1, NUM_TASKS).clone()
    ref = extract_gradient_features(model, expanded, expanded, projector)
    torch.testing.assert_close(feats.features, ref.features, rtol=0, atol=0)
    n_train, n_val = int(data.train_mask.sum()), int(data.val_mask.sum())
    assert feats.features.shape == (NUM_TASKS * (n_train + n_val), 6)
    # the logits are the full-graph ones of PyG's own GCN (its normalisation on the whole graph)
    with torch.no_grad():
        full = model.eval()(data.x, data.edge_index)
    torch.testing.assert_close(feats.offsets, full[feats.node, feats.task], rtol=1e-5, atol=1e-6)


def test_graphtag_model_gives_the_same_features_from_data_loader_or_prepared_inputs() -> None:
    data = _pyg_data()
    torch.manual_seed(0)
    model = MultiTaskGNN(data.num_features, 8, NUM_TASKS, num_layers=2, encoder="sage")
    projector = GradientProjector(dim=6)
    prepared = prepare_inputs(data, ModelConfig("sage", num_layers=2), "cpu")
    ref = extract_gradient_features(model, prepared, data, projector)
    loader = make_neighbor_loader(data, data.train_mask, [-1, -1], 32, backend="torch")
    for inputs in (data, loader):
        feats = extract_gradient_features(model, inputs, data, projector, node_batch_size=32)
        torch.testing.assert_close(feats.features, ref.features, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(feats.offsets, ref.offsets, rtol=1e-5, atol=1e-6)


class _Weighted(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = GCNConv(in_channels, 8)
        self.lin = nn.Linear(8, NUM_TASKS)

    def forward(self, x, edge_index, edge_weight=None):
        return self.lin(self.conv(x, edge_index, edge_weight).relu())


def test_forward_keyword_arguments_reach_the_model() -> None:
    data = _pyg_data()
    data.w = torch.rand(data.edge_index.size(1), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = _Weighted(data.num_features)
    projector = GradientProjector(dim=6).fit(model)
    feats = extract_gradient_features(
        model, data, data, projector, forward_kwargs={"edge_weight": "w"}
    )
    plain = extract_gradient_features(model, data, data, projector)
    assert not torch.allclose(feats.features, plain.features)
    batch = NodeBatch.from_pyg(data, forward_kwargs={"edge_weight": "w"})
    ref = naive_projected_gradients(model, [batch], projector)  # [N, T, d]
    torch.testing.assert_close(feats.features, ref[feats.node, feats.task], rtol=1e-4, atol=1e-5)
    tag = TAGAffinity(every=1, head="lin", forward_kwargs={"edge_weight": "w"})
    assert tag.step(model, data, lr=0.1) and tag.affinity_.shape == (NUM_TASKS, NUM_TASKS)


def test_tag_reads_labels_of_pyg_minibatches() -> None:
    data = _pyg_data()
    torch.manual_seed(0)
    model = Net(data.num_features)
    loader = make_neighbor_loader(
        data, data.train_mask, [3, 3], 16, node_attrs=("x", "y", "train_mask"), backend="torch"
    )
    tag = TAGAffinity(every=1, head="lin")
    for batch in loader:
        tag.step(model, batch, lr=0.1)
    assert tag.num_measured_ == len(loader)
    assert tag.counts_.min() == len(loader) and tag.affinity_.dtype.name == "float64"


# ------------------------------------------------------------------ finding 3: inexact batching


@pytest.mark.parametrize(
    ("model_fn", "config"),
    [
        (lambda f: GCN(f, 8, num_layers=2, out_channels=NUM_TASKS), ModelConfig("sage")),
        (lambda f: Net(f, num_layers=3), ModelConfig("sage", num_layers=2)),
    ],
    ids=["pyg-gcn", "sage-3-layers"],
)
def test_prepared_inputs_that_do_not_fit_the_model_are_refused(model_fn, config) -> None:
    data = load_dataset(f"synthetic:num_nodes=120,num_tasks={NUM_TASKS},num_groups=2")
    torch.manual_seed(0)
    model = model_fn(data.num_features)
    inputs = prepare_inputs(data, config, "cpu")
    projector = GradientProjector(dim=4)
    kw = {"node_batch_size": 16}  # one batch of every node would be the whole graph: exact
    with pytest.raises(GraphtagError, match=r"not exact for this model.*differ from full-graph"):
        extract_gradient_features(model, inputs, data, projector, **kw)
    with pytest.warns(UserWarning, match="used anyway"):
        extract_gradient_features(model, inputs, data, projector, inexact_ok=True, **kw)


def test_sampled_or_degree_normalised_loader_batches_are_refused() -> None:
    data = _pyg_data()
    torch.manual_seed(0)
    sage = Net(data.num_features)
    sampled = make_neighbor_loader(data, data.train_mask, [2, 2], 32, backend="torch")
    with pytest.raises(GraphtagError, match=r"NodeLoader mini-batches are not exact"):
        extract_gradient_features(sage, sampled, data, GradientProjector(dim=4))
    gcn = GCN(data.num_features, 8, num_layers=2, out_channels=NUM_TASKS)
    full = make_neighbor_loader(data, data.train_mask, [-1, -1], 32, backend="torch")
    with pytest.raises(GraphtagError, match=r"normalises by node degree"):
        extract_gradient_features(gcn, full, data, GradientProjector(dim=4), node_batch_size=16)
    feats = extract_gradient_features(sage, full, data, GradientProjector(dim=4))
    assert feats.num_tasks == NUM_TASKS
