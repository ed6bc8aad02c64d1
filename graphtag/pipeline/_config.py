"""Typed configuration of a pipeline run (saved with every artifact) and how it is run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..defaults import (
    MAX_TASK_ROWS,
    MIN_PAIR_COUNT,
    NUM_SUBSETS,
    PROJECTION_BLOCK,
    PROJECTION_DIM,
    SUBSET_SIZE,
)
from ..errors import GraphtagError
from ..executor import ExecutorConfig
from ..methods import DEFAULT_METHOD
from ..training import TrainConfig

__all__ = ["EstimatorConfig", "RunConfig", "RunOptions"]


@dataclass(frozen=True)
class EstimatorConfig:
    """Grad-TAG settings: gradient features, subset plan and surrogates.

    Args:
        projection_dim: Projected gradient dimension ``d``.
        block: Parameter block of the features and of the update: ``"all"`` or ``"body"``.
        num_subsets: Number of sampled task subsets ``M``.
        subset_size: Tasks per subset (see :func:`graphtag.estimation.plan_subsets`).
        min_pair_count: Every pair of tasks co-occurs at least this often.
        l2: Ridge penalty of the surrogate (``None``: matched to the reference fine-tune).
        loss: ``"linear"`` (linearised logits) or ``"network"`` (real network at theta0 + P w).
        val_fraction: Fraction of each task's validation rows kept for loss estimates.
        max_task_rows: Most training and most validation rows of the gradient features per
            task (a seeded, class-proportional subsample where a task has more; ``None``
            keeps all).
    """

    projection_dim: int = PROJECTION_DIM
    block: str = PROJECTION_BLOCK
    num_subsets: int = NUM_SUBSETS
    subset_size: int = SUBSET_SIZE
    min_pair_count: int = MIN_PAIR_COUNT
    l2: float | None = None
    loss: str = "linear"
    val_fraction: float = 1.0
    max_task_rows: int | None = MAX_TASK_ROWS

    def __post_init__(self) -> None:
        cap = self.max_task_rows
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise GraphtagError(f"max_task_rows must be a positive integer or None, got {cap!r}")
        if self.loss not in ("linear", "network"):
            raise GraphtagError(f"estimator loss must be 'linear' or 'network', got {self.loss!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything the results of ``graphtag run`` depend on.

    Args:
        dataset: Dataset spec.
        seed: Master seed (split, base model, projection, subsets; evaluation seeds are
            ``seed, seed + 1, ...``).
        train: Training recipe of the base model and of every evaluated model.
        estimator: Grad-TAG settings (features, subsets, surrogates).
        method: Affinity method, a key of :data:`graphtag.methods.METHODS`.
        grouping: How groups are formed, a key of :data:`graphtag.grouping.GROUPINGS`.
        num_groups: Number of groups or ``"auto"`` (chosen on validation).
        max_groups: Largest number of groups ``"auto"`` tries (candidates ``2..max_groups``,
            capped at ``T - 1``).
        num_seeds: Evaluation seeds.
        finetune_recipe: Real fine-tune of the ``higher-order`` and ``pairwise`` methods, a key
            of :data:`graphtag.estimation.FINETUNE_RECIPES`.
    """

    dataset: str = "blogcatalog"
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    method: str = DEFAULT_METHOD
    grouping: str = "sdp"
    num_groups: int | str = "auto"
    max_groups: int = 6
    num_seeds: int = 3
    finetune_recipe: str = "gd"

    def __post_init__(self) -> None:
        from ..estimation import FINETUNE_RECIPES
        from ..grouping import get_grouping
        from ..methods import get_method

        get_method(self.method)
        get_grouping(self.grouping)
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
        if self.finetune_recipe not in FINETUNE_RECIPES:
            raise GraphtagError(
                f"unknown fine-tune recipe {self.finetune_recipe!r}; choose from "
                f"{', '.join(FINETUNE_RECIPES)}"
            )

    def build_method(self) -> Any:
        """The configured :class:`~graphtag.methods.AffinityMethod` (unfitted)."""
        from ..methods import get_method

        return get_method(self.method).from_config(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (nested dataclasses expanded)."""
        return asdict(self)


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out; results never depend on these.

    Args:
        out: The run directory (finished stages in it are reused).
        progress: Show progress bars.
        restart: Forget every finished stage first.
        max_memory: Memory budget: ``"auto"`` (what is free now), ``"off"`` or bytes.
        executor: Where real-training jobs run.
    """

    out: Path
    progress: bool = True
    restart: bool = False
    max_memory: int | str = "auto"
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
