"""Resolved configuration of a pipeline run (saved with every artifact)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import GraphtagError
from ..training import TrainConfig

__all__ = ["METHODS", "EstimatorConfig", "RunConfig"]

METHODS = ("grad-tag", "tag", "higher-order", "pairwise", "random")
GROUPINGS = ("sdp", "spectral", "tag-selection")
#: Names of graphtag.estimation._finetune.FINETUNE_RECIPES (kept here so that the configuration
#: and the command line import no torch code; a test keeps them in sync).
FINETUNE_RECIPE_NAMES = ("gd", "base")


@dataclass(frozen=True)
class EstimatorConfig:
    """Grad-TAG settings.

    Args:
        projection_dim: Projected gradient dimension ``d``.
        block: Parameter block of the features and of the update: ``"all"`` or ``"body"``.
        num_subsets: Number of sampled task subsets ``M``.
        subset_size: Tasks per subset (capped at ``T // 2``, at least 2, when larger).
        min_pair_count: Every pair of tasks co-occurs at least this often.
        l2: Ridge penalty ``lambda`` of the surrogate (``None``: the estimator's default).
        loss: ``"linear"`` (linearised logits) or ``"network"`` (real network at theta0 + P w).
        val_fraction: Fraction of each task's validation rows kept for loss estimates.
        max_task_rows: Most training and most validation rows of the gradient features per
            task (a seeded, class-proportional subsample where a task has more; ``None``
            keeps all). See :data:`graphtag.gradients.DEFAULT_MAX_TASK_ROWS`.
    """

    projection_dim: int = 200
    block: str = "all"
    num_subsets: int = 1000
    subset_size: int = 10
    min_pair_count: int = 5
    l2: float | None = None
    loss: str = "linear"
    val_fraction: float = 1.0
    max_task_rows: int | None = 10_000  # graphtag.gradients.DEFAULT_MAX_TASK_ROWS

    def __post_init__(self) -> None:
        cap = self.max_task_rows
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise GraphtagError(f"max_task_rows must be a positive integer or None, got {cap!r}")

    def resolved_subset_size(self, num_tasks: int) -> int:
        """``subset_size`` capped so that subsets are proper (``<= max(2, T // 2)``)."""
        if num_tasks < 2:
            raise GraphtagError("task grouping needs at least 2 tasks")
        return max(2, min(self.subset_size, max(2, num_tasks // 2)))


@dataclass(frozen=True)
class RunConfig:
    """Everything ``graphtag run`` depends on.

    Args:
        dataset: Dataset spec.
        seed: Master seed (split, base model, projection, subsets; evaluation seeds are
            ``seed, seed + 1, ...``).
        train: Training recipe of the base model and of every evaluated model.
        estimator: Grad-TAG settings.
        method: Affinity method (``grad-tag``, ``tag``, ``higher-order``, ``pairwise``,
            ``random``).
        grouping: ``sdp`` or ``spectral`` (or ``tag-selection``).
        num_groups: Number of groups or ``"auto"`` (chosen on validation: see
            :meth:`graphtag.pipeline.Run.groups`).
        max_groups: Largest number of groups ``"auto"`` tries (candidates ``2..max_groups``,
            capped at ``T - 1``).
        num_seeds: Evaluation seeds.
        finetune_recipe: Real fine-tune of the ``higher-order`` and ``pairwise`` methods:
            ``"gd"`` (deterministic gradient descent, the default) or ``"base"`` (the base
            model's recipe); see :func:`graphtag.estimation.finetune_subset`.
    """

    dataset: str = "blogcatalog"
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    method: str = "grad-tag"
    grouping: str = "sdp"
    num_groups: int | str = "auto"
    max_groups: int = 6
    num_seeds: int = 3
    finetune_recipe: str = "gd"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise GraphtagError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.grouping not in GROUPINGS:
            raise GraphtagError(f"unknown grouping {self.grouping!r}; choose from {GROUPINGS}")
        if self.num_groups != "auto" and (
            not isinstance(self.num_groups, int) or self.num_groups < 1
        ):
            raise GraphtagError(
                f"num_groups must be a positive integer or 'auto', got {self.num_groups!r}"
            )
        if self.max_groups < 2:
            raise GraphtagError(f"max_groups must be >= 2, got {self.max_groups}")
        if self.num_seeds < 1:
            raise GraphtagError(f"num_seeds must be >= 1, got {self.num_seeds}")
        if self.finetune_recipe not in FINETUNE_RECIPE_NAMES:
            raise GraphtagError(
                f"unknown fine-tune recipe {self.finetune_recipe!r}; choose from "
                f"{FINETUNE_RECIPE_NAMES}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (nested dataclasses expanded)."""
        return asdict(self)
