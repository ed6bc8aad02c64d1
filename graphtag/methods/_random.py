"""``random``: balanced random groups, the floor every grouping method must beat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import AffinityMethod, Clusterer

if TYPE_CHECKING:
    from ._context import AffinityContext

__all__ = ["RandomMethod"]


class RandomMethod(AffinityMethod):
    """No affinity: ``k`` groups are a seeded random partition with sizes differing by <= 1.

    Args:
        seed: Master seed (each ``k`` derives its own partition).

    Example:
        >>> RandomMethod(seed=0).fit(None).partition(2, None, 5)
        [[0, 1, 4], [2, 3]]
    """

    name = "random"
    summary = "balanced random groups (no affinity; a floor for the other methods)"
    has_affinity = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @classmethod
    def from_config(cls, config: Any) -> RandomMethod:
        """The method with a :class:`~graphtag.pipeline.RunConfig`'s seed."""
        return cls(seed=config.seed)

    def fit(self, context: AffinityContext | None) -> RandomMethod:
        """Nothing to measure (``affinity_`` is ``None``)."""
        return self._set_fitted(None)

    def partition(
        self, num_groups: int, cluster: Clusterer | None, num_tasks: int
    ) -> list[list[int]]:
        """A balanced random partition of ``num_tasks`` tasks (``cluster`` is not used)."""
        from .._utils import derive_seed
        from ..grouping import random_groups_like

        k = int(num_groups)
        template = [list(range(g, num_tasks, k)) for g in range(k)]
        return random_groups_like(
            template, num_tasks, seed=derive_seed(self.seed, "random-method", k)
        )
