"""``higher-order`` and ``pairwise``: task affinity by real fine-tuning of task subsets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..defaults import MIN_PAIR_COUNT, NUM_SUBSETS, SUBSET_SIZE
from ._base import AffinityMethod

if TYPE_CHECKING:
    from ._context import AffinityContext

__all__ = ["HigherOrderMethod", "PairwiseMethod"]

#: Sub-folder of the context's ``workdir`` holding one checkpoint per fine-tune job.
CHECKPOINT_FOLDER = "finetune"


def _job_options(method: AffinityMethod, context: AffinityContext) -> dict[str, Any]:
    """Options of :func:`graphtag.estimation.real_subset_losses` shared by both methods."""
    from .._utils import derive_seed

    assert context.executor is not None
    return {
        "seed": derive_seed(method.seed, "real-affinity"),  # type: ignore[attr-defined]
        "executor": context.executor.kind,
        "ray_address": context.executor.address,
        "checkpoint_dir": None if context.workdir is None else context.workdir / CHECKPOINT_FOLDER,
        "progress": context.progress,
        "recipe": method.recipe,  # type: ignore[attr-defined]
    }


def _real_context(context: AffinityContext) -> Any:
    from ..estimation import RealContext

    return RealContext(context.model, context.data, context.inputs, context.train_config)


def _recipe_key(method: AffinityMethod) -> dict[str, Any]:
    from ..estimation import FINETUNE_RECIPES

    return {**AffinityMethod.cache_key(method), "finetune": FINETUNE_RECIPES[method.recipe]}  # type: ignore[attr-defined]


class HigherOrderMethod(AffinityMethod):
    """Higher-order affinity (KDD'23; docs/algorithms.md §5) by fine-tuning sampled subsets.

    Each subset of the plan (:func:`graphtag.estimation.plan_subsets`) is fine-tuned from the
    base model with :func:`graphtag.estimation.finetune_subset` (``recipe``), one checkpointed
    job each (:func:`graphtag.estimation.higher_order_affinity`).

    Args:
        num_subsets: Requested number of subsets.
        subset_size: Requested tasks per subset.
        min_pair_count: Requested co-occurrences of every pair of tasks.
        recipe: The real fine-tune, ``"gd"`` or ``"base"``.
        seed: Master seed.

    Example:
        >>> HigherOrderMethod(num_subsets=60).cache_key()["num_subsets"]
        60
    """

    name = "higher-order"
    summary = "fine-tunes sampled task subsets for real (the reference Grad-TAG estimates)"

    def __init__(
        self,
        num_subsets: int = NUM_SUBSETS,
        subset_size: int = SUBSET_SIZE,
        min_pair_count: int = MIN_PAIR_COUNT,
        recipe: str = "gd",
        seed: int = 0,
    ) -> None:
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.min_pair_count = min_pair_count
        self.recipe = recipe
        self.seed = seed

    @classmethod
    def from_config(cls, config: Any) -> HigherOrderMethod:
        """The method with a :class:`~graphtag.pipeline.RunConfig`'s subset settings."""
        est = config.estimator
        return cls(
            num_subsets=est.num_subsets,
            subset_size=est.subset_size,
            min_pair_count=est.min_pair_count,
            recipe=config.finetune_recipe,
            seed=config.seed,
        )

    def cache_key(self) -> dict[str, Any]:
        """Name, hyperparameters, the fine-tune recipe and the subset-plan rule."""
        return {**_recipe_key(self), "plan_rule": "plan_subsets"}

    def fit(self, context: AffinityContext) -> HigherOrderMethod:
        """Fine-tune every planned subset (checkpointed jobs); the subset affinity."""
        import numpy as np

        from ..estimation import higher_order_affinity, plan_subsets

        plan = plan_subsets(
            context.num_tasks, self.subset_size, self.num_subsets, self.min_pair_count
        )
        for text in plan.notes:
            context.note(text)
        affinity, subsets, losses = higher_order_affinity(
            _real_context(context),
            plan.num_subsets,
            plan.subset_size,
            min_pair_count=plan.min_pair_count,
            **_job_options(self, context),
        )
        affinity = np.asarray(affinity, dtype=np.float64)
        return self._set_fitted((affinity + affinity.T) / 2, subsets, losses)


class PairwiseMethod(AffinityMethod):
    """Pairwise affinity (HOA-style): every single task and every pair fine-tuned for real.

    ``T (T + 1) / 2`` fine-tunes (:func:`graphtag.estimation.pairwise_real_affinity`).

    Args:
        recipe: The real fine-tune, ``"gd"`` or ``"base"``.
        seed: Master seed.

    Example:
        >>> PairwiseMethod(recipe="base")
        PairwiseMethod(recipe='base')
    """

    name = "pairwise"
    summary = "fine-tunes every single task and every pair of tasks for real"

    def __init__(self, recipe: str = "gd", seed: int = 0) -> None:
        self.recipe = recipe
        self.seed = seed

    @classmethod
    def from_config(cls, config: Any) -> PairwiseMethod:
        """The method with a :class:`~graphtag.pipeline.RunConfig`'s recipe and seed."""
        return cls(recipe=config.finetune_recipe, seed=config.seed)

    def cache_key(self) -> dict[str, Any]:
        """Name, hyperparameters and the fine-tune recipe."""
        return _recipe_key(self)

    def fit(self, context: AffinityContext) -> PairwiseMethod:
        """Fine-tune all singles and pairs (checkpointed jobs); the pairwise affinity."""
        import numpy as np

        from ..estimation import pairwise_real_affinity, pairwise_subset_losses, pairwise_subsets

        affinity, single, pair = pairwise_real_affinity(
            _real_context(context), **_job_options(self, context)
        )
        subsets = list(pairwise_subsets(context.num_tasks))
        affinity = np.asarray(affinity, dtype=np.float64)
        losses = pairwise_subset_losses(subsets, single, pair)
        return self._set_fitted((affinity + affinity.T) / 2, subsets, losses)
