"""Batched-JVP projected gradients against brute-force autograd references."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev

from graphtag.errors import GraphtagError
from graphtag.gradients import (
    GradientProjector,
    compute_projected_gradients,
    iter_projected_gradients,
    naive_projected_gradients,
)
from graphtag.models import NodeBatch

ATOL = 1e-10


def _batches(setup, nodes, batch_size=7):
    return list(setup.inputs.batches(torch.as_tensor(nodes), batch_size, train=False))


def _full_graph_reference(setup, proj: GradientProjector) -> torch.Tensor:
    """[N, T, d] from the Jacobian of full-graph inference (eval mode) times a dense P."""
    model = setup.model
    was = model.training
    model.eval()
    if setup.inputs.hops is not None:
        args = (setup.inputs.hops,)
    else:
        args = (setup.inputs.x, setup.inputs.edge_index)
    params = {n: p.detach() for n, p in model.named_parameters()}
    block = {n: params[n] for n in proj.param_names_}
    rest = {n: p for n, p in params.items() if n not in block}

    def f(b):
        return functional_call(model, (b, rest), args)

    jac = jacrev(f)(block)  # {name: [N, T, *shape]}
    model.train(was)
    num_nodes, num_tasks = next(iter(jac.values())).shape[:2]
    flat = torch.cat([jac[n].reshape(num_nodes * num_tasks, -1) for n in proj.param_names_], 1)
    dirs = proj.directions(0, proj.dim, dtype=torch.float64)
    dense = torch.cat([dirs[n].reshape(proj.dim, -1) for n in proj.param_names_], 1)
    return (flat @ dense.T).reshape(num_nodes, num_tasks, proj.dim)


@pytest.mark.parametrize("block", ["all", "body"])
def test_jvp_matches_naive_autograd(setup, block: str) -> None:
    proj = GradientProjector(dim=11, block=block, seed=1).fit(setup.model)
    nodes = torch.tensor([0, 3, 4, 9, 17, 23, 12])
    fast = compute_projected_gradients(setup.model, _batches(setup, nodes, 3), proj, chunk_size=4)
    slow = naive_projected_gradients(setup.model, _batches(setup, nodes, 3), proj)
    assert fast.shape == (7, 3, 11)
    assert fast.dtype == torch.float64
    torch.testing.assert_close(fast, slow, atol=ATOL, rtol=0)
    assert float(fast.abs().max()) > 1e-3  # not trivially zero
    assert setup.model.training  # the caller's mode is restored


def test_jvp_equals_full_graph_jacobian(setup) -> None:
    # Exact batches (SIGN rows, or the full 2-hop subgraph for SAGE) must give the same gradients
    # as full-graph inference; eval mode (dropout off) is part of the contract.
    proj = GradientProjector(dim=6, kind="gaussian", seed=0).fit(setup.model)
    nodes = torch.arange(setup.data.num_nodes)
    fast = compute_projected_gradients(setup.model, _batches(setup, nodes, 5), proj, chunk_size=4)
    torch.testing.assert_close(fast, _full_graph_reference(setup, proj), atol=ATOL, rtol=0)


def test_chunked_and_unchunked_agree(setup) -> None:
    proj = GradientProjector(dim=10, seed=3).fit(setup.model)
    nodes = torch.arange(0, 24, 2)
    ref = compute_projected_gradients(setup.model, _batches(setup, nodes, 12), proj, chunk_size=10)
    for chunk, batch in [(1, 5), (3, 1), (7, 12), (64, 4)]:
        out = compute_projected_gradients(
            setup.model, _batches(setup, nodes, batch), proj, chunk_size=chunk
        )
        torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    # The direction cache changes nothing.
    nocache = compute_projected_gradients(
        setup.model, _batches(setup, nodes, 5), proj, chunk_size=3, max_cache_bytes=0
    )
    torch.testing.assert_close(nocache, ref, atol=ATOL, rtol=0)


def test_body_block_differs_from_all_by_the_head_term(sign_setup) -> None:
    # Directions are seeded per parameter name, so g_all - g_body is exactly the projection of
    # the head's gradient: d f_t / d W_head[t] = h (the head input), d f_t / d b_head[t] = 1.
    setup = sign_setup
    model = setup.model
    nodes = torch.arange(10)
    g_all = compute_projected_gradients(
        model, _batches(setup, nodes), GradientProjector(dim=5, block="all").fit(model)
    )
    body = GradientProjector(dim=5, block="body").fit(model)
    g_body = compute_projected_gradients(model, _batches(setup, nodes), body)
    hidden = []
    handle = model.head.register_forward_hook(lambda m, i, o: hidden.append(i[0]))
    model.eval()
    with torch.no_grad():
        model(setup.inputs.hops[nodes])
    model.train()
    handle.remove()
    h = hidden[0]  # [n, H]
    full = GradientProjector(dim=5, block="all").fit(model)
    dirs = full.directions(0, 5, dtype=torch.float64)
    head_term = torch.einsum("nh,kth->ntk", h, dirs["head.weight"]) + dirs["head.bias"].T
    torch.testing.assert_close(g_all - g_body, head_term, atol=ATOL, rtol=0)
    assert float((g_all - g_body).abs().max()) > 1e-3


def test_sage_gradient_depends_on_neighbour_features(sage_setup, graph) -> None:
    setup = sage_setup
    proj = GradientProjector(dim=4).fit(setup.model)
    ei = graph.edge_index
    node = 0
    neighbour = int(ei[0, ei[1] == node][0])
    before = compute_projected_gradients(setup.model, _batches(setup, [node]), proj)
    setup.inputs.x = setup.inputs.x.clone()
    setup.inputs.x[neighbour] += 1.0
    after = compute_projected_gradients(setup.model, _batches(setup, [node]), proj)
    assert float((before - after).abs().max()) > 1e-4
    # A node farther than 2 hops does not matter.
    dist = torch.full((graph.num_nodes,), 99)
    dist[node] = 0
    for hop in range(1, 4):
        reach = ei[0, dist[ei[1]] == hop - 1]
        dist[reach] = torch.minimum(dist[reach], torch.full_like(reach, hop))
    far = int(torch.nonzero(dist > 2)[0])
    setup.inputs.x[far] += 5.0
    after_far = compute_projected_gradients(setup.model, _batches(setup, [node]), proj)
    torch.testing.assert_close(after_far, after, atol=ATOL, rtol=0)


def test_task_selection_picks_columns(setup) -> None:
    proj = GradientProjector(dim=4).fit(setup.model)
    nodes = torch.arange(8)
    full = compute_projected_gradients(setup.model, _batches(setup, nodes), proj)
    sub = compute_projected_gradients(setup.model, _batches(setup, nodes), proj, tasks=[2, 0])
    torch.testing.assert_close(sub, full[:, [2, 0]], atol=0, rtol=0)
    naive = naive_projected_gradients(setup.model, _batches(setup, nodes), proj, tasks=[2, 0])
    torch.testing.assert_close(naive, sub, atol=ATOL, rtol=0)


def test_iter_yields_base_logits(setup) -> None:
    proj = GradientProjector(dim=3).fit(setup.model)
    batches = _batches(setup, torch.arange(10), 4)
    setup.model.eval()
    with torch.no_grad():
        expected = torch.cat([setup.model(*b.args)[b.out] for b in batches])
    setup.model.train()
    got = torch.cat([lg for _, lg, _ in iter_projected_gradients(setup.model, batches, proj)])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_errors(setup) -> None:
    model = setup.model
    batches = _batches(setup, torch.arange(4))
    with pytest.raises(GraphtagError, match=r"not fitted; call projector\.fit"):
        compute_projected_gradients(model, batches, GradientProjector(dim=3))
    proj = GradientProjector(dim=3).fit(torch.nn.Linear(2, 2))
    with pytest.raises(GraphtagError, match=r"parameter 'weight', which .* does not have"):
        compute_projected_gradients(model, batches, proj)
    proj = GradientProjector(dim=3).fit(model)
    sampled = NodeBatch(batches[0].nodes, batches[0].args, batches[0].out, exact=False)
    with pytest.raises(GraphtagError, match=r"exact node batches.*train=False"):
        compute_projected_gradients(model, [sampled], proj)
    with pytest.raises(GraphtagError, match=r"must yield graphtag\.models\.NodeBatch"):
        compute_projected_gradients(model, [batches[0].args], proj)
    with pytest.raises(GraphtagError, match=r"task indices must lie in \[0, 3\)"):
        compute_projected_gradients(model, batches, proj, tasks=[5])
    with pytest.raises(GraphtagError, match=r"tasks must be integer task indices, got \[0\.5\]"):
        compute_projected_gradients(model, batches, proj, tasks=[0.5])
    with pytest.raises(GraphtagError, match="chunk_size must be a positive int, got 0"):
        compute_projected_gradients(model, batches, proj, chunk_size=0)


@pytest.mark.gpu
def test_cuda_matches_cpu(sign_setup) -> None:
    s = sign_setup
    proj = GradientProjector(dim=9, seed=2).fit(s.model)
    nodes = torch.arange(12)
    cpu = compute_projected_gradients(s.model, _batches(s, nodes, 5), proj, chunk_size=4)
    cuda = torch.device("cuda")
    s.model.to(cuda)
    s.inputs.hops = s.inputs.hops.to(cuda)
    s.inputs.device = cuda
    gpu = compute_projected_gradients(s.model, _batches(s, nodes, 5), proj, chunk_size=4)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-9, rtol=0)
