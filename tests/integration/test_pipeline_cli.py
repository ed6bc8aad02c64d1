"""End to end: `graphtag run` on a small planted graph recovers the planted groups."""

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from graphtag.cli import main

SPEC = "synthetic:num_nodes=1200,num_tasks=8,num_groups=2,seed=0"
# Width 8: the planted groups (latent_dim 4 each) compete for the hidden units, the regime in
# which they interfere (see graphtag.data._synthetic); --num-groups stays auto (validation).
FAST = [
    "--epochs",
    "60",
    "--hidden-channels",
    "8",
    "--num-subsets",
    "70",
    "--projection-dim",
    "64",
    "--max-groups",
    "3",
    "--quiet",
]


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
    for key in (
        "dataset",
        "tasks",
        "metrics",
        "groups",
        "method",
        "num_groups",
        "timings",
        "seed",
        "versions",
        "warnings",
    ):
        assert key in report, key
    assert report["method"] == "grad-tag"
    groups = report["groups"]
    assert sorted(t for g in groups for t in g) == list(range(8))
    assert groups == sorted(sorted(g) for g in groups)
    assert report["num_groups"] == len(groups)
    for block in ("mtl_all", "grouped", "random_groups"):
        m = report["metrics"][block]
        for k in ("macro_auc", "macro_ap", "macro_f1", "macro_f1_tuned"):
            assert isinstance(m[k], float) and isinstance(m[k + "_std"], float)
        assert m["num_seeds"] == 2
    for f in (
        "affinity.npy",
        "groups.json",
        "report.md",
        "affinity.png",
        "subsets.json",
        "subset_losses.csv",
    ):
        assert (run_dir / f).exists(), f
    assert np.load(run_dir / "affinity.npy").shape == (8, 8)


def test_planted_groups_recovered(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    planted = report["dataset"]["planted_groups"]
    ari = adjusted_rand_score(_labels(planted, 8), _labels(report["groups"], 8))
    assert ari >= 0.9, (planted, report["groups"])
    # auto chose the planted number of groups on validation, and grouping beat one model
    info = json.loads((run_dir / "groups.json").read_text())
    assert info["num_groups"] == 2 and set(info["auto_scores"]) == {"2", "3"}
    m = report["metrics"]
    assert m["grouped"]["macro_auc"] > m["mtl_all"]["macro_auc"]
    assert m["grouped"]["macro_auc"] > m["random_groups"]["macro_auc"]


def test_rerun_reuses_stages_and_metrics_are_identical(run_dir):
    before = json.loads((run_dir / "report.json").read_text())
    assert main(["run", "--dataset", SPEC, "--out", str(run_dir), "--num-seeds", "2", *FAST]) == 0
    after = json.loads((run_dir / "report.json").read_text())
    assert after["metrics"] == before["metrics"]
    assert after["groups"] == before["groups"]
    assert {"base", "affinity", "groups"} <= set(after["reused_stages"])
    assert "features" not in after["timings"] or "features" in after["reused_stages"]
