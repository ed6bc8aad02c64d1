"""experiments/ridge_check.py: at scale 1 it reproduces check-estimator's own figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphtag.cli import main as cli_main


def test_scale_one_reproduces_check_estimator(load_experiment, tmp_path: Path):
    module = load_experiment("ridge_check")
    out = tmp_path / "ce"
    flags = module.SMOKE[:]
    assert cli_main(["check-estimator", *flags, "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "estimator.json").read_text())
    rows = module.main(["--smoke", "--out", str(out), "--scales", "0.1,1,10"])
    assert [r["scale"] for r in rows] == [0.1, 1.0, 10.0]
    one = rows[1]
    assert one["l2"] == pytest.approx(report["l2_absolute"])
    for key in ("relative_error", "within_task_spearman", "affinity_spearman"):
        assert one[key] == pytest.approx(report[key], rel=1e-6, abs=1e-9), key
    # Another ridge gives other estimates, so the comparison above could have failed.
    assert rows[0]["relative_error"] != pytest.approx(one["relative_error"])


def test_a_folder_without_a_check_is_refused(load_experiment, tmp_path: Path, capsys):
    module = load_experiment("ridge_check")
    with pytest.raises(SystemExit):
        module.main(["--out", str(tmp_path / "none"), "--dataset", "synthetic"])
    assert "estimator.json is missing: run `graphtag check-estimator" in capsys.readouterr().err
