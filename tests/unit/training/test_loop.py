"""fit_model and predict on a tiny planted graph: learning, selection, determinism, errors."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

from graphtag.data import build_multilabel_graph
from graphtag.errors import GraphtagError, NumericalError
from graphtag.metrics import roc_auc_scores
from graphtag.models import ModelConfig, build_model, prepare_inputs
from graphtag.training import TrainConfig, TrainResult, fit_model, predict

SMALL = TrainConfig(
    hidden_channels=16, num_hops=2, epochs=30, patience=30, batch_size=32, device="cpu"
)


@pytest.fixture(scope="module")
def data():
    """Two communities; task 0 = community, task 1 = its complement's noisy copy, task 2 noise."""
    g = torch.Generator().manual_seed(0)
    n = 160
    community = torch.arange(n) < n // 2
    src = torch.randint(0, n, (600,), generator=g)
    dst = torch.randint(0, n, (600,), generator=g)
    keep = (community[src] == community[dst]) | (torch.rand(600, generator=g) < 0.1)
    ei = torch.stack([src[keep], dst[keep]])
    y = torch.stack(
        [
            community.float(),
            (~community ^ (torch.rand(n, generator=g) < 0.1)).float(),
            (torch.rand(n, generator=g) < 0.5).float(),
        ],
        1,
    )
    x = torch.randn(n, 4, generator=g) + community.float().unsqueeze(1)
    return build_multilabel_graph(ei, y, x=x, name="planted")


def _fit(data, config=SMALL, tasks=None, **kw) -> TrainResult:
    inputs = prepare_inputs(data, config.model_config, "cpu")
    return fit_model(data, inputs, tasks, config, **kw)


def test_fit_learns_planted_tasks_and_returns_best_checkpoint(data):
    result = _fit(data, tasks=[0, 1])
    assert result.model.head.out_features == 2 and not result.model.training
    assert result.tasks == [0, 1] and result.select == "auc"
    aucs = [h["val_auc"] for h in result.history]
    assert result.best_val == max(aucs) > 0.85  # task 1 has 10% flipped labels
    assert result.history[result.best_epoch - 1]["epoch"] == result.best_epoch
    # The returned model is the best checkpoint: recomputing its validation AUC gives best_val.
    inputs = prepare_inputs(data, SMALL.model_config, "cpu")
    logits = predict(result.model, inputs)
    val = roc_auc_scores(data.y[:, [0, 1]], logits, data.val_mask[:, [0, 1]])
    assert float(val.mean()) == pytest.approx(result.best_val, abs=1e-6)
    test = roc_auc_scores(data.y[:, [0, 1]], logits, data.test_mask[:, [0, 1]])
    assert test[0] > 0.93 and test[1] > 0.75
    assert result.seconds > 0 and set(result.history[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_auc",
        "seconds",
    }


def test_same_seed_identical_other_seed_different_and_global_rng_untouched(data):
    state = torch.get_rng_state()
    a = _fit(data, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = _fit(data, seed=3)
    c = _fit(data, seed=4)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert any(not torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_early_stopping_and_loss_selection(data):
    config = dataclasses.replace(SMALL, epochs=200, patience=5, lr=0.05)
    result = _fit(data, config, select="loss")
    losses = [h["val_loss"] for h in result.history]
    assert len(result.history) < 200  # stopped early
    assert result.best_val == min(losses)
    assert result.history[-1]["epoch"] - result.best_epoch == 5
    assert result.select == "loss"


def test_eval_every_evaluates_on_schedule_and_last_epoch(data):
    config = dataclasses.replace(SMALL, epochs=7, eval_every=3)
    result = _fit(data, config)
    assert [h["epoch"] for h in result.history] == [3, 6, 7]


def test_warm_start_trains_only_the_subset_outputs(data):
    base = _fit(data)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    # lr so small that the fine-tuned model equals its starting point.
    config = dataclasses.replace(SMALL, epochs=1, lr=1e-12)
    tuned = _fit(data, config, tasks=[2, 0], init=base.model)
    assert tuned.model.head.out_features == 2
    inputs = prepare_inputs(data, SMALL.model_config, "cpu")
    torch.testing.assert_close(
        predict(tuned.model, inputs), predict(base.model, inputs)[:, [2, 0]], rtol=1e-5, atol=1e-5
    )
    for key, value in base.model.state_dict().items():  # init itself untouched
        assert torch.equal(value, before[key]), key
    again = _fit(data, config, tasks=[2, 0], init=tuned.model)  # already restricted: copied
    assert again.model.head.out_features == 2
    with pytest.raises(GraphtagError, match=r"init has 2 outputs; warm-starting needs one per"):
        _fit(data, config, tasks=[0], init=tuned.model)


def test_message_passing_training(data):
    config = TrainConfig(
        model="sage",
        hidden_channels=16,
        epochs=15,
        batch_size=64,
        fanouts=(5, 5),
        device="cpu",
        patience=100,
    )
    result = _fit(data, config, tasks=[0])
    assert result.best_val > 0.9
    assert len(result.history) == 15
    # Neighbour sampling is seeded too: the same seed gives the same model.
    short = dataclasses.replace(config, epochs=2)
    a, b = _fit(data, short, tasks=[0], seed=5), _fit(data, short, tasks=[0], seed=5, progress=True)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_nan_features_raise_numerical_error(data):
    bad = data.clone()
    bad.x = data.x.clone()
    bad.x[3, 1] = math.nan
    msg = "stage 'train': the node features x hold NaN/inf at 1 nodes in columns [1] (first at"
    with pytest.raises(NumericalError, match=re.escape(msg)):
        _fit(bad, tasks=[1])


def test_predict_matches_model_and_restores_mode(data):
    inputs = prepare_inputs(data, ModelConfig("gcn", hidden_channels=8), "cpu")
    model = build_model(inputs.config, inputs.in_channels, 3)
    model.train()
    out = predict(model, inputs, torch.tensor([4, 1]), batch_size=1)
    assert model.training
    model.eval()
    with torch.no_grad():
        full = model(inputs.x, inputs.edge_index)
    torch.testing.assert_close(out, full[[4, 1]], rtol=1e-5, atol=1e-6)
    assert predict(model, inputs).shape == (160, 3)


def test_fit_errors(data):
    inputs = prepare_inputs(data, SMALL.model_config, "cpu")
    with pytest.raises(GraphtagError, match=r"tasks \[3\] out of range"):
        fit_model(data, inputs, [0, 3], SMALL)
    with pytest.raises(GraphtagError, match="select must be 'auc', 'loss' or 'auto', got 'f1'"):
        fit_model(data, inputs, None, SMALL, select="f1")
    with pytest.raises(GraphtagError, match="the inputs were prepared for"):
        fit_model(data, inputs, None, dataclasses.replace(SMALL, num_hops=3))
    with pytest.raises(GraphtagError, match="init is a 'sage' model but the inputs"):
        fit_model(data, inputs, None, SMALL, init=build_model(ModelConfig("sage"), 4, 3))
    one_class = data.clone()
    one_class.y = data.y.clone()
    one_class.y[:, 2] = 0
    with pytest.raises(GraphtagError, match=r"no task of \[2\] has both classes in validation"):
        fit_model(one_class, inputs, [2], SMALL)
    assert fit_model(one_class, inputs, [2], dataclasses.replace(SMALL, epochs=1), select="loss")
    with pytest.raises(GraphtagError, match=r"fanouts \(5,\) must give one sample size"):
        TrainConfig(model="sage", fanouts=(5,))
    with pytest.raises(GraphtagError, match="unknown model 'mlp'"):
        TrainConfig(model="mlp")
    with pytest.raises(GraphtagError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)


def test_warm_start_trains_with_the_recipes_dropout_not_the_inits(data):
    """A base model loaded without its input dropout fine-tunes like the one trained in memory."""
    config = TrainConfig(hidden_channels=16, epochs=3, device="cpu", input_dropout=0.5)
    inputs = prepare_inputs(data, config.model_config, "cpu")
    base = fit_model(data, inputs, None, config, seed=0).model
    plain = build_model(dataclasses.replace(config, input_dropout=0.0).model_config, 4, 3)
    plain.load_state_dict(base.state_dict())  # same weights, built without input dropout
    assert plain.input_dropout.p == 0.0 and base.input_dropout.p == 0.5
    a = fit_model(data, inputs, [0, 1], config, seed=1, init=base).model
    b = fit_model(data, inputs, [0, 1], config, seed=1, init=plain).model
    assert b.input_dropout.p == 0.5 and plain.input_dropout.p == 0.0  # the init is untouched
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("decay", [0.0, 0.7])
def test_weight_average_is_validated_selected_and_returned(data, decay):
    """The returned model is the per-epoch EMA of the trained weights at the best epoch."""
    config = dataclasses.replace(SMALL, epochs=6, patience=6, batch_size=256, ema_decay=decay)
    inputs = prepare_inputs(data, config.model_config, "cpu")
    weights: list[dict[str, torch.Tensor]] = []  # one step per epoch: the weights after each

    def record(model, *_):
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    result = fit_model(data, inputs, [0, 1], config, seed=0, step_callback=record)
    assert len(weights) == 6
    averages, avg = [], None
    for w in weights:  # the reference average, written out
        avg = w if avg is None else {k: decay * avg[k] + (1 - decay) * w[k] for k in w}
        averages.append(avg)
    want = averages[result.best_epoch - 1]
    for key, value in result.model.state_dict().items():
        torch.testing.assert_close(value, want[key], rtol=1e-5, atol=1e-6)
    # Every epoch's validation AUC is the average's, not the trained weights'.
    ref = build_model(config.model_config, 4, 2)
    for epoch, avg in enumerate(averages, start=1):
        ref.load_state_dict(avg)
        val = roc_auc_scores(data.y[:, [0, 1]], predict(ref, inputs), data.val_mask[:, [0, 1]])
        assert result.history[epoch - 1]["val_auc"] == pytest.approx(float(val.mean()), abs=1e-6)
    if decay:  # the averages differ from the weights, so the check above could fail
        assert not torch.allclose(averages[-1]["head.weight"], weights[-1]["head.weight"])


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_ema_decay_outside_unit_interval_is_refused(decay):
    with pytest.raises(GraphtagError, match=r"ema_decay must lie in \[0, 1\)"):
        TrainConfig(ema_decay=decay)
