"""The executor contract on the local back-end: order, checkpoints, reuse, failures, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from graphtag._utils import derive_seed
from graphtag.errors import GraphtagError
from graphtag.executor import (
    Job,
    JobsFailedError,
    checkpoint_path,
    load_checkpoint,
    run_jobs,
)

REPO = Path(__file__).resolve().parents[3]


def seeded_fn(ctx: dict, job: Job) -> dict:
    """A job whose result depends on the context, the key and the key-derived seed only."""
    rng = np.random.default_rng(job.seed(ctx["seed"]))
    return {"x": job.key["x"], "draw": rng.standard_normal(3).tolist(), "scale": ctx["scale"]}


class Counter:
    """Job function wrapper counting calls per job key."""

    def __init__(self, fn, fail: dict[int, int] | None = None, exc=RuntimeError) -> None:
        self.fn, self.calls, self.fail, self.exc = fn, [], dict(fail or {}), exc

    def __call__(self, ctx, job):
        x = job.key["x"]
        self.calls.append(x)
        if self.fail.get(x, 0) > 0:
            self.fail[x] -= 1
            raise self.exc(f"planted failure of job {x}")
        return self.fn(ctx, job)


CTX = {"seed": 7, "scale": 2.5}


def make_jobs(xs) -> list[Job]:
    return [Job({"kind": "toy", "x": x}) for x in xs]


def test_job_key_is_normalised_and_names_the_checkpoint(tmp_path: Path) -> None:
    a = Job({"subset": (2, 0), "seed": 1, "nested": {"b": 1, "a": (1.5,)}})
    b = Job({"nested": {"a": [1.5], "b": 1}, "seed": 1, "subset": [2, 0]})
    assert a == b and a.name == b.name and hash(a) == hash(b)
    assert a.key == {"nested": {"a": [1.5], "b": 1}, "seed": 1, "subset": [2, 0]}
    assert a != Job({"subset": [0, 2], "seed": 1, "nested": {"a": [1.5], "b": 1}})
    assert checkpoint_path(tmp_path, a) == tmp_path / f"{a.name}.json"
    assert a.seed(0) == derive_seed(0, "job", a.name) != a.seed(1)
    with pytest.raises(GraphtagError, match="JSON-serialisable"):
        Job({"bad": object()})
    with pytest.raises(GraphtagError, match="must be a mapping"):
        Job([1, 2])  # type: ignore[arg-type]


def test_results_in_job_order_and_checkpointed(tmp_path: Path) -> None:
    jobs = make_jobs([5, 1, 4, 2])
    out = run_jobs(jobs, seeded_fn, CTX, checkpoint_dir=tmp_path)
    assert [r["x"] for r in out] == [5, 1, 4, 2]
    expected = [np.random.default_rng(j.seed(7)).standard_normal(3).tolist() for j in jobs]
    assert [r["draw"] for r in out] == expected
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"{j.name}.json" for j in jobs)
    rec = json.loads(checkpoint_path(tmp_path, jobs[2]).read_text())
    assert rec["key"] == jobs[2].key and rec["result"] == out[2] and rec["seconds"] >= 0


def test_result_does_not_depend_on_order_or_on_other_jobs() -> None:
    full = run_jobs(make_jobs(range(6)), seeded_fn, CTX)
    part = run_jobs(make_jobs([4, 1]), seeded_fn, CTX)
    assert part == [full[4], full[1]]


def test_results_are_json_normalised(tmp_path: Path) -> None:
    def fn(ctx, job):
        return {"t": (1, 2), "f": float("nan"), "i": np.int64(3), "a": np.array([0.1, 1e-300])}

    fresh = run_jobs(make_jobs([0]), fn, None, checkpoint_dir=tmp_path)[0]
    reused = run_jobs(make_jobs([0]), fn, None, checkpoint_dir=tmp_path)[0]
    for r in (fresh, reused):
        assert r["t"] == [1, 2] and r["i"] == 3 and r["a"] == [0.1, 1e-300]
        assert np.isnan(r["f"])
    with pytest.raises(GraphtagError, match="job result must be JSON-serialisable"):
        run_jobs(make_jobs([1]), lambda c, j: {"x": object()}, None)


def test_finished_jobs_are_reused_and_bad_checkpoints_recomputed(tmp_path: Path) -> None:
    jobs = make_jobs(range(5))
    first = run_jobs(jobs, seeded_fn, CTX, checkpoint_dir=tmp_path)
    counter = Counter(seeded_fn)
    assert run_jobs(jobs, counter, CTX, checkpoint_dir=tmp_path) == first
    assert counter.calls == []
    # A truncated file (crash mid-write outside the atomic path), a file holding another key,
    # and a missing file are recomputed; the others are reused.
    p1 = checkpoint_path(tmp_path, jobs[1])
    p1.write_text(p1.read_text()[:20])
    p3 = checkpoint_path(tmp_path, jobs[3])
    rec = json.loads(p3.read_text())
    rec["key"]["x"] = 99
    p3.write_text(json.dumps(rec))
    checkpoint_path(tmp_path, jobs[4]).unlink()
    assert load_checkpoint(tmp_path, jobs[1]) == (False, None)
    assert load_checkpoint(tmp_path, jobs[3]) == (False, None)
    assert run_jobs(jobs, counter, CTX, checkpoint_dir=tmp_path) == first
    assert sorted(counter.calls) == [1, 3, 4]


def test_duplicate_keys_run_once() -> None:
    counter = Counter(seeded_fn)
    out = run_jobs(make_jobs([3, 1, 3, 3]), counter, CTX)
    assert counter.calls == [3, 1]
    assert out[0] == out[2] == out[3] != out[1]


def test_transient_error_is_retried() -> None:
    counter = Counter(seeded_fn, fail={2: 2})
    out = run_jobs(make_jobs(range(4)), counter, CTX, max_retries=2)
    assert out == run_jobs(make_jobs(range(4)), seeded_fn, CTX)
    assert sorted(counter.calls) == [0, 1, 2, 2, 2, 3]


def test_failed_job_is_reported_without_losing_the_others(tmp_path: Path) -> None:
    jobs = make_jobs(range(5))
    counter = Counter(seeded_fn, fail={1: 10, 3: 10})
    with pytest.raises(JobsFailedError) as info:
        run_jobs(jobs, counter, CTX, checkpoint_dir=tmp_path, max_retries=1)
    err = info.value
    assert str(err).startswith("2 of 5 jobs run failed (3 of 5 results finished and checkpointed")
    assert 'first failure, job {"kind":"toy","x":1} after 2 attempt(s): ' in str(err)
    assert "RuntimeError: planted failure of job 1" in str(err)
    assert [f.index for f in err.failures] == [1, 3]
    assert "planted failure of job 3" in err.failures[1].traceback
    assert isinstance(err.__cause__, RuntimeError)
    full = run_jobs(jobs, seeded_fn, CTX)
    assert err.results == [full[0], None, full[2], None, full[4]]
    assert sorted(counter.calls) == [0, 1, 1, 2, 3, 3, 4]
    # Resume after fixing the cause: only the failed jobs run.
    counter = Counter(seeded_fn)
    assert run_jobs(jobs, counter, CTX, checkpoint_dir=tmp_path) == full
    assert sorted(counter.calls) == [1, 3]


def test_graphtag_errors_are_not_retried() -> None:
    counter = Counter(seeded_fn, fail={0: 5}, exc=GraphtagError)
    with pytest.raises(JobsFailedError, match="after 1 attempt\\(s\\): GraphtagError: planted"):
        run_jobs(make_jobs([0, 1]), counter, CTX, max_retries=3)
    assert counter.calls == [0, 1]


def test_bad_options_raise() -> None:
    jobs = make_jobs([0])
    with pytest.raises(GraphtagError, match="unknown executor 'dask'; use one of local, ray"):
        run_jobs(jobs, seeded_fn, CTX, executor="dask")
    with pytest.raises(GraphtagError, match="num_gpus_per_job is a Ray resource"):
        run_jobs(jobs, seeded_fn, CTX, num_gpus_per_job=1)
    with pytest.raises(GraphtagError, match="max_retries must be an integer >= 0"):
        run_jobs(jobs, seeded_fn, CTX, max_retries=-1)
    with pytest.raises(GraphtagError, match="jobs\\[1\\] is a dict, not a graphtag Job"):
        run_jobs([jobs[0], {"x": 1}], seeded_fn, CTX)  # type: ignore[list-item]


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(GraphtagError, match=r"pip install 'graphtag\[ray\]'"):
        run_jobs(make_jobs([0]), seeded_fn, CTX, executor="ray")
    # Nothing to run: Ray is never needed.
    assert run_jobs([], seeded_fn, CTX, executor="ray") == []


SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from graphtag.executor import Job, run_jobs

    def fn(ctx, job):
        with open(ctx["log"], "a") as fh:
            fh.write(f"{job.key['x']}\\n")
        if str(job.key["x"]) == os.environ.get("KILL_AT"):
            os._exit(137)
        rng = np.random.default_rng(job.seed(3))
        return {"x": job.key["x"], "v": rng.random(2).tolist()}

    ctx = {"log": sys.argv[2]}
    out = run_jobs([Job({"x": x}) for x in range(6)], fn, ctx, checkpoint_dir=sys.argv[1])
    print(json.dumps(out))
    """
)


def test_local_run_resumes_after_a_killed_process(tmp_path: Path) -> None:
    script = tmp_path / "job_script.py"
    script.write_text(SCRIPT)
    log, ckpt = tmp_path / "calls.log", tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def run(kill_at: int | None, folder: Path) -> subprocess.CompletedProcess:
        e = dict(env)
        if kill_at is not None:
            e["KILL_AT"] = str(kill_at)
        args = [sys.executable, str(script), str(folder), str(log)]
        return subprocess.run(args, env=e, capture_output=True, text=True, timeout=300)

    killed = run(3, ckpt)
    assert killed.returncode == 137, killed.stderr
    assert log.read_text().split() == ["0", "1", "2", "3"]
    assert len(list(ckpt.glob("*.json"))) == 3  # jobs 0..2 finished; job 3 died in flight
    log.unlink()
    resumed = run(None, ckpt)
    assert resumed.returncode == 0, resumed.stderr
    assert log.read_text().split() == ["3", "4", "5"]  # finished jobs were reused
    expected = [
        {"v": np.random.default_rng(Job({"x": x}).seed(3)).random(2).tolist(), "x": x}
        for x in range(6)
    ]
    assert json.loads(resumed.stdout) == expected
