import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from graphtag.artifacts import (
    StageStore,
    atomic_write,
    file_sha256,
    hash_object,
    load_json,
    load_npz,
    load_state_dict,
    save_json,
    save_npz,
    save_state_dict,
)
from graphtag.errors import GraphtagError


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path, "w") as fh:
        fh.write("new")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left


def test_fault_hook_mid_write_keeps_previous_version(tmp_path):
    path = tmp_path / "x.json"
    save_json(path, {"v": 1})
    code = (
        f"from graphtag.artifacts import save_json; import sys;save_json({str(path)!r}, {{'v': 2}})"
    )
    env = dict(os.environ, GRAPHTAG_FAULT="write:x.json")
    proc = subprocess.run([sys.executable, "-c", code], env=env)
    # a real SIGKILL on POSIX (negative signal number), else os._exit(137)
    assert proc.returncode == (-signal.SIGKILL if hasattr(signal, "SIGKILL") else 137)
    assert load_json(path) == {"v": 1}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "x.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".x.json.")  # the unrenamed temp file
    if os.name == "posix":  # its writer is dead: the next store over the folder removes it
        StageStore(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_hash_object_is_order_independent():
    assert hash_object({"a": 1, "b": [1, 2]}) == hash_object({"b": [1, 2], "a": 1})
    assert hash_object({"a": 1}) != hash_object({"a": 2})


def test_npz_roundtrip_and_corrupt_file(tmp_path):
    save_npz(tmp_path / "t.npz", {"x": torch.arange(6).reshape(2, 3), "y": np.ones(2)})
    out = load_npz(tmp_path / "t.npz")
    assert out["x"].tolist() == [[0, 1, 2], [3, 4, 5]]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(GraphtagError, match="corrupt"):
        load_npz(tmp_path / "bad.npz")


def test_state_dict_roundtrip_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_state_dict(tmp_path / "m.pt", model.state_dict())
    sd = load_state_dict(tmp_path / "m.pt")
    assert torch.equal(sd["weight"], model.weight.detach())
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(GraphtagError, match="corrupt checkpoint"):
        load_state_dict(tmp_path / "bad.pt")


def test_stage_store_reuse_and_invalidation(tmp_path):
    store = StageStore(tmp_path)
    key = {"cfg": 1}
    calls = []

    def compute():
        calls.append(1)
        save_json(tmp_path / "o.json", {"n": len(calls)})

    assert store.cached("s", key, ["o.json"], compute) is False
    assert store.cached("s", key, ["o.json"], compute) is True
    assert len(calls) == 1
    # changed key -> recompute
    assert store.cached("s", {"cfg": 2}, ["o.json"], compute) is False
    assert len(calls) == 2
    # tampered output -> recompute
    (tmp_path / "o.json").write_text("{}")
    assert store.is_done("s", {"cfg": 2}) is False
    assert any("modified" in n for n in store.notes)
    # corrupt manifest -> not done
    store.manifest_path("s").write_text("{")
    assert store.is_done("s", {"cfg": 2}) is False
    man = json.loads(json.dumps({"ok": 1}))
    assert man == {"ok": 1}


def test_file_sha256(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
