"""The Ray back-end: one task per job, results streamed back as they complete.

Install with ``pip install 'graphtag[ray]'``. The shared context is put in the object store once
and deserialised at most once per worker process (workers keep the last context they fetched),
so a thousand jobs do not unpickle the graph a thousand times.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import GraphtagError
from ._base import Job, JobFailure, JobFn, _Outcome, call_job

__all__ = ["import_ray", "ray_outcomes"]

# Per worker process: ObjectRef hex -> the context fetched from the object store (last one only).
_WORKER_CONTEXT: dict[str, Any] = {}


def import_ray() -> Any:
    """Import :mod:`ray` or explain how to install it."""
    try:
        import ray
    except ImportError:
        raise GraphtagError(
            "the Ray executor needs the 'ray' package: pip install 'graphtag[ray]' "
            "(or use --executor local)"
        ) from None
    return ray


def _worker_context(holder: list[Any]) -> Any:
    import ray

    ref = holder[0]
    key = ref.hex()
    if key not in _WORKER_CONTEXT:
        context = ray.get(ref)
        _WORKER_CONTEXT.clear()
        _WORKER_CONTEXT[key] = context
    return _WORKER_CONTEXT[key]


def _ray_task(fn: JobFn, holder: list[Any], job: Job, index: int, max_retries: int) -> _Outcome:
    """Body of one Ray task: :func:`call_job` on the worker's cached context."""
    outcome = call_job(fn, _worker_context(holder), job, index, max_retries)
    outcome.exception = None  # may not be picklable; the failure record carries the message
    return outcome


def _init_ray(ray: Any, address: str | None) -> bool:
    """Connect to (or start) Ray unless it is initialised; ``True`` when started here."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {}
    if address in (None, "", "local"):
        kwargs["include_dashboard"] = False
        address = None
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise GraphtagError(
            f"cannot connect to Ray at address {address!r}: {exc}. Start a cluster with "
            "`ray start --head` and pass --ray-address auto (or HOST:PORT), or omit the "
            "address to start a local Ray instance"
        ) from None
    return True


def ray_outcomes(
    todo: list[tuple[int, Job]],
    fn: JobFn,
    context: Any,
    *,
    address: str | None,
    num_gpus: float,
    num_cpus: float,
    max_retries: int,
) -> Iterator[tuple[int, _Outcome]]:
    """Submit one Ray task per job and yield ``(index, outcome)`` in completion order.

    Application errors are retried inside the task exactly as on the local back-end; Ray
    resubmits a task whose worker died up to ``max_retries`` times, after which the job is
    reported as failed (the others go on). Tasks still pending when the consumer stops (an
    exception while checkpointing, a keyboard interrupt) are cancelled.
    """
    ray = import_ray()
    started = _init_ray(ray, address)
    pending: dict[Any, tuple[int, Job]] = {}
    try:
        holder = [ray.put(context)]
        fn_ref = ray.put(fn)
        remote = ray.remote(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=False
        )(_ray_task)
        for index, job in todo:
            ref = remote.remote(fn_ref, holder, job, index, max_retries)
            pending[ref] = (index, job)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index, job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    attempts = max_retries + 1
                    failure = JobFailure(
                        index, job.key, f"{type(exc).__name__}: {exc}", "", attempts
                    )
                    outcome = _Outcome(False, failure=failure, exception=exc)
                yield index, outcome
    finally:
        for ref in pending:  # best effort: a task may finish meanwhile
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        if started:
            ray.shutdown()
