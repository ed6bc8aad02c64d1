"""fit_model(evaluate_init=True): the warm start itself is a candidate checkpoint (epoch 0)."""

import torch

from graphtag.data import load_dataset
from graphtag.models import prepare_inputs
from graphtag.training import TrainConfig, fit_model, predict


def test_warm_start_is_a_checkpoint_and_kept_when_no_epoch_beats_it():
    data = load_dataset("synthetic:num_nodes=300,num_tasks=3,num_groups=1,seed=0")
    config = TrainConfig(hidden_channels=16, epochs=30, device="cpu")
    inputs = prepare_inputs(data, config.model_config, "cpu")
    base = fit_model(data, inputs, None, config, seed=0)
    # A huge learning rate can only damage the trained base model: epoch 0 must win.
    bad = TrainConfig(hidden_channels=16, epochs=3, lr=50.0, device="cpu")
    res = fit_model(data, inputs, None, bad, seed=1, init=base.model, evaluate_init=True)
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    assert res.history[0]["val_auc"] == base.best_val  # the same model, the same validation
    assert res.best_epoch == 0 and res.best_val == max(h["val_auc"] for h in res.history)
    assert torch.equal(predict(res.model, inputs), predict(base.model, inputs))
    plain = fit_model(data, inputs, None, bad, seed=1, init=base.model)
    assert plain.best_epoch >= 1 and plain.best_val < res.best_val
    later = [{k: v for k, v in h.items() if k != "seconds"} for h in res.history[1:]]
    assert later == [{k: v for k, v in h.items() if k != "seconds"} for h in plain.history]
