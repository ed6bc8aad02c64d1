from pathlib import Path

import numpy as np
import pytest

from graphtag.errors import GraphtagError
from graphtag.grouping._random import canonical_groups, check_partition, random_groups_like
from graphtag.reporting import plot_affinity, render_report_md, summarise_seeds


def test_summarise_seeds_mean_std():
    out = summarise_seeds(
        [
            {"macro_auc": 0.6, "macro_ap": 0.2, "macro_f1": 0.1, "macro_f1_tuned": 0.3},
            {"macro_auc": 0.8, "macro_ap": 0.4, "macro_f1": 0.3, "macro_f1_tuned": 0.5},
        ]
    )
    assert out["macro_auc"] == pytest.approx(0.7)
    assert out["macro_auc_std"] == pytest.approx(0.1)
    assert out["num_seeds"] == 2
    assert all(isinstance(out[k], float) for k in ("macro_ap", "macro_f1_tuned_std"))


def test_random_groups_keep_sizes_and_partition():
    groups = [[0, 4], [1, 2, 3], [5]]
    for seed in range(5):
        rg = random_groups_like(groups, 6, seed=seed)
        check_partition(rg, 6)
        assert sorted(len(g) for g in rg) == [1, 2, 3]
    assert random_groups_like(groups, 6, seed=1) == random_groups_like(groups, 6, seed=1)


def test_check_partition_errors():
    with pytest.raises(GraphtagError, match="missing"):
        check_partition([[0, 1]], 3)
    with pytest.raises(GraphtagError, match="repeated"):
        check_partition([[0, 1], [1, 2]], 3)
    with pytest.raises(GraphtagError, match="empty"):
        check_partition([[0, 1, 2], []], 3)
    assert canonical_groups([[3, 2], [1, 0]]) == [[0, 1], [2, 3]]


def test_report_md_and_heatmap(tmp_path):
    report = {
        "dataset": {"name": "toy", "num_nodes": 5, "num_edges": 4, "num_tasks": 3},
        "method": "grad-tag",
        "num_groups": 2,
        "groups": [[0, 2], [1]],
        "tasks": ["a", "b", "c"],
        "metrics": {"grouped": summarise_seeds([{"macro_auc": 0.7}])},
    }
    md = render_report_md(report)
    assert "| grouped |" in md and "a, c" in md
    plot_affinity(np.eye(3), [[0, 2], [1]], tmp_path / "a.png", ["a", "b", "c"])
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_versions_and_git_revision_do_not_import_heavy_modules(tmp_path):
    import re
    import subprocess
    import sys

    from graphtag._utils import git_revision

    repo = Path(__file__).resolve().parents[3]
    if (repo / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", git_revision(repo))
    assert git_revision(tmp_path) == "unknown"  # not a checkout
    # versions() reads package metadata: importing cvxpy and scikit-learn cost 64 MiB per run.
    code = (
        "import sys; from graphtag._utils import versions; v = versions(); "
        "print('cvxpy' in sys.modules, 'sklearn' in sys.modules, 'scipy' in v)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    assert out.stdout.split() == ["False", "False", "True"]
