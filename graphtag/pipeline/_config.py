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

__all__ = ["EstimatorConfig", "RecommendConfig", "RunConfig", "RunOptions"]

#: How the recommendation chooses: cheap predicted scores then confirmation, or training all.
SELECT_MODES = ("predicted", "validation")
#: How group models are trained: from scratch, or warm-started from the base model.
GROUP_INITS = ("scratch", "base")
#: The cheap score of a candidate: Grad-TAG surrogates, or short warm-started fine-tunes.
SCORES = ("surrogate", "probe")


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
class RecommendConfig:
    """How ``graphtag run`` decides what to train.

    Args:
        select: ``"predicted"``: every candidate gets a cheap predicted validation score, the
            best ``confirm`` of them and one model for all tasks are trained and compared on
            validation; ``"validation"``: every candidate is trained (the exhaustive sweep).
        confirm: Candidates trained for confirmation besides one model for all tasks.
        single_task: One model per task as a candidate: ``"auto"`` (when ``T <= 40``),
            ``"on"`` or ``"off"``.
        group_init: Group models trained from ``"scratch"`` or warm-started from the
            ``"base"`` model (its body and the group's output rows; the start is kept when no
            epoch beats it on validation).
        score: The cheap score: ``"surrogate"`` (Grad-TAG surrogates of each group's
            fine-tune; no training) or ``"probe"`` (short warm-started fine-tunes).
        l2: Ridge of the scoring surrogates, relative to the curvature scale
            (:func:`graphtag.estimation.l2_scale`); smaller predicts a longer fine-tune.
        probe_epochs: Epochs of each probe fine-tune.
        search: Also refine the best-predicted k-group partition by single-task moves
            (proposed by the surrogates, decided by the cheap score). Off by default: the
            refined partition's predicted score is the maximum over many noisy moves, so it
            crowds better partitions out of the confirmation (experiments/README.md).
        search_moves: Moves scored by the cheap score per search round.
        search_rounds: Most moves the search applies.
        tolerance: A candidate with more models must beat a cheaper one on validation macro
            ROC-AUC by more than this.
        holdout: Share of each task's validation labels (per class) held out from checkpoint
            selection; candidates and probes are compared on that part only, so candidates
            with more models gain nothing from choosing more checkpoints (0: compare on the
            labels that chose the checkpoints).
    """

    select: str = "predicted"
    confirm: int = 2
    single_task: str = "auto"
    group_init: str = "base"
    score: str = "probe"
    l2: float = 0.1
    probe_epochs: int = 2
    search: bool = False
    search_moves: int = 4
    search_rounds: int = 3
    tolerance: float = 1e-3
    holdout: float = 0.5

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("select", self.select, SELECT_MODES),
            ("group_init", self.group_init, GROUP_INITS),
            ("score", self.score, SCORES),
            ("single_task", self.single_task, ("auto", "on", "off")),
        ):
            if value not in allowed:
                raise GraphtagError(f"unknown {name} {value!r}; choose from {', '.join(allowed)}")
        if isinstance(self.confirm, bool) or not isinstance(self.confirm, int) or self.confirm < 0:
            raise GraphtagError(f"confirm must be an integer >= 0, got {self.confirm!r}")
        if self.probe_epochs < 1:
            raise GraphtagError(f"probe_epochs must be >= 1, got {self.probe_epochs}")
        if not 0.0 <= self.holdout < 1.0:
            raise GraphtagError(f"holdout must lie in [0, 1), got {self.holdout!r}")

    @property
    def uses_features(self) -> bool:
        """Whether the recommendation reads the gradient features (surrogate scores)."""
        return self.score == "surrogate" or self.search


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
        recommend: How the configuration to train is chosen.
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
    recommend: RecommendConfig = field(default_factory=RecommendConfig)

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
