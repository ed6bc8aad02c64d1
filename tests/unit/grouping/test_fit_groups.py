"""fit_groups: one model per group, assembled; its progress bar counts the group models."""

import torch

from graphtag.data import build_multilabel_graph
from graphtag.grouping import fit_groups
from graphtag.models import prepare_inputs
from graphtag.training import TrainConfig, fit_model, predict


def _toy():
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 80, (2, 320), generator=g)
    y = (torch.rand(80, 4, generator=g) < 0.5).float()
    data = build_multilabel_graph(ei, y, name="toy", feature_dim=6)
    config = TrainConfig(hidden_channels=8, epochs=3, device="cpu")
    return data, prepare_inputs(data, config.model_config, "cpu"), config


def test_each_task_gets_its_group_models_logits(capsys):
    data, inputs, config = _toy()
    logits = fit_groups(data, inputs, [[0, 2], [1, 3]], config, seed=1, progress=True)
    alone = predict(fit_model(data, inputs, [1, 3], config, seed=1).model, inputs)
    assert torch.equal(logits[:, [1, 3]], alone)
    assert "group models" in capsys.readouterr().err  # the bar, over 2 models
    quiet = fit_groups(data, inputs, [[0, 2], [1, 3]], config, seed=1)
    assert torch.equal(quiet, logits) and capsys.readouterr().err == ""
