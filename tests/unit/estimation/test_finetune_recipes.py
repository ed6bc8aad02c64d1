"""The two real fine-tune recipes: "gd" unchanged, "base" is fit_model from theta0, no checkpoint
of one recipe is reused for the other."""

from __future__ import annotations

import pytest
import torch

import graphtag.estimation._real as real
from graphtag.cli import build_parser
from graphtag.data import build_multilabel_graph
from graphtag.errors import GraphtagError
from graphtag.estimation import finetune_subset
from graphtag.estimation._finetune import (
    FINETUNE_LR,
    FINETUNE_RECIPE,
    FINETUNE_RECIPES,
    FINETUNE_STEPS,
)
from graphtag.estimation._real import RealContext, real_subset_losses
from graphtag.executor import Job
from graphtag.models import prepare_inputs
from graphtag.training import TrainConfig, fit_model, per_task_bce, predict

CONFIG = TrainConfig(
    hidden_channels=8, num_hops=2, epochs=6, patience=3, batch_size=16, device="cpu"
)


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 80, (2, 320), generator=g)
    y = (torch.rand(80, 4, generator=g) < 0.4).float()
    data = build_multilabel_graph(ei, y, name="toy", feature_dim=8)
    inputs = prepare_inputs(data, CONFIG.model_config, "cpu")
    base = fit_model(data, inputs, None, CONFIG, select="loss").model
    return data, inputs, base


def test_gd_is_the_default_and_unchanged(toy):
    data, inputs, base = toy
    a = finetune_subset(base, data, inputs, [0, 2], CONFIG)
    b = finetune_subset(base, data, inputs, [0, 2], CONFIG, recipe="gd", seed=7)
    c = finetune_subset(
        base, data, inputs, [0, 2], CONFIG, recipe="gd", lr=FINETUNE_LR, steps=FINETUNE_STEPS
    )
    for r in (b, c):
        assert torch.equal(r.val_losses, a.val_losses)
        assert r.train_losses == a.train_losses
        assert (r.best_epoch, r.lr) == (a.best_epoch, a.lr) == (FINETUNE_STEPS, FINETUNE_LR)
    assert FINETUNE_RECIPES["gd"] is FINETUNE_RECIPE


def test_base_recipe_is_fit_model_from_theta0(toy):
    data, inputs, base = toy
    tasks = [3, 1]
    res = finetune_subset(base, data, inputs, tasks, CONFIG, recipe="base", seed=5)
    ref = fit_model(data, inputs, tasks, CONFIG, seed=5, init=base, select="loss")
    vm = data.val_mask[:, tasks]
    nodes = torch.nonzero(vm.any(1)).flatten()
    logits = predict(ref.model, inputs, nodes, batch_size=CONFIG.eval_batch_size)
    want = per_task_bce(logits.double(), data.y[nodes][:, tasks].double(), vm[nodes])
    assert torch.equal(res.val_losses, want)
    assert res.val_losses.dtype == torch.float64 and res.tasks == tasks
    # The reported checkpoint is the best one by the subset's mean validation BCE.
    assert float(res.val_losses.mean()) == pytest.approx(ref.best_val, rel=1e-5)
    assert res.best_epoch == ref.best_epoch
    assert res.train_losses == [h["train_loss"] for h in ref.history]
    assert res.lr == CONFIG.lr
    assert base.head.out_features == data.y.size(1)  # theta0 left unchanged


def test_base_recipe_depends_on_the_seed(toy):
    data, inputs, base = toy
    a = finetune_subset(base, data, inputs, [0, 1], CONFIG, recipe="base", seed=0)
    again = finetune_subset(base, data, inputs, [0, 1], CONFIG, recipe="base", seed=0)
    b = finetune_subset(base, data, inputs, [0, 1], CONFIG, recipe="base", seed=1)
    assert torch.equal(a.val_losses, again.val_losses)
    assert not torch.equal(a.val_losses, b.val_losses)
    gd = finetune_subset(base, data, inputs, [0, 1], CONFIG)
    assert not torch.equal(a.val_losses, gd.val_losses)


@pytest.mark.parametrize("recipe", ["adam", "GD", None])
def test_unknown_recipe_lists_the_choices(toy, recipe):
    data, inputs, base = toy
    with pytest.raises(GraphtagError) as info:
        finetune_subset(base, data, inputs, [0], CONFIG, recipe=recipe)
    assert str(info.value) == (f"unknown fine-tune recipe {recipe!r}; choose one of 'gd', 'base'")
    context = RealContext(base, data, inputs, CONFIG)
    with pytest.raises(GraphtagError) as info:
        real_subset_losses(context, [(0,)], recipe=recipe)
    assert str(info.value) == (f"unknown fine-tune recipe {recipe!r}; choose one of 'gd', 'base'")


def test_gd_budget_is_refused_by_the_base_recipe(toy):
    data, inputs, base = toy
    with pytest.raises(GraphtagError) as info:
        finetune_subset(base, data, inputs, [0], CONFIG, recipe="base", steps=3)
    assert str(info.value) == (
        "lr and steps belong to the 'gd' fine-tune; the 'base' recipe takes its optimiser "
        "settings from config (TrainConfig lr, epochs, patience)"
    )


def test_recipes_have_distinct_job_keys_and_checkpoints(toy, tmp_path, monkeypatch):
    data, inputs, base = toy
    context = RealContext(base, data, inputs, CONFIG)
    subsets = [(0, 1), (2, 3)]
    assert FINETUNE_RECIPES["gd"] != FINETUNE_RECIPES["base"]
    calls: list[tuple[tuple[int, ...], int, str]] = []
    original = real.finetune_subset

    def spy(base_model, data, inputs, subset, config, *, seed=0, **kwargs):
        calls.append((tuple(subset), seed, kwargs.get("recipe", "gd")))
        return original(base_model, data, inputs, subset, config, seed=seed, **kwargs)

    monkeypatch.setattr(real, "finetune_subset", spy)
    gd = real_subset_losses(context, subsets, seed=3, checkpoint_dir=tmp_path)
    base_losses = real_subset_losses(
        context, subsets, seed=3, checkpoint_dir=tmp_path, recipe="base"
    )
    # Both recipes trained every subset (no checkpoint of "gd" answered a "base" job) ...
    assert [c[2] for c in calls] == ["gd", "gd", "base", "base"]
    assert len(list(tmp_path.glob("*.json"))) == 4
    assert not (gd[[0, 0, 1, 1], [0, 1, 2, 3]] == base_losses[[0, 0, 1, 1], [0, 1, 2, 3]]).all()
    # ... with the recipe's description in the key, from which the training seed derives.
    fp = context.fingerprint()
    for (subset, seed, name), k in zip(calls, [0, 1, 0, 1]):
        assert subset == subsets[k] and seed == _job(fp, subset, name).seed(3)
    # Reruns reuse each recipe's own checkpoints and train nothing.
    calls.clear()
    again = real_subset_losses(context, subsets, seed=3, checkpoint_dir=tmp_path, recipe="base")
    assert calls == []
    assert (again[[0, 0, 1, 1], [0, 1, 2, 3]] == base_losses[[0, 0, 1, 1], [0, 1, 2, 3]]).all()
    # The base recipe's losses equal a direct fine-tune with the job's seed.
    seed = _job(fp, (0, 1), "base").seed(3)
    direct = original(base, data, inputs, [0, 1], CONFIG, seed=seed, recipe="base")
    assert base_losses[0, [0, 1]].tolist() == direct.val_losses.tolist()


def _job(fp: str, subset: tuple[int, ...], recipe: str) -> Job:
    return Job(
        {
            "kind": "finetune_subset",
            "context": fp,
            "recipe": FINETUNE_RECIPES[recipe],
            "subset": list(subset),
            "seed": 3,
        }
    )


def test_cli_reference_choices_are_the_recipes():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    action = next(a for a in sub.choices["check-estimator"]._actions if a.dest == "reference")
    assert list(action.choices) == list(FINETUNE_RECIPES) and action.default == "gd"
