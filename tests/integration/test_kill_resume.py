"""Kill `graphtag run` with SIGKILL at many points, resume in the same folder, get the same result.

Each kill point is a ``GRAPHTAG_FAULT`` spec (see :mod:`graphtag.artifacts`): in the middle of an
atomic write (temporary file written, not yet renamed), right after a stage's manifest, after the
n-th grouped model, after the n-th real fine-tune job. After the kill we check that

- the process died of SIGKILL and left no process of its process group behind;
- nothing visible in the run folder is partial (every file parses, every manifest's outputs have
  their recorded hashes) and a mid-write kill left only its hidden temporary file;

then rerun without the fault in the same folder and check that

- the temporary files are gone (never read) and everything finished before the kill (outputs of
  complete stages, model logits, job checkpoints) was reused, not rewritten;
- ``report.json``'s ``groups`` and ``metrics`` and ``affinity.npy`` equal an uninterrupted run's.

Speed: importing torch/PyG dominates a tiny run, so the runs are forked from one driver process
that imported graphtag once (a real, separate process per run, killed by a real SIGKILL). The
uninterrupted reference runs go through ``python -m graphtag`` itself.
"""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graphtag.artifacts import file_sha256, load_npz, load_state_dict

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or not hasattr(signal, "SIGKILL"), reason="needs POSIX fork/SIGKILL"
)

REPO = Path(__file__).resolve().parents[2]
SPEC = "synthetic:num_nodes=300,num_tasks=6,num_groups=2,seed=0"
NUM_SUBSETS = 20
TINY = [
    "--dataset",
    SPEC,
    "--epochs",
    "5",
    "--hidden-channels",
    "16",
    "--num-subsets",
    str(NUM_SUBSETS),
    "--projection-dim",
    "16",
    "--num-seeds",
    "1",
    "--num-groups",
    "2",
    "--quiet",
]
KILLED = -signal.SIGKILL


def group_members(pgid: int) -> list[list]:
    """``[pid, command line]`` of the live (not zombie) processes of process group ``pgid``.

    Reads ``/proc``; without it, ``[[-1, "?"]]`` when ``os.killpg`` finds the group alive.
    """
    import os

    try:
        names = os.listdir("/proc")
    except OSError:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [[-1, "?"]]
    members = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
            state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
            if int(pgrp) != pgid or state in ("Z", "X"):
                continue
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue  # exited meanwhile
        members.append([int(name), cmd])
    return members


# Reads one JSON request per line ({"argv", "env", "log", "grace", "reap"}), forks a child that
# runs the CLI in its own process group with stdout/stderr to "log", waits for it, then up to
# "grace" seconds for the rest of its process group; answers {"returncode", "pid", "survivors"}
# and, when "reap", kills the survivors (by pid).
DRIVER = (
    inspect.getsource(group_members)
    + r"""
import importlib, json, os, signal, sys, time, traceback
for name in ("graphtag.cli", "graphtag.pipeline", "graphtag.estimation", "graphtag.gradients",
             "graphtag.clustering", "graphtag.grouping", "graphtag.reporting", "graphtag.baselines",
             "cvxpy", "matplotlib.pyplot", "sklearn.metrics", "scipy.optimize"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
from graphtag.cli import main
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.setpgid(0, 0)
            fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ.pop("GRAPHTAG_FAULT", None)
            os.environ.update(req["env"])
            code = main(req["argv"])
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    deadline = time.monotonic() + req.get("grace", 0.0)
    while (survivors := group_members(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if req.get("reap", True):
        for member, _ in survivors:
            if member > 0:
                try:
                    os.kill(member, signal.SIGKILL)
                except OSError:
                    pass
    answer = {"returncode": os.waitstatus_to_exitcode(status), "pid": pid, "survivors": survivors}
    print(json.dumps(answer), flush=True)
"""
)


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GRAPHTAG_FAULT", None)
    env["OMP_NUM_THREADS"] = "1"
    env["GRAPHTAG_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


class Driver:
    """A process that imported graphtag once and forks one child per CLI run."""

    def __init__(self, cache: Path) -> None:
        env = _env(cache)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert json.loads(self._readline()) == {"ready": True}

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the driver process died (status {self.proc.wait()})")
        return line

    def run(
        self,
        out: Path,
        *args: str,
        fault: str | None = None,
        grace: float = 0.0,
        reap: bool = True,
    ) -> dict:
        """Run ``graphtag run --out out *args``: ``{"returncode", "pid", "survivors", "log"}``.

        ``survivors``: live processes of the run's process group ``grace`` seconds after its
        main process ended (killed unless ``reap`` is false).
        """
        log = out.parent / f"{out.name}.{time.monotonic_ns()}.log"
        env = {"GRAPHTAG_FAULT": fault} if fault else {}
        req = {"argv": ["run", "--out", str(out), *args], "env": env, "log": str(log)}
        req.update(grace=grace, reap=reap)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        res = json.loads(self._readline())
        res["log"] = log.read_text() if log.exists() else ""
        return res

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """``GRAPHTAG_CACHE`` of every run of this module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def driver(cache):
    d = Driver(cache)
    yield d
    d.close()


def _cli(cache: Path, out: Path, *args: str) -> None:
    """An uninterrupted run through the real entry point ``python -m graphtag``."""
    proc = subprocess.run(
        [sys.executable, "-m", "graphtag", "run", "--out", str(out), *args],
        env=_env(cache),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def reference(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    _cli(cache, out, *TINY)
    return out


@pytest.fixture(scope="module")
def reference_higher_order(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference_ho") / "run"
    _cli(cache, out, *TINY, "--method", "higher-order")
    return out


# ---------------------------------------------------------------------------------- checks
_TEMP = re.compile(r"^\.(?P<name>.+)\.\d+\.[a-z0-9_]{8}\.tmp$")


def _temp_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob(".*.tmp") if _TEMP.match(p.name))


def _visible_files(out: Path) -> list[Path]:
    return sorted(
        p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ""
    )


def _assert_nothing_partial(out: Path) -> set[Path]:
    """Every visible file is complete; returns the files a resumed run must reuse as they are.

    Those are the outputs of stages whose manifest is present (which must then match them),
    the logits of finished models and the checkpoints of finished jobs.
    """
    for p in _visible_files(out):
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npy":
            np.load(p, allow_pickle=False)
        elif p.suffix == ".npz":
            load_npz(p)
        elif p.suffix == ".pt":
            load_state_dict(p)
        elif p.suffix == ".csv":
            assert p.read_text().endswith("\n"), p
    keep: set[Path] = set()
    for man_path in out.glob("*.manifest.json"):
        man = json.loads(man_path.read_text())
        for name, digest in man["outputs"].items():
            assert file_sha256(out / name) == digest, f"{man_path.name}: {name} does not match"
            keep.add(out / name)
        keep.add(man_path)
    for p in (out / "models").glob("*.npz"):
        z = load_npz(p)
        assert set(z) == {"logits", "key"}, p
        keep.add(p)
    for p in (out / "finetune").glob("*.json"):
        rec = json.loads(p.read_text())
        assert {"format", "key", "result"} <= set(rec), p
        keep.add(p)
    return keep


def _identity(paths: set[Path]) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def _assert_same_result(out: Path, reference: Path) -> None:
    rep = json.loads((out / "report.json").read_text())
    ref = json.loads((reference / "report.json").read_text())
    assert rep["groups"] == ref["groups"]
    assert rep["metrics"] == ref["metrics"]
    a, b = np.load(out / "affinity.npy"), np.load(reference / "affinity.npy")
    assert a.dtype == b.dtype and np.array_equal(a, b)


def _kill_and_resume(driver: Driver, out: Path, args: list[str], fault: str) -> set[Path]:
    """Kill at ``fault``, check the folder, resume; returns the files kept from the killed run."""
    res = driver.run(out, *args, fault=fault)
    assert res["returncode"] == KILLED, f"not killed at {fault}: {res}"
    assert res["survivors"] == [], "a process of the killed run outlived it"
    temps = _temp_files(out)
    if fault.startswith("write:"):
        # killed mid-write: the target was never replaced, only its temporary file exists
        pattern = fault.split(":", 1)[1].split("@")[0].rsplit("/", 1)[-1]
        assert len(temps) == 1, temps
        name = _TEMP.match(temps[0].name)["name"]  # type: ignore[index]
        assert fnmatch.fnmatchcase(name, pattern)
        assert temps[0].stat().st_size > 0
        assert not (temps[0].parent / name).exists()
    else:
        assert temps == []
    keep = _assert_nothing_partial(out)
    before = _identity(keep)
    res = driver.run(out, *args)
    assert res["returncode"] == 0, res["log"]
    assert _temp_files(out) == []  # removed, never read
    assert _identity(keep) == before  # finished work reused, not rewritten
    return keep


# ---------------------------------------------------------------------------------- kill points
GRAD_TAG_KILLS = [
    "write:base_model.pt",
    "write:base.json",
    "after:base",
    "write:features.npz",
    "write:features.manifest.json",
    "after:features",
    "write:affinity.npy",
    "write:subset_losses.csv",
    "after:affinity",
    "write:groups.json",
    "after:groups",
    "write:models/*.npz",  # the first grouped model
    "write:models/*.npz@3",  # mid grouped training: two models finished
    "write:report.json",
]


@pytest.mark.parametrize("fault", GRAD_TAG_KILLS)
def test_kill_and_resume_grad_tag(driver, reference, tmp_path, fault):
    out = tmp_path / "run"
    keep = _kill_and_resume(driver, out, TINY, fault)
    _assert_same_result(out, reference)
    if fault == "write:models/*.npz@3":
        assert len([p for p in keep if p.parent.name == "models"]) == 2
    if fault.startswith("after:"):  # that stage and every earlier one were reused
        assert (out / f"{fault[6:]}.manifest.json") in keep


@pytest.mark.parametrize("fault", ["job:3", "write:finetune/*.json@5"])
def test_kill_and_resume_higher_order(driver, reference_higher_order, tmp_path, fault):
    out = tmp_path / "run"
    args = [*TINY, "--method", "higher-order"]
    keep = _kill_and_resume(driver, out, args, fault)
    finished = {p for p in keep if p.parent.name == "finetune"}
    # job:3 dies after the 3rd checkpoint; a kill writing the 5th leaves 4 finished
    assert len(finished) == (3 if fault == "job:3" else 4)
    # the resumed run computed only the other jobs: every checkpoint exists once, the finished
    # ones untouched (checked by _kill_and_resume)
    assert len(list((out / "finetune").glob("*.json"))) == NUM_SUBSETS
    _assert_same_result(out, reference_higher_order)


@pytest.fixture(scope="module")
def reference_auto_k(driver, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference_auto") / "run"
    res = driver.run(out, *AUTO_K)
    assert res["returncode"] == 0, res["log"]
    return out


AUTO_K = [a if a != "2" or TINY[i - 1] != "--num-groups" else "auto" for i, a in enumerate(TINY)]
AUTO_K += ["--select", "validation"]


def test_kill_and_resume_while_choosing_k(driver, reference_auto_k, tmp_path):
    """The validation sweep trains one model per group of every candidate: killed mid-way."""
    assert AUTO_K != TINY
    out = tmp_path / "run"
    keep = _kill_and_resume(driver, out, AUTO_K, "write:models/*.npz@4")
    assert "groups.manifest.json" not in {p.name for p in keep}  # killed inside the stage
    assert len([p for p in keep if p.parent.name == "models"]) == 3
    _assert_same_result(out, reference_auto_k)
    rep = json.loads((out / "report.json").read_text())
    ref = json.loads((reference_auto_k / "report.json").read_text())
    assert rep["num_groups"] == ref["num_groups"]


def test_killed_again_while_resuming(driver, reference, tmp_path):
    """Kills in three successive runs over one folder, each later in the pipeline."""
    out = tmp_path / "run"
    keep: set[Path] = set()
    for fault in ("write:features.npz", "after:affinity", "write:models/*.npz@2"):
        before = _identity(keep)
        res = driver.run(out, *TINY, fault=fault)
        assert res["returncode"] == KILLED, f"not killed at {fault}: {res}"
        now = _assert_nothing_partial(out)
        assert keep <= now and _identity(keep) == before  # earlier work reused by the new run
        keep = now
    before = _identity(keep)
    res = driver.run(out, *TINY)
    assert res["returncode"] == 0, res["log"]
    assert _identity(keep) == before and _temp_files(out) == []
    assert len([p for p in keep if p.parent.name == "models"]) == 1
    _assert_same_result(out, reference)


# ---------------------------------------------------------------------------------- invalidation
def _stage_outputs(out: Path, stage: str) -> set[Path]:
    man = json.loads((out / f"{stage}.manifest.json").read_text())
    return {out / name for name in man["outputs"]} | {out / f"{stage}.manifest.json"}


def test_changed_num_groups_recomputes_only_groups(driver, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    upstream = set().union(*(_stage_outputs(out, s) for s in ("base", "features", "affinity")))
    before = _identity(upstream)
    groups_before = _identity(_stage_outputs(out, "groups"))
    args = [a if a != "2" or TINY[i - 1] != "--num-groups" else "3" for i, a in enumerate(TINY)]
    assert args != TINY
    res = driver.run(out, *args)
    assert res["returncode"] == 0, res["log"]
    assert _identity(upstream) == before
    assert all(v != groups_before[p] for p, v in _identity(set(groups_before)).items())
    rep = json.loads((out / "report.json").read_text())
    kinds = [(c["kind"], c["num_models"]) for c in rep["candidates"]]
    assert ("groups", 3) in kinds and ("groups", 2) not in kinds  # the new k's candidates
    assert "affinity" in rep["reused_stages"] and "groups" not in rep["reused_stages"]
    assert "groups: configuration or inputs changed; recomputing" in rep["warnings"]
    assert np.array_equal(np.load(out / "affinity.npy"), np.load(reference / "affinity.npy"))


def test_fresh_run_reuses_nothing(reference):
    assert json.loads((reference / "report.json").read_text())["reused_stages"] == []


def test_restart_recomputes_everything(driver, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    stages = ("base", "features", "affinity", "groups")
    outputs = set().union(*(_stage_outputs(out, s) for s in stages))
    outputs |= set((out / "models").glob("*.npz"))
    before = _identity(outputs)
    res = driver.run(out, *TINY, "--restart")
    assert res["returncode"] == 0, res["log"]
    after = _identity({p for p in outputs if p.exists()})
    assert not any(after.get(p) == v for p, v in before.items())  # every file rewritten
    rep = json.loads((out / "report.json").read_text())
    assert not {"base", "features", "groups"} & set(rep["reused_stages"])
    _assert_same_result(out, reference)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes with /proc")
def test_killed_ray_run_leaves_no_process_and_resumes(driver, reference_higher_order, tmp_path):
    """A local Ray instance started by the run dies with it; nothing writes to the folder after.

    The processes that run jobs (Ray workers), raylet and the GCS die with the killed driver at
    once (Ray ties them to it with PR_SET_PDEATHSIG / to raylet). Ray's two agents notice within
    seconds but first try to report to the dead GCS (about a minute); they write only Ray's own
    logs (under Ray's temp folder), never the run folder, and must be gone within 3 minutes.
    """
    pytest.importorskip("ray")
    out = tmp_path / "run"
    args = [*TINY, "--method", "higher-order", "--executor", "ray"]
    res = driver.run(out, *args, fault="job:2", grace=10.0, reap=False)
    assert res["returncode"] == KILLED, res
    agents = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
    try:
        assert all(cmd.startswith(agents) for _, cmd in res["survivors"]), res["survivors"]
        snapshot = _identity(set(_visible_files(out)))
        deadline = time.monotonic() + 180
        while group_members(res["pid"]) and time.monotonic() < deadline:
            time.sleep(1.0)
        assert group_members(res["pid"]) == [], "Ray agents still alive 3 minutes after the kill"
        assert _identity(set(_visible_files(out))) == snapshot  # nobody kept writing
    finally:
        for pid, _ in group_members(res["pid"]):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert len(list((out / "finetune").glob("*.json"))) >= 2
    keep = _assert_nothing_partial(out)
    before = _identity(keep)
    res = driver.run(out, *TINY, "--method", "higher-order")  # resumed on the local executor
    assert res["returncode"] == 0, res["log"]
    assert _identity(keep) == before
    _assert_same_result(out, reference_higher_order)


def test_restart_recomputes_fine_tune_jobs(driver, reference_higher_order, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference_higher_order, out)
    jobs = _identity(set((out / "finetune").glob("*.json")))
    assert len(jobs) == NUM_SUBSETS
    res = driver.run(out, *TINY, "--method", "higher-order", "--restart")
    assert res["returncode"] == 0, res["log"]
    after = _identity(set((out / "finetune").glob("*.json")))
    assert not any(after.get(p) == v for p, v in jobs.items())  # every job computed again
    _assert_same_result(out, reference_higher_order)
