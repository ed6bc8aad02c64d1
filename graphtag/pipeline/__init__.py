"""The pipeline: a stage runner over a run directory, and the CLI's commands built on it.

``Run(config, options)`` holds the stages (data, inputs, base model, gradient features,
affinity, groups; see :mod:`graphtag.pipeline._run`); ``run_run``, ``run_train`` and
``run_check`` are ``graphtag run``, ``train`` and ``check-estimator`` with typed configurations.
"""

from ._check import check_estimator, compare_losses, reference_noise, run_check
from ._commands import parse_tasks, run_pipeline, run_run, run_train
from ._config import EstimatorConfig, RecommendConfig, RunConfig, RunOptions
from ._models import ModelCache, evaluate_seeds, fit_candidate, fit_partition, one_model
from ._run import STAGES, Run
from ._stage import Stage
from ._stages import dataset_key

__all__ = [
    "STAGES",
    "EstimatorConfig",
    "ModelCache",
    "RecommendConfig",
    "Run",
    "RunConfig",
    "RunOptions",
    "Stage",
    "check_estimator",
    "compare_losses",
    "dataset_key",
    "evaluate_seeds",
    "fit_candidate",
    "fit_partition",
    "one_model",
    "parse_tasks",
    "reference_noise",
    "run_check",
    "run_pipeline",
    "run_run",
    "run_train",
]
