"""Many independent jobs (subset fine-tunes, grouped models) on a local or a Ray back-end.

:func:`run_jobs` runs :class:`Job` objects through ``fn(context, job)`` with per-job
checkpoints, on the ``"local"`` back-end (in-process) or the ``"ray"`` back-end (the
``graphtag[ray]`` extra). See :mod:`graphtag.executor._base` for the contract.
"""

from ._base import (
    Job,
    JobFailure,
    JobFn,
    JobsFailedError,
    checkpoint_path,
    load_checkpoint,
    normalise_result,
    run_jobs,
)
from ._config import EXECUTORS, ExecutorConfig

__all__ = [
    "EXECUTORS",
    "ExecutorConfig",
    "Job",
    "JobFailure",
    "JobFn",
    "JobsFailedError",
    "checkpoint_path",
    "load_checkpoint",
    "normalise_result",
    "run_jobs",
]
