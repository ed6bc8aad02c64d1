"""`graphtag run --grouping tag-selection`: TAG's network selection, served by validation."""

import json

import numpy as np
import pytest

from graphtag._utils import resolve_device
from graphtag.baselines import select_groups
from graphtag.cli import main
from graphtag.data import load_dataset
from graphtag.grouping import evaluate_logits, fit_selected_groups
from graphtag.metrics import Evaluator
from graphtag.models import prepare_inputs
from graphtag.training import TrainConfig

SPEC = "synthetic:num_nodes=400,num_tasks=5,num_groups=2,seed=0"
TINY = ["--epochs", "8", "--hidden-channels", "16", "--num-seeds", "1", "--quiet"]


def _args(out, num_groups="2"):
    return [
        "run",
        "--dataset",
        SPEC,
        "--out",
        str(out),
        "--method",
        "tag",
        "--grouping",
        "tag-selection",
        "--num-groups",
        num_groups,
        *TINY,
    ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tagsel")
    assert main(_args(out)) == 0
    return out


def test_selected_groups_are_tag_network_selection_of_the_affinity(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    info = json.loads((run_dir / "groups.json").read_text())
    assert report["grouping"] == "tag-selection" and report["method"] == "tag"
    affinity = np.load(run_dir / "affinity.npy")
    want = select_groups(affinity, max_groups=2)
    assert report["selected_groups"] == info["selected_groups"] == want.groups
    assert info["selection"]["method"] == "exact" and info["selection"]["max_groups"] == 2
    assert info["selection"]["score"] == pytest.approx(want.score)
    assert 1 <= len(want.groups) <= 2 and all(len(g) >= 2 for g in want.groups)


def test_each_task_is_served_by_its_best_validation_group(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    selected = report["selected_groups"]
    # The CLI's recipe, rebuilt: the same models (seed 0) and the same validation choice.
    data = load_dataset(SPEC, seed=0)
    config = TrainConfig(model="sign", device="auto", epochs=8, hidden_channels=16)
    inputs = prepare_inputs(data, config.model_config, resolve_device("auto"))
    res = fit_selected_groups(data, inputs, selected, config, seed=0)
    assert report["assignment_by_seed"] == {"0": res.assignment}
    assert report["groups"] == res.partition()  # each task in the group that serves it
    assert sorted(t for g in report["groups"] for t in g) == list(range(5))
    for row in report["per_group"]:
        assert row["model_tasks"] in selected and set(row["tasks"]) <= set(row["model_tasks"])
    want = evaluate_logits(data, res.logits)["metrics"]["macro_auc"]
    assert report["metrics"]["grouped"]["macro_auc"] == pytest.approx(want, abs=1e-12)


def test_rerun_reuses_groups_and_models(run_dir):
    before = json.loads((run_dir / "report.json").read_text())
    models = {p.name: p.stat().st_mtime_ns for p in (run_dir / "models").iterdir()}
    assert main(_args(run_dir)) == 0
    after = json.loads((run_dir / "report.json").read_text())
    assert "groups" in after["reused_stages"]
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "models").iterdir()} == models
    for key in ("groups", "selected_groups", "assignment_by_seed", "metrics"):
        assert after[key] == before[key], key


def test_auto_budget_is_chosen_on_validation(tmp_path):
    out = tmp_path / "auto"
    assert main(_args(out, "auto")) == 0
    info = json.loads((out / "groups.json").read_text())
    scores = {int(k): v for k, v in info["auto_scores"].items()}
    assert sorted(scores) == [2, 3, 4]
    k = info["num_groups"]
    assert k in scores
    want = select_groups(np.load(out / "affinity.npy"), max_groups=k)
    report = json.loads((out / "report.json").read_text())
    assert report["selected_groups"] == info["selected_groups"] == want.groups
    # Each budget is scored by its selected groups' models, each task served by validation.
    data = load_dataset(SPEC, seed=0)
    config = TrainConfig(model="sign", device="auto", epochs=8, hidden_channels=16)
    inputs = prepare_inputs(data, config.model_config, resolve_device("auto"))
    res = fit_selected_groups(data, inputs, want.groups, config, seed=0)
    val = Evaluator().evaluate(data.y, res.logits, data.val_mask)["macro_auc"]
    assert scores[k] == pytest.approx(float(val), abs=1e-12)
