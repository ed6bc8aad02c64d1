"""`graphtag check-estimator`: report fields, the real fine-tune reference and its statistics."""

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from graphtag.cli import main
from graphtag.data import build_multilabel_graph
from graphtag.errors import GraphtagError
from graphtag.estimation import finetune_subset
from graphtag.estimation._finetune import (
    FINETUNE_LR,
    FINETUNE_RECIPES,
    FINETUNE_STEPS,
    matched_ridge,
)
from graphtag.models import prepare_inputs
from graphtag.pipeline._check import compare_losses, reference_noise
from graphtag.training import TrainConfig, fit_model

SYNTH = "synthetic:num_nodes=400,num_tasks=5,num_groups=2"
CONFIG = TrainConfig(hidden_channels=8, num_hops=2, epochs=5, batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 80, (2, 320), generator=g)
    y = (torch.rand(80, 3, generator=g) < 0.4).float()
    data = build_multilabel_graph(ei, y, name="toy", feature_dim=8)
    inputs = prepare_inputs(data, CONFIG.model_config, "cpu")
    base = fit_model(data, inputs, None, CONFIG, select="loss").model
    return data, inputs, base


def _cli(out, *extra):
    return main(
        [
            "check-estimator",
            "--dataset",
            SYNTH,
            "--num-subsets",
            "6",
            "--subset-size",
            "3",
            "--epochs",
            "5",
            "--hidden-channels",
            "16",
            "--projection-dim",
            "16",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def test_check_estimator_report(tmp_path):
    out = tmp_path / "ce"
    assert _cli(out) == 0
    rep = json.loads((out / "estimator.json").read_text())
    for key in (
        "relative_error",
        "baseline_relative_error",
        "real_mean_change",
        "estimated_mean_change",
        "pearson",
        "spearman",
        "within_task_spearman",
        "within_task_count",
        "affinity_spearman",
        "timings",
    ):
        assert key in rep, key
    assert rep["num_subsets"] == 6 and rep["num_pairs"] == 18
    assert rep["relative_error"] >= 0 and rep["baseline_relative_error"] >= 0
    # The surrogates' ridge is matched to the real fine-tune's budget (l2=None by default).
    assert rep["estimator"]["l2"] is None
    assert rep["l2_absolute"] == pytest.approx(1 / (FINETUNE_LR * FINETUNE_STEPS))
    assert rep["finetune"]["steps"] == FINETUNE_STEPS and rep["finetune"]["lr"] == FINETUNE_LR
    t = rep["timings"]
    assert t["finetune_seconds_per_subset"] > 0 and t["extrapolated_subsets"] == 2000
    assert t["statistics_seconds"] > 0 and t["fixed_seconds"] > t["statistics_seconds"]
    assert len(list((out / "finetune").iterdir())) == 6  # one checkpoint per real fine-tune
    # A resumed check reuses every fine-tune, reports the same real losses and the fine-tunes'
    # recorded cost (not the near-zero time of reading checkpoints).
    assert _cli(out) == 0
    again = json.loads((out / "estimator.json").read_text())
    assert again["real_losses"] == rep["real_losses"]
    assert again["estimated_losses"] == rep["estimated_losses"]
    assert again["timings"]["finetune_seconds_per_subset"] == t["finetune_seconds_per_subset"]
    assert (
        main(
            [
                "check-estimator",
                "--dataset",
                "blogcatalog",
                "--num-subsets",
                "2",
                "--subset-size",
                "99",
                "--out",
                str(tmp_path / "x"),
                "--quiet",
                "--epochs",
                "1",
            ]
        )
        == 2
    )


def test_finetune_is_full_batch_gradient_descent(toy):
    """Brute-force reference: plain SGD on the whole training loss, eval mode, all params."""
    data, inputs, base = toy
    tasks, steps, lr = [2, 0], 7, 0.3
    res = finetune_subset(base, data, inputs, tasks, CONFIG, lr=lr, steps=steps)

    model = copy.deepcopy(base).with_tasks(tasks).eval()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    y, mask = data.y[:, tasks], data.train_mask[:, tasks]
    hops = inputs.hops
    for _ in range(steps):
        opt.zero_grad()
        bce = F.binary_cross_entropy_with_logits(model(hops), y, reduction="none")
        ((bce * mask).sum() / mask.sum()).backward()
        opt.step()
    with torch.no_grad():
        logits = model(hops).double()
    vm = data.val_mask[:, tasks]
    bce = F.binary_cross_entropy_with_logits(logits, y.double(), reduction="none")
    want = (bce * vm).sum(0) / vm.sum(0)
    torch.testing.assert_close(res.val_losses, want, rtol=1e-5, atol=1e-6)
    assert res.best_epoch == steps and res.lr == lr and len(res.train_losses) == steps + 1
    assert all(b <= a for a, b in zip(res.train_losses, res.train_losses[1:]))
    # theta0 is left unchanged
    assert base.head.out_features == data.y.size(1)


def test_finetune_is_deterministic_and_seed_free(toy):
    data, inputs, base = toy
    a = finetune_subset(base, data, inputs, [0, 1], CONFIG, seed=0, steps=5)
    b = finetune_subset(base, data, inputs, [0, 1], CONFIG, seed=123, steps=5)
    torch.testing.assert_close(a.val_losses, b.val_losses, rtol=0, atol=0)
    assert a.train_losses == b.train_losses
    # More training lowers the training loss further and changes the validation losses.
    c = finetune_subset(base, data, inputs, [0, 1], CONFIG, steps=10)
    assert c.train_losses[-1] < a.train_losses[-1]
    assert not torch.equal(c.val_losses, a.val_losses)


def test_too_large_steps_are_halved_so_the_training_loss_never_rises(toy):
    data, inputs, base = toy
    res = finetune_subset(base, data, inputs, [0, 1, 2], CONFIG, lr=1e4, steps=4)
    assert res.lr < 1e4 and math.log2(1e4 / res.lr) == round(math.log2(1e4 / res.lr))
    assert all(b <= a * (1 + 1e-6) for a, b in zip(res.train_losses, res.train_losses[1:]))
    assert torch.isfinite(res.val_losses).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, "fine-tune lr must be a positive number, got 0.0"),
        ({"steps": 0}, "fine-tune steps must be a positive integer, got 0"),
        ({"steps": 2.5}, "fine-tune steps must be a positive integer, got 2.5"),
    ],
)
def test_bad_budget_is_refused(toy, kwargs, message):
    data, inputs, base = toy
    with pytest.raises(GraphtagError) as info:
        finetune_subset(base, data, inputs, [0], CONFIG, **kwargs)
    assert str(info.value) == message


def test_matched_ridge_is_the_inverse_budget():
    assert matched_ridge() == pytest.approx(1 / 3)
    assert matched_ridge(0.5, 4) == pytest.approx(0.5)
    with pytest.raises(GraphtagError, match="fine-tune steps must be a positive integer"):
        matched_ridge(0.1, 0)


def test_compare_losses_against_hand_computed_values():
    nan = np.nan
    subsets = [(0, 1), (0, 2), (1, 2), (0, 1, 2), (0,), (1,)]
    real = np.array(
        [
            [1.0, 2.0, nan],
            [1.5, nan, 3.0],
            [nan, 2.5, 3.5],
            [2.0, 1.0, 4.0],
            [0.5, nan, nan],
            [nan, 3.0, nan],
        ]
    )
    est = real * np.array([[1.1], [0.9], [1.0], [1.2], [1.0], [0.8]])
    est[3, 2] = 10.0  # one bad estimate
    base = np.array([1.0, 2.0, 3.0])
    out = compare_losses(subsets, est, real, base, num_tasks=3, min_subsets_per_task=3)
    m = ~np.isnan(real)
    cols = np.nonzero(m)[1]
    rel = np.abs(est[m] - real[m]) / real[m]
    rel_base = np.abs(base[cols] - real[m]) / real[m]
    assert out["relative_error"] == pytest.approx(rel.mean())
    assert out["baseline_relative_error"] == pytest.approx(rel_base.mean())
    assert out["real_mean_change"] == pytest.approx(np.mean((real[m] - base[cols]) / base[cols]))
    assert out["estimated_mean_change"] == pytest.approx(
        np.mean((est[m] - base[cols]) / base[cols])
    )
    want = [
        spearmanr(est[m[:, t], t], real[m[:, t], t]).statistic
        for t in range(3)
        if m[:, t].sum() >= 3
    ]
    assert out["within_task_count"] == 3
    assert out["within_task_spearman"] == pytest.approx(np.mean(want))
    assert out["num_pairs"] == int(m.sum())


@pytest.mark.slow
def test_issue_targets_on_wikipedia_pos(tmp_path):
    """The estimator's targets against the gd reference, default settings (CPU: a few minutes)."""
    out = tmp_path / "wp"
    args = ["check-estimator", "--dataset", "wikipedia-pos", "--num-subsets", "40"]
    assert main([*args, "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    rep = json.loads((out / "estimator.json").read_text())
    assert rep["relative_error"] <= 0.05
    assert rep["relative_error"] < 0.5 * rep["baseline_relative_error"]
    assert rep["within_task_spearman"] >= 0.6


def test_check_estimator_base_reference_reports_its_seed_noise(tmp_path):
    out = tmp_path / "base"
    assert _cli(out, "--reference", "base", "--num-subsets", "8", "--seed", "4") == 0
    rep = json.loads((out / "estimator.json").read_text())
    assert rep["reference"] == "base" and rep["finetune"] == FINETUNE_RECIPES["base"]
    assert len(list((out / "finetune").iterdir())) == 16  # two fine-tunes per subset
    noise = rep["reference_noise"]
    assert set(noise) == {
        "within_task_spearman",
        "relative_difference",
        "count",
        "num_pairs",
        "seeds",
    }
    assert noise["seeds"] == [4, 5] and noise["num_pairs"] == 24
    # Brute force from the two seeds' tables written to the report.
    nan = np.nan
    first = np.full((8, 5), nan)
    second = np.full((8, 5), nan)
    for k, s in enumerate(rep["subsets"]):
        first[k, s] = rep["real_losses"][k]
        second[k, s] = rep["real_losses_second_seed"][k]
    assert not np.array_equal(first, second, equal_nan=True)  # the base recipe is seeded
    m = ~np.isnan(first)
    want = [
        spearmanr(first[m[:, t], t], second[m[:, t], t]).statistic
        for t in range(5)
        if m[:, t].sum() >= 5
    ]
    want = [w for w in want if np.isfinite(w)]
    assert noise["count"] == len(want) >= 1
    assert noise["within_task_spearman"] == pytest.approx(np.mean(want))
    rel = np.abs(first[m] - second[m]) / first[m]
    assert noise["relative_difference"] == pytest.approx(rel.mean())
    # The estimator is scored against the first seed, and against the mean of both seeds.
    est = np.full((8, 5), nan)
    for k, s in enumerate(rep["subsets"]):
        est[k, s] = rep["estimated_losses"][k]
    rel_est = np.abs(est[m] - first[m]) / first[m]
    assert rep["relative_error"] == pytest.approx(rel_est.mean())
    mean = (first + second) / 2
    rel_mean = np.abs(est[m] - mean[m]) / mean[m]
    assert rep["vs_mean_of_seeds"]["relative_error"] == pytest.approx(rel_mean.mean())
    # A gd check in the same folder reuses the base model and features but none of the base
    # recipe's fine-tunes, and records that its reference has no seed noise.
    assert _cli(out, "--num-subsets", "8", "--seed", "4") == 0
    gd = json.loads((out / "estimator.json").read_text())
    assert gd["reference"] == "gd" and gd["reference_noise"] is None
    assert gd["finetune"] == FINETUNE_RECIPES["gd"] and "vs_mean_of_seeds" not in gd
    assert "deterministic" in gd["reference_noise_note"]
    assert len(list((out / "finetune").iterdir())) == 24
    assert gd["estimated_losses"] == rep["estimated_losses"]
    assert gd["real_losses"] != rep["real_losses"]


def test_reference_noise_against_hand_computed_values():
    nan = np.nan
    a = np.array([[1.0, 2.0], [2.0, nan], [3.0, 1.0], [4.0, 3.0], [5.0, 4.0], [6.0, 5.0]])
    b = np.array([[1.5, 2.0], [1.0, nan], [3.0, 2.0], [4.0, 1.0], [6.0, 5.0], [5.0, 4.0]])
    out = reference_noise(a, b, num_tasks=2, min_subsets_per_task=5)
    # Task 0 (6 subsets) counts, task 1 (5 subsets) too; both by scipy's spearman.
    want = [
        spearmanr(a[:, 0], b[:, 0]).statistic,
        spearmanr(a[[0, 2, 3, 4, 5], 1], b[[0, 2, 3, 4, 5], 1]).statistic,
    ]
    assert out["count"] == 2 and out["num_pairs"] == 11
    assert out["within_task_spearman"] == pytest.approx(np.mean(want))
    m = ~np.isnan(a)
    assert out["relative_difference"] == pytest.approx(np.mean(np.abs(a[m] - b[m]) / a[m]))
    # Tasks in fewer subsets than the minimum, or with constant losses, are left out.
    out = reference_noise(a, b, num_tasks=2, min_subsets_per_task=6)
    assert out["count"] == 1
    assert out["within_task_spearman"] == pytest.approx(want[0])
    flat = reference_noise(np.ones((6, 1)), b[:, :1], num_tasks=1)
    assert flat["count"] == 0 and flat["within_task_spearman"] is None


@pytest.mark.parametrize("value", ["adam", "GD", ""])
def test_bad_reference_is_one_error_line(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as info:
        _cli(tmp_path / "bad", "--reference", value)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("graphtag: error: check-estimator: ")
    assert f"argument --reference: invalid choice: {value!r} (choose from 'gd', 'base')" in err
    assert not (tmp_path / "bad").exists()


def test_max_task_rows_flag_caps_the_feature_rows(tmp_path):
    from graphtag.artifacts import load_npz

    out = tmp_path / "capped"
    assert _cli(out, "--max-task-rows", "20") == 0
    rep = json.loads((out / "estimator.json").read_text())
    assert rep["estimator"]["max_task_rows"] == 20
    meta = json.loads(str(load_npz(out / "features.npz")["meta"]))
    # 400 nodes, 5 tasks, 20% train and 20% validation per task: every task is capped.
    assert meta["num_train_rows"] == meta["num_val_rows"] == 5 * 20
    assert meta["max_task_rows"] == 20
    # "all" keeps every row, and the changed setting recomputes the features stage.
    assert _cli(out, "--max-task-rows", "all") == 0
    meta = json.loads(str(load_npz(out / "features.npz")["meta"]))
    assert meta["max_task_rows"] is None and meta["num_train_rows"] == 5 * 80
