"""Attributed graphs: csv: and npz: specs, from_pyg / save_graph, the built-in humango."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from graphtag.data import (
    BUILTIN_DATASETS,
    dataset_files,
    embedded_path,
    from_pyg,
    load_csv,
    load_dataset,
    load_npz,
    save_graph,
)
from graphtag.errors import DataFormatError, GraphtagError

EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (4, 5), (5, 0), (1, 1)]
LABELS = [[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]]
ATTRS = [[0.5, 1.0, 2.0], [2.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 3.0, 1.0], [4, 4, 4], [1, 2, 3]]


def _write(path: Path, rows, header: str | None = None) -> Path:
    text = "".join(",".join(str(v) for v in row) + "\n" for row in rows)
    path.write_text((header + "\n" if header else "") + text)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    # HumanGo's layout: a header, ids written as floats, extra weight columns.
    edges = [(float(u), float(v), 0.5, 0.0) for u, v in EDGES]
    return {
        "edges": _write(tmp_path / "edge_list.csv", edges, "prot1,prot2,w1,w2"),
        "y": _write(tmp_path / "labels.csv", [[float(v) for v in r] for r in LABELS]),
        "x": _write(tmp_path / "features.csv", ATTRS),
    }


def _edge_set(data: Data) -> set[tuple[int, int]]:
    return set(map(tuple, data.edge_index.T.tolist()))


def test_csv_loads_the_graph_as_written(files):
    data = load_csv(files["edges"], files["y"], files["x"], name="toy", features="given")
    assert data.num_nodes == 6 and data.task_names == ["task_0", "task_1"]
    assert torch.equal(data.y, torch.tensor(LABELS, dtype=torch.float32))
    assert torch.equal(data.x, torch.tensor(ATTRS, dtype=torch.float32))
    want = {(u, v) for u, v in EDGES if u != v} | {(v, u) for u, v in EDGES if u != v}
    assert _edge_set(data) == want
    assert data.meta["self_loops_removed"] == 1 and data.meta["ignored_edge_columns"] == 2
    # The spec gives the same graph; the default recipe adds the embedding.
    spec = f"csv:edges={files['edges']},y={files['y']},x={files['x']},name=toy"
    same = load_dataset(spec + ",features=given")
    assert torch.equal(same.x, data.x) and torch.equal(same.train_mask, data.train_mask)
    auto = load_dataset(spec + ",embedding_dim=2")
    assert auto.x.shape == (6, 5) and auto.meta["features"]["recipe"] == "given+prone"
    assert load_dataset(f"csv:edges={files['edges']},y={files['y']}").x.shape[1] == 6  # capped


def test_csv_header_names_tasks_and_gzip(files, tmp_path):
    _write(files["y"], LABELS, "cytoplasm,nucleus")
    gz = tmp_path / "edges.gz"
    gz.write_bytes(gzip.compress(files["edges"].read_bytes()))
    data = load_csv(gz, files["y"], name="toy", features="structural")
    assert data.task_names == ["cytoplasm", "nucleus"] and data.num_nodes == 6


@pytest.mark.parametrize(
    ("target", "content", "pattern"),
    [
        ("edges", "0,1\n1,2.5\n", r"edge_list.csv:2: node id 2.5 is not an integer in \[0, 6\)"),
        ("edges", "0,1\n1,6\n", r"edge_list.csv:2: node id 6 is not an integer in \[0, 6\)"),
        ("edges", "0,1\n-1,2\n", r"node id -1 is not an integer"),
        ("edges", "a,b\n0,1\n1,x\n", r"edge_list.csv:3: column 2 of the edge holds 'x'"),
        ("edges", "0\n1\n", r"needs at least two columns"),
        ("edges", "0,1\n1,2,3\n", r"same number of fields on every line"),
        ("edges", "0,1\n1,\n", r"edge_list.csv:2: column 2 of the edge holds an empty field"),
        ("edges", "", r"empty or starts with a blank line"),
        ("y", "1,0\n0,2\n", r"labels.csv:2: label of node 1, task 1 \(task_1\) is 2.0"),
        ("y", "a,b\n", r"has a header but no rows"),
        ("y", "1,0\n1,0\n", r"task 0 \(task_0\) has no negative node .* 2 of 2 tasks"),
        ("x", "1,2\n3,4\n", r"attribute file has 2 rows but the label file"),
    ],
)
def test_csv_errors_name_file_and_line(files, target, content, pattern):
    if target == "y" and content.count("\n") <= 2 and "a,b" not in content:
        _write(files["edges"], [(0, 1)])  # a 2-node graph for the short label files
        if "x" in files:
            _write(files["x"], [[1], [2]])
    files[target].write_text(content)
    with pytest.raises(DataFormatError, match=pattern):
        load_csv(files["edges"], files["y"], files["x"], name="toy", features="given")


def test_csv_missing_file(files, tmp_path):
    with pytest.raises(DataFormatError, match=r"nope.csv: label file not found"):
        load_csv(files["edges"], tmp_path / "nope.csv", name="toy")


def test_npz_round_trip_through_save_graph(files, tmp_path):
    source = load_csv(files["edges"], files["y"], files["x"], name="toy", features="given")
    pyg = Data(x=source.x, edge_index=source.edge_index, y=source.y)
    path = save_graph(pyg, tmp_path / "toy", task_names=["a", "b"])
    assert path.name == "toy.npz"
    data = load_npz(path, name="toy", features="given")
    assert data.task_names == ["a", "b"] and torch.equal(data.x, source.x)
    assert _edge_set(data) == _edge_set(source) and torch.equal(data.y, source.y)
    assert load_dataset(f"npz:{path},features=given").name == "toy"
    assert load_dataset(f"npz:{path},name=other,embedding_dim=2").x.shape == (6, 5)


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"y": np.eye(3)}, r"missing edge_index array\(s\)"),
        ({"edge_index": [[0], [1]], "y": np.eye(3), "X": np.eye(3)}, r"unknown X array"),
        ({"edge_index": [[0, 1, 2]], "y": np.eye(3)}, r"edge_index must be an integer \[2, E\]"),
        ({"edge_index": [[0.0], [1.0]], "y": np.eye(3)}, r"edge_index must be an integer"),
        ({"edge_index": [[0], [3]], "y": np.eye(3)}, r"ids must lie in \[0, 3\)"),
        ({"edge_index": [[0], [1]], "y": np.ones(3)}, r"y must be a numeric \[N, T\] array"),
        ({"edge_index": [[0], [1]], "y": np.eye(3), "x": np.ones((2, 2))}, r"x must have shape"),
        ({"edge_index": [[0], [1]], "y": np.eye(3), "task_names": ["a"]}, r"task_names must be 3"),
        ({"edge_index": [[0], [1]], "y": 2 * np.eye(3)}, r"label of node 0, task 0 \(task_0\)"),
    ],
)
def test_npz_errors(tmp_path, arrays, pattern):
    path = tmp_path / "g.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(DataFormatError, match=pattern):
        load_npz(path, name="g")


def test_npz_foreign_and_pickled_files(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataFormatError, match=r"not a NumPy .npz archive"):
        load_npz(tmp_path / "bad.npz", name="g")
    names = np.array(["a", None, "c"], dtype=object)
    np.savez(tmp_path / "obj.npz", edge_index=np.array([[0], [1]]), y=np.eye(3), task_names=names)
    with pytest.raises(DataFormatError, match=r"needs pickle .* unicode string array"):
        load_npz(tmp_path / "obj.npz", name="g")


def test_from_pyg_uses_attributes_and_leaves_data_alone():
    pyg = Data(
        x=torch.tensor(ATTRS), edge_index=torch.tensor(EDGES).T, y=torch.tensor(LABELS).bool()
    )
    before = {k: v.clone() for k, v in pyg.items()}
    data = from_pyg(pyg, name="mine", features="given", task_names=["p", "q"])
    assert data.name == "mine" and data.task_names == ["p", "q"]
    assert torch.equal(data.x, pyg.x) and data.y.dtype == torch.float32
    assert all(torch.equal(pyg[k], v) for k, v in before.items())
    assert from_pyg(pyg, embedding_dim=2).meta["features"]["recipe"] == "given+prone"
    no_x = Data(edge_index=pyg.edge_index[:, :4], y=pyg.y, num_nodes=6)  # 4, 5 isolated
    assert from_pyg(no_x, features="structural").num_nodes == 6
    with pytest.raises(GraphtagError, match=r"data.y has 6 rows but the graph has 8 nodes"):
        from_pyg(Data(edge_index=pyg.edge_index, y=pyg.y, num_nodes=8))


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            {"y": torch.tensor([0, 1, 2, 0, 1, 2])},
            r"must be a multi-label .*one_hot\(data.y\)",
        ),
        ({"edge_index": torch.zeros(3, 2, dtype=torch.long)}, r"edge_index must be an int64"),
        ({"edge_index": torch.zeros(2, 2)}, r"edge_index must hold integer ids"),
        ({"x": torch.zeros(5, 2)}, r"data.x must be a tensor \[N=6, F\] or None"),
        ({"y": torch.tensor(LABELS) * torch.tensor([1, 0])}, r"task 1 of data.y has no positive"),
        ({"y": torch.tensor(LABELS) * 3}, r"label of node 0, task 0 is 3.0"),
    ],
)
def test_from_pyg_errors(change, pattern):
    fields = {"x": torch.tensor(ATTRS), "edge_index": torch.tensor(EDGES).T}
    fields["y"] = torch.tensor(LABELS)
    fields.update(change)
    with pytest.raises(GraphtagError, match=pattern):
        from_pyg(Data(**fields))


def test_humango_builtin():
    data = load_dataset("humango", seed=1)
    info = BUILTIN_DATASETS["humango"]
    assert (data.num_nodes, data.y.size(1)) == (info.num_nodes, info.num_tasks)
    assert data.edge_index.size(1) // 2 == info.num_edges
    assert data.meta["self_loops_removed"] == 530 and data.meta["split_seed"] == 1
    assert data.meta["features"]["recipe"] == "given+prone"
    assert data.meta["features"]["given_dim"] == 32
    counts = data.y.sum(0)
    assert int(counts.min()) == 22 and int(counts.max()) == 1021
    given = load_dataset("humango:features=given")
    assert given.x.shape == (3106, 32)


HUMANGO_CSV = Path(os.environ.get("GRAPHTAG_HUMANGO_DIR", "/work/shared/data/humango"))


@pytest.mark.dataset
@pytest.mark.skipif(not HUMANGO_CSV.is_dir(), reason="HumanGo CSV files not present")
def test_humango_builtin_equals_the_published_csv_files():
    spec = f"csv:edges={HUMANGO_CSV / 'edge_list.csv'},y={HUMANGO_CSV / 'labels.csv'}"
    from_csv = load_dataset(spec + f",x={HUMANGO_CSV / 'features.csv'}")
    builtin = load_dataset("humango")
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(from_csv[key], builtin[key]), key


def test_dataset_files(tmp_path):
    assert dataset_files("blogcatalog") == {"blogcatalog.mat": embedded_path("blogcatalog.mat")}
    assert dataset_files("humango") == {"humango.npz": embedded_path("humango.npz")}
    assert dataset_files("humango:features=structural") == dataset_files("humango")
    assert dataset_files("mat:/d/g.mat") == {"/d/g.mat": Path("/d/g.mat")}
    assert list(dataset_files("snap:e.txt,c.txt,num_tasks=5")) == ["e.txt", "c.txt"]
    assert dataset_files("csv:edges=e.csv,y=l.csv,x=f.csv") == {
        "e.csv": Path("e.csv"),
        "l.csv": Path("l.csv"),
        "f.csv": Path("f.csv"),
    }
    assert dataset_files("npz:g.npz") == {"g.npz": Path("g.npz")}
    proteins = dataset_files(f"ogbn-proteins:root={tmp_path}")
    assert len(proteins) == 7 and all(str(p).startswith(str(tmp_path)) for p in proteins.values())
    assert dataset_files("synthetic:num_nodes=100") == {}
    with pytest.raises(GraphtagError, match="unknown dataset 'nope'"):
        dataset_files("nope")
