"""The Ray back-end on a local one-CPU Ray instance: same results as local, retries, resume.

Ray is in the test extra, so these run in CI; skipped only where ray is not installed. Starting
Ray takes several seconds, so every test of this file shares one instance.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from graphtag.executor import Job, JobsFailedError, run_jobs

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    # Workers must import graphtag (from the checkout) and unpickle this module's functions,
    # which pytest imports under a name the workers cannot import: send them by value.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), old) if p)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def log_call(ctx: dict, job: Job) -> None:
    with open(ctx["log"], "a") as fh:
        fh.write(f"{job.key['x']} {os.getpid()} {id(ctx)}\n")


def calls(ctx: dict) -> list[int]:
    path = Path(ctx["log"])
    return sorted(int(line.split()[0]) for line in path.read_text().splitlines())


def seeded_fn(ctx: dict, job: Job) -> dict:
    log_call(ctx, job)
    x = job.key["x"]
    if x in ctx.get("die_once", ()) and not Path(ctx["log"] + f".died{x}").exists():
        Path(ctx["log"] + f".died{x}").touch()
        os._exit(1)  # the worker process dies: Ray resubmits the task
    if x in ctx.get("fail", ()):
        raise RuntimeError(f"planted failure of job {x}")
    rng = np.random.default_rng(job.seed(ctx["seed"]))
    return {"x": x, "draw": rng.standard_normal(4).tolist(), "w": ctx["weights"][x]}


def make_ctx(tmp_path: Path, **kw) -> dict:
    weights = np.linspace(0, 1, 8).tolist()
    return {"seed": 11, "weights": weights, "log": str(tmp_path / "log"), **kw}


def test_ray_equals_local_and_reuses_the_context(tmp_path: Path) -> None:
    jobs = [Job({"x": x}) for x in (6, 0, 3, 5, 1)]
    ctx = make_ctx(tmp_path)
    local = run_jobs(jobs, seeded_fn, ctx, executor="local", checkpoint_dir=tmp_path / "a")
    remote = run_jobs(jobs, seeded_fn, ctx, executor="ray", checkpoint_dir=tmp_path / "b")
    assert remote == local
    lines = (tmp_path / "log").read_text().splitlines()[len(jobs) :]
    ctx_per_pid: dict[str, set[str]] = {}
    for line in lines:
        _, pid, ctx_id = line.split()
        ctx_per_pid.setdefault(pid, set()).add(ctx_id)
    assert str(os.getpid()) not in ctx_per_pid  # ran in workers
    assert all(len(ids) == 1 for ids in ctx_per_pid.values())  # fetched once per worker
    # The Ray checkpoints are the local ones, byte for byte in their results.
    reused = run_jobs(jobs, seeded_fn, ctx, executor="local", checkpoint_dir=tmp_path / "b")
    assert reused == local and len(calls(ctx)) == 2 * len(jobs)


def test_lost_worker_costs_only_its_job(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, die_once=[2])
    jobs = [Job({"x": x}) for x in range(4)]
    out = run_jobs(jobs, seeded_fn, ctx, executor="ray", max_retries=1)
    assert calls(ctx) == [0, 1, 2, 2, 3]
    assert out == run_jobs(jobs, seeded_fn, make_ctx(tmp_path, log=ctx["log"] + "2"))


def test_lost_worker_beyond_retries_is_reported(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, die_once=[1])
    jobs = [Job({"x": x}) for x in range(3)]
    with pytest.raises(JobsFailedError, match="1 of 3 jobs run failed") as info:
        run_jobs(jobs, seeded_fn, ctx, executor="ray", checkpoint_dir=tmp_path, max_retries=0)
    assert "WorkerCrashedError" in info.value.failures[0].error
    assert [r is None for r in info.value.results] == [False, True, False]


def test_ray_failure_reported_then_resumed(tmp_path: Path) -> None:
    jobs = [Job({"x": x}) for x in range(4)]
    ctx = make_ctx(tmp_path, fail=[1])
    with pytest.raises(JobsFailedError, match="1 of 4 jobs run failed") as info:
        run_jobs(jobs, seeded_fn, ctx, executor="ray", checkpoint_dir=tmp_path, max_retries=1)
    assert "RuntimeError: planted failure of job 1" in str(info.value)
    assert "planted failure of job 1" in info.value.failures[0].traceback
    assert info.value.results[1] is None and info.value.results[0]["x"] == 0
    assert calls(ctx) == [0, 1, 1, 2, 3]
    ctx = make_ctx(tmp_path, log=str(tmp_path / "log2"))
    out = run_jobs(jobs, seeded_fn, ctx, executor="ray", checkpoint_dir=tmp_path)
    assert calls(ctx) == [1]
    assert out == run_jobs(jobs, seeded_fn, make_ctx(tmp_path, log=str(tmp_path / "log3")))


def test_real_fine_tunes_on_ray_equal_local(tmp_path: Path) -> None:
    import torch

    from graphtag.data import build_multilabel_graph
    from graphtag.estimation._real import RealContext, real_subset_losses
    from graphtag.models import prepare_inputs
    from graphtag.training import TrainConfig, fit_model

    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 60, (2, 240), generator=g)
    y = (torch.rand(60, 3, generator=g) < 0.5).float()
    data = build_multilabel_graph(edge_index, y, name="toy", feature_dim=8, seed=0)
    config = TrainConfig(hidden_channels=8, num_hops=2, epochs=5, patience=5, device="cpu")
    inputs = prepare_inputs(data, config.model_config, "cpu")
    base = fit_model(data, inputs, None, config, seed=0, select="loss").model
    context = RealContext(base, data, inputs, config)
    subsets = [(0, 1), (2,), (0, 1, 2)]
    local = real_subset_losses(context, subsets, seed=3, checkpoint_dir=tmp_path / "local")
    remote = real_subset_losses(
        context, subsets, seed=3, executor="ray", checkpoint_dir=tmp_path / "ray"
    )
    np.testing.assert_array_equal(remote, local)
