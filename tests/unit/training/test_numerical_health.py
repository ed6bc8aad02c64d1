"""fit_model refuses NaN/inf inputs and reports divergence with its stage, epoch and tasks."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from graphtag.data import build_multilabel_graph
from graphtag.errors import NumericalError
from graphtag.models import build_model, prepare_inputs
from graphtag.training import TrainConfig, fit_model

CONFIG = TrainConfig(
    hidden_channels=8, num_hops=2, epochs=3, patience=3, batch_size=1024, device="cpu"
)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    n = 80
    ei = torch.randint(0, n, (2, 320), generator=g)
    y = (torch.rand(n, 3, generator=g) < 0.5).float()
    x = torch.randn(n, 4, generator=g)
    return build_multilabel_graph(ei, y, x=x, name="toy")


def _with_x(data, x):
    bad = data.clone()
    bad.x = x
    return bad


def _fit(data, config=CONFIG, tasks=None, **kw):
    inputs = prepare_inputs(data, config.model_config, "cpu")
    return fit_model(data, inputs, tasks, config, **kw)


def _base_with_infinite_task(data, row: int):
    """A 3-output base model whose logits of task ``row`` (only) are infinite."""
    inputs = prepare_inputs(data, CONFIG.model_config, "cpu")
    torch.manual_seed(0)
    model = build_model(CONFIG.model_config, inputs.in_channels, 3)
    with torch.no_grad():
        model.head.bias[row] = float("inf")
    return model


def test_nan_feature_is_refused_up_front_with_its_column(data):
    x = data.x.clone()
    x[3, 1] = float("nan")
    calls = []
    with pytest.raises(NumericalError) as info:
        _fit(_with_x(data, x), step_callback=lambda *a: calls.append(1))
    assert str(info.value).startswith(
        "stage 'train': the node features x hold NaN/inf at 1 nodes in columns [1] "
        "(first at node 3, column 1); replace or impute them in data.x"
    )
    assert info.value.stage == "train"
    assert calls == []  # refused before the first optimiser step


def test_inf_features_of_message_passing_inputs_name_every_column(data):
    x = data.x.clone()
    x[7, 2] = float("inf")
    x[9, 0] = -float("inf")
    x[9, 2] = float("nan")
    config = dataclasses.replace(CONFIG, model="sage", num_layers=2, fanouts=(5, 5))
    with pytest.raises(
        NumericalError,
        match=re.escape(
            "stage 'base': the node features x hold NaN/inf at 2 nodes in columns [0, 2] "
            "(first at node 7, column 2)"
        ),
    ):
        _fit(_with_x(data, x), config=config, stage="base")


def test_huge_finite_features_are_not_mistaken_for_nan(data):
    # The fast check sums the inputs; an overflowing sum of finite values must not be refused
    # by the input check (training may still diverge later, which is reported as such).
    x = data.x.clone()
    x[:, 0] = 3e38
    inputs = prepare_inputs(_with_x(data, x), CONFIG.model_config, "cpu")
    assert not bool(torch.isfinite(inputs.hops.sum()))
    assert bool(torch.isfinite(inputs.hops[:, 0]).all())
    try:
        _fit(_with_x(data, x))
    except NumericalError as exc:
        assert "node features x hold" not in str(exc)


def test_training_divergence_names_stage_epoch_and_only_the_diverged_task(data):
    init = _base_with_infinite_task(data, row=1)
    with pytest.raises(NumericalError) as info:
        _fit(data, tasks=[2, 1], init=init, select="loss", stage="finetune")
    msg = str(info.value)
    assert msg.startswith(
        "stage 'finetune': training diverged at epoch 1: the loss is non-finite for tasks "
        "[1 ('task_1')] (1 of 2 trained; per-task loss "
    )
    assert msg.endswith(
        "lower the learning rate (lr=0.01 now), or check the node features and labels for "
        "NaN/inf or huge values"
    )
    assert info.value.stage == "finetune" and info.value.tasks == [1]


def test_default_stage_label_is_train(data):
    with pytest.raises(NumericalError, match=r"^stage 'train': training diverged at epoch 1"):
        _fit(data, init=_base_with_infinite_task(data, row=0))


def test_validation_divergence_is_reported_with_the_tasks(data):
    def blow_up(model, batch, y, mask, lr):  # one batch per epoch: runs before validation
        with torch.no_grad():
            model.head.weight[2] = float("inf")

    with pytest.raises(NumericalError) as info:
        _fit(data, step_callback=blow_up, stage="tag")
    assert str(info.value).startswith(
        "stage 'tag': validation diverged at epoch 1: the loss is non-finite for tasks "
        "[2 ('task_2')] (1 of 3 trained; per-task loss nan)"
    )
    assert info.value.tasks == [2]


def test_huge_learning_rate_diverges_with_a_hint(data):
    config = dataclasses.replace(CONFIG, lr=1e30, epochs=20, patience=20)
    with pytest.raises(NumericalError, match=r"diverged at epoch \d+: the loss is non-finite"):
        _fit(data, config=config)
    with pytest.raises(NumericalError, match=re.escape("lower the learning rate (lr=1e+30 now)")):
        _fit(data, config=config)
