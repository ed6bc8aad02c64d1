"""graphtag.recommend.holdout_mask and the held-out comparison of candidates."""

import math

import pytest
import torch

from graphtag.data import load_dataset
from graphtag.errors import GraphtagError
from graphtag.metrics import Evaluator
from graphtag.models import prepare_inputs
from graphtag.pipeline import RecommendConfig
from graphtag.recommend import ProbeScorer, holdout_mask, holdout_split
from graphtag.training import TrainConfig, fit_model, predict


def _labels(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(200, 7, generator=g) < 0.15).float()
    val = torch.rand(200, 7, generator=g) < 0.3
    y[:, 6] = 0.0
    y[3, 6] = 1.0  # task 6: one positive ...
    val[:, 6] = False
    val[3, 6] = val[10, 6] = val[11, 6] = True  # ... in validation, with two negatives
    return y, val


@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.8])
def test_holdout_counts_per_task_and_class_match_a_brute_force_count(fraction):
    y, val = _labels()
    held = holdout_mask(y, val, fraction, seed=1)
    assert not (held & ~val).any()  # a subset of the validation labels
    for t in range(y.size(1)):
        for cls in (0.0, 1.0):
            members = val[:, t] & (y[:, t] == cls)
            expected = math.ceil(fraction * int(members.sum()))
            assert int((held[:, t] & members).sum()) == expected, (t, cls)
    # Task 6's single positive is held out; its negatives are split 1 (held) / 1 (kept).
    assert held[3, 6] and int(held[:, 6].sum()) == 1 + math.ceil(fraction * 2)


def test_holdout_is_seeded():
    y, val = _labels()
    a, b = holdout_mask(y, val, 0.5, seed=3), holdout_mask(y, val, 0.5, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, holdout_mask(y, val, 0.5, seed=4))


def test_holdout_rejects_bad_arguments():
    y, val = _labels()
    for bad in (0.0, 1.0, -0.2, float("nan")):
        with pytest.raises(GraphtagError, match=r"held-out fraction must lie in \(0, 1\)"):
            holdout_mask(y, val, bad)
    with pytest.raises(GraphtagError, match=r"must be the same \[N, T\]"):
        holdout_mask(y, val[:, :3], 0.5)
    with pytest.raises(GraphtagError, match=r"holdout must lie in \[0, 1\), got 1.0"):
        RecommendConfig(holdout=1.0)


def test_probe_scores_are_measured_on_the_score_mask_only():
    data = load_dataset("synthetic:num_nodes=300,num_tasks=4,num_groups=2,seed=0")
    config = TrainConfig(hidden_channels=16, epochs=10, device="cpu")
    inputs = prepare_inputs(data, config.model_config, "cpu")
    base = fit_model(data, inputs, None, config, seed=0).model
    held = holdout_mask(data.y, data.val_mask, 0.5)
    probe = ProbeScorer(data, inputs, base, config, epochs=2, score_mask=held)
    _, auc = probe.base()
    expected = Evaluator().evaluate(data.y, predict(base, inputs), held)["auc"]
    assert torch.allclose(torch.tensor(auc), torch.tensor(expected, dtype=torch.float64))
    full = Evaluator().evaluate(data.y, predict(base, inputs), data.val_mask)["auc"]
    assert not torch.allclose(torch.tensor(auc), torch.tensor(full, dtype=torch.float64))


def test_holdout_split_leaves_the_data_unchanged():
    data = load_dataset("synthetic:num_nodes=200,num_tasks=3,num_groups=1,seed=0")
    val = data.val_mask.clone()
    train, held = holdout_split(data, 0.5, seed=2)
    assert torch.equal(held, holdout_mask(data.y, val, 0.5, seed=2))
    assert torch.equal(train.val_mask, val & ~held) and torch.equal(data.val_mask, val)
    assert train.y is data.y  # a shallow copy
    same, mask = holdout_split(data, 0.0)
    assert same is data and mask is data.val_mask
