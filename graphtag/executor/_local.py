"""The local back-end: an in-process loop over jobs sharing one context object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._base import Job, JobFn, _Outcome, call_job

__all__ = ["local_outcomes"]


def local_outcomes(
    todo: list[tuple[int, Job]], fn: JobFn, context: Any, *, max_retries: int
) -> Iterator[tuple[int, _Outcome]]:
    """Run ``fn(context, job)`` for each ``(index, job)`` in order, yielding each outcome.

    ``context`` is passed as is to every call (loaded data, precomputed inputs and the base
    model are reused, never copied or reloaded). The caller checkpoints each outcome before the
    next job starts.
    """
    for index, job in todo:
        yield index, call_job(fn, context, job, index, max_retries)
