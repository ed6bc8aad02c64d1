"""End to end: `graphtag run` recommends what to train on small planted graphs."""

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from graphtag.cli import main

# Width 8: the three planted groups (latent_dim 4 each) compete for the hidden units, the regime
# in which they interfere (see graphtag.data._synthetic); the number of groups is chosen.
SPEC = "synthetic:num_nodes=1500,num_tasks=9,num_groups=3,seed=0"
FAST = ["--epochs", "60", "--hidden-channels", "8", "--num-subsets", "70"]
FAST += ["--projection-dim", "64", "--max-groups", "3", "--quiet"]
# One signal shared by every task and enough width for all of them: one model is best.
ONE_SIGNAL = "synthetic:num_nodes=1000,num_tasks=8,num_groups=1,seed=0"


def _labels(groups, num_tasks):
    lab = np.empty(num_tasks, dtype=int)
    for g, tasks in enumerate(groups):
        lab[tasks] = g
    return lab


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "--dataset", SPEC, "--out", str(out), "--num-seeds", "2", *FAST]) == 0
    return out


def test_report_fields_and_files(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    for key in ("dataset", "tasks", "metrics", "groups", "method", "num_groups", "timings"):
        assert key in report, key
    for key in ("seed", "versions", "warnings", "recommendation", "recommended", "candidates"):
        assert key in report, key
    assert report["method"] == "grad-tag" and report["select"] == "predicted"
    groups = report["groups"]
    assert sorted(t for g in groups for t in g) == list(range(9))
    assert groups == sorted(sorted(g) for g in groups)
    assert report["num_groups"] == len(groups) == len(report["recommended"]["groups"])
    for block in ("recommended", "mtl_all", "random_groups"):
        m = report["metrics"][block]
        for k in ("macro_auc", "macro_ap", "macro_f1", "macro_f1_tuned"):
            assert isinstance(m[k], float) and isinstance(m[k + "_std"], float)
        assert m["num_seeds"] == 2
    assert report["recommended"]["metrics"] == report["metrics"]["recommended"]
    for f in ("affinity.npy", "groups.json", "report.md", "affinity.png", "subsets.json"):
        assert (run_dir / f).exists(), f
    md = (run_dir / "report.md").read_text()
    assert md.splitlines()[2].startswith("**Recommendation: ")  # the report leads with it


def test_candidates_scored_and_the_best_predicted_confirmed(run_dir):
    info = json.loads((run_dir / "groups.json").read_text())
    cands = info["candidates"]
    kinds = [(c["kind"], c["num_models"]) for c in cands]
    assert kinds == [("one", 1), ("groups", 2), ("groups", 3), ("single", 9)]
    assert all(isinstance(c["predicted"], float) for c in cands)
    trained = [c for c in cands if c["validation"] is not None]
    best_two = sorted(cands[1:], key=lambda c: -c["predicted"])[:2]
    assert trained == [cands[0], *sorted(best_two, key=cands.index)]  # one model + confirm 2
    best = max(c["validation"] for c in trained)
    chosen = info["recommended"]
    assert chosen["validation"] >= best - 1e-3  # the parsimony rule's tolerance
    assert all(
        c["num_models"] >= chosen["num_models"] for c in trained if c["validation"] >= best - 1e-3
    )


def test_planted_groups_recommended_and_better_than_one_model(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    planted = report["dataset"]["planted_groups"]
    ari = adjusted_rand_score(_labels(planted, 9), _labels(report["groups"], 9))
    assert ari >= 0.9, (planted, report["groups"])
    assert report["recommendation"].startswith("train these 3 groups")
    m = report["metrics"]
    assert m["recommended"]["macro_auc"] > m["mtl_all"]["macro_auc"]
    assert m["recommended"]["macro_auc"] > m["random_groups"]["macro_auc"]


def test_one_shared_signal_recommends_one_model(tmp_path):
    out = tmp_path / "one"
    args = ["run", "--dataset", ONE_SIGNAL, "--out", str(out), "--num-seeds", "1", "--quiet"]
    assert main([*args, "--epochs", "40", "--num-subsets", "60", "--max-groups", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["recommendation"] == "train one model for all tasks"
    assert report["recommended"]["kind"] == "one" and report["groups"] == [list(range(8))]
    assert report["metrics"]["recommended"] == report["metrics"]["mtl_all"]
    # the random-groups control uses the best trained grouping's sizes
    trained = [c for c in report["candidates"][1:] if c["validation"] is not None]
    assert trained and len(report["random_groups_sizes"]) >= 2


def test_rerun_reuses_stages_and_metrics_are_identical(run_dir):
    before = json.loads((run_dir / "report.json").read_text())
    assert main(["run", "--dataset", SPEC, "--out", str(run_dir), "--num-seeds", "2", *FAST]) == 0
    after = json.loads((run_dir / "report.json").read_text())
    assert after["metrics"] == before["metrics"]
    assert after["groups"] == before["groups"]
    assert after["candidates"] == before["candidates"]
    assert {"base", "affinity", "groups"} <= set(after["reused_stages"])
    assert "features" not in after["timings"] or "features" in after["reused_stages"]
