"""Candidate configurations: one model, k groups, one model per task, TAG's selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphtagError

__all__ = ["KINDS", "Candidate", "choose_candidate", "single_task_default"]

#: Candidate kinds, in the order of their cost (ties in the parsimony rule go to the earlier).
KINDS = ("one", "groups", "selection", "single")

#: ``single_task="auto"`` adds one model per task up to this many tasks.
SINGLE_TASK_MAX_TASKS = 40


def single_task_default(setting: str, num_tasks: int) -> bool:
    """Whether one model per task is a candidate (``"auto"``: when ``T <= 40``).

    Raises:
        GraphtagError: For a setting other than ``"auto"``, ``"on"`` or ``"off"``.
    """
    if setting not in ("auto", "on", "off"):
        raise GraphtagError(f"single_task must be 'auto', 'on' or 'off', got {setting!r}")
    return setting == "on" or (setting == "auto" and num_tasks <= SINGLE_TASK_MAX_TASKS)


@dataclass
class Candidate:
    """One way to train the tasks.

    Attributes:
        name: Short label (``"one model"``, ``"3 groups"``, ``"3 groups, refined"``, ...).
        kind: ``"one"``, ``"groups"``, ``"selection"`` or ``"single"`` (see :data:`KINDS`).
        groups: The partition of the tasks the models serve (for ``"selection"``: each task in
            the selected group that serves it by the affinity).
        selected: TAG's selected, possibly overlapping groups (``"selection"`` only): one model
            each, every task served by its best one on validation.
        predicted: Cheap predicted validation macro ROC-AUC (``None`` until scored).
        validation: Validation macro ROC-AUC of the trained models (``None`` until trained).
        source: How the candidate was made (``"sdp k=3"``, ``"local search from 3 groups"``).
    """

    name: str
    kind: str
    groups: list[list[int]]
    selected: list[list[int]] | None = None
    predicted: float | None = None
    validation: float | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GraphtagError(f"unknown candidate kind {self.kind!r}; kinds are {KINDS}")

    @property
    def models(self) -> list[list[int]]:
        """The task lists of the models this candidate trains."""
        return [list(g) for g in (self.selected if self.selected is not None else self.groups)]

    @property
    def num_models(self) -> int:
        """How many models the candidate trains."""
        return len(self.models)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for ``groups.json`` and the report)."""
        out = {
            "name": self.name,
            "kind": self.kind,
            "num_models": self.num_models,
            "groups": self.groups,
            "predicted": self.predicted,
            "validation": self.validation,
            "source": self.source,
        }
        if self.selected is not None:
            out["selected_groups"] = self.selected
        return {**out, **self.extra}


def _cost(c: Candidate) -> tuple[int, int]:
    return (c.num_models, KINDS.index(c.kind))


def choose_candidate(candidates: Sequence[Candidate], tolerance: float) -> Candidate:
    """The cheapest candidate whose validation score is within ``tolerance`` of the best.

    Only trained candidates (``validation`` set and finite) compete; cost is the number of
    models (then the kind order). A finer split must earn its extra models.

    Raises:
        GraphtagError: When no candidate has a finite validation score.

    Example:
        >>> one = Candidate("one model", "one", [[0, 1, 2]], validation=0.800)
        >>> two = Candidate("2 groups", "groups", [[0], [1, 2]], validation=0.8005)
        >>> choose_candidate([one, two], 0.001).name
        'one model'
        >>> two.validation = 0.805
        >>> choose_candidate([one, two], 0.001).name
        '2 groups'
    """
    import math

    scored = [c for c in candidates if c.validation is not None and math.isfinite(c.validation)]
    if not scored:
        raise GraphtagError(
            "cannot recommend a configuration: validation ROC-AUC is undefined for every "
            "candidate (no task has both classes among its validation nodes)"
        )
    best = max(c.validation for c in scored)  # type: ignore[type-var]
    close = [c for c in scored if c.validation >= best - tolerance]  # type: ignore[operator]
    return min(close, key=_cost)
