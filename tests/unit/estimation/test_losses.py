"""Estimated validation losses: brute force, NaN outside subsets, the network hook."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from graphtag.errors import GraphtagError, NumericalError
from graphtag.estimation import (
    base_losses,
    estimate_losses,
    fit_surrogates,
    make_synthetic_features,
)
from graphtag.gradients import VAL, GradientFeatures

SUBSETS = [(0, 1), (2,), (0, 2, 3), (1, 3)]


def _features(seed=0):
    return make_synthetic_features(
        num_tasks=4, num_groups=2, train_rows=25, val_rows=15, dim=5, seed=seed
    )


def _bruteforce_loss(feats, task, w):
    sel = (feats.split == VAL) & (feats.task == task)
    z = feats.offsets[sel].double().numpy() + feats.features[sel].double().numpy() @ w
    y = feats.labels[sel].double().numpy()
    return float(np.mean(np.logaddexp(0, z) - y * z))


@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_linear_losses_match_bruteforce(batch_size):
    feats = _features()
    weights = torch.randn(len(SUBSETS), feats.dim, dtype=torch.float64)
    losses = estimate_losses(feats, SUBSETS, weights, batch_size=batch_size)
    assert losses.shape == (4, 4) and losses.dtype == torch.float64
    for k, subset in enumerate(SUBSETS):
        for t in range(4):
            if t in subset:
                ref = _bruteforce_loss(feats, t, weights[k].numpy())
                assert losses[k, t].item() == pytest.approx(ref, rel=1e-12)
            else:
                assert torch.isnan(losses[k, t])


def test_zero_weights_give_base_losses():
    feats = _features(1)
    losses = estimate_losses(feats, [(0, 1, 2, 3)], torch.zeros(1, feats.dim))
    base = base_losses(feats)
    torch.testing.assert_close(losses[0], base, rtol=1e-12, atol=0)
    for t in range(4):
        assert base[t].item() == pytest.approx(_bruteforce_loss(feats, t, np.zeros(5)), rel=1e-12)


def test_fitted_surrogate_beats_base_on_planted_data():
    # On the planted model, fitting a task's own rows moves w towards its group direction, so the
    # validation loss drops below the base loss.
    feats = make_synthetic_features(num_tasks=2, train_rows=200, val_rows=200, dim=4, seed=3)
    fit = fit_surrogates(feats, [(0,), (1,)])
    losses = estimate_losses(feats, [(0,), (1,)], fit.weights)
    base = base_losses(feats)
    assert losses[0, 0] < base[0] and losses[1, 1] < base[1]


def test_task_without_val_rows_is_nan():
    feats = _features(2)
    keep = ~((feats.task == 1) & (feats.split == VAL))
    reduced = GradientFeatures(
        *(getattr(feats, n)[keep] for n in ("features", "offsets", "labels", "task", "node")),
        feats.split[keep],
        feats.num_tasks,
        {},
    )
    losses = estimate_losses(reduced, [(0, 1)], torch.zeros(1, 5))
    assert torch.isfinite(losses[0, 0]) and torch.isnan(losses[0, 1])
    assert torch.isnan(base_losses(reduced)[1])


def test_network_kind_calls_the_hook_and_blanks_outside():
    feats = _features()
    weights = torch.zeros(len(SUBSETS), feats.dim)
    seen = {}

    def hook(subsets, w):
        seen["subsets"], seen["weights"] = subsets, w
        return torch.arange(16, dtype=torch.float32).view(4, 4) + 1

    out = estimate_losses(feats, SUBSETS, weights, kind="network", network_loss_fn=hook)
    assert seen["subsets"] == SUBSETS and seen["weights"] is weights
    assert out[0, :2].tolist() == [1.0, 2.0] and torch.isnan(out[0, 2:]).all()
    assert out.dtype == torch.float64


def test_network_kind_errors():
    feats = _features()
    w = torch.zeros(1, feats.dim)
    with pytest.raises(GraphtagError, match=re.escape("kind='network' needs network_loss_fn")):
        estimate_losses(feats, [(0,)], w, kind="network")
    with pytest.raises(GraphtagError, match=re.escape("must return [1, 4], got (4,)")):
        estimate_losses(
            feats, [(0,)], w, kind="network", network_loss_fn=lambda s, w: torch.ones(4)
        )
    with pytest.raises(NumericalError, match="NaN or inf"):
        estimate_losses(
            feats,
            [(0,)],
            w,
            kind="network",
            network_loss_fn=lambda s, w: torch.full((1, 4), float("nan")),
        )
    with pytest.raises(GraphtagError, match=re.escape("only used with kind='network'")):
        estimate_losses(feats, [(0,)], w, network_loss_fn=lambda s, w: torch.ones(1, 4))
    with pytest.raises(GraphtagError, match=re.escape("unknown loss kind 'exact'")):
        estimate_losses(feats, [(0,)], w, kind="exact")
    with pytest.raises(GraphtagError, match=re.escape("weights must be a tensor of shape [1, 5]")):
        estimate_losses(feats, [(0,)], torch.zeros(2, 5))
