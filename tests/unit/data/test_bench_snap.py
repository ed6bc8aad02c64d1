"""experiments/bench_snap.py: smoke run, and the files it writes load to the expected graph."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from graphtag.data import _snap
from graphtag.data._io import read_int_tokens
from graphtag.data._snap import load_snap

HAS_PANDAS = importlib.util.find_spec("pandas") is not None


def test_bench_snap_smoke(
    load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_experiment("bench_snap")
    originals = {name: getattr(_snap, name) for name in module.LOAD_STAGES}
    cache_env = os.environ.get("GRAPHTAG_CACHE")
    out = tmp_path / "bench.json"
    result = module.main(["--smoke", "--out", str(out), "--tmp-dir", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    header = json.loads(lines[0])
    assert header["config"]["num_edges"] == 3_000 and header["config"]["force_cache"]
    assert "torch" in header["versions"] and "pandas" in header["versions"]
    assert header["git"] == result["git"]
    assert set(result["formats"]) == {"plain", "gzip"}
    expected_measures = set(module.MEASURES) | {"read_cmty"}
    if not HAS_PANDAS:
        expected_measures.discard("pandas_read_csv")
    for fmt, res in result["formats"].items():
        assert set(res["measures"]) == expected_measures, fmt
        for name, row in res["measures"].items():
            assert row["seconds"] > 0 and row["mb_s"] > 0 and len(row["all_seconds"]) == 1, name
            assert row["seconds"] == min(row["all_seconds"])
        assert all(res["parsers_agree"].values()) and res["cached_equal"]
        assert res["cache_files"] == 1  # --force-cache: the tiny files are cached too
        assert res["edge_lines"] == 3_000 and res["graph"]["num_tasks"] == 10
        assert set(res["load_stages"]) == set(module.LOAD_STAGES)
        m, r = res["measures"], res["ratios"]
        assert r["parse_over_read"] == pytest.approx(
            m["graphtag_parse"]["seconds"] / m["read"]["seconds"]
        )
        assert r["uncached_over_cached"] == pytest.approx(
            m["load_uncached"]["seconds"] / m["load_cached"]["seconds"]
        )
        assert ("pandas_over_parse" in r) == HAS_PANDAS
        assert res["stored_bytes"]["edges"] < res["text_bytes"]["edges"] or fmt == "plain"
    # Both formats describe the same graph.
    assert result["formats"]["plain"]["graph"] == result["formats"]["gzip"]["graph"]
    assert re.fullmatch(
        r"headline: graphtag parses the 3,000-edge SNAP file \(plain\) at \d+ MB/s, "
        r"[\d.]+x the time of reading its bytes; [\d.]+x (faster|slower) than numpy\.loadtxt"
        r"(, [\d.]+x (faster|slower) than pandas)?; full load [\d.]+ s uncached "
        r"\([\d.]+x the read\), [\d.]+ s cached \([\d.]+x faster\)",
        lines[-1],
    )
    assert lines[-1] == result["headline"]
    assert json.loads(out.read_text())["formats"] == json.loads(json.dumps(result["formats"]))
    # The library is as it was: stage wrappers removed, cache threshold and folder restored.
    assert all(getattr(_snap, k) is v for k, v in originals.items())
    assert _snap.CACHE_MIN_BYTES == 8 * 2**20
    assert os.environ.get("GRAPHTAG_CACHE") == cache_env
    assert list(tmp_path.iterdir()) == [out]  # the temporary folder is gone


def test_ascii_tokens_matches_str(load_experiment) -> None:
    module = load_experiment("bench_snap")
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            [0, 9, 10, 99, 100, 2**63 - 1, 10**18, 10**18 - 1],
            rng.integers(0, 2**63 - 1, size=200, dtype=np.int64) >> rng.integers(0, 63, size=200),
        ]
    )
    terms = rng.choice(np.array([9, 10, 32], dtype=np.uint8), size=values.size)
    expected = "".join(f"{v}{chr(t)}" for v, t in zip(values.tolist(), terms.tolist()))
    assert module.ascii_tokens(values, terms) == expected.encode()
    assert module.ascii_tokens(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8)) == b""


@pytest.mark.parametrize("fmt", ["plain", "gzip"])
@pytest.mark.parametrize("num_tasks", [None, 4])
def test_generated_files_load_to_expected_graph(
    load_experiment, tmp_path: Path, fmt: str, num_tasks: int | None
) -> None:
    module = load_experiment("bench_snap")
    graph = module.make_snap_graph(200, 900, 25, seed=3, id_gap=40)
    ids, edges, sizes, members = graph["ids"], graph["edges"], graph["sizes"], graph["members"]
    # SNAP-like: large, non-contiguous, strictly increasing ids; every node in an edge; no loops;
    # communities of >= 3 distinct members.
    assert ids.size == 200 and ids[-1] > 1_000 and np.all(np.diff(ids) >= 1)
    assert np.any(np.diff(ids) > 1)
    assert edges.shape == (900, 2) and not np.any(edges[:, 0] == edges[:, 1])
    assert np.array_equal(np.unique(edges), ids)
    assert sizes.size == 25 and sizes.min() >= 3 and sizes.sum() == members.size
    starts = np.cumsum(sizes) - sizes
    assert all(np.unique(members[s : s + n]).size == n for s, n in zip(starts, sizes))
    paths = module.write_snap_files(graph, tmp_path, [fmt])[fmt]
    assert paths["edges"].read_bytes()[:2] == (b"\x1f\x8b" if fmt == "gzip" else b"# ")
    flat, _ = read_int_tokens(paths["edges"], fields=2)
    assert np.array_equal(flat, edges.ravel())
    cmty, counts = read_int_tokens(paths["cmty"])
    assert np.array_equal(cmty, members) and np.array_equal(counts, sizes)

    data = load_snap(paths["edges"], paths["cmty"], num_tasks=num_tasks, name="g", cache=False)
    want = module.expected_graph(graph, num_tasks)
    assert data.num_nodes == want["num_nodes"]
    assert data.edge_index.size(1) == 2 * want["num_undirected_edges"]
    assert data.y.size(1) == want["num_tasks"]
    assert data.meta["num_edge_lines"] == 900 and data.meta["num_communities_in_file"] == 25
    kept = sizes if num_tasks is None else np.sort(sizes)[::-1][:num_tasks]
    assert data.meta["community_sizes"] == kept.tolist()
    assert data.y.sum(0).tolist() == kept.tolist()
