"""``tag``: TAG's lookahead affinity, recorded while a model trains on all tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..defaults import TAG_EVERY
from ._base import AffinityMethod

if TYPE_CHECKING:
    from ._context import AffinityContext

__all__ = ["TAGMethod"]


class TAGMethod(AffinityMethod):
    """TAG (Fifty et al., NeurIPS 2021; docs/algorithms.md §9), measured during training.

    A model is trained on all tasks with the context's recipe; every ``every``-th optimiser step
    each task's SGD lookahead step on the shared parameters (at the current learning rate,
    eval-mode forwards) is scored by every task's loss change on the same batch
    (:class:`graphtag.baselines.TAGAffinity`). ``Z[j][i]`` is averaged over the measured steps
    and symmetrised; pairs never measured together get 0 (with a note).

    Args:
        every: Measure every this many optimiser steps.
        seed: Seed of the training run.

    Example:
        >>> TAGMethod(every=5)
        TAGMethod(every=5)
    """

    name = "tag"
    summary = "TAG's lookahead affinity, recorded while a model trains on all tasks"

    def __init__(self, every: int = TAG_EVERY, seed: int = 0) -> None:
        self.every = every
        self.seed = seed

    @classmethod
    def from_config(cls, config: Any) -> TAGMethod:
        """The method with a :class:`~graphtag.pipeline.RunConfig`'s seed."""
        return cls(seed=config.seed)

    def fit(self, context: AffinityContext) -> TAGMethod:
        """Train with the context's recipe while recording; symmetrised mean lookahead."""
        import numpy as np

        from ..baselines import TAGAffinity
        from ..training import fit_model

        recorder = TAGAffinity(every=self.every, seed=self.seed)
        fit_model(
            context.data,
            context.inputs,
            None,
            context.train_config,
            seed=self.seed,
            progress=context.progress,
            step_callback=recorder.step,
            stage="tag",
        )
        z = np.asarray(recorder.affinity_, dtype=np.float64)
        missing = int(np.isnan(z).sum()) - int(np.isnan(np.diag(z)).sum())
        if missing:
            context.note(f"tag: {missing} (recipient, source) pairs never measured; set 0")
        z = np.nan_to_num(z, nan=0.0)
        affinity = (z + z.T) / 2
        np.fill_diagonal(affinity, 0.0)
        measured = int(np.asarray(recorder.counts_).max(initial=0))
        return self._set_fitted(
            affinity, (), np.zeros((0, context.num_tasks)), measured_steps=measured
        )
