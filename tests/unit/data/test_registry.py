"""load_dataset dispatch, the embedded datasets, and datasets/README.md against the registry."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch

from graphtag.data import (
    BUILTIN_DATASETS,
    _ogb,
    cache_dir,
    check_multilabel_graph,
    embedded_path,
    load_dataset,
    task_warnings,
)
from graphtag.errors import GraphtagError

README = Path(__file__).resolve().parents[3] / "datasets" / "README.md"


def _readme_rows() -> dict[str, dict[str, int | None]]:
    """Rows of the metadata table whose first cell is a registry name in backticks."""
    rows: dict[str, dict[str, int | None]] = {}
    header: list[str] | None = None
    for line in README.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        m = re.fullmatch(r"`([a-z0-9-]+)`", cells[0])
        if m is None or "#nodes" not in header:
            continue

        def num(col: str, cells=cells, header=header) -> int | None:
            raw = cells[header.index(col)]
            return None if raw in {"", "—", "-"} else int(raw.replace(",", ""))

        rows[m.group(1)] = {
            "num_nodes": num("#nodes"),
            "num_edges": num("#edges"),
            "num_tasks": num("#tasks"),
        }
    return rows


def test_readme_table_matches_registry():
    rows = _readme_rows()
    real = {name for name, info in BUILTIN_DATASETS.items() if info.num_tasks is not None}
    assert set(rows) == real
    for name in real:
        info = BUILTIN_DATASETS[name]
        for field in ("num_nodes", "num_edges", "num_tasks"):
            expected = getattr(info, field)
            if expected is not None:
                assert rows[name][field] == expected, (name, field)


def _load_isolated(spec: str, tmp_path_factory: pytest.TempPathFactory):
    """Load with a private cache: module fixtures run before conftest's per-test cache folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHTAG_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_dataset(spec)


@pytest.fixture(scope="module")
def blogcatalog(tmp_path_factory):
    return _load_isolated("blogcatalog", tmp_path_factory)


@pytest.fixture(scope="module")
def wikipedia(tmp_path_factory):
    return _load_isolated("wikipedia-pos", tmp_path_factory)


@pytest.fixture(scope="module")
def humango(tmp_path_factory):
    return _load_isolated("humango", tmp_path_factory)


@pytest.mark.parametrize("name", ["blogcatalog", "wikipedia-pos", "humango"])
def test_embedded_matches_registry_and_readme(name, blogcatalog, wikipedia, humango):
    data = {"blogcatalog": blogcatalog, "wikipedia-pos": wikipedia, "humango": humango}[name]
    check_multilabel_graph(data)
    info = BUILTIN_DATASETS[name]
    row = _readme_rows()[name]
    sizes = {
        "num_nodes": data.num_nodes,
        "num_edges": data.edge_index.size(1) // 2,
        "num_tasks": data.y.size(1),
    }
    assert data.meta["num_undirected_edges"] == sizes["num_edges"]
    for field, value in sizes.items():
        assert row[field] == value, field
        if getattr(info, field) is not None:
            assert getattr(info, field) == value, field
    assert data.name == name


def test_blogcatalog_details(blogcatalog):
    assert blogcatalog.task_names[:2] == ["group_0", "group_1"]
    counts = blogcatalog.y.sum(0)
    assert int(counts.min()) == 8 and int(counts.max()) == 1623
    assert blogcatalog.meta["self_loops_removed"] == 0
    assert blogcatalog.meta["asymmetric_entries"] == 0


def test_wikipedia_keeps_tiny_tasks_and_counts_self_loops(wikipedia):
    assert wikipedia.meta["self_loops_removed"] == 222
    assert wikipedia.meta["duplicate_edges_removed"] == 0
    counts = wikipedia.y.sum(0)
    assert int((counts <= 4).sum()) == 15
    assert wikipedia.task_names == [f"community_{i}" for i in range(40)]
    warned = task_warnings(wikipedia)
    assert len(warned) >= 15


def test_embedded_path_missing_file():
    with pytest.raises(GraphtagError, match=r"embedded data file 'nope\.bin' is missing"):
        embedded_path("nope.bin")


def test_cache_dir_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GRAPHTAG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "graphtag"


def test_load_dataset_mat_and_snap_specs(tmp_path):
    net = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float)
    sio.savemat(tmp_path / "ppi.mat", {"network": net, "group": np.eye(3)})
    data = load_dataset(f"mat:{tmp_path / 'ppi.mat'}", seed=1)
    assert data.name == "ppi" and data.y.shape == (3, 3) and data.meta["split_seed"] == 1

    (tmp_path / "com-toy.ungraph.txt").write_text("1 2\n2 3\n3 4\n")
    (tmp_path / "com-toy.cmty.txt").write_text("1 2 3\n3 4\n2 3\n")
    e, c = tmp_path / "com-toy.ungraph.txt", tmp_path / "com-toy.cmty.txt"
    data = load_dataset(f"snap:{e},{c},num_tasks=1")
    assert data.name == "com-toy" and data.y.shape == (3, 1)
    with pytest.warns(UserWarning, match="fewer than num_tasks=100"):
        data = load_dataset(f"snap:{e},{c}")  # default num_tasks=100
    assert data.y.shape == (4, 3)


def test_load_dataset_ogbn_proteins_offline(tmp_path, monkeypatch):
    def offline(root):
        raise OSError("no network")

    monkeypatch.setattr(_ogb, "_download", offline)
    with pytest.raises(GraphtagError, match=r"ogbn-proteins raw files are missing under .*ogb"):
        load_dataset(f"ogbn-proteins:root={tmp_path / 'ogb'}")
    with pytest.raises(GraphtagError, match=re.escape(str(tmp_path / "r" / "ogbn_proteins"))):
        load_dataset("ogbn-proteins", root=tmp_path / "r")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("nope", r"unknown dataset 'nope' in spec 'nope'; known: blogcatalog, "),
        ("blogcatalog:x", r"expected no arguments for the embedded 'blogcatalog'"),
        ("wikipedia-pos:k=1", r"unknown option\(s\) k"),
        ("mat:", r"expected mat:PATH"),
        ("snap:e.txt", r"expected snap:EDGES,COMMUNITIES\[,num_tasks=100\]"),
        ("snap:e,c,num_tasks=0", r"num_tasks must be >= 1"),
        ("snap:e,c,num_tasks=many", r"option num_tasks='many' is not a valid int"),
        ("snap:e,c,top=3", r"unknown option\(s\) top; allowed: embedding_dim, features, num"),
        ("blogcatalog:features=pca", r"blogcatalog: unknown feature recipe features='pca'"),
        ("blogcatalog:features=given", r"needs node attributes, but this graph has none"),
        ("humango:embedding_dim=0", r"embedding_dim must be >= 1, got 0"),
        ("csv:y=l.csv", r"edges= is missing or empty; expected csv:edges=EDGES.csv,y="),
        ("csv:edges=e.csv,y=l.csv,z=1", r"unknown option\(s\) z"),
        ("npz:", r"expected npz:PATH"),
        ("ogbn-proteins:/x", r"expected ogbn-proteins\[:root=DIR\]"),
    ],
)
def test_load_dataset_spec_errors(spec, pattern):
    with pytest.raises(GraphtagError, match=pattern):
        load_dataset(spec)


def test_same_seed_same_embedded_graph(wikipedia):
    again = load_dataset("wikipedia-pos", seed=0)
    assert torch.equal(again.train_mask, wikipedia.train_mask)
    assert torch.equal(again.x, wikipedia.x)


def test_snap_spec_num_tasks_all_keeps_every_community(tmp_path):
    from graphtag.data import load_dataset

    (tmp_path / "e.txt").write_text("0 1\n1 2\n2 3\n3 4\n")
    (tmp_path / "c.txt").write_text("0 1\n2 3 4\n1 2\n")
    data = load_dataset(f"snap:{tmp_path / 'e.txt'},{tmp_path / 'c.txt'},num_tasks=all")
    assert data.y.shape[1] == 3
    import pytest

    from graphtag.errors import GraphtagError

    with pytest.raises(GraphtagError, match="num_tasks must be >= 1 or 'all'"):
        load_dataset(f"snap:{tmp_path / 'e.txt'},{tmp_path / 'c.txt'},num_tasks=0")
