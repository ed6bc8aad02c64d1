"""The test-only fault hook (``GRAPHTAG_FAULT``) and the clean-up of interrupted writes.

The hook's kill is replaced by an exception here (in-process, fast); the real ``SIGKILL`` is
checked in ``test_artifacts.py`` and ``tests/integration/test_kill_resume.py``.
"""

import os
import subprocess
import sys

import pytest

from graphtag import artifacts
from graphtag.artifacts import (
    StageStore,
    load_json,
    remove_stale_temp_files,
    save_json,
    save_npy,
)
from graphtag.errors import GraphtagError
from graphtag.executor import Job, run_jobs


class Killed(BaseException):
    """Stands for the SIGKILL (a BaseException, like a real kill it is not caught as Exception)."""


@pytest.fixture
def fault(monkeypatch):
    """``fault(spec)`` sets GRAPHTAG_FAULT; the kill raises ``Killed`` carrying the point."""
    monkeypatch.setattr(artifacts, "_FAULT_HITS", {})

    def kill():
        raise Killed

    monkeypatch.setattr(artifacts, "_kill_self", kill)

    def set_fault(spec):
        monkeypatch.setattr(artifacts, "_FAULT_HITS", {})
        monkeypatch.setenv("GRAPHTAG_FAULT", spec)

    return set_fault


def _write_all(folder, names):
    """Write every name in order; return the names written before the kill (all if none)."""
    written = []
    try:
        for name in names:
            save_json(folder / name, {"name": name})
            written.append(name)
    except Killed:
        pass
    return written


NAMES = ["a.json", "models/m1.json", "b.json", "models/m2.json", "models/m3.json"]


@pytest.mark.parametrize(
    ("spec", "survivors"),
    [
        ("write:b.json", 2),  # exact file name, first occurrence
        ("write:*.json", 0),
        ("write:*.json@3", 2),  # the third write of any json
        ("write:models/*.json@2", 3),  # folder form: the second file in models/
        ("write:m3.json", 4),
        ("write:models/m1.json@2", 5),  # occurs once: never fires
        ("write:c.json", 5),
        ("after:*", 5),  # not a write point
    ],
)
def test_write_points_count_and_patterns(tmp_path, fault, spec, survivors):
    fault(spec)
    assert _write_all(tmp_path, NAMES) == NAMES[:survivors]
    # the killed write never replaced its target (here: never created it)
    for name in NAMES[survivors:]:
        assert not (tmp_path / name).exists()


def test_killed_write_keeps_previous_content(tmp_path, fault):
    save_npy(tmp_path / "x.npy", [1.0, 2.0])
    fault("write:x.npy")
    with pytest.raises(Killed):
        save_npy(tmp_path / "x.npy", [3.0])
    import numpy as np

    assert np.load(tmp_path / "x.npy").tolist() == [1.0, 2.0]


def test_after_stage_point_fires_after_the_manifest(tmp_path, fault):
    store = StageStore(tmp_path)
    save_json(tmp_path / "o.json", {"v": 1})
    fault("after:base")
    store.mark_done("other", {"k": 1}, ["o.json"])  # another stage: no kill
    with pytest.raises(Killed):
        store.mark_done("base", {"k": 1}, ["o.json"])
    assert StageStore(tmp_path).is_done("base", {"k": 1})  # the manifest was complete


def test_job_point_counts_finished_jobs_of_the_process(tmp_path, fault):
    from graphtag.executor import _base

    jobs = [Job({"x": x}) for x in range(5)]
    fault(f"job:{_base._JOBS_FINISHED[0] + 3}")
    with pytest.raises(Killed):
        run_jobs(jobs, lambda ctx, job: job.key["x"] * 10, checkpoint_dir=tmp_path)
    # killed right after the third checkpoint: exactly three are on disk
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert names == sorted(f"{j.name}.json" for j in jobs[:3])
    calls = []

    def fn(ctx, job):
        calls.append(job.key["x"])
        return job.key["x"] * 10

    assert run_jobs(jobs, fn, checkpoint_dir=tmp_path) == [0, 10, 20, 30, 40]
    assert calls == [3, 4]  # the resumed run computes only the unfinished jobs


def test_job_point_with_pattern_and_count(tmp_path, fault):
    fault("job:*@2")
    jobs = [Job({"x": x}) for x in range(4)]
    with pytest.raises(Killed):
        run_jobs(jobs, lambda ctx, job: 0, checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2


@pytest.mark.parametrize("spec", ["job:3@0", "job:3@x", "@2", "write:a.json@-1"])
def test_malformed_spec_is_an_error(tmp_path, fault, spec):
    fault(spec)
    with pytest.raises(GraphtagError, match=r"GRAPHTAG_FAULT=.*expected <point>\[@<n>\]"):
        save_json(tmp_path / "a.json", {})


def test_unset_or_empty_hook_never_fires(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHTAG_FAULT", "")
    save_json(tmp_path / "a.json", {"v": 1})
    monkeypatch.delenv("GRAPHTAG_FAULT")
    save_json(tmp_path / "a.json", {"v": 2})
    assert load_json(tmp_path / "a.json") == {"v": 2}


@pytest.mark.skipif(os.name != "posix", reason="liveness of a pid is probed on POSIX only")
def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    (tmp_path / "models").mkdir()
    stale = [
        tmp_path / f".affinity.npy.{dead_pid}.ab_c12x9.tmp",
        tmp_path / "models" / f".0123abcd.npz.{dead_pid}.zzzzzzzz.tmp",
    ]
    kept = [
        tmp_path / f".affinity.npy.{os.getpid()}.abcdefgh.tmp",  # a live writer (this process)
        tmp_path / f".notes.{dead_pid}.tmp",  # not an atomic_write name
        tmp_path / f"affinity.npy.{dead_pid}.abcdefgh.tmp",  # not hidden
        tmp_path / "affinity.npy",
    ]
    for p in stale + kept:
        p.write_text("partial")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert remove_stale_temp_files(tmp_path / "missing") == []
