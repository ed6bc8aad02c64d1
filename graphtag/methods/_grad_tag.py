"""``grad-tag``: task affinity from surrogates of subset fine-tunes on projected gradients."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..defaults import (
    FEATURE_NODE_BATCH,
    JVP_CHUNK,
    MAX_TASK_ROWS,
    MIN_PAIR_COUNT,
    NUM_SUBSETS,
    PROJECTION_BLOCK,
    PROJECTION_DIM,
    SUBSET_SIZE,
)
from ._base import AffinityMethod

if TYPE_CHECKING:
    from ..memory import RunSizes, StageMemory
    from ._context import AffinityContext

__all__ = ["GradTAGMethod"]

# Calibrated memory constants (experiments/README.md, "memory calibration").
_JVP_FACTOR = 1.5  # live copies of the per-direction activation width during a vmapped JVP
_TORCH_FUNC_BYTES = 24 * 2**20  # first vmap/jvp call
_SURROGATE_BYTES = 8 * 2**20  # subset lists, small tensors, a second thread's arena
_MARGIN = 1.15  # on the surrogate's temporaries


class GradTAGMethod(AffinityMethod):
    """Grad-TAG (docs/algorithms.md §3-§5): features, subset surrogates, affinity.

    Projects every labelled (node, task) pair's logit gradient of the base model to
    ``projection_dim`` dimensions (:func:`graphtag.gradients.extract_gradient_features`), fits
    a logistic surrogate per sampled task subset (:class:`graphtag.estimation.GradTAG`) and
    turns the estimated validation losses into the affinity. The subset plan follows
    :func:`graphtag.estimation.plan_subsets`.

    Args:
        projection_dim: Projected gradient dimension ``d``.
        block: Parameter block of the features and the update (``"all"`` or ``"body"``).
        max_task_rows: Most training and most validation rows per task (``None``: all).
        val_fraction: Fraction of each task's validation rows kept for loss estimates.
        num_subsets: Requested number of subsets.
        subset_size: Requested tasks per subset.
        min_pair_count: Requested co-occurrences of every pair of tasks.
        l2: Surrogate ridge; ``None``: the ridge matched to the reference fine-tune
            (:func:`graphtag.estimation.matched_ridge`, absolute); a float is relative to the
            curvature scale.
        loss: ``"linear"`` (linearised logits) or ``"network"`` (real network at theta0 + P w).
        seed: Master seed (projection and subsets derive their streams from it).

    Example:
        >>> GradTAGMethod(num_subsets=200).get_params()["num_subsets"]
        200
    """

    name = "grad-tag"
    summary = "surrogates of subset fine-tunes on projected gradients (Grad-TAG; default)"
    uses_features = True
    memory_stages = ("features", "surrogate")

    def __init__(
        self,
        projection_dim: int = PROJECTION_DIM,
        block: str = PROJECTION_BLOCK,
        max_task_rows: int | None = MAX_TASK_ROWS,
        val_fraction: float = 1.0,
        num_subsets: int = NUM_SUBSETS,
        subset_size: int = SUBSET_SIZE,
        min_pair_count: int = MIN_PAIR_COUNT,
        l2: float | None = None,
        loss: str = "linear",
        seed: int = 0,
    ) -> None:
        self.projection_dim = projection_dim
        self.block = block
        self.max_task_rows = max_task_rows
        self.val_fraction = val_fraction
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.min_pair_count = min_pair_count
        self.l2 = l2
        self.loss = loss
        self.seed = seed

    @classmethod
    def from_config(cls, config: Any) -> GradTAGMethod:
        """The method with a :class:`~graphtag.pipeline.RunConfig`'s estimator settings.

        Its parameters are exactly :class:`~graphtag.pipeline.EstimatorConfig`'s fields and
        ``seed``, so every estimator setting reaches the method.
        """
        from dataclasses import asdict

        return cls(**asdict(config.estimator), seed=config.seed)

    def cache_key(self) -> dict[str, Any]:
        """Name, hyperparameters and the rules that resolve ``l2=None`` and the subset plan."""
        key = super().cache_key()
        key["plan_rule"] = "plan_subsets: cap, grow to cover pairs, then lower the guarantee"
        if self.l2 is None:
            key["l2_rule"] = "matched_ridge(FINETUNE_LR, FINETUNE_STEPS)"
        return key

    def feature_settings(self) -> dict[str, Any]:
        """What the gradient features depend on (besides the base model and data)."""
        from .._utils import derive_seed

        return {
            "projection_dim": self.projection_dim,
            "block": self.block,
            "val_fraction": self.val_fraction,
            "max_task_rows": self.max_task_rows,
            "seed": derive_seed(self.seed, "projection"),
        }

    def extract_features(self, context: AffinityContext) -> Any:
        """The projected gradient features of ``context.model`` (``context.features`` if set)."""
        if context.features is not None:
            return context.features
        from ..gradients import GradientProjector, extract_gradient_features

        fs = self.feature_settings()
        projector = GradientProjector(dim=fs["projection_dim"], block=fs["block"], seed=fs["seed"])
        return extract_gradient_features(
            context.model,
            context.inputs,
            context.data,
            projector.fit(context.model),
            val_fraction=fs["val_fraction"],
            max_task_rows=fs["max_task_rows"],
            seed=fs["seed"],
            progress=context.progress,
        )

    def estimator(self, num_tasks: int, context: AffinityContext | None = None) -> Any:
        """The :class:`graphtag.estimation.GradTAG` of this method's resolved subset plan."""
        from .._utils import derive_seed
        from ..estimation import GradTAG, plan_subsets

        plan = plan_subsets(num_tasks, self.subset_size, self.num_subsets, self.min_pair_count)
        if context is not None:
            for text in plan.notes:
                context.note(text)
        return GradTAG(
            subset_size=plan.subset_size,
            num_subsets=plan.num_subsets,
            min_pair_count=plan.min_pair_count,
            loss=self.loss,
            seed=derive_seed(self.seed, "subsets"),
            device=None if context is None else context.device,
            l2=self.l2,  # None: GradTAG's matched ridge (absolute)
        )

    def fit(self, context: AffinityContext) -> GradTAGMethod:
        """Features (or ``context.features``), surrogates of the planned subsets, affinity."""
        import numpy as np

        features = self.extract_features(context)
        est = self.estimator(features.num_tasks, context).fit(features)
        self._set_fitted(
            est.affinity_,
            est.subsets_,
            est.losses_,
            converged=int(np.asarray(est.converged_).sum()),
            excluded=int(np.asarray(est.excluded_).sum()),
        )
        return self

    def _rows(self, sz: RunSizes) -> tuple[int, int, int, int]:
        """Kept ``(R_tr, R_va, n_tr, n_va)``: rows after ``val_fraction`` and the cap."""
        T, vf, cap = sz.num_tasks, float(self.val_fraction), self.max_task_rows
        r_va = min(sz.num_val_rows, math.ceil(vf * sz.num_val_rows) + 2 * T)
        n_va = min(sz.max_task_val_rows, math.ceil(vf * sz.max_task_val_rows) + 2)
        r_tr, n_tr = sz.num_train_rows, sz.max_task_train_rows
        if cap is not None:
            cap = int(cap)
            if sz.task_train_rows is not None:
                r_tr = sum(min(c, cap) for c in sz.task_train_rows)
            r_tr, n_tr = min(r_tr, T * cap), min(n_tr, cap)
            r_va, n_va = min(r_va, T * cap), min(n_va, cap)
        return r_tr, r_va, n_tr, n_va

    def memory_estimate(self, sizes: RunSizes) -> tuple[StageMemory, ...]:
        """The ``features`` and ``surrogate`` stages (formulas below).

        ``features``: held ``R (4d + 25)`` (features, offsets, labels, task, node, split);
        transient the row index ``~41R``, label copies ``10NT``, the cached directions ``4Pd``
        (when small), one node batch of JVP activations ``1.5 x 4cBw`` (``c`` directions per
        JVP, ``w`` the activation width per node) and its gradients ``8BTd``.
        ``surrogate``: the largest of three phases (statistics, Newton, losses) over float64
        per-task blocks of the kept rows ``8(T+1) n (d + 4)``, their gather in row chunks,
        statistics ``8Td^2`` and per-batch logits and ``d x d`` factors, sized by the
        estimator's temporary budget.
        """
        return (self._features_stage(sizes), self._surrogate_stage(sizes))

    def _features_stage(self, sz: RunSizes) -> StageMemory:
        from ..gradients._jvp import DEFAULT_MAX_CACHE_BYTES
        from ..memory import StageParts, subgraph_size

        N, F, T = sz.num_nodes, sz.num_features, sz.num_tasks
        P, d, tc = sz.num_parameters, int(self.projection_dim), sz.train
        h, K, L = int(tc.hidden_channels), int(tc.num_hops), int(tc.num_layers)
        r_tr, r_va, _, _ = self._rows(sz)
        rows = r_tr + r_va
        st = StageParts("features", sz.on_device)
        st.add("features", 4 * rows * d, "held")
        st.add("row metadata", 25 * rows, "held")
        st.add("row index", 41 * rows, "transient")
        st.add("label copies", 10 * N * T, "transient")
        cache = 4 * P * d
        directions = cache if cache <= DEFAULT_MAX_CACHE_BYTES else 4 * JVP_CHUNK * P
        st.add("directions", directions, "transient", device=True)
        b = min(FEATURE_NODE_BATCH, N)
        if tc.model != "sign":
            n_sub, e_sub = subgraph_size(b, sz.degree, L, N)
            act = 4 * _JVP_FACTOR * JVP_CHUNK * (n_sub * (F + 2 * h) + e_sub * max(F, h))
            act += 24 * e_sub + 8 * n_sub
        else:
            width = 2 * (K + 1) * h + 3 * h + 2 * F + 2 * T
            act = 4 * _JVP_FACTOR * JVP_CHUNK * b * width
        st.add("JVP activations", act, "transient", device=True)
        st.add("batch gradients", 8 * b * T * d, "transient", device=True)
        st.add("torch.func on first use", _TORCH_FUNC_BYTES, "held")
        return st.build()

    def _plan_size(self, num_tasks: int) -> tuple[int, int]:
        if num_tasks < 2:
            return 1, 1
        from ..estimation import plan_subsets

        plan = plan_subsets(num_tasks, self.subset_size, self.num_subsets, self.min_pair_count)
        return plan.subset_size, plan.num_subsets

    def _surrogate_stage(self, sz: RunSizes) -> StageMemory:
        from ..estimation._surrogate import SURROGATE_BUDGET as budget
        from ..memory import StageParts

        T, d = sz.num_tasks, int(self.projection_dim)
        r_tr, r_va, n_tr, n_va = self._rows(sz)
        s, M = self._plan_size(T)
        blocks_tr = 8 * (T + 1) * n_tr * (d + 4) + 8 * (T + 1) * d
        gather = 12 * min(r_tr * d, budget) + 40 * r_tr  # row chunks of the budget
        stats = 8 * T * d * (d + 1)
        bs = max(1, min(M, int(min(budget / (2.0 * max(n_tr, 1) * s), budget / (3.0 * d * d)))))
        mean = bs * s / T
        m_slots = int(min(bs, math.ceil(mean + 4 * math.sqrt(mean) + 1)))
        z = 8 * (T + 1) * n_tr * m_slots  # logits of a batch; sigmoid/softplus make a second
        slots = 8 * (T + 1) * m_slots * d  # per-slot weights and gradient sums
        factors = 8 * bs * d * d  # one [B_S, d, d] inverse Hessian (three while factorising)
        hessian = 16 * min(budget, min(bs, 4) * s * n_tr * d)  # exact-Hessian refreshes
        newton = 8 * bs * 12 * d + max(
            3 * factors, factors + 2 * z + 2 * slots, factors + hessian + 8 * min(bs, 4) * d * d
        )
        stat_tmp = 16 * min(budget, (T + 1) * n_tr * d) + stats
        blocks_va = 8 * (T + 1) * n_va * (d + 4) + 8 * (T + 1) * d
        bv = max(1, min(M, int(budget / (2.0 * max(n_va, 1) * s))))
        mean_v = bv * s / T
        m_v = int(min(bv, math.ceil(mean_v + 4 * math.sqrt(mean_v) + 1)))
        val_tmp = 2 * 8 * (T + 1) * n_va * m_v + 2 * 8 * (T + 1) * m_v * d
        results = 8 * M * (d + 2 * T + 4)
        phases = {
            "statistics": blocks_tr + _MARGIN * max(gather, stat_tmp),
            "newton": stats + blocks_tr + _MARGIN * max(gather, newton),
            "losses": stats
            + results
            + blocks_va
            + _MARGIN * max(12 * min(r_va * d, budget) + 40 * r_va, val_tmp),
        }
        phase = max(phases, key=lambda k: phases[k])
        st = StageParts("surrogate", sz.on_device)
        if sz.on_device:
            host = 4 * max(r_tr, r_va) * d + 40 * max(r_tr, r_va)
            st.add("gathered rows", host, "transient")
            st.add(f"{phase} (blocks, batches)", phases[phase], "transient", device=True)
        else:
            st.add("training blocks", blocks_tr if phase != "losses" else 0, "transient")
            st.add("validation blocks", blocks_va if phase == "losses" else 0, "transient")
            st.add("statistics", stats if phase != "statistics" else 0, "transient")
            rest = phases[phase] - sum(b for _, b, _ in st.terms)
            st.add(f"{phase} temporaries", rest, "transient")
        st.add("subset results", results, "held")
        st.add("bookkeeping and allocator arenas", _SURROGATE_BYTES, "transient")
        return st.build()
