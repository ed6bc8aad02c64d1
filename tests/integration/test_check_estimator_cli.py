"""`graphtag check-estimator` writes the fields the issue asks for (real fine-tune path)."""

import json

from graphtag.cli import main


def test_check_estimator_report(tmp_path):
    out = tmp_path / "ce"
    args = [
        "check-estimator",
        "--dataset",
        "synthetic:num_nodes=400,num_tasks=5,num_groups=2",
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
    ]
    assert main(args) == 0
    rep = json.loads((out / "estimator.json").read_text())
    for key in (
        "relative_error",
        "baseline_relative_error",
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
    t = rep["timings"]
    assert t["finetune_seconds_per_subset"] > 0 and t["extrapolated_subsets"] == 2000
    assert len(list((out / "finetune").iterdir())) == 6  # one checkpoint per real fine-tune
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
