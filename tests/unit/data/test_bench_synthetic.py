"""experiments/bench_synthetic.py runs the real generator and reports every step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from graphtag.data import _graph, _synthetic, make_multilabel_graph


def test_bench_synthetic_smoke(
    load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_experiment("bench_synthetic")
    originals = {name: getattr(_synthetic, name) for name in ("_generate", "_edges", "_labels")}
    out = tmp_path / "bench.json"
    result = module.main(["--smoke", "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    header = json.loads(lines[0])
    assert header["config"]["num_nodes"] == 400 and "torch" in header["versions"]
    assert [r["step"] for r in result["rows"]] == list(module.STEPS)
    for name in module.STEPS:  # one printed line per step, in order
        assert any(line.startswith(f"{name} ") for line in lines), name
    steps = sum(r["seconds"] for r in result["rows"])
    assert 0 < steps <= result["total_seconds"] + 1e-6
    assert all(r["seconds"] >= 0 and r["peak_rss_bytes"] > 0 for r in result["rows"])
    assert re.fullmatch(r"total \d+\.\d\d s", lines[-1])
    assert float(lines[-1].split()[1]) == pytest.approx(result["total_seconds"], abs=0.006)
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    # The wrappers are gone afterwards and did not change what the generator returns.
    assert all(getattr(_synthetic, k) is v for k, v in originals.items())
    assert _graph.per_task_split.__module__ == "graphtag.data._splits"
    plain = make_multilabel_graph(num_nodes=400, num_tasks=6, num_groups=2, seed=0)
    assert result["graph"]["num_undirected_edges"] == plain.edge_index.size(1) // 2
    assert result["graph"]["label_sum"] == float(plain.y.sum())


def test_bench_restores_the_library_after_an_error(
    load_experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_experiment("bench_synthetic")
    before = _graph.clean_edges

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_synthetic, "_labels", broken)
    with pytest.raises(RuntimeError, match="boom"):
        module.main(["--smoke"])
    assert _graph.clean_edges is before
    assert _synthetic._labels is broken  # restored to what it was when the bench started
