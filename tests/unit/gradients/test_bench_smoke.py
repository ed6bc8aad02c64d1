"""experiments/bench_gradients.py --smoke runs through main() and reports agreeing paths."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_bench_smoke(load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_experiment("bench_gradients")
    out = tmp_path / "bench.json"
    result = module.main(["--smoke", "--out", str(out)])
    assert out.exists()
    assert [r["num_tasks"] for r in result["rows"]] == [3, 10]
    # The JVP features equal the naive reference (float32 rounding only).
    assert all(r["max_relative_error"] < 1e-4 for r in result["rows"])
    assert result["config"]["seed"] == 0 and "torch" in result["versions"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("headline: at T=10 the JVP path is")
