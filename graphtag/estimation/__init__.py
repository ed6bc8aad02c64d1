"""Grad-TAG estimation: task subsets, surrogates, estimated losses and task affinity.

See docs/algorithms.md §4-§6. Typical use::

    est = GradTAG(seed=0).fit(features)  # graphtag run's defaults (graphtag.defaults)
    est.affinity_  # [T, T] numpy, feed to graphtag.clustering

``plan_subsets`` sizes the subsets for ``T`` tasks as ``graphtag run`` does.

``finetune_subset`` and the real-training affinities (``real_subset_losses``,
``higher_order_affinity``, ``pairwise_real_affinity``) are the reference Grad-TAG estimates.
"""

from ._affinity import (
    pairwise_affinity,
    pairwise_loss_tables,
    pairwise_subset_losses,
    subset_affinity,
)
from ._finetune import (
    FINETUNE_LR,
    FINETUNE_RECIPES,
    FINETUNE_STEPS,
    FinetuneResult,
    finetune_subset,
    matched_ridge,
)
from ._grad_tag import GradTAG, make_synthetic_features
from ._losses import NetworkLossFn, base_losses, estimate_losses, estimate_scores
from ._plan import SubsetPlan, plan_subsets
from ._real import (
    PAIRWISE_MAX_TASKS,
    RealContext,
    higher_order_affinity,
    pairwise_real_affinity,
    real_subset_losses,
)
from ._subsets import check_subsets, pair_counts, pairwise_subsets, sample_task_subsets
from ._surrogate import (
    DEFAULT_L2,
    SurrogateFit,
    TaskStats,
    fit_surrogates,
    l2_scale,
    one_step_surrogates,
    task_statistics,
)

__all__ = [
    "DEFAULT_L2",
    "FINETUNE_LR",
    "FINETUNE_RECIPES",
    "FINETUNE_STEPS",
    "PAIRWISE_MAX_TASKS",
    "FinetuneResult",
    "GradTAG",
    "NetworkLossFn",
    "RealContext",
    "SubsetPlan",
    "SurrogateFit",
    "TaskStats",
    "base_losses",
    "check_subsets",
    "estimate_losses",
    "estimate_scores",
    "finetune_subset",
    "fit_surrogates",
    "higher_order_affinity",
    "l2_scale",
    "make_synthetic_features",
    "matched_ridge",
    "one_step_surrogates",
    "pair_counts",
    "pairwise_affinity",
    "pairwise_loss_tables",
    "pairwise_real_affinity",
    "pairwise_subset_losses",
    "pairwise_subsets",
    "plan_subsets",
    "real_subset_losses",
    "sample_task_subsets",
    "subset_affinity",
    "task_statistics",
]
