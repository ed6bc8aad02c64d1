"""`graphtag run --grouping tag-selection`: TAG's network selections as candidates."""

import copy
import json

import numpy as np
import pytest

from graphtag._utils import resolve_device
from graphtag.baselines import select_groups
from graphtag.cli import main
from graphtag.data import load_dataset
from graphtag.grouping import fit_selected_groups
from graphtag.metrics import Evaluator
from graphtag.models import prepare_inputs
from graphtag.recommend import holdout_mask
from graphtag.training import TrainConfig, fit_model

# Width 8: the planted groups interfere, so a selection beats one model on validation.
SPEC = "synthetic:num_nodes=600,num_tasks=5,num_groups=2,seed=0"
TINY = ["--epochs", "30", "--hidden-channels", "8", "--num-seeds", "1", "--quiet"]
CONFIG = TrainConfig(model="sign", device="auto", epochs=30, hidden_channels=8)


def _args(out, num_groups="2", *extra):
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
        "--single-task",
        "off",
        *TINY,
        *extra,
    ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # Candidates compared on every validation label (--holdout 0): with 600 nodes, half of them
    # cannot tell the selection from one model. The held-out default is checked below.
    out = tmp_path_factory.mktemp("tagsel")
    assert main(_args(out, "2", "--holdout", "0")) == 0
    return out


def _selection_validation(selected, holdout=0.0):
    """The CLI's recipe rebuilt: warm-started from the base model, seed 0.

    With ``holdout``, checkpoints are chosen on the rest of the validation labels and the score
    is measured on the held-out ones, as the CLI does.
    """
    data = load_dataset(SPEC, seed=0)
    inputs = prepare_inputs(data, CONFIG.model_config, resolve_device("auto"))
    base = fit_model(data, inputs, None, CONFIG, seed=0).model
    train, held = data, data.val_mask
    if holdout:
        held = holdout_mask(data.y, data.val_mask, holdout, seed=0)
        train = copy.copy(data)
        train.val_mask = data.val_mask & ~held
    res = fit_selected_groups(train, inputs, selected, CONFIG, seed=0, init=base)
    return data, res, Evaluator().evaluate(data.y, res.logits, held)["macro_auc"]


def test_selection_candidate_is_tag_network_selection_of_the_affinity(run_dir):
    info = json.loads((run_dir / "groups.json").read_text())
    assert info["grouping"] == "tag-selection" and info["method"] == "tag"
    (cand,) = [c for c in info["candidates"] if c["kind"] == "selection"]
    want = select_groups(np.load(run_dir / "affinity.npy"), max_groups=2)
    assert cand["selected_groups"] == want.groups and cand["num_models"] == len(want.groups)
    assert 1 <= len(want.groups) <= 2 and all(len(g) >= 2 for g in want.groups)
    # the partition puts each task in its best selected group by the affinity
    assert sorted(t for g in cand["groups"] for t in g) == list(range(5))


def test_recommended_selection_serves_each_task_by_its_best_validation_group(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    assert report["recommended"]["kind"] == "selection", report["recommendation"]
    selected = report["selected_groups"]
    data, res, val = _selection_validation(selected)
    assert report["recommended"]["validation"] == pytest.approx(float(val), abs=1e-12)
    assert report["assignment_by_seed"] == {"0": res.assignment}
    want = Evaluator().evaluate(data.y, res.logits, data.test_mask)["macro_auc"]
    assert report["metrics"]["recommended"]["macro_auc"] == pytest.approx(want, abs=1e-12)


def test_rerun_reuses_groups_and_models(run_dir):
    before = json.loads((run_dir / "report.json").read_text())
    models = {p.name: p.stat().st_mtime_ns for p in (run_dir / "models").iterdir()}
    assert main(_args(run_dir, "2", "--holdout", "0")) == 0
    after = json.loads((run_dir / "report.json").read_text())
    assert "groups" in after["reused_stages"]
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "models").iterdir()} == models
    for key in ("groups", "selected_groups", "assignment_by_seed", "metrics", "candidates"):
        assert after[key] == before[key], key


def test_auto_budgets_are_candidates_and_the_sweep_trains_them(tmp_path):
    out = tmp_path / "auto"
    assert main(_args(out, "auto", "--select", "validation")) == 0
    info = json.loads((out / "groups.json").read_text())
    sel = [c for c in info["candidates"] if c["kind"] == "selection"]
    assert [c["source"] for c in sel] == ["k=2", "k=3", "k=4"]
    affinity = np.load(out / "affinity.npy")
    for k, c in zip((2, 3, 4), sel):
        assert c["selected_groups"] == select_groups(affinity, max_groups=k).groups
        assert c["validation"] is not None and c["predicted"] is not None
    best = max(sel, key=lambda c: c["validation"])
    assert info["holdout"] == 0.5  # the default: scores on the held-out validation labels
    assert best["validation"] == pytest.approx(
        float(_selection_validation(best["selected_groups"], holdout=0.5)[2]), abs=1e-12
    )
