"""Jobs, per-job checkpoints and :func:`run_jobs`, the one entry point of every back-end.

A *job* is a small picklable :class:`Job` whose ``key`` (a JSON-serialisable mapping) says
everything its result depends on. The key names the job's checkpoint
(``<checkpoint_dir>/<job.name>.json``) and seeds it (:meth:`Job.seed`), so a result never
depends on the order jobs run in, on the back-end, or on which jobs were already checkpointed.

A job function ``fn(context, job) -> result`` computes one result; ``context`` is the shared,
read-only state (loaded data, precomputed inputs, base model) handed to the back-end once. The
result must be JSON-serialisable: it is normalised by a JSON round trip (tuples become lists,
dictionary keys are sorted, floats keep every bit) on every back-end, so a result read back from
a checkpoint is equal to a freshly computed one.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._utils import derive_seed
from ..artifacts import _fault_point, canonical_json, hash_object, save_json
from ..errors import GraphtagError
from ._config import EXECUTORS

__all__ = [
    "EXECUTORS",
    "Job",
    "JobFailure",
    "JobFn",
    "JobsFailedError",
    "checkpoint_path",
    "load_checkpoint",
    "normalise_result",
    "run_jobs",
]


#: ``fn(context, job) -> JSON-serialisable result``.
JobFn = Callable[[Any, "Job"], Any]

_CHECKPOINT_FORMAT = 1

#: Jobs finished in this process (each checkpointed first, given a folder), for ``job:<k>``.
_JOBS_FINISHED = [0]


@dataclass(frozen=True, eq=False)
class Job:
    """One independent unit of work, identified by a JSON-serialisable key.

    Args:
        key: Everything the result depends on (method, inputs fingerprint, subset, seed, ...).
            It is normalised by a JSON round trip, so ``(1, 2)`` and ``[1, 2]`` are the same key.

    Example:
        >>> job = Job({"subset": (0, 2), "seed": 0})
        >>> job.key
        {'seed': 0, 'subset': [0, 2]}
        >>> job.name == Job({"seed": 0, "subset": [0, 2]}).name
        True
    """

    key: dict[str, Any]
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, Mapping):
            raise GraphtagError(f"a job key must be a mapping, got {type(self.key).__name__}")
        try:
            text = canonical_json(dict(self.key))
        except (TypeError, ValueError) as exc:
            raise GraphtagError(f"a job key must be JSON-serialisable: {exc}") from None
        object.__setattr__(self, "key", json.loads(text))
        object.__setattr__(self, "name", hash_object(self.key)[:32])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Job({self.key!r})"

    def seed(self, seed: int = 0) -> int:
        """A seed derived from ``seed`` and this job's key only (never from its position)."""
        return derive_seed(seed, "job", self.name)


@dataclass
class JobFailure:
    """A job that still failed after its retries.

    Attributes:
        index: Position of the job in the list given to :func:`run_jobs`.
        key: The job's key.
        error: ``"ExceptionType: message"`` of the last attempt.
        traceback: Formatted traceback of the last attempt (where the back-end provides one).
        attempts: Number of attempts made.
    """

    index: int
    key: dict[str, Any]
    error: str
    traceback: str = ""
    attempts: int = 1


class JobsFailedError(GraphtagError):
    """Some jobs failed after their retries; every other job finished and was checkpointed.

    Attributes:
        failures: One :class:`JobFailure` per failed job.
        results: Results in job order, ``None`` for failed jobs.
    """

    def __init__(self, message: str, failures: list[JobFailure], results: list[Any]) -> None:
        super().__init__(message)
        self.failures = failures
        self.results = results


def normalise_result(result: Any) -> Any:
    """JSON round trip of ``result`` (what a checkpoint stores and returns).

    Raises:
        GraphtagError: If ``result`` is not JSON-serialisable.
    """
    try:
        return json.loads(canonical_json(result))
    except (TypeError, ValueError) as exc:
        raise GraphtagError(
            f"a job result must be JSON-serialisable (dicts, lists, numbers, strings): {exc}"
        ) from None


def checkpoint_path(checkpoint_dir: str | Path, job: Job) -> Path:
    """Where ``job``'s result is checkpointed."""
    return Path(checkpoint_dir) / f"{job.name}.json"


def load_checkpoint(checkpoint_dir: str | Path, job: Job) -> tuple[bool, Any]:
    """Read ``job``'s checkpoint.

    Returns:
        ``(True, result)`` for a valid checkpoint of exactly this key, else ``(False, None)``
        (missing, unreadable, truncated, another format or another key).
    """
    path = checkpoint_path(checkpoint_dir, job)
    try:
        with open(path) as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return False, None
    if (
        not isinstance(rec, dict)
        or rec.get("format") != _CHECKPOINT_FORMAT
        or rec.get("key") != job.key
        or "result" not in rec
    ):
        return False, None
    return True, rec["result"]


def _save_checkpoint(checkpoint_dir: str | Path, job: Job, result: Any, seconds: float) -> None:
    save_json(
        checkpoint_path(checkpoint_dir, job),
        {"format": _CHECKPOINT_FORMAT, "key": job.key, "seconds": seconds, "result": result},
    )


@dataclass
class _Outcome:
    """What a back-end reports for one job (``result`` when ``ok``, else ``failure``)."""

    ok: bool
    result: Any = None
    seconds: float = 0.0
    failure: JobFailure | None = None
    exception: BaseException | None = None


def call_job(fn: JobFn, context: Any, job: Job, index: int, max_retries: int) -> _Outcome:
    """Run ``fn(context, job)`` with up to ``max_retries`` retries; never raises ``Exception``.

    A :class:`~graphtag.errors.GraphtagError` (a user mistake or a divergence, deterministic)
    is not retried; any other exception is. Both back-ends use this function, so a job fails
    or succeeds the same way everywhere.
    """
    attempts = 0
    while True:
        attempts += 1
        start = time.perf_counter()
        try:
            result = normalise_result(fn(context, job))
        except Exception as exc:
            if attempts <= max_retries and not isinstance(exc, GraphtagError):
                continue
            failure = JobFailure(
                index,
                job.key,
                f"{type(exc).__name__}: {exc}",
                "".join(traceback.format_exception(exc)),
                attempts,
            )
            return _Outcome(False, failure=failure, exception=exc)
        return _Outcome(True, result, time.perf_counter() - start)


def _check_options(executor: str, max_retries: int, num_gpus_per_job: float) -> None:
    if executor not in EXECUTORS:
        raise GraphtagError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise GraphtagError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    gpus = float(num_gpus_per_job)
    if not math.isfinite(gpus) or gpus < 0:
        raise GraphtagError(f"num_gpus_per_job must be >= 0, got {num_gpus_per_job!r}")
    if gpus and executor == "local":
        raise GraphtagError(
            "num_gpus_per_job is a Ray resource; the local executor runs jobs in-process on the "
            "context's device (use executor='ray' or num_gpus_per_job=0)"
        )


def run_jobs(
    jobs: Sequence[Job],
    fn: JobFn,
    context: Any = None,
    *,
    checkpoint_dir: str | Path | None = None,
    executor: str = "local",
    progress: bool = False,
    ray_address: str | None = None,
    num_gpus_per_job: float = 0,
    num_cpus_per_job: float = 1,
    max_retries: int = 2,
    desc: str = "jobs",
) -> list[Any]:
    """Run independent jobs, reusing and writing per-job checkpoints; results in job order.

    A job whose checkpoint exists and holds exactly its key is not run again. Every other job's
    result is written atomically as soon as it arrives, so a killed run loses only the jobs in
    flight and a rerun with the same ``checkpoint_dir`` resumes. Jobs with equal keys run once.

    Back-ends:

    - ``"local"``: an in-process loop; ``context`` is used as is (no copy, no process per job).
    - ``"ray"`` (``pip install 'graphtag[ray]'``): ``context`` is put in the object store once
      and fetched once per worker process; one task per job with ``num_cpus_per_job`` CPUs and
      ``num_gpus_per_job`` GPUs as resources; results are checkpointed as they complete. A lost
      worker costs only its job, which Ray resubmits up to ``max_retries`` times. Connects to
      ``ray_address`` (``"auto"``, ``"HOST:PORT"``, or ``None`` for a new local instance) unless
      Ray is already initialised; a Ray instance started here is shut down at the end. ``fn``
      and ``context`` must be picklable and ``graphtag`` importable on the workers.

    Tests can kill the process right after the ``k``-th job of the process is checkpointed
    with ``GRAPHTAG_FAULT=job:<k>`` (see :mod:`graphtag.artifacts`).

    Failures: an exception other than :class:`~graphtag.errors.GraphtagError` is retried up to
    ``max_retries`` times (in the same way on both back-ends). Jobs that still fail do not stop
    the others; once every job is done a :class:`JobsFailedError` lists them (the finished ones
    are checkpointed, so rerunning after a fix computes only the failed ones).

    Args:
        jobs: The jobs.
        fn: ``fn(context, job) -> result`` (JSON-serialisable); seed it with ``job.seed(...)``.
        context: Shared read-only state passed to every call.
        checkpoint_dir: Folder of the per-job checkpoints (``None``: no checkpoints).
        executor: ``"local"`` or ``"ray"``.
        progress: Show a progress bar over jobs.
        ray_address: Ray cluster address (``executor="ray"`` only).
        num_gpus_per_job: GPUs reserved per Ray task (fractions allowed).
        num_cpus_per_job: CPUs reserved per Ray task.
        max_retries: Retries of a failing job (and, for Ray, of a lost worker).
        desc: Progress bar label.

    Returns:
        One normalised result per job (JSON round trip), in the order of ``jobs``.

    Raises:
        GraphtagError: For bad options, or when Ray is requested but missing or unreachable.
        JobsFailedError: When some jobs failed after their retries.

    Example:
        >>> import tempfile
        >>> jobs = [Job({"x": x}) for x in (3, 1, 2)]
        >>> folder = tempfile.mkdtemp()
        >>> run_jobs(jobs, lambda ctx, job: ctx * job.key["x"], 10, checkpoint_dir=folder)
        [30, 10, 20]
        >>> run_jobs(jobs, lambda ctx, job: -1, 10, checkpoint_dir=folder)  # all reused
        [30, 10, 20]
    """
    _check_options(executor, max_retries, num_gpus_per_job)
    jobs = list(jobs)
    for k, job in enumerate(jobs):
        if not isinstance(job, Job):
            raise GraphtagError(f"jobs[{k}] is a {type(job).__name__}, not a graphtag Job")
    results, done, positions, todo = _reuse_checkpoints(jobs, checkpoint_dir)
    bar = tqdm(total=len(jobs), initial=sum(done), desc=desc, unit="job", disable=not progress)
    failures: list[JobFailure] = []
    first_exc: BaseException | None = None
    outcomes: Iterator[tuple[int, _Outcome]] = iter(())
    try:
        outcomes = _backend_outcomes(
            executor,
            todo,
            fn,
            context,
            ray_address=ray_address,
            num_gpus_per_job=float(num_gpus_per_job),
            num_cpus_per_job=float(num_cpus_per_job),
            max_retries=max_retries,
        )
        for index, outcome in outcomes:
            job = jobs[index]
            idx = positions[job.name]
            if outcome.ok:
                if checkpoint_dir is not None:
                    _save_checkpoint(checkpoint_dir, job, outcome.result, outcome.seconds)
                for k in idx:
                    results[k], done[k] = outcome.result, True
                _JOBS_FINISHED[0] += 1
                _fault_point(f"job:{_JOBS_FINISHED[0]}")  # test-only (graphtag.artifacts)
            else:
                assert outcome.failure is not None
                failures.append(outcome.failure)
                first_exc = first_exc or outcome.exception
                bar.set_postfix(failed=len(failures))
            bar.update(len(idx))
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:  # stop the back-end now (Ray cancels the tasks still pending)
            close()
        bar.close()
    if failures:
        failures.sort(key=lambda f: f.index)
        where = f" and checkpointed in {checkpoint_dir}" if checkpoint_dir is not None else ""
        first = failures[0]
        raise JobsFailedError(
            f"{len(failures)} of {len(todo)} jobs run failed ({sum(done)} of {len(jobs)} "
            f"results finished{where}); first failure, job {canonical_json(first.key)} after "
            f"{first.attempts} attempt(s): {first.error}. Fix the cause and rerun with the "
            f"same checkpoint folder to compute only the missing jobs",
            failures,
            results,
        ) from first_exc
    return results


def _reuse_checkpoints(
    jobs: list[Job], checkpoint_dir: str | Path | None
) -> tuple[list[Any], list[bool], dict[str, list[int]], list[tuple[int, Job]]]:
    """``(results, done, positions, todo)``: checkpointed results, and the jobs still to run.

    Jobs with equal keys (``positions[name]``: their indices) run once, as ``todo`` entries
    ``(first index, job)``.
    """
    results: list[Any] = [None] * len(jobs)
    done = [False] * len(jobs)
    positions: dict[str, list[int]] = {}
    for k, job in enumerate(jobs):
        positions.setdefault(job.name, []).append(k)
    todo: list[tuple[int, Job]] = []
    for idx in positions.values():
        job = jobs[idx[0]]
        found, result = (False, None)
        if checkpoint_dir is not None:
            found, result = load_checkpoint(checkpoint_dir, job)
        if found:
            for k in idx:
                results[k], done[k] = result, True
        else:
            todo.append((idx[0], job))
    return results, done, positions, todo


def _backend_outcomes(
    executor: str,
    todo: list[tuple[int, Job]],
    fn: JobFn,
    context: Any,
    *,
    ray_address: str | None,
    num_gpus_per_job: float,
    num_cpus_per_job: float,
    max_retries: int,
) -> Iterator[tuple[int, _Outcome]]:
    if not todo:
        return iter(())
    if executor == "local":
        from ._local import local_outcomes

        return local_outcomes(todo, fn, context, max_retries=max_retries)
    from ._ray import ray_outcomes

    return ray_outcomes(
        todo,
        fn,
        context,
        address=ray_address,
        num_gpus=num_gpus_per_job,
        num_cpus=num_cpus_per_job,
        max_retries=max_retries,
    )
