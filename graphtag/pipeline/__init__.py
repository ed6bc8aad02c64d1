"""The pipeline: stages over a run directory, and the CLI commands built on them."""

from ._commands import parse_tasks, run_command, run_pipeline, train_command
from ._config import METHODS, EstimatorConfig, RunConfig
from ._run import Run, dataset_key

__all__ = [
    "METHODS",
    "EstimatorConfig",
    "Run",
    "RunConfig",
    "dataset_key",
    "parse_tasks",
    "run_command",
    "run_pipeline",
    "train_command",
]


def check_estimator_command(args: object) -> dict:
    """``graphtag check-estimator`` (see :mod:`graphtag.pipeline._check`)."""
    from ._check import check_estimator_command as _impl

    return _impl(args)
