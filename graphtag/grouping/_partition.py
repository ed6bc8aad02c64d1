"""Groupings: how an affinity matrix becomes task groups (the CLI's ``--grouping`` registry)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GraphtagError

__all__ = ["GROUPINGS", "Grouping", "get_grouping"]


def _sdp(affinity: np.ndarray, num_groups: int, seed: int) -> list[list[int]]:
    from ..clustering import SDPClustering
    from ..defaults import SDP_SOLVER

    return SDPClustering(num_groups=num_groups, solver=SDP_SOLVER, seed=seed).fit(affinity).groups_


def _spectral(affinity: np.ndarray, num_groups: int, seed: int) -> list[list[int]]:
    from ..clustering import SpectralTaskClustering

    return SpectralTaskClustering(num_groups=num_groups, seed=seed).fit(affinity).groups_


def _select(affinity: np.ndarray, num_groups: int) -> Any:
    from ..baselines import select_groups

    return select_groups(affinity, max_groups=num_groups)


def _tag_selection(affinity: np.ndarray, num_groups: int, seed: int) -> list[list[int]]:
    sel = _select(affinity, num_groups)
    groups = [[t for t, a in enumerate(sel.assignment) if a == g] for g in range(num_groups)]
    return [g for g in groups if g]


@dataclass(frozen=True)
class Grouping:
    """One way of forming groups from a ``[T, T]`` affinity.

    Attributes:
        name: Registry key (``--grouping``).
        summary: One line for ``--help``.
        cluster: ``cluster(affinity, num_groups, seed) -> groups``, a partition of the tasks into
            at most ``num_groups`` groups.
        select: For overlapping groupings, ``select(affinity, num_groups)`` returns the chosen,
            possibly overlapping groups (a :class:`graphtag.baselines.SelectionResult`);
            ``cluster`` then puts each task in its best selected group.
    """

    name: str
    summary: str
    cluster: Callable[[np.ndarray, int, int], list[list[int]]]
    select: Callable[[np.ndarray, int], Any] | None = None

    @property
    def overlapping(self) -> bool:
        """Whether the chosen groups may overlap (each task served by its best group)."""
        return self.select is not None


#: The groupings by name (the CLI's ``--grouping`` choices, in this order).
GROUPINGS: dict[str, Grouping] = {
    g.name: g
    for g in (
        Grouping("sdp", "the clustering SDP, rounded to exactly k groups (default)", _sdp),
        Grouping("spectral", "spectral clustering of the affinity", _spectral),
        Grouping(
            "tag-selection",
            "TAG's network selection: at most k possibly overlapping groups",
            _tag_selection,
            _select,
        ),
    )
}


def get_grouping(name: str) -> Grouping:
    """The grouping registered as ``name``.

    Raises:
        GraphtagError: For an unknown name.

    Example:
        >>> get_grouping("spectral").overlapping, get_grouping("tag-selection").overlapping
        (False, True)
    """
    try:
        return GROUPINGS[name]
    except (KeyError, TypeError):
        raise GraphtagError(
            f"unknown grouping {name!r}; choose from {', '.join(GROUPINGS)}"
        ) from None
