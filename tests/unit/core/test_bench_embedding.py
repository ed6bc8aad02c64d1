"""experiments/bench_embedding.py: smoke run, and the generated graph has the asked size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch


def test_bench_embedding_smoke(
    load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_experiment("bench_embedding")
    out = tmp_path / "bench.json"
    result = module.main(["--smoke", "--out", str(out), "--tmp-dir", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    header = json.loads(lines[0])
    assert header["config"]["num_nodes"] == 2_000 and header["git_sha"] == result["git_sha"]
    assert result["graph"]["num_undirected_edges"] == 20_000
    for method in module.METHODS:
        row = result["methods"][method]
        assert row["shape"] == [2_000, 16] and row["finite"] and row["dim"] == 16
        assert row["seconds"] > 0 and row["peak_rss_kib"] >= row["rss_before_kib"] > 0
    p, s = result["methods"]["prone"], result["methods"]["structural"]
    assert result["ratio_seconds"] == pytest.approx(p["seconds"] / s["seconds"])
    assert re.fullmatch(
        r"headline: 2,000 nodes, 20,000 edges, 2 threads: ProNE-16 [\d.]+ s / [\d.]+ GiB "
        r"peak RSS, structural-16 [\d.]+ s / [\d.]+ GiB; ProNE / structural [\d.]+x time, "
        r"[\d.]+x peak RSS",
        lines[-1],
    )
    assert json.loads(out.read_text())["methods"] == json.loads(json.dumps(result["methods"]))
    assert list(tmp_path.iterdir()) == [out]  # the temporary edge file is gone


@pytest.mark.parametrize(("num_nodes", "num_edges"), [(50, 300), (1_000, 5_000)])
def test_make_graph_has_exactly_the_asked_edges(load_experiment, num_nodes, num_edges):
    module = load_experiment("bench_embedding")
    ei = module.make_graph(num_nodes, num_edges, shape=2.5, seed=1)
    assert ei.size(1) == 2 * num_edges and not (ei[0] == ei[1]).any()
    pairs = set(map(tuple, ei.T.tolist()))
    assert len(pairs) == ei.size(1) and all((v, u) in pairs for u, v in pairs)
    assert torch.equal(ei, module.make_graph(num_nodes, num_edges, shape=2.5, seed=1))
    degree = torch.bincount(ei[0], minlength=num_nodes).float()
    assert degree.max() > (3 if num_nodes >= 1_000 else 2) * degree.mean()  # heavy-tailed


def test_each_method_runs_at_its_own_default_width(load_experiment):
    module = load_experiment("bench_embedding")
    args = module.parse_args(["--num-nodes", "100", "--num-edges", "300"])
    assert module._width("prone", args) == module.EMBEDDINGS["prone"].dim == 128
    assert module._width("structural", args) == module.EMBEDDINGS["structural"].dim == 64
