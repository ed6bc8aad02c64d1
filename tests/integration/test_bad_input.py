"""The bad-input suite: malformed inputs for every loader and every CLI flag.

Every case is a row of a table below, named ``<category>/<what>``. A case either ends with one
clear error (a :class:`~graphtag.errors.GraphtagError` from the Python API that names the what
and, for files, the file and line; through ``graphtag.cli.main`` exit status 2 and exactly one
``graphtag: error:`` line on stderr, no traceback) or, where continuing is right, with a
documented warning and a cleaned, checked result. Files are tiny and written to ``tmp_path``;
nothing is downloaded (ogbn-proteins downloads are replaced by a failing stub).

Categories: ``missing``, ``empty``, ``truncated``, ``delimiter``, ``non-numeric``,
``bad-field-count``, ``shape``, ``dup-self-edges``, ``absent-node``, ``bad-label``,
``empty-task``, ``no-train-positive``, ``k>T``, ``subset>T``, ``corrupt-cache``,
``mat-keys``, ``spec``, ``synthetic-option``, ``flag``, ``out-of-memory`` and ``fuzz`` (the
hypothesis tests at the end).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphtag.data._ogb as ogb_module
from graphtag.artifacts import load_state_dict
from graphtag.cli import main
from graphtag.data import check_multilabel_graph, load_dataset
from graphtag.data._io import read_int_tokens
from graphtag.data._snap import load_snap
from graphtag.errors import DataFormatError, GraphtagError

FAST = ["--quiet", "--epochs", "2", "--hidden-channels", "8", "--device", "cpu"]
RUN_FAST = [*FAST, "--num-subsets", "10", "--projection-dim", "8", "--num-seeds", "1"]
SYN = "synthetic:num_nodes=100,num_tasks=4,num_groups=2"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """ogbn-proteins never downloads here: a missing file ends with the 'missing' message."""

    def offline(root: Path) -> None:
        raise OSError("offline (test)")

    monkeypatch.setattr(ogb_module, "_download", offline)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Exit status of ``graphtag ARGV`` (argparse's ``SystemExit`` included) and stderr lines."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    return status, [line for line in err.splitlines() if line.strip()]


def _assert_one_error(status: int, err: list[str], pattern: str) -> None:
    assert status == 2, (status, err)
    assert len(err) == 1, err
    assert err[0].startswith("graphtag: error: "), err
    assert "Traceback" not in err[0]
    assert re.search(pattern, err[0]), (pattern, err[0])


def _expect_bad(spec: str, pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The Python API raises a GraphtagError matching ``pattern``; the CLI says it in one line."""
    with pytest.raises(GraphtagError) as info:
        load_dataset(spec)
    assert re.search(pattern, str(info.value)), (pattern, str(info.value))
    assert "\n" not in str(info.value)
    status, err = _cli(["train", "--dataset", spec, "--out", str(tmp_path / "out"), *FAST], capsys)
    _assert_one_error(status, err, pattern)
    assert not (tmp_path / "out" / "base_model.pt").exists()  # failed before any training


def _gz(data: str | bytes) -> bytes:
    return gzip.compress(data.encode() if isinstance(data, str) else data, mtime=0)


def _truncated_gz(data: str) -> bytes:
    raw = _gz(data * 20)
    return raw[: len(raw) // 2]


MISSING = object()  # the file is not written
DIRECTORY = object()  # a directory stands where the file should be


def _put(path: Path, content: object) -> Path:
    if content is MISSING:
        return path
    if content is DIRECTORY:
        path.mkdir()
        return path
    path.write_bytes(content.encode() if isinstance(content, str) else content)  # type: ignore[union-attr]
    return path


# ============================================================================================
# SNAP edge list + community file (and the generic whitespace tokenizer behind them)
# ============================================================================================

E_OK = "# toy graph\n" + "".join(f"{i} {(i + 1) % 12}\n{i} {(i + 5) % 12}\n" for i in range(12))
C_OK = "0 1 2 3 4 5\n4 5 6 7 8\n8 9 10 11\n"

SNAP_CASES = [
    ("missing/edges", MISSING, C_OK, "", r"e\.txt: SNAP edge list file not found; check the path"),
    ("missing/communities", E_OK, MISSING, "", r"c\.txt: SNAP community file not found"),
    ("missing/edges-is-directory", DIRECTORY, C_OK, "", r"e\.txt: SNAP edge list path is not a"),
    ("empty/edges-0-bytes", "", C_OK, "", r"e\.txt: the edge list is empty; expected one 'u v'"),
    ("empty/communities-0-bytes", E_OK, "", "", r"c\.txt: the community file is empty"),
    ("empty/edges-comments-only", "# a\n\n# b\n", C_OK, "", r"e\.txt: the edge list has no edges"),
    ("empty/communities-blank", E_OK, "\n\n#x\n", "", r"c\.txt: the community file has no comm"),
    ("empty/edges-empty-gzip", _gz(""), C_OK, "", r"e\.txt: the edge list has no edges"),
    ("truncated/edges-gzip", _truncated_gz(E_OK), C_OK, "", r"e\.txt: cannot read .*truncated"),
    ("truncated/communities-gzip", E_OK, _truncated_gz(C_OK), "", r"c\.txt: cannot read the fi"),
    ("truncated/gzip-magic-only", b"\x1f\x8b", C_OK, "", r"e\.txt: cannot read the file"),
    ("truncated/last-edge-line", E_OK + "3", C_OK, "", r"e\.txt:26: expected 2 node ids .*found 1"),
    ("bad-field-count/three-ids", "0 1\n1 2 3\n", C_OK, "", r"e\.txt:2: .*\(u v\), found 3"),
    ("delimiter/comma", "0,1\n1,2\n", C_OK, "", r"e\.txt:1: non-numeric token '0,1'.*not ','"),
    ("delimiter/semicolon", "0 1\n1;2\n", C_OK, "", r"e\.txt:2: non-numeric token '1;2'.*not ';'"),
    ("delimiter/pipe", "0|1\n", C_OK, "", r"e\.txt:1: .*separated by spaces or tabs, not '\|'"),
    ("delimiter/communities-comma", E_OK, "0,1,2\n", "", r"c\.txt:1: non-numeric token '0,1,2'"),
    ("non-numeric/letter", "0 1\n1 a\n", C_OK, "", r"e\.txt:2: non-numeric token 'a' in the edge"),
    ("non-numeric/float-id", "0 1.5\n", C_OK, "", r"e\.txt:1: non-numeric token '1\.5'"),
    ("non-numeric/exponent", "1e3 2\n", C_OK, "", r"e\.txt:1: non-numeric token '1e3'"),
    ("non-numeric/hex", "0x10 2\n", C_OK, "", r"e\.txt:1: non-numeric token '0x10'"),
    ("non-numeric/negative", "0 1\n2 -3\n", C_OK, "", r"e\.txt:2: negative node id -3; node ids"),
    (
        "non-numeric/beyond-int64",
        f"0 {2**63}\n",
        C_OK,
        "",
        r"e\.txt:1: node id 9223372036854775808",
    ),
    ("non-numeric/nul-byte", b"0 1\n1\x002\n", C_OK, "", r"e\.txt:2: non-numeric token '1\\x002'"),
    ("non-numeric/latin1", "0 1\n\xe9 2\n", C_OK, "", r"e\.txt:2: non-numeric token"),
    ("non-numeric/utf8-bom", b"\xef\xbb\xbf0 1\n", C_OK, "", r"e\.txt:1: .*byte-order mark"),
    ("non-numeric/community", E_OK, "1 2\n3 x\n", "", r"c\.txt:2: non-numeric token 'x' in the co"),
    ("non-numeric/community-negative", E_OK, "1 -2\n", "", r"c\.txt:1: negative node id -2"),
    ("non-numeric/binary-garbage", bytes(range(256)), C_OK, "", r"e\.txt:1: non-numeric token"),
    ("absent-node/member-99", E_OK, "0 1 2\n3 99 4\n", "", r"c\.txt:2: community member 99 never"),
    ("absent-node/empty-intersection", "0 1\n", "5 6\n", "", r"c\.txt:1: community member 5 "),
    ("shape/single-node", "0 0\n0 1\n", "0\n", "", r"c\.txt: the kept communities hold a sing"),
    ("spec/num_tasks-zero", E_OK, C_OK, ",num_tasks=0", r"num_tasks must be >= 1 or 'all'"),
    ("spec/num_tasks-negative", E_OK, C_OK, ",num_tasks=-2", r"num_tasks must be >= 1 or 'all'"),
    ("spec/num_tasks-non-numeric", E_OK, C_OK, ",num_tasks=x", r"num_tasks='x' is not a valid int"),
    ("spec/num_tasks-float", E_OK, C_OK, ",num_tasks=1.5", r"num_tasks='1\.5' is not a valid int"),
    (
        "spec/unknown-option",
        E_OK,
        C_OK,
        ",top=3",
        r"unknown option\(s\) top; allowed: embedding_dim, features, num_tasks",
    ),
    ("spec/extra-path", E_OK, C_OK, ",extra.txt", r"expected snap:EDGES,COMMUNITIES"),
]


@pytest.mark.parametrize(
    ("edges", "cmty", "options", "pattern"),
    [pytest.param(*case[1:], id=case[0]) for case in SNAP_CASES],
)
def test_snap_bad_input(tmp_path, capsys, edges, cmty, options, pattern):
    e = _put(tmp_path / "e.txt", edges)
    c = _put(tmp_path / "c.txt", cmty)
    _expect_bad(f"snap:{e},{c}{options}", pattern, tmp_path, capsys)


def test_snap_spec_without_community_file(tmp_path, capsys):
    e = _put(tmp_path / "e.txt", E_OK)
    _expect_bad(f"snap:{e}", r"expected snap:EDGES,COMMUNITIES\[,num_tasks=100\]", tmp_path, capsys)


def test_snap_duplicates_self_loops_and_few_communities_warn_and_clean(tmp_path, capsys):
    """dup-self-edges: accepted, cleaned, counted in data.meta and in the CLI report; too few
    communities for num_tasks (the default 100) and a community holding every node: warnings."""
    dup = E_OK + "1 0\n0 1\n2 2\n7 7\n11 11\n"
    e = _put(tmp_path / "e.txt", dup)
    c = _put(tmp_path / "c.txt", C_OK)
    with pytest.warns(UserWarning, match=r"has only 3 communities, fewer than num_tasks=100"):
        data = load_dataset(f"snap:{e},{c}")
    check_multilabel_graph(data)
    assert data.meta["self_loops_removed"] == 3
    assert data.meta["duplicate_edges_removed"] == 2
    clean = load_dataset(f"snap:{_put(tmp_path / 'e2.txt', E_OK)},{c},num_tasks=all")
    assert torch.equal(clean.edge_index, data.edge_index)  # cleaning = the clean file's graph

    out = tmp_path / "out"
    status, err = _cli(["train", "--dataset", f"snap:{e},{c}", "--out", str(out), *FAST], capsys)
    assert status == 0, err
    assert err == [
        f"graphtag: warning: {c} has only 3 communities, fewer than num_tasks=100; keeping all "
        "of them"
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["self_loops_removed"] == 3
    assert report["dataset"]["duplicate_edges_removed"] == 2

    with pytest.warns(UserWarning, match=r"task 0 \(community_0\) contains all 6 nodes .*no negat"):
        top1 = load_dataset(f"snap:{e},{c},num_tasks=1")
    assert top1.y.shape == (6, 1) and bool(top1.y.all())


# ============================================================================================
# MATLAB .mat
# ============================================================================================


def _ring(n: int) -> sp.csc_matrix:
    rows = np.arange(n)
    cols = (rows + 1) % n
    a = sp.coo_matrix((np.ones(n), (rows, cols)), shape=(n, n))
    return (a + a.T).tocsc()


GROUP_OK = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0]])


def _mat(path: Path, **variables: object) -> Path:
    sio.savemat(path, variables)
    return path


def _valid_mat(path: Path) -> Path:
    return _mat(path, network=_ring(7), group=sp.csc_matrix(GROUP_OK.astype(float)))


def _with_label(value: float, col: int = 1) -> np.ndarray:
    g = GROUP_OK.astype(float)
    g[4, col] = value
    return g


def _column(value: float, col: int = 1) -> np.ndarray:
    g = GROUP_OK.astype(float)
    g[:, col] = value
    return g


MAT_CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("missing/file", lambda p: None, r"g\.mat: MATLAB file not found; check the path"),
    ("missing/directory", lambda p: p.mkdir(), r"g\.mat: MATLAB path is not a regular file"),
    ("empty/0-bytes", lambda p: p.write_bytes(b""), r"g\.mat: not a readable MATLAB v5/v7"),
    (
        "truncated/half",
        lambda p: p.write_bytes(_valid_mat(p).read_bytes()[:150]),
        r"g\.mat: not a readable MATLAB .* truncated",
    ),
    (
        "truncated/header-only",
        lambda p: p.write_bytes(_valid_mat(p).read_bytes()[:128]),
        r"g\.mat: missing variable\(s\) 'network', 'group'; the file holds no variables",
    ),
    ("non-numeric/text-file", lambda p: p.write_text("0 1\n1 2\n" * 30), r"not a readable MATL"),
    ("non-numeric/gzip", lambda p: p.write_bytes(_gz(b"x" * 300)), r"g\.mat: not a readable"),
    (
        "non-numeric/hdf5-v7.3",
        lambda p: p.write_bytes(
            b"MATLAB 7.3 MAT-file".ljust(116) + bytes(8) + bytes([0, 2]) + b"IM" + bytes(64)
        ),
        r"g\.mat: MATLAB v7\.3 \(HDF5\) files are not supported.*-v7",
    ),
    (
        "mat-keys/no-group",
        lambda p: _mat(p, network=_ring(7), labels=GROUP_OK),
        r"g\.mat: missing variable\(s\) 'group'; the file holds 'labels', 'network'; expected",
    ),
    (
        "mat-keys/no-network",
        lambda p: _mat(p, adjacency=_ring(7), group=GROUP_OK),
        r"missing variable\(s\) 'network'; the file holds 'adjacency', 'group'",
    ),
    (
        "mat-keys/neither",
        lambda p: _mat(p, x=np.eye(2)),
        r"missing variable\(s\) 'network', 'group'; the file holds 'x'",
    ),
    (
        "mat-keys/upper-case",
        lambda p: _mat(p, Network=_ring(7), Group=GROUP_OK),
        r"missing variable\(s\) 'network', 'group'; the file holds 'Group', 'Network'",
    ),
    (
        "shape/network-not-square",
        lambda p: _mat(p, network=np.ones((7, 6)), group=GROUP_OK),
        r"'network' must be a square N x N adjacency matrix, got shape \(7, 6\)",
    ),
    (
        "shape/group-rows",
        lambda p: _mat(p, network=_ring(8), group=GROUP_OK),
        r"'group' must have one row per node: shape \(7, 3\) but 'network' has 8 nodes$",
    ),
    (
        "shape/group-transposed",
        lambda p: _mat(p, network=_ring(3), group=np.ones((2, 3))),
        r"shape \(2, 3\) but 'network' has 3 nodes \(it looks transposed: store it as N x T\)",
    ),
    (
        "shape/group-no-columns",
        lambda p: _mat(p, network=_ring(7), group=np.zeros((7, 0))),
        r"'group' has 0 columns: no tasks",
    ),
    (
        "shape/no-nodes",
        lambda p: _mat(p, network=np.zeros((0, 0)), group=np.zeros((0, 2))),
        r"'network' is empty \(0 x 0\): the graph has no nodes",
    ),
    (
        "shape/group-is-text",
        lambda p: _mat(p, network=_ring(7), group=np.array(["abc"])),
        r"variable 'group' must be a numeric 2-D matrix of real values, got <U3",
    ),
    (
        "shape/group-is-cell",
        lambda p: _mat(p, network=_ring(7), group=np.array([[np.eye(2)]], dtype=object)),
        r"variable 'group' must be a numeric 2-D matrix",
    ),
    (
        "shape/group-3d",
        lambda p: _mat(p, network=_ring(7), group=np.ones((7, 3, 2))),
        r"variable 'group' must be a numeric 2-D matrix of real values, got float64 with shape",
    ),
    (
        "bad-label/complex",
        lambda p: _mat(p, network=_ring(7), group=GROUP_OK + 1j * GROUP_OK),
        r"variable 'group' must be a numeric 2-D matrix of real values, got complex128",
    ),
    (
        "bad-label/two",
        lambda p: _mat(p, network=_ring(7), group=_with_label(2.0)),
        r"label of node 4, task 1 \(group_1\) is 2\.0; 'group' must hold only 0 and 1",
    ),
    (
        "bad-label/negative",
        lambda p: _mat(p, network=_ring(7), group=_with_label(-1.0)),
        r"label of node 4, task 1 \(group_1\) is -1\.0",
    ),
    (
        "bad-label/half",
        lambda p: _mat(p, network=_ring(7), group=_with_label(0.5, col=0)),
        r"label of node 4, task 0 \(group_0\) is 0\.5",
    ),
    (
        "bad-label/nan",
        lambda p: _mat(p, network=_ring(7), group=_with_label(math.nan)),
        r"label of node 4, task 1 \(group_1\) is nan",
    ),
    (
        "bad-label/inf",
        lambda p: _mat(p, network=_ring(7), group=_with_label(math.inf)),
        r"label of node 4, task 1 \(group_1\) is inf",
    ),
    (
        "empty-task/all-zero-column",
        lambda p: _mat(p, network=_ring(7), group=sp.csc_matrix(_column(0.0))),
        r"g\.mat: task 1 \(group_1\) has no positive node \(every label is 0\): a task needs "
        r"positive and negative nodes to be trained and evaluated; remove that column",
    ),
    (
        "empty-task/all-one-column",
        lambda p: _mat(p, network=_ring(7), group=_column(1.0, col=2)),
        r"task 2 \(group_2\) has no negative node \(every label is 1\)",
    ),
    (
        "no-train-positive/all-zero-labels",
        lambda p: _mat(p, network=_ring(7), group=sp.csc_matrix((7, 3))),
        r"task 0 \(group_0\) has no positive node \(every label is 0\); 3 of 3 tasks are const",
    ),
    (
        "spec/mat-two-paths",
        lambda p: _valid_mat(p),
        r"expected mat:PATH",
    ),
]


@pytest.mark.parametrize(
    ("make", "pattern"), [pytest.param(*case[1:], id=case[0]) for case in MAT_CASES]
)
def test_mat_bad_input(tmp_path, capsys, make, pattern):
    path = tmp_path / "g.mat"
    make(path)
    extra = ",other.mat" if "mat:PATH" in pattern else ""
    _expect_bad(f"mat:{path}{extra}", pattern, tmp_path, capsys)


def test_mat_self_loops_asymmetry_and_weights_are_cleaned_and_counted(tmp_path):
    """dup-self-edges: diagonal entries are self-loops (removed, counted); one-triangle and
    weighted entries are symmetrised and binarised (counted)."""
    net = _ring(7).tolil()
    net[0, 0] = net[3, 3] = 1.0
    net[0, 3] = 0.25  # one direction only, weighted
    data = load_dataset(f"mat:{_mat(tmp_path / 'g.mat', network=net.tocsc(), group=GROUP_OK)}")
    check_multilabel_graph(data)
    assert data.meta["self_loops_removed"] == 2
    assert data.meta["asymmetric_entries"] == 2 and data.meta["weights_ignored"] is True
    assert data.edge_index.size(1) == 2 * 8  # 7 ring edges + (0, 3), both directions


# ============================================================================================
# ogbn-proteins raw CSV layout
# ============================================================================================

OGB_OK = {
    "raw/edge.csv.gz": "0,1\n1,2\n2,3\n3,0\n4,5\n0,2\n5,6\n",
    "raw/edge-feat.csv.gz": "".join(
        ",".join(f"{(i * 8 + j) / 64:.3f}" for j in range(8)) + "\n" for i in range(7)
    ),
    "raw/node-label.csv.gz": "1,0,1\n0,1,1\n1,1,0\n0,0,1\n1,0,0\n0,1,0\n0,0,0\n",
    "raw/node_species.csv.gz": "3702\n3702\n3702\n4932\n4932\n9606\n9606\n",
    "split/species/train.csv.gz": "0\n1\n2\n",
    "split/species/valid.csv.gz": "3\n4\n",
    "split/species/test.csv.gz": "5\n6\n",
}


def _ogb_root(tmp_path: Path, **changes: object) -> Path:
    """OGB's raw layout under ``tmp_path/ogb``; ``changes`` maps a file key (``edge``,
    ``edge-feat``, ``node-label``, ``node_species``, ``train``, ``valid``, ``test``) to new text
    (gzipped here), raw bytes (written as they are) or ``MISSING``."""
    base = tmp_path / "ogb" / "ogbn_proteins"
    for rel, text in OGB_OK.items():
        key = Path(rel).name.removesuffix(".csv.gz")
        content = changes.get(key, text)
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is MISSING:
            continue
        path.write_bytes(content if isinstance(content, bytes) else _gz(content))  # type: ignore[arg-type]
    return tmp_path / "ogb"


OGB_CASES: list[tuple[str, dict[str, object], str]] = [
    (
        "missing/node-label",
        {"node-label": MISSING},
        r"ogbn-proteins raw files are missing under .*ogbn_proteins \(download failed: OSError: "
        r"offline \(test\)\): raw/node-label\.csv\.gz\. Download http",
    ),
    ("missing/split-file", {"test": MISSING}, r"missing under .*: split/species/test\.csv\.gz\."),
    ("empty/node-label-0-bytes", {"node-label": b""}, r"node-label\.csv\.gz: cannot parse the no"),
    ("empty/node-label-empty-gzip", {"node-label": ""}, r"node-label\.csv\.gz: cannot parse"),
    ("empty/split-empty", {"test": ""}, r"test\.csv\.gz: cannot parse the split node ids"),
    (
        "truncated/edge-gzip",
        {"edge": _truncated_gz(OGB_OK["raw/edge.csv.gz"])},
        r"edge\.csv\.gz: cannot parse the edge list as comma-separated integers without a header "
        r"\(EOFError: .*\); download the OGB files again",
    ),
    (
        "truncated/last-line",
        {"edge": "0,1\n1,2\n2,3\n3,0\n4,5\n0,2\n5,\n"},
        r"edge\.csv\.gz:7: cannot parse the edge list: '5,' holds '', not a number; expected 2 ",
    ),
    (
        "delimiter/semicolon",
        {"edge": "0;1\n1;2\n"},
        r"edge\.csv\.gz:1: cannot parse the edge list: '0;1' has 1 field\(s\) instead of 2; "
        r"expected 2 comma-separated integers per line, no header \(fields must be separated by",
    ),
    ("delimiter/tab", {"edge": "0\t1\n"}, r"edge\.csv\.gz:1: .*'0\\t1' has 1 field\(s\) inste"),
    ("delimiter/space", {"node-label": "1 0 1\n"}, r"node-label\.csv\.gz:1: .*separated by ','"),
    ("non-numeric/header-line", {"edge": "u,v\n0,1\n"}, r"edge\.csv\.gz:1: .*holds 'u', not a n"),
    ("non-numeric/letter", {"edge": "0,1\n1,x\n"}, r"edge\.csv\.gz:2: .*'1,x' holds 'x', not a"),
    ("non-numeric/float-id", {"edge": "0,1\n1,2.5\n"}, r"edge\.csv\.gz:2: .*not a 64-bit integer"),
    ("non-numeric/huge-id", {"edge": f"0,{2**64}\n"}, r"edge\.csv\.gz:1: .*not a 64-bit integer"),
    ("non-numeric/negative-id", {"edge": "0,1\n1,-2\n"}, r"edge\.csv\.gz:2: node id out of range"),
    ("non-numeric/id-out-of-range", {"edge": "0,7\n"}, r"edge\.csv\.gz:1: node id out of range \["),
    ("non-numeric/species-float", {"node_species": "1.5\n" * 7}, r"node_species\.csv\.gz:1: "),
    (
        "non-numeric/garbage-bytes",
        {"node-label": _gz(bytes(range(256)))},
        r"node-label\.csv\.gz:1: cannot parse the node labels: '\\x00.*not a number",
    ),
    ("bad-field-count/ragged", {"edge": "0,1\n1,2,5\n"}, r"edge\.csv\.gz:2: .*has 3 field\(s\)"),
    ("bad-field-count/edge-3-columns", {"edge": "0,1,1\n"}, r"edge\.csv\.gz: expected 2 comma-s"),
    (
        "bad-field-count/edge-feat-3-columns",
        {"edge-feat": "0,0,0\n" * 7},
        r"edge-feat\.csv\.gz: expected 8 comma-separated column\(s\) in the edge features",
    ),
    (
        "bad-field-count/edge-feat-rows",
        {"edge-feat": "0,0,0,0,0,0,0,0\n" * 3},
        r"edge-feat\.csv\.gz: 3 rows of edge features for 7 edges",
    ),
    (
        "bad-field-count/species-2-columns",
        {"node_species": "1,2\n" * 7},
        r"node_species\.csv\.gz: expected 1 comma-separated column",
    ),
    (
        "bad-label/nan-edge-feature",
        {"edge-feat": "nan,0,0,0,0,0,0,0\n" * 7},
        r"edge-feat\.csv\.gz:1: edge features must be finite numbers",
    ),
    (
        "bad-label/two",
        {"node-label": "1,0,1\n0,1,1\n1,1,2\n0,0,1\n1,0,0\n0,1,0\n0,0,0\n"},
        r"node-label\.csv\.gz:3: label of node 2, task 2 is 2\.0; labels must be 0 or 1",
    ),
    (
        "bad-label/nan",
        {"node-label": "1,0,1\n0,nan,1\n1,1,0\n0,0,1\n1,0,0\n0,1,0\n0,0,0\n"},
        r"node-label\.csv\.gz:2: label of node 1, task 1 is nan",
    ),
    (
        "bad-label/empty-field",
        {"node-label": "1,0,1\n0,1,1\n1,,0\n0,0,1\n1,0,0\n0,1,0\n0,0,0\n"},
        r"node-label\.csv\.gz:3: label of node 2, task 1 is nan",
    ),
    (
        "empty-task/all-zero-column",
        {"node-label": "1,0,1\n0,0,1\n1,0,0\n0,0,1\n1,0,0\n0,0,0\n0,0,0\n"},
        r"node-label\.csv\.gz: task 1 \(task_1\) has no positive node \(every label is 0\)",
    ),
    (
        "no-train-positive/species-split",
        {"node-label": "0,0,0\n0,0,0\n0,0,0\n1,1,1\n1,0,1\n0,1,0\n1,1,0\n"},
        r"train\.csv\.gz: no task has a positive node among the 3 training nodes: nothing can be",
    ),
    (
        "shape/split-overlap",
        {"valid": "2\n3\n4\n"},
        r"species: node 2 appears more than once in the train/valid/test split files",
    ),
    ("shape/split-incomplete", {"train": "0\n1\n"}, r"the split files cover 6 of 7 nodes"),
]


@pytest.mark.parametrize(
    ("changes", "pattern"), [pytest.param(*case[1:], id=case[0]) for case in OGB_CASES]
)
def test_ogbn_proteins_bad_input(tmp_path, capsys, changes, pattern):
    root = _ogb_root(tmp_path, **changes)
    _expect_bad(f"ogbn-proteins:root={root}", pattern, tmp_path, capsys)


def test_ogbn_proteins_duplicate_and_self_edges_are_cleaned(tmp_path):
    edges = OGB_OK["raw/edge.csv.gz"] + "1,0\n3,3\n"
    feat = OGB_OK["raw/edge-feat.csv.gz"] + "0,0,0,0,0,0,0,0\n" * 2
    data = load_dataset(
        f"ogbn-proteins:root={_ogb_root(tmp_path, edge=edges, **{'edge-feat': feat})}"
    )
    check_multilabel_graph(data)
    assert data.meta["self_loops_removed"] == 1 and data.meta["duplicate_edges_removed"] == 1
    assert data.edge_index.size(1) == 2 * 7


# ============================================================================================
# Dataset specs (grammar, registry) and synthetic options
# ============================================================================================

SPEC_CASES = [
    ("spec/empty", "", r"empty dataset spec; try 'blogcatalog' or run `graphtag datasets`"),
    ("spec/blank", "   ", r"empty dataset spec"),
    ("spec/colon-only", ":", r"dataset spec ':' has no name before ':'"),
    ("spec/unknown-name", "nope", r"unknown dataset 'nope' in spec 'nope'; known: blogcatalog"),
    ("spec/path-as-name", "/data/x.mat", r"unknown dataset '/data/x\.mat'"),
    ("spec/option-twice", "synthetic:seed=1,seed=2", r"option 'seed' given twice"),
    ("spec/positional-after-option", "snap:num_tasks=3,e.txt", r"positional argument 'e\.txt' af"),
    ("spec/blogcatalog-argument", "blogcatalog:x", r"expected no arguments for the embedded 'bl"),
    (
        "spec/blogcatalog-option",
        "blogcatalog:k=1",
        r"unknown option\(s\) k; allowed: embedding_dim, features$",
    ),
    (
        "spec/wikipedia-option",
        "wikipedia-pos:k=1",
        r"unknown option\(s\) k; allowed: embedding_dim, features$",
    ),
    ("spec/mat-no-path", "mat:", r"dataset spec 'mat:': expected mat:PATH"),
    (
        "spec/mat-option",
        "mat:x.mat,k=1",
        r"unknown option\(s\) k; allowed: embedding_dim, features$",
    ),
    ("spec/snap-no-files", "snap", r"expected snap:EDGES,COMMUNITIES"),
    ("spec/ogb-positional", "ogbn-proteins:/x", r"expected ogbn-proteins\[:root=DIR\]"),
    ("spec/ogb-empty-root", "ogbn-proteins:root=", r"root= is empty; give the folder holding"),
    (
        "spec/ogb-unknown-option",
        "ogbn-proteins:dir=/x",
        r"unknown option\(s\) dir; allowed: embedding_dim, features, root",
    ),
    ("spec/synthetic-positional", "synthetic:/a/b", r"expected synthetic\[:key=value,...\]"),
    ("spec/synthetic-unknown-option", "synthetic:colour=red", r"unknown option\(s\) colour"),
    ("spec/synthetic-key-typo", "synthetic:num_node=100", r"unknown option\(s\) num_node"),
    ("k>T/planted-groups", "synthetic:num_tasks=4,num_groups=5", r"num_groups must lie in \[1, "),
]

# (option, bad value, message) for every synthetic option: non-numeric, non-finite, out of range
_SYN_BAD = {
    "num_nodes": [("x", "not a valid int"), ("-5", ">= 50"), ("49", ">= 50"), ("1e3", "valid int")],
    "num_tasks": [("0", "num_tasks must be >= 1"), ("-1", ">= 1"), ("two", "not a valid int")],
    "num_groups": [("0", r"num_groups must lie in \[1"), ("1.5", "not a valid int")],
    "noise": [("1", r"must lie in \[0, 1\)"), ("-0.1", r"\[0, 1\)"), ("nan", "not a finite")],
    "avg_degree": [("0", r"avg_degree must lie in \(0"), ("inf", "not a finite number")],
    "homophily": [("1.5", r"must lie in \[0, 1\]"), ("high", "not a valid float")],
    "community_size": [("1", r"community_size must lie in \[2"), ("0.5", "not a valid int")],
    "latent_dim": [("0", "latent_dim must be >= 1"), ("", "not a valid int")],
    "feature_dim": [("0", "feature_dim must be >= 1"), ("-3", ">= 1")],
    "feature_noise": [("-1", "feature_noise must be >= 0"), ("inf", "not a finite number")],
    "prevalence": [("0.6", r"must lie in \(0, 0\.5\]"), ("0", r"\(0, 0\.5\]"), ("-inf", "fin")],
    "spread": [("-1", "spread must be >= 0"), ("inf", "not a finite number")],
    "seed": [("x", "not a valid int"), ("1.5", "not a valid int")],
    "features": [("foo", "unknown feature recipe features='foo'; choose one of auto, given")],
    "embedding_dim": [("0", "embedding_dim must be >= 1, got 0"), ("x", "not a valid int")],
}
SYNTHETIC_CASES = [
    (f"synthetic-option/{key}={value or 'empty'}", f"synthetic:{key}={value}", message)
    for key, bad in _SYN_BAD.items()
    for value, message in bad
]


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [pytest.param(*case[1:], id=case[0]) for case in SPEC_CASES + SYNTHETIC_CASES],
)
def test_dataset_spec_bad_input(tmp_path, capsys, spec, pattern):
    _expect_bad(spec, pattern, tmp_path, capsys)


def test_every_synthetic_option_has_bad_values():
    from graphtag.data import SYNTHETIC_OPTIONS

    assert set(_SYN_BAD) == set(SYNTHETIC_OPTIONS)


# ============================================================================================
# CLI flags: every flag of every command with bad values
# ============================================================================================

COMMANDS = {
    "train": ["train", "--dataset", SYN],
    "run": ["run", "--dataset", SYN],
    "check-estimator": ["check-estimator", "--dataset", SYN, "--num-subsets", "2"],
}
COUNT_FLAGS = {
    "train": ["--epochs", "--hidden-channels"],
    "run": [
        "--epochs",
        "--hidden-channels",
        "--num-seeds",
        "--num-subsets",
        "--subset-size",
        "--projection-dim",
    ],
    "check-estimator": [
        "--epochs",
        "--hidden-channels",
        "--num-subsets",
        "--subset-size",
        "--projection-dim",
    ],
}
BAD_COUNTS = [
    ("zero", "0", "expected a positive integer, got '0'"),
    ("negative", "-1", "expected a positive integer, got '-1'"),
    ("non-numeric", "ten", "expected a positive integer, got 'ten'"),
    ("float", "1.5", "expected a positive integer, got '1.5'"),
    ("empty", "", "expected a positive integer, got ''"),
    ("huge", "9" * 25, "expected a positive integer (at most 2147483647), got '9999"),
]
BAD_SEEDS = [
    ("negative", "-1", "expected an integer >= 0, got '-1'"),
    ("non-numeric", "abc", "expected an integer >= 0, got 'abc'"),
    ("float", "0.5", "expected an integer >= 0, got '0.5'"),
    ("empty", "", "expected an integer >= 0, got ''"),
    ("huge", str(2**63), "expected an integer >= 0 (at most 9223372036854775807), got"),
]
BAD_CHOICES = {"--model": ["foo", "SIGN", ""]}
RUN_CHOICES = {
    "--method": ["foo", "gradtag", ""],
    "--grouping": ["foo", "SDP"],
    "--finetune-recipe": ["adam", "GD", ""],
    "--executor": ["foo", ""],
    "--select": ["cheap", "Predicted", ""],
    "--single-task": ["yes", "ON", ""],
    "--group-init": ["warm", "Base", ""],
    "--score": ["loss", "probes", ""],
}
CHECK_CHOICES = {"--reference": ["adam", "GD", ""], "--executor": ["foo", ""]}
BAD_NUM_GROUPS = ["0", "-1", "x", "1.5", "AUTO", "", "9" * 25]
BAD_MAX_TASK_ROWS = ["0", "-5", "ALL", "1e4", "", "none"]
#: Number flags of the training recipe: bad values and the expected-value phrase.
RECIPE_NUMBERS = {
    "--lr": (["0", "-0.01", "fast", "", "nan", "inf"], "a positive number"),
    "--ema-decay": (["1", "-0.1", "slow", "", "nan"], r"a number in \[0, 1\)"),
}
BAD_MAX_GROUPS = ["1", "0", "-2", "six", "2.5", "", "auto"]
BAD_DEVICES = [
    ("tpu", r"unknown device 'tpu'; use 'auto', 'cpu' or 'cuda\[:N\]'"),
    ("cuda:x", r"unknown device 'cuda:x'"),
    ("", r"unknown device ''"),
    ("gpu0", r"unknown device 'gpu0'"),
]
if not torch.cuda.is_available():
    BAD_DEVICES.append(("cuda", r"device 'cuda' requested but CUDA is not available; use 'cpu'"))


#: Flags whose bad values are checked elsewhere in this file (or that take no value).
OTHER_FLAGS = {
    "--lr",
    "--ema-decay",
    "--confirm",
    "--holdout",
    "--dataset",
    "--out",
    "--device",
    "--ray-address",
    "--tasks",
    "--num-groups",
    "--max-groups",
    "--max-memory",
    "--max-task-rows",
}
#: Flags not covered yet.
NOT_YET_COVERED: set[str] = set()


def test_every_cli_flag_has_bad_input_rows():
    """New flags must get rows here: every flag of every command is covered by a table."""
    from graphtag.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for cmd, subparser in sub.choices.items():
        covered = {"--seed", *COUNT_FLAGS.get(cmd, []), *BAD_CHOICES, *OTHER_FLAGS}
        covered |= set(RUN_CHOICES) if cmd == "run" else set()
        covered |= set(CHECK_CHOICES) if cmd == "check-estimator" else set()
        for action in subparser._actions:
            flags = [f for f in action.option_strings if f.startswith("--")]
            if not flags or action.nargs == 0 or flags[0] in NOT_YET_COVERED:
                continue  # positional, --help or a store_true switch
            assert flags[0] in covered, f"graphtag {cmd} {flags[0]} has no bad-input rows"


def _parse_cases() -> list:
    """Cases argparse rejects (SystemExit(2) after one line)."""
    cases = []
    for cmd, flags in COUNT_FLAGS.items():
        for flag in [*flags, "--seed"]:
            values = BAD_SEEDS if flag == "--seed" else BAD_COUNTS
            for name, value, message in values:
                argv = [*COMMANDS[cmd], flag, value]
                pattern = rf"^graphtag: error: {cmd}: argument {flag}: {re.escape(message)}"
                cases.append(pytest.param(argv, pattern, id=f"flag/{cmd} {flag} {name}"))
        choices = {**BAD_CHOICES, **(RUN_CHOICES if cmd == "run" else {})}
        choices |= CHECK_CHOICES if cmd == "check-estimator" else {}
        for flag, values in choices.items():
            for value in values:
                argv = [*COMMANDS[cmd], flag, value]
                pattern = rf"{cmd}: argument {flag}: invalid choice: '{value}' \(choose from "
                cases.append(pytest.param(argv, pattern, id=f"flag/{cmd} {flag} {value!r}"))
        missing_value = [*COMMANDS[cmd], "--epochs"]
        cases.append(
            pytest.param(
                missing_value,
                rf"{cmd}: argument --epochs: expected one argument \(see `graphtag {cmd} --help`\)",
                id=f"flag/{cmd} --epochs without value",
            )
        )
        cases.append(
            pytest.param(
                [*COMMANDS[cmd], "--out", "o", "--bogus"],
                r"unrecognized arguments: --bogus",
                id=f"flag/{cmd} unknown flag",
            )
        )
        cases.append(
            pytest.param(
                COMMANDS[cmd],
                rf"{cmd}: the following arguments are required: --out",
                id=f"flag/{cmd} without --out",
            )
        )
    for value in BAD_NUM_GROUPS:
        pattern = r"run: argument --num-groups: expected a positive integer or 'auto'"
        cases.append(
            pytest.param(
                [*COMMANDS["run"], "--num-groups", value],
                pattern,
                id=f"flag/--num-groups {value!r}",
            )
        )
    for command in ("run", "check-estimator"):
        for value in BAD_MAX_TASK_ROWS:
            pattern = (
                rf"{command}: argument --max-task-rows: expected a positive integer or 'all', "
                rf"got '{value}'"
            )
            cases.append(
                pytest.param(
                    [*COMMANDS[command], "--max-task-rows", value],
                    pattern,
                    id=f"flag/{command} --max-task-rows {value!r}",
                )
            )
    for value in ["-1", "two", "1.5", ""]:
        pattern = rf"run: argument --confirm: expected an integer >= 0, got '{value}'"
        cases.append(
            pytest.param(
                [*COMMANDS["run"], "--confirm", value], pattern, id=f"flag/--confirm {value!r}"
            )
        )
    for command in COMMANDS:
        for flag, (values, expected) in RECIPE_NUMBERS.items():
            for value in values:
                pattern = rf"{command}: argument {flag}: expected {expected}, got '{value}'"
                cases.append(
                    pytest.param(
                        [*COMMANDS[command], flag, value],
                        pattern,
                        id=f"flag/{command} {flag} {value!r}",
                    )
                )
    for value in ["1", "-0.1", "half", "", "nan", "inf"]:
        pattern = rf"run: argument --holdout: expected a number in \[0, 1\), got '{value}'"
        cases.append(
            pytest.param(
                [*COMMANDS["run"], "--holdout", value], pattern, id=f"flag/--holdout {value!r}"
            )
        )
    for value in BAD_MAX_GROUPS:
        pattern = rf"run: argument --max-groups: expected an integer >= 2, got '{value}'"
        cases.append(
            pytest.param(
                [*COMMANDS["run"], "--max-groups", value],
                pattern,
                id=f"flag/--max-groups {value!r}",
            )
        )
    cases += [
        pytest.param([], r"the following arguments are required: COMMAND", id="flag/no command"),
        pytest.param(["bogus"], r"invalid choice: 'bogus'", id="flag/unknown command"),
        pytest.param(["datasets", "extra"], r"unrecognized arguments: extra", id="flag/datasets"),
        pytest.param(
            [*COMMANDS["train"], "--executor", "ray"],
            r"unrecognized arguments: --executor ray",
            id="flag/train has no executor",
        ),
        pytest.param(
            ["check-estimator", "--dataset", SYN, "--out", "o"],
            r"check-estimator: the following arguments are required: --num-subsets",
            id="flag/check-estimator without --num-subsets",
        ),
        pytest.param(
            ["train", "--dataset"], r"argument --dataset: expected one argument", id="flag/dataset"
        ),
    ]
    return cases


@pytest.mark.parametrize(("argv", "pattern"), _parse_cases())
def test_cli_flag_parse_errors(tmp_path, capsys, argv, pattern):
    argv = [str(tmp_path / "out") if a == "o" else a for a in argv]
    needs_out = "the following arguments are required: --out" not in pattern
    if needs_out and "--out" not in argv and argv and argv[0] in COMMANDS:
        argv = [*argv, "--out", str(tmp_path / "out")]
    status, err = _cli(argv, capsys)
    _assert_one_error(status, err, pattern)
    assert not (tmp_path / "out").exists()  # nothing was started


def _value_cases() -> list:
    """Cases that parse but are refused before any data is loaded or model trained."""
    cases = []
    for cmd in COMMANDS:
        for value, pattern in BAD_DEVICES:
            cases.append(
                pytest.param(cmd, ["--device", value], pattern, id=f"flag/{cmd} --device {value!r}")
            )
        if cmd != "train":  # train runs no jobs: it has no executor flags
            cases.append(
                pytest.param(
                    cmd,
                    ["--ray-address", "auto"],
                    r"--ray-address auto is only used with --executor ray; add --executor ray or",
                    id=f"flag/{cmd} --ray-address without --executor ray",
                )
            )
        cases += [
            pytest.param(cmd, ["--dataset", "nope"], r"unknown dataset 'nope'", id=f"flag/{cmd} d"),
            pytest.param(cmd, ["--out", ""], r"--out is empty; give an", id=f"flag/{cmd} --out ''"),
            pytest.param(
                cmd,
                ["--out", "{file}"],
                r"--out .*a-file: exists and is not a directory; choose a directory path",
                id=f"flag/{cmd} --out is a file",
            ),
            pytest.param(
                cmd,
                ["--out", "{file}/sub"],
                r"--out .*a-file/sub: cannot create the output directory \(Not a directory\)",
                id=f"flag/{cmd} --out under a file",
            ),
            pytest.param(
                cmd,
                ["--out", "x" * 300],
                r"--out x+: cannot create the output directory \(File name too long\)",
                id=f"flag/{cmd} --out name too long",
            ),
        ]
    for value, pattern in [
        ("9", r"--tasks \[9\] out of range: the dataset has 4 tasks \(0\.\.3\)"),
        ("-1", r"--tasks \[-1\] out of range"),
        ("a,b", r"--tasks: 'a' is not a task index; use 'all' or e\.g\. 0,3,7"),
        ("1.0", r"--tasks: '1\.0' is not a task index"),
        (",", r"--tasks is empty; use 'all' or e\.g\. 0,3,7"),
        ("0,0", r"--tasks lists a task twice: 0,0"),
    ]:
        cases.append(pytest.param("train", ["--tasks", value], pattern, id=f"flag/--tasks {value}"))
    cases.append(
        pytest.param(
            "check-estimator",
            ["--subset-size", "9"],
            r"--subset-size 9 is larger than the number of tasks \(4\)",
            id="subset>T/check-estimator --subset-size 9",
        )
    )
    return cases


@pytest.mark.parametrize(("cmd", "extra", "pattern"), _value_cases())
def test_cli_flag_value_errors(tmp_path, capsys, cmd, extra, pattern):
    (tmp_path / "a-file").write_text("x")
    out = str(tmp_path / "out")
    extra = [e.replace("{file}", str(tmp_path / "a-file")) for e in extra]
    if "--out" in extra:
        out = extra[extra.index("--out") + 1]
    argv = [*COMMANDS[cmd], *FAST, "--out", out, *extra]
    status, err = _cli(argv, capsys)
    _assert_one_error(status, err, pattern)
    assert not (tmp_path / "out" / "base_model.pt").exists()  # refused before training


def test_run_num_groups_larger_than_tasks_is_one_error(tmp_path, capsys):
    """k>T: a clean error."""
    out = tmp_path / "out"
    argv = ["run", "--dataset", SYN, "--out", str(out), *RUN_FAST, "--num-groups", "9"]
    status, err = _cli(argv, capsys)
    _assert_one_error(status, err, r"--num-groups 9 is larger than the number of tasks \(4\)")


def test_run_num_groups_larger_than_tasks_fails_before_training(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--dataset", SYN, "--out", str(out), *RUN_FAST, "--num-groups", "9"]
    status, err = _cli(argv, capsys)
    _assert_one_error(status, err, r"--num-groups 9 is larger than the number of tasks \(4\)")
    assert not (out / "base_model.pt").exists()


def test_run_subset_size_larger_than_tasks_is_a_documented_warning(tmp_path, capsys):
    """subset>T: `run` caps the subset size (documented in EstimatorConfig); the report must
    say so rather than silently use another size."""
    out = tmp_path / "out"
    argv = ["run", "--dataset", SYN, "--out", str(out), *RUN_FAST, "--subset-size", "9"]
    argv += ["--num-groups", "2", "--grouping", "spectral"]
    status, err = _cli(argv, capsys)
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    assert all(len(s) == 2 for s in json.loads((out / "subsets.json").read_text()))
    assert any(re.search(r"--subset-size 9 capped to 2", w) for w in report["warnings"]), report


def test_out_of_memory_is_one_error(tmp_path, capsys, monkeypatch):
    """out-of-memory: an allocation failure (torch's CPU message) is one line, exit status 2."""
    from graphtag.cli._commands import COMMANDS as RUNNERS

    def oom(args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 800000000000 bytes. Error code 12 (Cannot allocate "
            "memory)"
        )

    monkeypatch.setitem(RUNNERS, "train", oom)
    status, err = _cli(["train", "--dataset", SYN, "--out", str(tmp_path / "o"), *FAST], capsys)
    _assert_one_error(status, err, r"out of memory \(tried to allocate 745\.1 GiB\); the job is")

    def numpy_oom(args):
        raise MemoryError("Unable to allocate 2.00 TiB for an array with shape (1, 2)")

    monkeypatch.setitem(RUNNERS, "train", numpy_oom)
    status, err = _cli(["train", "--dataset", SYN, "--out", str(tmp_path / "o"), *FAST], capsys)
    _assert_one_error(status, err, r"out of memory \(Unable to allocate 2\.00 TiB")

    def bug(args):
        raise RuntimeError("a bug, not a user mistake")

    monkeypatch.setitem(RUNNERS, "train", bug)
    with pytest.raises(RuntimeError, match="a bug"):  # other errors keep their traceback
        main(["train", "--dataset", SYN, "--out", str(tmp_path / "o"), *FAST])


def _overcommit_heuristic() -> bool:
    try:
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() in ("0", "2")
    except OSError:
        return False


@pytest.mark.skipif(not _overcommit_heuristic(), reason="a huge allocation might succeed lazily")
def test_real_out_of_memory_is_one_error(tmp_path, capsys):
    """out-of-memory: a hidden layer of 2**31 - 1 units (512 GiB of weights) is refused."""
    argv = ["train", "--dataset", SYN, "--out", str(tmp_path / "o"), "--quiet", "--device", "cpu"]
    argv += ["--max-memory", "off"]  # past graphtag's own estimate: torch's allocation fails
    status, err = _cli([*argv, "--hidden-channels", str(2**31 - 1)], capsys)
    _assert_one_error(status, err, r"out of memory \(tried to allocate \d+\.\d GiB\)")


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
@pytest.mark.parametrize("value", ["lots", "0", "-1G", "", "12X"])
def test_max_memory_garbage_is_one_error(tmp_path, capsys, cmd, value):
    out = tmp_path / "o"
    status, err = _cli([*COMMANDS[cmd], "--out", str(out), "--max-memory", value], capsys)
    _assert_one_error(status, err, r"--max-memory")
    assert not out.exists() or not any(out.iterdir())  # refused before any work


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_max_memory_too_small_stops_before_the_first_stage(tmp_path, capsys, cmd):
    out = tmp_path / "o"
    status, err = _cli([*COMMANDS[cmd], "--out", str(out), "--max-memory", "1M"], capsys)
    _assert_one_error(status, err, r"not enough memory")
    assert "--max-memory" in err[0] and "budget" in err[0]
    assert not (out / "base_model.pt").exists()


# ============================================================================================
# Corrupt cache and run-directory files: never unpickled, recomputed with a warning
# ============================================================================================


class _Exploit:
    """Unpickling this object creates ``marker``: proof that a loader unpickled untrusted bytes."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _marker(path: Path) -> Path:
    return path.parent / f"{path.name}.unpickled"


def _pickle_npz(path: Path) -> None:
    """Replace ``path`` with an ``.npz`` whose array unpickles to a file-creating call."""
    with open(path, "wb") as fh:
        np.savez(fh, edge_index=np.array([_Exploit(_marker(path))], dtype=object))


def test_the_pickle_exploit_is_live(tmp_path):
    """The cache tests below can fail: loading the crafted file with pickle allowed runs it."""
    path = tmp_path / "x.npz"
    _pickle_npz(path)
    with np.load(path, allow_pickle=True) as npz:
        npz["edge_index"]
    assert _marker(path).exists()


def _snap_files(tmp_path: Path) -> tuple[Path, Path]:
    return _put(tmp_path / "e.txt", E_OK), _put(tmp_path / "c.txt", C_OK)


@pytest.mark.parametrize(
    ("corrupt", "warning"),
    [
        pytest.param(lambda f: f.write_bytes(b"garbage"), r"ignoring unreadable cache", id="junk"),
        pytest.param(lambda f: f.write_bytes(b""), r"ignoring unreadable cache", id="0-bytes"),
        pytest.param(
            lambda f: f.write_bytes(f.read_bytes()[:100]), r"ignoring unreadable", id="truncated"
        ),
        pytest.param(lambda f: np.savez(f, x=np.zeros(2)), r"ignoring unreadable", id="keys"),
        pytest.param(
            lambda f: np.savez(f, **{k: np.zeros(3) for k in np.load(f).files}),
            r"ignoring inconsistent cache file",
            id="inconsistent",
        ),
        pytest.param(_pickle_npz, r"ignoring unreadable cache .*allow_pickle=False", id="pickle"),
    ],
)
def test_corrupt_snap_cache_is_recomputed_never_unpickled(tmp_path, monkeypatch, corrupt, warning):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "cache"))
    e, c = _snap_files(tmp_path)
    good = load_snap(e, c, num_tasks=None, name="toy", cache=True)
    (entry,) = (tmp_path / "cache" / "snap").glob("*.npz")
    corrupt(entry)
    with pytest.warns(UserWarning, match=warning):
        again = load_snap(e, c, num_tasks=None, name="toy", cache=True)
    assert not _marker(entry).exists()
    for key in ("edge_index", "y", "x", "train_mask"):
        assert torch.equal(getattr(good, key), getattr(again, key)), key
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry was rewritten: no warning the third time
        load_snap(e, c, num_tasks=None, name="toy", cache=True)


def test_corrupt_ogb_cache_is_recomputed_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path / "cache"))
    spec = f"ogbn-proteins:root={_ogb_root(tmp_path)}"
    good = load_dataset(spec)
    (entry,) = (tmp_path / "cache" / "ogbn-proteins").glob("*.npz")
    _pickle_npz(entry)
    with pytest.warns(UserWarning, match=r"ignoring unreadable cache file"):
        again = load_dataset(spec)
    assert not _marker(entry).exists()
    assert torch.equal(good.x, again.x) and torch.equal(good.train_mask, again.train_mask)


def test_pickled_checkpoint_is_refused_not_executed(tmp_path):
    path = tmp_path / "base_model.pt"
    marker = _marker(path)
    torch.save({"weight": torch.zeros(2), "evil": _Exploit(marker)}, path)
    with pytest.raises(GraphtagError, match=r"base_model\.pt: corrupt checkpoint"):
        load_state_dict(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(GraphtagError, match=r"corrupt checkpoint"):
        load_state_dict(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the exploit itself works: the checks above can fail
    assert marker.exists()


@pytest.mark.parametrize(
    "target", ["base_model.pt", "base.manifest.json", "base.json", "report.json"]
)
def test_corrupt_run_directory_file_is_recomputed(tmp_path, capsys, target):
    """corrupt-cache: a damaged file of a finished stage is never trusted: the stage reruns and
    the results are identical."""
    out = tmp_path / "out"
    argv = ["train", "--dataset", SYN, "--out", str(out), *FAST]
    assert _cli(argv, capsys)[0] == 0
    before = json.loads((out / "report.json").read_text())
    (out / target).write_bytes(b"\x80garbage{")
    status, err = _cli(argv, capsys)
    assert status == 0 and err == []
    after = json.loads((out / "report.json").read_text())
    assert after["metrics"] == before["metrics"]
    assert ("base" in after["reused_stages"]) == (target == "report.json")


# ============================================================================================
# Fuzz: random garbage for the whitespace tokenizer and the SNAP loader
# ============================================================================================

_TOKENS = st.sampled_from(
    ["0", "1", "2", "7", "42", "00", str(2**63 - 1), str(2**63), "-1", "1.5", "a", ",", "#",
     "\x00", "\xff", "\xef\xbb\xbf", "\x1f\x8b", " ", "\t", "\r", "\x0b", "\x0c", "1e3"]
)  # fmt: skip
_LINES = st.lists(st.lists(_TOKENS, max_size=5).map(lambda ts: " ".join(ts)), max_size=12).map(
    lambda lines: "\n".join(lines)
)
_CONTENT = st.one_of(
    _LINES.map(lambda s: s.encode("latin-1")),
    st.binary(max_size=120),
    _LINES.map(lambda s: gzip.compress(s.encode("latin-1"), mtime=0)),
    st.tuples(_LINES, st.integers(0, 40)).map(
        lambda t: gzip.compress(t[0].encode("latin-1"), mtime=0)[: t[1]]
    ),
)


def _reference_tokens(raw: bytes, fields: int | None) -> tuple[list[int], int | None]:
    """Python reference of read_int_tokens: (values, first bad 1-based line or None)."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    values: list[int] = []
    for lineno, line in enumerate(lines, 1):
        if line.startswith(b"#"):
            continue
        tokens = line.split()
        for tok in tokens:
            if not (tok.isdigit() and int(tok) < 2**63):
                return values, lineno
            values.append(int(tok))
        if fields is not None and len(tokens) not in (0, fields):
            return values, lineno
    return values, None


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=_CONTENT, fields=st.sampled_from([None, 2]), chunk=st.sampled_from([5, 64, 1 << 20]))
def test_fuzz_tokenizer_parses_exactly_or_names_the_first_bad_line(tmp_path, raw, fields, chunk):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(raw)
    try:
        ref = _reference_tokens(raw, fields)
    except Exception:  # not decompressible (truncated or corrupt gzip)
        ref = None
    try:
        values, _ = read_int_tokens(path, fields=fields, what="edge list", chunk_bytes=chunk)
    except DataFormatError as exc:
        assert ref is None or ref[1] is not None, (raw, str(exc))
        if ref is not None:
            assert exc.line == ref[1], (raw, str(exc))
        return
    assert ref is not None and ref[1] is None, raw
    assert values.tolist() == ref[0]


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edges=_CONTENT, cmty=_CONTENT, num_tasks=st.sampled_from([None, 1, 3]))
def test_fuzz_snap_loader_gives_a_valid_graph_or_a_data_format_error(
    tmp_path, edges, cmty, num_tasks
):
    e = tmp_path / "e.txt"
    c = tmp_path / "c.txt"
    e.write_bytes(edges)
    c.write_bytes(cmty)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # documented warnings
            data = load_snap(e, c, num_tasks=num_tasks, name="fuzz")
    except DataFormatError as exc:
        assert "\n" not in str(exc)
        return
    check_multilabel_graph(data)
    assert data.y.size(1) >= 1 and bool((data.y.sum(0) >= 1).all())
    assert torch.isfinite(data.x).all()
