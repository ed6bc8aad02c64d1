"""network_subset_losses against copying the model and moving it by P w."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from graphtag.errors import GraphtagError
from graphtag.gradients import (
    VAL,
    GradientProjector,
    extract_gradient_features,
    network_subset_losses,
)

SUBSETS = [{0}, {0, 2}, {1, 2}, {0, 1, 2}, {1}]


def _loop_reference(setup, proj, subsets, weights, tasks=None):
    data = setup.data
    tasks = list(range(data.y.size(1))) if tasks is None else tasks
    out = torch.full((len(subsets), len(tasks)), float("nan"), dtype=torch.float64)
    batches = list(setup.inputs.batches(torch.arange(data.num_nodes), 100, train=False))
    for m, subset in enumerate(subsets):
        moved = copy.deepcopy(setup.model).eval()
        delta = proj.expand(weights[m : m + 1])
        params = dict(moved.named_parameters())
        with torch.no_grad():
            for name in proj.param_names_:
                params[name].add_(delta[name][0])
            logits = torch.cat([moved(*b.args)[b.out] for b in batches])
        for j in subset:
            t = tasks[j]
            v = data.val_mask[:, t]
            out[m, j] = F.binary_cross_entropy_with_logits(logits[v, t], data.y[v, t].double())
    return out


@pytest.mark.parametrize("block", ["all", "body"])
def test_matches_moving_a_copy_of_the_model(setup, block: str) -> None:
    proj = GradientProjector(dim=6, block=block, seed=5).fit(setup.model)
    gen = torch.Generator().manual_seed(0)
    weights = torch.randn(len(SUBSETS), 6, generator=gen, dtype=torch.float64)
    ref = _loop_reference(setup, proj, SUBSETS, weights)
    for batch_subsets, node_batch in [(1, 4), (2, 100), (16, 7)]:
        got = network_subset_losses(
            setup.model,
            setup.inputs,
            setup.data,
            proj,
            SUBSETS,
            weights,
            batch_subsets=batch_subsets,
            node_batch_size=node_batch,
        )
        assert got.shape == (5, 3) and got.dtype == torch.float64
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=0, equal_nan=True)
    assert torch.isnan(got[0, 1]) and not torch.isnan(got[0, 0])
    assert setup.model.training
    # The moved parameters matter (the weights are not silently ignored).
    zero = network_subset_losses(
        setup.model, setup.inputs, setup.data, proj, SUBSETS, torch.zeros_like(weights)
    )
    assert float((zero - got).nan_to_num().abs().max()) > 1e-3


def test_task_selection_and_val_mask_override(sign_setup) -> None:
    s = sign_setup
    proj = GradientProjector(dim=4).fit(s.model)
    weights = torch.randn(2, 4, dtype=torch.float64)
    subsets = [{0}, {0, 1}]
    got = network_subset_losses(s.model, s.inputs, s.data, proj, subsets, weights, tasks=[2, 0])
    ref = _loop_reference(s, proj, subsets, weights, tasks=[2, 0])
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=0, equal_nan=True)
    # Restricting validation rows to one node per task gives that node's BCE.
    val = torch.zeros(s.data.num_nodes, 2, dtype=torch.bool)
    first = s.data.val_mask[:, [2, 0]].float().argmax(0)
    val[first, torch.arange(2)] = True
    one = network_subset_losses(
        s.model, s.inputs, s.data, proj, subsets, weights, tasks=[2, 0], val_mask=val
    )
    assert one.shape == (2, 2) and not torch.isnan(one[1]).any()
    assert float((one - got).nan_to_num().abs().max()) > 1e-6


def test_small_steps_match_the_linearisation(setup) -> None:
    # For tiny w, f(theta0 + P w) = o + g . w + O(|w|^2): the network estimate must agree with
    # the linear estimate built from the extracted features (offsets included).
    proj = GradientProjector(dim=8, kind="gaussian", seed=1).fit(setup.model)
    feats = extract_gradient_features(
        setup.model, setup.inputs, setup.data, proj, dtype=torch.float64
    )
    weights = 1e-4 * torch.randn(len(SUBSETS), 8, dtype=torch.float64)
    net = network_subset_losses(setup.model, setup.inputs, setup.data, proj, SUBSETS, weights)
    for m, subset in enumerate(SUBSETS):
        for t in subset:
            r = feats.rows(t, VAL)
            z = feats.offsets[r].double() + feats.features[r] @ weights[m]
            lin = F.binary_cross_entropy_with_logits(z, feats.labels[r].double())
            # offsets are stored in float32: agreement to ~1e-7, far below the O(1e-4) step.
            assert abs(float(net[m, t]) - float(lin)) < 1e-6
    base = network_subset_losses(
        setup.model, setup.inputs, setup.data, proj, SUBSETS, torch.zeros_like(weights)
    )
    assert float((net - base).nan_to_num().abs().max()) > 1e-6


def test_errors(sign_setup) -> None:
    s = sign_setup
    proj = GradientProjector(dim=4).fit(s.model)
    w = torch.zeros(2, 4)
    with pytest.raises(GraphtagError, match=r"weights have shape \(2, 4\) but there are 3 subsets"):
        network_subset_losses(s.model, s.inputs, s.data, proj, [{0}, {1}, {2}], w)
    with pytest.raises(GraphtagError, match=r"expected \[2, 5\]"):
        network_subset_losses(
            s.model, s.inputs, s.data, GradientProjector(dim=5).fit(s.model), [{0}, {1}], w
        )
    with pytest.raises(GraphtagError, match=r"subset 1 has task indices outside \[0, 3\)"):
        network_subset_losses(s.model, s.inputs, s.data, proj, [{0}, {1, 3}], w)
    with pytest.raises(GraphtagError, match="subset 0 is empty"):
        network_subset_losses(s.model, s.inputs, s.data, proj, [set(), {1}], w)
    with pytest.raises(GraphtagError, match="needs a GradientProjector fitted"):
        network_subset_losses(s.model, s.inputs, s.data, GradientProjector(), [{0}, {1}], w)
    with pytest.raises(GraphtagError, match=r"val_mask must be bool \[N, T'\] = \[24, 3\]"):
        network_subset_losses(
            s.model, s.inputs, s.data, proj, [{0}, {1}], w, val_mask=torch.ones(24, 2).bool()
        )
