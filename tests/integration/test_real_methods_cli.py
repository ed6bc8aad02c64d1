"""`graphtag run --method higher-order|pairwise` on a tiny graph, through the one fine-tune path."""

import json

import numpy as np
import pytest

from graphtag.cli import main

SPEC = "synthetic:num_nodes=400,num_tasks=5,num_groups=2,seed=0"
TINY = [
    "--epochs",
    "8",
    "--hidden-channels",
    "16",
    "--num-seeds",
    "1",
    "--num-groups",
    "2",
    "--quiet",
]


@pytest.mark.parametrize(
    ("method", "extra", "num_subsets"),
    [("pairwise", [], 15), ("higher-order", ["--num-subsets", "10", "--subset-size", "3"], 10)],
)
def test_real_training_methods_run_and_resume(tmp_path, method, extra, num_subsets):
    out = tmp_path / method
    args = ["run", "--dataset", SPEC, "--out", str(out), "--method", method, *extra, *TINY]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == method
    assert sorted(t for g in report["groups"] for t in g) == list(range(5))
    affinity = np.load(out / "affinity.npy")
    assert affinity.shape == (5, 5) and np.isfinite(affinity).all()
    assert np.allclose(affinity, affinity.T)
    assert json.loads((out / "affinity.json").read_text())["num_subsets"] == num_subsets
    checkpoints = {p.name: p.stat().st_mtime_ns for p in (out / "finetune").iterdir()}
    assert len(checkpoints) == num_subsets
    # A changed downstream setting reuses every real fine-tune (their checkpoints are kept).
    (out / "affinity.manifest.json").unlink()
    assert main(args) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "finetune").iterdir()}
    assert after == checkpoints  # nothing retrained, nothing rewritten
    assert json.loads((out / "report.json").read_text())["groups"] == report["groups"]


def test_tag_method_measures_lookahead_affinity(tmp_path):
    out = tmp_path / "tag"
    args = ["run", "--dataset", SPEC, "--out", str(out), "--method", "tag", *TINY]
    args[args.index("--epochs") + 1] = "30"  # 30 steps: measured at steps 1, 11, 21
    assert main(args) == 0
    info = json.loads((out / "affinity.json").read_text())
    assert info["method"] == "tag" and info["measured_steps"] == 3
    affinity = np.load(out / "affinity.npy")
    assert affinity.shape == (5, 5) and np.isfinite(affinity).all()
    assert np.allclose(affinity, affinity.T) and np.abs(affinity).sum() > 0
    report = json.loads((out / "report.json").read_text())
    assert sorted(t for g in report["groups"] for t in g) == list(range(5))


def test_random_method_groups_are_balanced_seeded_and_reported(tmp_path):
    out = tmp_path / "random"
    args = ["run", "--dataset", SPEC, "--out", str(out), "--method", "random", *TINY]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "random"
    (cand,) = [c for c in report["candidates"] if c["kind"] == "groups"]
    groups = cand["groups"]
    assert sorted(t for g in groups for t in g) == list(range(5))
    assert sorted(len(g) for g in groups) == [2, 3]  # sizes differ by at most one
    assert report["groups"] in (groups, [list(range(5))], [[t] for t in range(5)])
    assert not (out / "affinity.npy").exists()  # no affinity behind a random grouping
    # the random grouping is a function of the seed
    again = tmp_path / "again"
    assert main(["run", "--dataset", SPEC, "--out", str(again), "--method", "random", *TINY]) == 0
    rep2 = json.loads((again / "report.json").read_text())
    assert [c["groups"] for c in rep2["candidates"]] == [c["groups"] for c in report["candidates"]]


def test_finetune_recipe_base_for_real_training_methods(tmp_path):
    """--finetune-recipe base trains the subsets with the base recipe; gd jobs are not reused."""
    from graphtag.cli import build_parser
    from graphtag.estimation import FINETUNE_RECIPES

    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]
    (flag,) = [a for a in run_parser._actions if "--finetune-recipe" in a.option_strings]
    assert flag.choices == list(FINETUNE_RECIPES)  # the CLI reads the registry
    out = tmp_path / "ho"
    args = ["run", "--dataset", SPEC, "--out", str(out), "--method", "higher-order"]
    args += ["--num-subsets", "6", "--subset-size", "3", *TINY]
    assert main(args) == 0
    gd = np.load(out / "affinity.npy")
    assert main([*args, "--finetune-recipe", "base"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["finetune_recipe"] == "base"
    jobs = [json.loads(p.read_text())["key"]["recipe"] for p in (out / "finetune").iterdir()]
    assert sorted(r["deterministic"] for r in jobs) == [False] * 6 + [True] * 6
    base = np.load(out / "affinity.npy")
    assert base.shape == (5, 5) and np.isfinite(base).all() and not np.allclose(base, gd)
