"""The affinity-method protocol: one estimator class per way of measuring task affinity."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..base import Estimator, check_is_fitted

if TYPE_CHECKING:  # imported lazily: `import graphtag.methods` stays free of torch
    import numpy as np

    from ..memory import RunSizes, StageMemory
    from ._context import AffinityContext

__all__ = ["AffinityMethod", "Clusterer"]

#: ``cluster(affinity [T, T], num_groups) -> groups``: how a partition is made from an affinity.
Clusterer = Callable[["np.ndarray", int], list[list[int]]]


class AffinityMethod(Estimator):
    """Base class of the affinity methods registered in :data:`graphtag.methods.METHODS`.

    A method has one set of defaults (its ``__init__``), is fitted on an
    :class:`~graphtag.methods.AffinityContext` (the base model, the ``Data`` and the batches a
    Python user has) and sets:

    Attributes:
        affinity_: ``[T, T]`` float64 numpy array, symmetric, higher = better trained together
            (``None`` for methods without an affinity, such as ``random``).
        subsets_: The task subsets the method scored (``[]`` when it scores none).
        losses_: ``[M, T]`` float64 numpy array of each subset's per-task validation losses (NaN
            outside the subset; ``None`` when the method has none).
        info_: Extra JSON-ready facts for the report (convergence, measured steps, ...).

    Subclasses set the class attributes :attr:`name` (the registry key and the CLI's
    ``--method`` value), :attr:`summary` (one line for ``--help``), :attr:`uses_features`
    (whether :meth:`fit` reads ``context.features``), :attr:`has_affinity` and
    :attr:`memory_stages`, and implement
    :meth:`fit`, :meth:`from_config` and, where the method needs memory beyond base training,
    :meth:`memory_estimate`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    uses_features: ClassVar[bool] = False
    has_affinity: ClassVar[bool] = True
    #: Names of the stages :meth:`memory_estimate` returns.
    memory_stages: ClassVar[tuple[str, ...]] = ()

    def fit(self, context: AffinityContext) -> AffinityMethod:
        """Measure the affinity on ``context``; returns ``self``."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Any) -> AffinityMethod:
        """The method with the settings of a :class:`graphtag.pipeline.RunConfig`."""
        raise NotImplementedError

    def cache_key(self) -> dict[str, Any]:
        """What the fitted state depends on besides the context: name and hyperparameters."""
        return {"method": self.name, **self.get_params(deep=False)}

    def memory_estimate(self, sizes: RunSizes) -> tuple[StageMemory, ...]:
        """Bytes of the stages this method adds after base training (default: none).

        Methods that train like the base model (TAG, real fine-tunes) are covered by the base
        training stage of :func:`graphtag.memory.estimate_run_memory`.
        """
        return ()

    def partition(self, num_groups: int, cluster: Clusterer, num_tasks: int) -> list[list[int]]:
        """Exactly ``num_groups`` groups of the ``num_tasks`` tasks.

        The default clusters the fitted affinity: ``cluster(self.affinity_, num_groups)``.
        """
        check_is_fitted(self, "affinity_")
        return cluster(self.affinity_, num_groups)

    def _set_fitted(
        self,
        affinity: np.ndarray | None,
        subsets: Sequence[Sequence[int]] = (),
        losses: Any = None,
        **info: Any,
    ) -> AffinityMethod:
        import numpy as np

        if affinity is not None:
            affinity = np.asarray(affinity, dtype=np.float64)
            if not np.isfinite(affinity).all():
                from ..errors import NumericalError

                raise NumericalError(
                    f"{self.name}: the affinity matrix has NaN/inf entries",
                    stage="affinity",
                )
        self.affinity_ = affinity
        self.subsets_ = [tuple(int(t) for t in s) for s in subsets]
        if losses is not None:
            losses = np.asarray(losses.cpu() if hasattr(losses, "cpu") else losses, np.float64)
        self.losses_ = losses
        self.info_ = info
        return self
