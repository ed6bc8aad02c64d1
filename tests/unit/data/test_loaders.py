"""Real-data loaders on tiny files written here: MATLAB, SNAP, ogbn-proteins raw CSVs."""

from __future__ import annotations

import gzip
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import scipy.sparse as sp
import torch

from graphtag.data import _io as gio
from graphtag.data import _ogb, cache_dir, check_multilabel_graph
from graphtag.data._mat import load_mat
from graphtag.data._ogb import OGB_URL, load_ogbn_proteins
from graphtag.data._snap import load_snap
from graphtag.errors import DataFormatError, GraphtagError


def _edge_set(data) -> set[tuple[int, int]]:
    return {(int(u), int(v)) for u, v in data.edge_index.t().tolist()}


def _undirected(pairs) -> set[tuple[int, int]]:
    return {(u, v) for a, b in pairs if a != b for u, v in ((a, b), (b, a))}


# --------------------------------------------------------------------------------------------
# MATLAB
# --------------------------------------------------------------------------------------------


def _write_mat(path: Path, **arrays) -> Path:
    sio.savemat(path, arrays)
    return path


def test_mat_roundtrip_symmetrises_and_counts(tmp_path):
    # Directed entries 0->1 and 1->0 (one undirected edge), 1->2 only (asymmetric), a self-loop
    # at 3, and a weighted entry 2->3.
    rows = [0, 1, 1, 3, 2]
    cols = [1, 0, 2, 3, 3]
    vals = [1.0, 1.0, 1.0, 1.0, 0.5]
    net = sp.csc_matrix((vals, (rows, cols)), shape=(5, 5))
    group = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], dtype=np.uint8)
    f = _write_mat(tmp_path / "toy.mat", network=net, group=sp.csc_matrix(group))
    data = load_mat(f, name="toy", seed=3)
    check_multilabel_graph(data)
    assert data.name == "toy"
    assert data.task_names == ["group_0", "group_1"]
    assert torch.equal(data.y, torch.tensor(group, dtype=torch.float32))
    assert _edge_set(data) == _undirected([(0, 1), (1, 2), (2, 3)])
    assert data.meta["self_loops_removed"] == 1
    assert data.meta["duplicate_edges_removed"] == 0  # both triangles stored: not duplicates
    assert data.meta["asymmetric_entries"] == 4  # (1,2),(2,1),(2,3),(3,2) differ from A^T
    assert data.meta["weights_ignored"] is True
    assert data.x.shape[0] == 5 and data.x.dtype == torch.float32


def test_mat_accepts_dense_matrices(tmp_path):
    net = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float64)
    group = np.array([[1.0], [0.0], [1.0]])
    data = load_mat(_write_mat(tmp_path / "d.mat", network=net, group=group), name="d")
    assert _edge_set(data) == _undirected([(0, 1), (1, 2)])
    assert data.y[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_mat_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"nope\.mat: MATLAB file not found"):
        load_mat(tmp_path / "nope.mat", name="x")


@pytest.mark.parametrize("content", [b"", b"hello, this is not MATLAB\n" * 20])
def test_mat_not_a_mat_file(tmp_path, content):
    f = tmp_path / "bad.mat"
    f.write_bytes(content)
    with pytest.raises(DataFormatError, match=r"bad\.mat: not a readable MATLAB v5/v7 \.mat file"):
        load_mat(f, name="x")


def test_mat_truncated(tmp_path):
    f = _write_mat(tmp_path / "t.mat", network=sp.eye(20, format="csc"), group=sp.eye(20, 3))
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match=r"t\.mat: not a readable MATLAB .* truncated"):
        load_mat(f, name="x")


def test_mat_v73_hdf5_is_explained(tmp_path):
    f = tmp_path / "v73.mat"
    f.write_bytes(b"MATLAB 7.3 MAT-file".ljust(116) + bytes(8) + bytes([0, 2]) + b"IM" + bytes(64))
    with pytest.raises(DataFormatError, match=r"v7\.3 \(HDF5\) files are not supported.*-v7"):
        load_mat(f, name="x")


def test_mat_missing_keys_lists_found(tmp_path):
    f = _write_mat(tmp_path / "k.mat", network=sp.eye(3, format="csc"), labels=np.eye(3))
    with pytest.raises(
        DataFormatError, match=r"missing variable\(s\) 'group'; the file holds 'labels', 'network'"
    ):
        load_mat(f, name="x")


def test_mat_wrong_shapes(tmp_path):
    f = _write_mat(tmp_path / "s.mat", network=np.ones((3, 4)), group=np.ones((3, 1)))
    with pytest.raises(DataFormatError, match=r"'network' must be a square .* shape \(3, 4\)"):
        load_mat(f, name="x")
    f = _write_mat(tmp_path / "s.mat", network=np.ones((3, 3)), group=np.ones((2, 3)))
    with pytest.raises(DataFormatError, match=r"shape \(2, 3\) but 'network' has 3 nodes \(it"):
        load_mat(f, name="x")
    f = _write_mat(tmp_path / "s.mat", network=np.ones((3, 3)), group=np.array(["abc"]))
    with pytest.raises(DataFormatError, match=r"variable 'group' must be a numeric 2-D matrix"):
        load_mat(f, name="x")


@pytest.mark.parametrize("bad", [2.0, -1.0, 0.5, np.nan])
def test_mat_non_binary_label_names_node_and_task(tmp_path, bad):
    group = np.zeros((4, 3))
    group[0, 0] = 1.0
    group[2, 1] = bad
    group[3, 0] = bad  # later in row-major order: the first one is reported
    f = _write_mat(tmp_path / "l.mat", network=np.eye(4), group=sp.csc_matrix(group))
    expected = re.escape(f"label of node 2, task 1 (group_1) is {float(bad)!r}; ")
    with pytest.raises(DataFormatError, match=expected):
        load_mat(f, name="x")


# --------------------------------------------------------------------------------------------
# SNAP
# --------------------------------------------------------------------------------------------

BIG = 10**15


def _write(path: Path, text: str, *, gz: bool = False) -> Path:
    raw = text.encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def _reference_snap(edges, communities, num_tasks):
    """Brute-force protocol: top-k by size (stable), induced subgraph, sorted relabelling."""
    idx = list(range(len(communities)))
    if num_tasks is not None:
        idx = sorted(idx, key=lambda i: -len(communities[i]))[:num_tasks]
    nodes = sorted({m for i in idx for m in communities[i]})
    new = {v: k for k, v in enumerate(nodes)}
    y = torch.zeros(len(nodes), len(idx))
    for t, i in enumerate(idx):
        for m in communities[i]:
            y[new[m], t] = 1
    pairs = [(new[u], new[v]) for u, v in edges if u in new and v in new]
    return idx, nodes, y, _undirected(pairs)


EDGES = [(BIG, 7), (7, 3), (3, BIG + 5), (BIG + 5, 42), (42, 9), (9, 7), (3, 9), (BIG, 42)]
COMMUNITIES = [[7, 3], [BIG, 7, 42, 9], [3, 9, BIG + 5], [42, BIG + 5, 9, 3], [9]]


def _snap_files(tmp_path, *, gz=False, edges=EDGES, communities=COMMUNITIES):
    etext = "# Undirected graph: toy\n# FromNodeId\tToNodeId\n"
    etext += "".join(f"{u}\t{v}\n" for u, v in edges)
    ctext = "".join(" ".join(map(str, c)) + "\n" for c in communities)
    e = _write(tmp_path / "edges.txt", etext, gz=gz)
    c = _write(tmp_path / "cmty.txt", ctext, gz=gz)
    return e, c


@pytest.mark.parametrize("num_tasks", [None, 1, 2, 3, 5])
@pytest.mark.parametrize("gz", [False, True])
def test_snap_matches_bruteforce_protocol(tmp_path, num_tasks, gz):
    e, c = _snap_files(tmp_path, gz=gz)
    data = load_snap(e, c, num_tasks=num_tasks, name="toy", seed=1)
    check_multilabel_graph(data)
    idx, nodes, y, pairs = _reference_snap(EDGES, COMMUNITIES, num_tasks)
    assert data.task_names == [f"community_{i}" for i in idx]
    assert torch.equal(data.y, y)
    assert _edge_set(data) == pairs
    assert data.meta["original_id_range"] == [nodes[0], nodes[-1]]
    assert data.meta["community_sizes"] == [len(COMMUNITIES[i]) for i in idx]
    assert data.meta["community_lines"] == [i + 1 for i in idx]


def test_snap_topk_ties_broken_by_file_order(tmp_path):
    # sizes 2, 4, 3, 4, 1: top-3 = line 2, line 4 (tie, later in file), line 3.
    e, c = _snap_files(tmp_path)
    data = load_snap(e, c, num_tasks=3, name="toy")
    assert data.task_names == ["community_1", "community_3", "community_2"]
    # Node 7 is only in the dropped community 0 and in community 1: kept; the induced subgraph
    # drops nothing here, so restrict further with top-1 and check the dropped edges.
    top1 = load_snap(e, c, num_tasks=1, name="toy")
    assert top1.num_nodes == 4  # BIG, 7, 9, 42
    assert top1.meta["num_edge_lines"] == len(EDGES)
    assert top1.meta["num_undirected_edges"] == 4  # (BIG,7) (42,9) (9,7) (BIG,42)


def test_snap_relabels_large_sparse_ids_in_sorted_order(tmp_path):
    ids = [2**62 + 11, 5, 2**40, 0]
    edges = [(ids[0], ids[1]), (ids[1], ids[2]), (ids[2], ids[3])]
    e, c = _snap_files(tmp_path, edges=edges, communities=[ids[:2], ids[2:]])
    data = load_snap(e, c, num_tasks=None, name="toy")
    # sorted original ids: 0, 5, 2**40, 2**62+11 -> 0..3
    assert data.y.tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]
    assert _edge_set(data) == _undirected([(3, 1), (1, 2), (2, 0)])
    assert data.meta["original_id_range"] == [0, 2**62 + 11]


def test_snap_whitespace_comments_blank_lines_crlf(tmp_path):
    e = _write(tmp_path / "e", "#c\r\n 1  2\r\n\r\n2\t\t3 \r\n# 9 9\r\n3 1\r\n")
    c = _write(tmp_path / "c", "\n\n1 2\n\n#comment 7\n  2\t3  \n")
    data = load_snap(e, c, num_tasks=None, name="toy")
    assert data.task_names == ["community_0", "community_1"]  # blank lines are not communities
    assert data.meta["num_communities_in_file"] == 2
    assert data.meta["community_lines"] == [3, 6]
    assert _edge_set(data) == _undirected([(0, 1), (1, 2), (2, 0)])


def test_snap_gzip_detected_by_magic_not_name(tmp_path):
    e1, c1 = _snap_files(tmp_path)
    plain = load_snap(e1, c1, num_tasks=2, name="toy")
    # gzip content under a plain name, plain content under a .gz name
    e2 = _write(tmp_path / "edges.dat", e1.read_text(), gz=True)
    c2 = tmp_path / "cmty.txt.gz"
    c2.write_bytes(c1.read_bytes())
    other = load_snap(e2, c2, num_tasks=2, name="toy")
    assert gio.is_gzip(e2) and not gio.is_gzip(c2)
    assert torch.equal(plain.edge_index, other.edge_index)
    assert torch.equal(plain.y, other.y)


def test_snap_duplicates_and_self_loops_are_counted(tmp_path):
    edges = [(1, 2), (2, 1), (1, 2), (3, 3), (2, 3), (1, 1)]
    e, c = _snap_files(tmp_path, edges=edges, communities=[[1, 2, 3]])
    data = load_snap(e, c, num_tasks=None, name="toy")
    assert data.meta["self_loops_removed"] == 2
    assert data.meta["duplicate_edges_removed"] == 2
    assert _edge_set(data) == _undirected([(0, 1), (1, 2)])


def test_snap_fewer_communities_than_requested_warns_and_keeps_all(tmp_path):
    e, c = _snap_files(tmp_path)
    with pytest.warns(UserWarning, match=r"has only 5 communities, fewer than num_tasks=9"):
        data = load_snap(e, c, num_tasks=9, name="toy")
    assert data.y.size(1) == 5


def test_snap_community_node_absent_from_edges(tmp_path):
    e, c = _snap_files(tmp_path, communities=[[7, 3, 42], [42, 9, BIG], [9, 99, 98], [99]])
    with pytest.raises(
        DataFormatError,
        match=r"cmty\.txt:3: community member 99 never occurs in the edge list .*edges\.txt",
    ):
        load_snap(e, c, num_tasks=None, name="toy")
    # A dropped community may name anything: only kept communities are checked.
    data = load_snap(e, c, num_tasks=2, name="toy")
    assert data.task_names == ["community_0", "community_1"]


@pytest.mark.parametrize(
    ("etext", "ctext", "pattern"),
    [
        ("1 2\n2 3\n2 a\n", "1 2\n", r"e\.txt:3: non-numeric token 'a' in the edge list"),
        ("1 2\n2\n", "1 2\n", r"e\.txt:2: expected 2 node ids per line in the edge list \(u v\), "),
        ("1 2\n2 3 4\n", "1 2\n", r"e\.txt:2: .*found 3"),
        ("1 2\n2 1.5\n", "1 2\n", r"e\.txt:2: non-numeric token '1\.5'"),
        ("# h\n1 -2\n", "1 2\n", r"e\.txt:2: negative node id -2; node ids must be integers >= 0"),
        ("1 2\n", "1 2\n2 -5 1\n", r"c\.txt:2: negative node id -5"),
        ("1 2\n", "1 x2\n", r"c\.txt:1: non-numeric token 'x2' in the community file"),
        ("1 9223372036854775808\n", "1\n", r"e\.txt:1: node id 9223372036854775808 does not fit"),
        ("1 2\n\xe9 3\n", "1\n", r"e\.txt:2: non-numeric token"),
    ],
)
def test_snap_malformed_lines_name_file_and_line(tmp_path, etext, ctext, pattern):
    e = _write(tmp_path / "e.txt", etext)
    c = _write(tmp_path / "c.txt", ctext)
    with pytest.raises(DataFormatError, match=pattern):
        load_snap(e, c, num_tasks=None, name="toy")


def test_snap_empty_and_missing_files(tmp_path):
    e, c = _snap_files(tmp_path)
    empty = _write(tmp_path / "empty.txt", "")
    comments = _write(tmp_path / "comments.txt", "# only\n\n#comments\n")
    with pytest.raises(DataFormatError, match=r"empty\.txt: the edge list is empty"):
        load_snap(empty, c, num_tasks=None, name="x")
    with pytest.raises(DataFormatError, match=r"empty\.txt: the community file is empty"):
        load_snap(e, empty, num_tasks=None, name="x")
    with pytest.raises(DataFormatError, match=r"comments\.txt: the edge list has no edges"):
        load_snap(comments, c, num_tasks=None, name="x")
    with pytest.raises(DataFormatError, match=r"comments\.txt: the community file has no commun"):
        load_snap(e, comments, num_tasks=None, name="x")
    with pytest.raises(DataFormatError, match=r"missing\.txt: SNAP edge list file not found"):
        load_snap(tmp_path / "missing.txt", c, num_tasks=None, name="x")
    with pytest.raises(DataFormatError, match=r"SNAP community path is not a regular file"):
        load_snap(e, tmp_path, num_tasks=None, name="x")
    with pytest.raises(GraphtagError, match=r"num_tasks must be >= 1"):
        load_snap(e, c, num_tasks=0, name="x")


def test_snap_truncated_gzip(tmp_path):
    e, c = _snap_files(tmp_path, gz=True)
    raw = e.read_bytes()
    e.write_bytes(raw[: len(raw) - 12])
    with pytest.raises(DataFormatError, match=r"edges\.txt: cannot read the file .*truncated"):
        load_snap(e, c, num_tasks=None, name="x")


def test_snap_seeds_change_split_only(tmp_path):
    e, c = _snap_files(tmp_path)
    a = load_snap(e, c, num_tasks=None, name="toy", seed=0)
    b = load_snap(e, c, num_tasks=None, name="toy", seed=0)
    d = load_snap(e, c, num_tasks=None, name="toy", seed=1)
    assert torch.equal(a.train_mask, b.train_mask) and torch.equal(a.x, b.x)
    assert torch.equal(a.y, d.y) and torch.equal(a.edge_index, d.edge_index)
    assert not torch.equal(a.train_mask, d.train_mask)


# ---- cache ------------------------------------------------------------------------------------


def _cache_files():
    return sorted((cache_dir() / "snap").glob("*"))


def test_snap_cache_roundtrip_and_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "cache"))
    e, c = _snap_files(tmp_path)
    first = load_snap(e, c, num_tasks=3, name="toy", cache=True)
    files = _cache_files()
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    with np.load(files[0], allow_pickle=False) as npz:  # plain arrays, no pickle
        assert npz["edge_index"].dtype == np.int64

    # A cache hit must not parse the files again.
    def no_parse(*args, **kwargs):
        raise AssertionError("parsed despite a cache entry")

    with monkeypatch.context() as m, warnings.catch_warnings():
        m.setattr("graphtag.data._snap._parse", no_parse)
        warnings.simplefilter("error")
        second = load_snap(e, c, num_tasks=3, name="toy", cache=True)
    assert torch.equal(first.edge_index, second.edge_index) and torch.equal(first.y, second.y)
    assert first.meta == second.meta

    # Corrupt entry: warning, recomputed, rewritten.
    files[0].write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match=r"ignoring unreadable cache file"):
        third = load_snap(e, c, num_tasks=3, name="toy", cache=True)
    assert torch.equal(first.y, third.y)
    with np.load(files[0], allow_pickle=False) as npz:
        assert "label_rows" in npz.files

    # Options and contents are part of the key.
    load_snap(e, c, num_tasks=2, name="toy", cache=True)
    assert len(_cache_files()) == 2
    _write(c, "7 3\n9 42\n")
    with pytest.warns(UserWarning, match=r"has only 2 communities"):
        changed = load_snap(e, c, num_tasks=3, name="toy", cache=True)
    assert len(_cache_files()) == 3 and changed.y.size(1) == 2


def test_file_digest_memo_skips_unchanged_files_and_sees_changes(tmp_path, monkeypatch):
    f = _write(tmp_path / "e.txt", "1 2\n2 3\n")
    memo = tmp_path / "memo"
    plain = gio.file_digest(f)
    assert gio.file_digest(f, memo_dir=memo) == plain
    assert len(list(memo.glob("*.digest"))) == 1 and not list(memo.glob("*.tmp"))

    # An unchanged file is not read again: its digest comes from the memo.
    real_open = open

    def guarded_open(path, *args, **kwargs):
        if Path(path) == f:
            raise AssertionError("hashed an unchanged file again")
        return real_open(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr("builtins.open", guarded_open)
        assert gio.file_digest(f, memo_dir=memo) == plain
    # A changed file (size or timestamp) is hashed again; a malformed memo is recomputed.
    _write(f, "1 2\n2 4\n")
    os.utime(f, ns=(1, 1))
    changed = gio.file_digest(f, memo_dir=memo)
    assert changed == gio.file_digest(f) != plain
    for entry in memo.glob("*.digest"):
        entry.write_text("garbage")
    assert gio.file_digest(f, memo_dir=memo) == changed


def test_snap_inconsistent_cache_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "cache"))
    e, c = _snap_files(tmp_path)
    good = load_snap(e, c, num_tasks=None, name="toy", cache=True)
    (f,) = _cache_files()
    with np.load(f) as npz:
        arrays = dict(npz)
    arrays["edge_index"] = arrays["edge_index"] + 100  # indices out of range
    np.savez(f, **arrays)
    with pytest.warns(UserWarning, match=r"inconsistent cache file"):
        again = load_snap(e, c, num_tasks=None, name="toy", cache=True)
    assert torch.equal(good.edge_index, again.edge_index)


def test_snap_small_inputs_not_cached_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "cache"))
    e, c = _snap_files(tmp_path)
    load_snap(e, c, num_tasks=None, name="toy")
    assert not (tmp_path / "cache").exists()


# ---- the vectorised tokenizer -----------------------------------------------------------------


def _python_tokens(text: str) -> tuple[list[int], list[int]]:
    values, counts = [], []
    for line in text.split("\n")[: -1 if text.endswith("\n") else None]:
        toks = [] if line.startswith("#") else line.split()
        values += [int(t) for t in toks]
        counts.append(len(toks))
    return values, counts


@pytest.mark.parametrize("chunk_bytes", [7, 64, 1 << 20])
def test_read_int_tokens_matches_python_reference(tmp_path, chunk_bytes):
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(300):
        kind = rng.integers(0, 6)
        if kind == 0:
            lines.append("")
        elif kind == 1:
            lines.append("# comment 12 x-y")
        else:
            k = int(rng.integers(1, 6))
            vals = rng.integers(0, 10 ** rng.integers(1, 19, size=k), dtype=np.int64)
            seps = rng.choice([" ", "\t", "  ", " \t "], size=k)
            lines.append("".join(f"{s}{v}" for s, v in zip(seps, vals)) + rng.choice(["", " "]))
    lines.append("12345678901234567890123"[:19])  # 19 digits: slow path, still parsed
    text = "\n".join(lines)  # no final newline
    f = _write(tmp_path / "t.txt", text)
    values, counts = gio.read_int_tokens(f, chunk_bytes=chunk_bytes)
    ref_values, ref_counts = _python_tokens(text)
    assert values.tolist() == ref_values
    assert counts.tolist() == ref_counts


def test_read_int_tokens_reports_first_bad_line_across_chunks(tmp_path):
    text = "".join(f"{i} {i + 1}\n" for i in range(200)) + "5\n" + "7 x\n"
    f = _write(tmp_path / "t.txt", text)
    for chunk in (16, 1 << 20):
        with pytest.raises(DataFormatError, match=r"t\.txt:201: expected 2 node ids .*found 1"):
            gio.read_int_tokens(f, fields=2, what="edge list", chunk_bytes=chunk)


@pytest.mark.parametrize("chunk_bytes", [9, 64, 1 << 20])
def test_edge_list_fast_path_matches_python_reference(tmp_path, chunk_bytes):
    # Digits and whitespace only (the fixed-fields fast path), with blank lines, tabs, CRLF,
    # vertical tabs and leading/trailing blanks; values up to 18 digits and int64's max.
    rng = np.random.default_rng(1)
    lines = []
    for _ in range(400):
        if rng.random() < 0.1:
            lines.append(str(rng.choice(["", " ", "\t", "\r"])))
            continue
        u, v = rng.integers(0, 10 ** rng.integers(1, 19, size=2), dtype=np.int64)
        sep = str(rng.choice([" ", "\t", "  ", " \t ", "\x0b"]))
        lead, tail = str(rng.choice(["", " "])), str(rng.choice(["", " ", "\r"]))
        lines.append(f"{lead}{u}{sep}{v}{tail}")
    lines.append("9223372036854775807 0")
    text = "# Undirected graph: e.txt\n# Nodes: 1 Edges: 2\n" + "\n".join(lines) + "\n"
    f = _write(tmp_path / "e.txt", text)
    values, counts = gio.read_int_tokens(f, fields=2, chunk_bytes=chunk_bytes)
    assert counts is None
    assert values.tolist() == _python_tokens(text)[0]
    assert gio._fields_chunk(b"1 2\n\n3 4\r\n", 2).tolist() == [1, 2, 3, 4]
    assert gio._fields_chunk(b"# SNAP x\n#\n1 2\n", 2).tolist() == [1, 2]  # leading comments
    for bad in (b"1 2\n3\n", b"1 2 3\n", b"1 2\n# c\n", b"+1 2\n", b"1 -2\n", b"1 2.0\n"):
        assert gio._fields_chunk(bad, 2) is None  # the general path parses or reports these
    assert gio._fields_chunk(b"9223372036854775807 1\n", 2) is None  # saturation: exact path


def test_digit_arithmetic_fallback_matches_values():
    buf = b"12 345\n6  0078 9223372036854775807\n"
    b = np.frombuffer(buf, dtype=np.uint8)
    first = np.array([0, 3, 7, 10, 15])
    end = np.array([2, 6, 8, 14, 34])
    assert gio._digits_to_int64(b, first, end).tolist() == [12, 345, 6, 78, 2**63 - 1]


@pytest.mark.parametrize(
    ("token", "fast"),
    [
        ("9223372036854775807", True),  # int64 max: vectorised
        ("0000000000000000042", True),
        ("9223372036854775808", False),  # one more: slow scan (which raises)
        ("9300000000000000000", False),
        ("00000000000000000042", False),  # 20 digits: slow scan (which parses it)
    ],
)
def test_fast_path_boundary_at_int64_max(token, fast):
    parsed = gio._fast_chunk(f"1 {token}\n".encode())
    assert (parsed is not None) == fast
    if fast:
        assert parsed[0].tolist() == [1, int(token)]


def test_int64_extremes_parse_exactly(tmp_path):
    f = _write(tmp_path / "t.txt", "9223372036854775807 0\n00000000000000000000007 5\n")
    values, _ = gio.read_int_tokens(f, fields=2)
    assert values.tolist() == [2**63 - 1, 0, 7, 5]


# --------------------------------------------------------------------------------------------
# ogbn-proteins (tiny files in OGB's raw layout; never downloads)
# --------------------------------------------------------------------------------------------

P_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [0, 2]])
P_FEAT = np.round(np.random.default_rng(1).random((6, 8)), 3).astype(np.float32)
P_LABELS = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
P_SPECIES = np.array([3702, 3702, 3702, 4932, 4932, 9606, 9606])
P_SPLIT = {"train": [0, 1, 2], "valid": [3, 4], "test": [5, 6]}


def _csv_gz(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(",".join(str(v) for v in np.atleast_1d(r)) for r in rows) + "\n"
    path.write_bytes(gzip.compress(text.encode()))


def _write_proteins(base: Path, *, labels=P_LABELS, edges=P_EDGES, split=P_SPLIT) -> Path:
    raw = base / "ogbn_proteins" / "raw"
    _csv_gz(raw / "edge.csv.gz", edges)
    _csv_gz(raw / "edge-feat.csv.gz", P_FEAT[: len(edges)])
    _csv_gz(raw / "node-label.csv.gz", labels)
    _csv_gz(raw / "node_species.csv.gz", P_SPECIES[:, None])
    for part, nodes in split.items():
        _csv_gz(base / "ogbn_proteins" / "split" / "species" / f"{part}.csv.gz", np.array(nodes))
    return base


@pytest.fixture
def no_download(monkeypatch):
    def fail(root):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(_ogb, "_download", fail)


def test_proteins_from_raw_files(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "cache"))
    root = _write_proteins(tmp_path / "ogb")
    data = load_ogbn_proteins(root, download=False, features="given")
    check_multilabel_graph(data)
    assert data.name == "ogbn-proteins"
    assert torch.equal(data.y, torch.tensor(P_LABELS, dtype=torch.float32))
    assert _edge_set(data) == _undirected(P_EDGES.tolist())
    # x = mean of incident edge features (node 6 has no edge: zeros)
    ref = np.zeros((7, 8))
    deg = np.zeros(7)
    for (u, v), f in zip(P_EDGES, P_FEAT):
        ref[u] += f
        ref[v] += f
        deg[u] += 1
        deg[v] += 1
    ref /= np.maximum(deg, 1)[:, None]
    assert np.allclose(data.x.numpy(), ref, atol=1e-6)
    for mask, part in zip((data.train_mask, data.val_mask, data.test_mask), P_SPLIT):
        expect = torch.zeros(7, 3, dtype=torch.bool)
        expect[P_SPLIT[part]] = True
        assert torch.equal(mask, expect)
    assert data.meta["species_counts"] == {3702: 3, 4932: 2, 9606: 2}
    assert "species split" in data.meta["split"]
    # root may also be the ogbn_proteins folder itself; the second load comes from the cache
    again = load_ogbn_proteins(root / "ogbn_proteins", download=False, features="given")
    assert torch.equal(again.edge_index, data.edge_index) and torch.equal(again.x, data.x)
    assert len(list((cache_dir() / "ogbn-proteins").glob("*.npz"))) == 1
    # The default recipe appends the standardised embedding to the standardised attributes.
    auto = load_ogbn_proteins(root, download=False, embedding_dim=3)
    assert auto.meta["features"]["recipe"] == "given+prone" and auto.x.shape == (7, 8 + 3)
    std = data.x.std(0, unbiased=False)
    scaled = (data.x - data.x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    assert torch.allclose(auto.x[:, :8], scaled, atol=1e-5)


def test_proteins_cache_hit_skips_parsing(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "cache"))
    root = _write_proteins(tmp_path / "ogb")
    first = load_ogbn_proteins(root, download=False)

    def no_parse(files):
        raise AssertionError("parsed despite a cache entry")

    monkeypatch.setattr(_ogb, "_parse", no_parse)
    second = load_ogbn_proteins(root, download=False)
    assert torch.equal(first.y, second.y) and torch.equal(first.train_mask, second.train_mask)


def test_proteins_missing_files_message(tmp_path, no_download):
    root = _write_proteins(tmp_path / "ogb")
    (root / "ogbn_proteins" / "raw" / "edge-feat.csv.gz").unlink()
    (root / "ogbn_proteins" / "split" / "species" / "test.csv.gz").unlink()
    with pytest.raises(GraphtagError) as err:
        load_ogbn_proteins(root, download=False)
    msg = str(err.value)
    base = root / "ogbn_proteins"
    assert f"missing under {base} (download disabled): " in msg
    assert "raw/edge-feat.csv.gz, split/species/test.csv.gz." in msg
    assert OGB_URL in msg and f"move its 'proteins' folder to {base}" in msg


def test_proteins_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    def offline(root):
        raise OSError("network is unreachable")

    monkeypatch.setattr(_ogb, "_download", offline)
    with pytest.raises(
        GraphtagError,
        match=r"\(download failed: OSError: network is unreachable\): raw/edge\.csv\.gz, ",
    ):
        load_ogbn_proteins(tmp_path / "empty")


def test_proteins_download_then_load(tmp_path, monkeypatch):
    calls = []

    def fake_download(root):
        calls.append(root)
        _write_proteins(root)

    monkeypatch.setattr(_ogb, "_download", fake_download)
    data = load_ogbn_proteins(tmp_path / "fresh")
    assert calls == [tmp_path / "fresh"] and data.y.shape == (7, 3)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"labels": np.where(P_LABELS == 1, 2, 0)},
            r"node-label\.csv\.gz:1: label of node 0, task 0 is 2\.0; labels must be 0 or 1",
        ),
        ({"edges": np.array([[0, 1], [1, 7]])}, r"edge\.csv\.gz:2: node id out of range \[0, 7\)"),
        (
            {"split": {"train": [0, 1, 2], "valid": [2, 3, 4], "test": [5, 6]}},
            r"species: node 2 appears more than once",
        ),
        (
            {"split": {"train": [0, 1], "valid": [3, 4], "test": [5, 6]}},
            r"the split files cover 6 of 7 nodes",
        ),
    ],
)
def test_proteins_malformed(tmp_path, no_download, kwargs, pattern):
    root = _write_proteins(tmp_path / "ogb", **kwargs)
    with pytest.raises(DataFormatError, match=pattern):
        load_ogbn_proteins(root, download=False)


def test_proteins_unparsable_csv(tmp_path, no_download):
    root = _write_proteins(tmp_path / "ogb")
    (root / "ogbn_proteins" / "raw" / "edge.csv.gz").write_bytes(gzip.compress(b"0,1\n1,zz\n"))
    with pytest.raises(DataFormatError, match=re.escape("cannot parse the edge list")):
        load_ogbn_proteins(root, download=False)


def test_snap_many_ties_keep_file_order(tmp_path):
    # 40 communities of equal size (more than a small-array sort keeps stable by accident),
    # plus one larger community at the end: it comes first, then ties in file order.
    communities = [[2 * i, 2 * i + 1] for i in range(40)] + [[0, 1, 2]]
    edges = [(2 * i, 2 * i + 1) for i in range(40)]
    e, c = _snap_files(tmp_path, edges=edges, communities=communities)
    data = load_snap(e, c, num_tasks=10, name="toy")
    assert data.task_names == ["community_40"] + [f"community_{i}" for i in range(9)]
    assert data.num_nodes == 18  # members of communities 40 and 0..8
