"""NodeBatch, PyG batch conversion, the output layer by name, and calls that leave models intact."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch_geometric.data import Data

from graphtag.errors import GraphtagError
from graphtag.models import NodeBatch, call_model
from graphtag.models._batch import eval_mode, forward_kwarg_names, head_parameter_ids


class _Aliased(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.lin = nn.Linear(4, 2)
        self.head = self.lin  # the same module under two names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.relu(self.body(x)))


def _batch(n: int = 5) -> NodeBatch:
    return NodeBatch(torch.arange(n), (torch.randn(n, 3),), torch.arange(n))


def test_functional_call_alone_detaches_an_aliased_head_and_call_model_does_not() -> None:
    # Why call_model restores parameters: torch's functional_call leaves the aliased
    # parameters replaced by the tensors it was given (detached here).
    model = _Aliased()
    params = {n: p.detach() for n, p in model.named_parameters()}
    functional_call(model, params, (torch.randn(2, 3),))
    assert not isinstance(model.lin.weight, nn.Parameter)  # the torch behaviour we guard against
    model = _Aliased()
    before = dict(model.named_parameters(remove_duplicate=False))
    params = {n: p.detach() * 2 for n, p in model.named_parameters()}
    batch = _batch()
    out = call_model(model, batch, params)
    after = dict(model.named_parameters(remove_duplicate=False))
    assert all(after[n] is p and p.requires_grad for n, p in before.items())
    hidden = torch.relu(
        nn.functional.linear(batch.args[0], params["body.weight"], params["body.bias"])
    )
    expected = nn.functional.linear(hidden, params["lin.weight"], params["lin.bias"])
    torch.testing.assert_close(out, expected)


def test_call_model_selects_out_rows_and_passes_kwargs() -> None:
    class Scaled(nn.Module):
        def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
            return x * (1.0 if scale is None else scale)

    x = torch.arange(12.0).reshape(4, 3)
    batch = NodeBatch(torch.tensor([7, 9]), (x,), torch.tensor([3, 1]), kwargs={"scale": 2.0})
    torch.testing.assert_close(call_model(Scaled(), batch), 2 * x[[3, 1]])
    with pytest.raises(GraphtagError, match=r"returned \[12\]; graphtag needs logits"):
        call_model(nn.Flatten(0), NodeBatch(batch.nodes, (x,), batch.out))


def test_eval_mode_restores_mixed_training_flags() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2)).train()
    model[1].eval()
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False, True]


def test_from_pyg_full_graph_minibatch_and_kwargs() -> None:
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    data = Data(x=torch.randn(3, 2), edge_index=ei, w=torch.ones(3))
    full = NodeBatch.from_pyg(data, forward_kwargs={"edge_weight": "w"})
    assert full.exact and full.nodes.tolist() == [0, 1, 2] and full.out.tolist() == [0, 1, 2]
    assert list(full.kwargs) == ["edge_weight"] and full.args[1] is ei
    sub = Data(edge_index=ei, n_id=torch.tensor([5, 8, 2]), batch_size=2, num_nodes=3)
    x = torch.randn(10, 2)
    mini = NodeBatch.from_pyg(sub, x=x)  # features gathered from the whole graph's x
    assert not mini.exact and mini.nodes.tolist() == [5, 8] and mini.out.tolist() == [0, 1]
    torch.testing.assert_close(mini.args[0], x[[5, 8, 2]])
    with pytest.raises(GraphtagError, match="has no node features x"):
        NodeBatch.from_pyg(sub)
    with pytest.raises(GraphtagError, match=r"expected a torch_geometric\.data\.Data"):
        NodeBatch.from_pyg(torch.zeros(3))


def test_forward_kwarg_names_normalises() -> None:
    assert forward_kwarg_names(("edge_attr",)) == {"edge_attr": "edge_attr"}
    assert forward_kwarg_names("edge_attr") == {"edge_attr": "edge_attr"}
    assert forward_kwarg_names({"edge_weight": "w"}) == {"edge_weight": "w"}
    with pytest.raises(GraphtagError, match="forward_kwargs must be attribute names"):
        forward_kwarg_names([1])


def test_head_by_prefix_module_fallback_and_errors() -> None:
    model = _Aliased()
    lin = {id(model.lin.weight), id(model.lin.bias)}
    assert head_parameter_ids(model, "lin", "t") == lin
    assert head_parameter_ids(model, "head", "t") == lin  # the alias names the same tensors
    assert head_parameter_ids(model, model.lin, "t") == lin
    assert head_parameter_ids(model, None, "t") == lin  # `.head` fallback
    with pytest.raises(GraphtagError, match=r"t: head='li' names no parameter of _Aliased"):
        head_parameter_ids(model, "li", "t")  # a prefix matches whole name components only
    with pytest.raises(GraphtagError, match="head must be a parameter-name prefix"):
        head_parameter_ids(model, 3, "t")  # type: ignore[arg-type]
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(GraphtagError, match="the head module has no parameters"):
        head_parameter_ids(seq, seq[1], "t")
