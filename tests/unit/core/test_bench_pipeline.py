"""experiments/bench_pipeline.py runs end to end in --smoke mode and fits exponents correctly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STAGES = ["data", "inputs", "base_training", "features", "surrogate", "clustering"]


def test_bench_pipeline_smoke(
    load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_experiment("bench_pipeline")
    result = module.main(["--smoke", "--out", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    meta = json.loads(lines[0])
    assert meta["config"]["seed"] == 0 and "torch" in meta["versions"] and meta["git_sha"]
    assert lines[-1].startswith("headline: total seconds scale as N^")
    assert "MiB measured" in lines[-1] and "MiB estimated" in lines[-1]
    assert [(r["num_nodes"], r["num_tasks"]) for r in result["rows"]] == [(200, 4), (400, 4)]
    for row in result["rows"]:
        assert [s["stage"] for s in row["stages"]] == STAGES
        for s in row["stages"]:
            assert s["seconds"] >= 0 and s["cpu_seconds"] >= 0 and s["estimate"] > 0
        assert row["total_seconds"] == pytest.approx(sum(s["seconds"] for s in row["stages"]))
        assert row["estimated_peak"] == row["estimate"]["peak"] > 0
        assert row["num_edges"] > 0
    saved = json.loads((tmp_path / "bench_pipeline.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert set(saved["exponents"]) == {"nodes@T=4", "edges@T=4", "tasks@N=200", "tasks@N=400"}
    png = (tmp_path / "bench_pipeline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_exponent_recovers_a_power_law(load_experiment) -> None:
    fit = load_experiment("bench_pipeline").fit_exponent
    xs = [1e3, 4e3, 1.6e4, 6.4e4]
    assert fit(xs, [3.0 * x**1.5 for x in xs]) == pytest.approx(1.5)
    assert fit(xs, [7.0 for _ in xs]) == pytest.approx(0.0)
    assert fit([10.0, 10.0], [1.0, 2.0]) is None
    assert fit([10.0], [1.0]) is None


@pytest.mark.slow  # a fresh Python process: about 5 s of CPU for the imports alone
def test_worker_subprocess_returns_one_size(load_experiment) -> None:
    """The default mode runs each size in its own process and reads its JSON line back."""
    module = load_experiment("bench_pipeline")
    job = {
        "num_nodes": 150,
        "num_tasks": 3,
        "avg_degree": 8.0,
        "epochs": 1,
        "hidden_channels": 8,
        "projection_dim": 4,
        "num_subsets": 3,
        "subset_size": 2,
        "seed": 1,
        "evaluate": True,
        "glibc_defaults": False,
    }
    row = module.run_worker(job)
    assert (row["num_nodes"], row["num_tasks"]) == (150, 3)
    assert [s["stage"] for s in row["stages"]] == [*STAGES, "grouped_training"]
    assert row["stages"][-1]["estimate"] is None
    assert row["peak_above_start"] > 0
