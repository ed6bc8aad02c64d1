"""SIGN, MultiTaskGNN, sign_features, ModelConfig/build_model, with_tasks and torch.func."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev, jvp, vmap

from graphtag.errors import GraphtagError
from graphtag.models import (
    SIGN,
    ModelConfig,
    MultiTaskGNN,
    build_model,
    gcn_edge_weights,
    sign_features,
)

ENCODERS = ["sage", "gcn", "gat"]


def _graph(num_nodes=12, num_edges=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    ei = torch.unique(torch.cat([ei, ei.flip(0)], 1), dim=1)
    return torch.randn(num_nodes, 5, generator=g), ei


def _model(name, num_tasks=4):
    if name == "sign":
        return SIGN(5, 8, num_tasks, num_hops=2)
    return MultiTaskGNN(5, 8, num_tasks, num_layers=2, encoder=name)


def _args(name, x, ei):
    return (sign_features(x, ei, 2),) if name == "sign" else (x, ei)


def test_sign_features_matches_dense_powers():
    x, ei = _graph()
    n = x.size(0)
    a = torch.zeros(n, n)
    a[ei[0], ei[1]] = 1
    for loops in (True, False):
        b = a + torch.eye(n) if loops else a
        dinv = b.sum(1).clamp(min=1).rsqrt()
        norm = dinv[:, None] * b * dinv[None, :]
        hops = sign_features(x, ei, 3, self_loops=loops)
        assert hops.shape == (n, 4, 5)
        expected = torch.stack([torch.linalg.matrix_power(norm, k) @ x for k in range(4)], 1)
        torch.testing.assert_close(hops, expected, rtol=1e-5, atol=1e-5)


def test_sign_features_isolated_nodes():
    x = torch.randn(3, 2)
    ei = torch.tensor([[0, 1], [1, 0]])
    hops = sign_features(x, ei, 2)  # default: no self-loops, isolated node 2 has zero hops
    torch.testing.assert_close(hops[2], torch.cat([x[2:], torch.zeros(2, 2)]))
    torch.testing.assert_close(hops[:2, 1], x[[1, 0]])  # a single edge swaps the endpoints
    looped = sign_features(x, ei, 2, self_loops=True)
    torch.testing.assert_close(looped[2], x[2].expand(3, 2))  # self-loop only


@pytest.mark.parametrize("name", ["sign", *ENCODERS])
def test_forward_shapes_and_head(name):
    x, ei = _graph()
    model = _model(name, num_tasks=4)
    out = model(*_args(name, x, ei))
    assert out.shape == (12, 4)
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 4
    assert list(model.children())[-1] is model.head


@pytest.mark.parametrize("name", ["sign", *ENCODERS])
def test_with_tasks_keeps_rows_in_order(name):
    x, ei = _graph()
    model = _model(name, num_tasks=5).eval()
    sub = model.with_tasks([3, 0, 4])
    assert type(sub) is type(model) and sub.head.out_features == 3 and sub.num_tasks == 3
    args = _args(name, x, ei)
    torch.testing.assert_close(sub(*args), model(*args)[:, [3, 0, 4]])
    # A deep copy: training the copy leaves the original untouched.
    before = model.head.weight.clone()
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    torch.testing.assert_close(model.head.weight, before)
    assert model.head.out_features == 5


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([], "tasks is empty"),
        ([0, 5], r"tasks \[5\] out of range: there are 5 tasks \(0\.\.4\)"),
        ([1, 1], r"duplicates \[1\]"),
        ([0.5], "integer task indices"),
    ],
)
def test_with_tasks_errors(tasks, message):
    with pytest.raises(GraphtagError, match=message):
        _model("sign", num_tasks=5).with_tasks(tasks)


@pytest.mark.parametrize("name", ["sign", *ENCODERS])
def test_reset_parameters_changes_every_parameter(name):
    model = _model(name)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    model.reset_parameters()
    for key, p in model.named_parameters():
        assert not torch.all(p == 3.0), key


@pytest.mark.parametrize("name", ["sign", *ENCODERS])
def test_jvp_through_functional_call_matches_reverse_mode(name):
    x, ei = _graph()
    model = _model(name).eval()
    args = _args(name, x, ei)
    params = {k: v.detach() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(1)
    tangents = {k: torch.randn(v.shape, generator=g) for k, v in params.items()}

    def f(p):
        return functional_call(model, p, args)

    out, dout = jvp(f, (params,), (tangents,))
    torch.testing.assert_close(out, model(*args))
    # Reference: the full reverse-mode Jacobian contracted with the tangents.
    jac = jacrev(f)(params)
    expected = sum((jac[k] * tangents[k]).flatten(2).sum(-1) for k in params)
    torch.testing.assert_close(dout, expected, rtol=1e-4, atol=1e-5)
    # Batched over tangent directions (what the gradient features do).
    stacked = {k: torch.stack([tangents[k], 2 * tangents[k]]) for k in params}
    many = vmap(lambda t: jvp(f, (params,), (t,))[1])(stacked)
    torch.testing.assert_close(many[0], dout, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(many[1], 2 * dout, rtol=1e-4, atol=1e-5)


def test_gcn_edge_weights_equal_full_graph_normalisation_when_complete():
    _, ei = _graph()
    deg = torch.bincount(ei[1], minlength=12)
    ei_a, w_a = gcn_edge_weights(ei, 12)
    ei_b, w_b = gcn_edge_weights(ei, 12, deg)
    dense_a = torch.zeros(12, 12).index_put((ei_a[1], ei_a[0]), w_a, accumulate=True)
    dense_b = torch.zeros(12, 12).index_put((ei_b[1], ei_b[0]), w_b, accumulate=True)
    torch.testing.assert_close(dense_a, dense_b)
    # Half of node 0's in-edges: the kept ones are scaled by deg / count (unbiased estimate).
    into0 = (ei[1] == 0).nonzero().flatten()
    keep = torch.ones(ei.size(1), dtype=torch.bool)
    keep[into0[: into0.numel() // 2]] = False
    ei_c, w_c = gcn_edge_weights(ei[:, keep], 12, deg)
    kept = int((ei[1, keep] == 0).sum())
    d = (deg.float() + 1).rsqrt()
    for j, i, w in zip(*ei_c, w_c):
        if i == 0 and j != 0:
            assert w.item() == pytest.approx((d[j] * d[0] * deg[0] / kept).item(), rel=1e-6)


def test_gnn_edge_weight_only_for_gcn():
    x, ei = _graph()
    with pytest.raises(GraphtagError, match="edge_weight is only used by encoder='gcn'"):
        _model("sage")(x, ei, torch.ones(ei.size(1)))


def test_input_shape_errors():
    with pytest.raises(
        GraphtagError, match=r"SIGN expects hop features \[n, 3, 5\], got \(4, 2, 5\)"
    ):
        _model("sign")(torch.randn(4, 2, 5))
    with pytest.raises(GraphtagError, match=r"expects node features \[n, 5\], got \(4, 3\)"):
        _model("sage")(torch.randn(4, 3), torch.zeros(2, 0, dtype=torch.long))


def test_config_and_build_model():
    for name in ("sign", *ENCODERS):
        model = build_model(ModelConfig(name, hidden_channels=8), in_channels=5, num_tasks=3)
        assert model.head.out_features == 3 and model.head.in_features == 8
        assert isinstance(model, SIGN if name == "sign" else MultiTaskGNN)
    assert build_model(ModelConfig("sign", num_hops=1), 5, 2).num_hops == 1
    assert build_model(ModelConfig("gcn", num_layers=3), 5, 2).num_layers == 3
    with pytest.raises(GraphtagError, match="unknown model 'mlp'"):
        ModelConfig("mlp")
    with pytest.raises(GraphtagError, match=r"dropout must lie in \[0, 1\), got 1.0"):
        ModelConfig(dropout=1.0)
    with pytest.raises(GraphtagError, match="num_layers must be >= 1"):
        ModelConfig("sage", num_layers=0)
    with pytest.raises(GraphtagError, match="divisible by 4"):
        build_model(ModelConfig("gat", hidden_channels=6), 5, 2)
    with pytest.raises(GraphtagError, match="unknown encoder 'gin'"):
        MultiTaskGNN(5, 8, 2, encoder="gin")
