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
        validation_tasks: Per-task validation ROC-AUC ``[T]`` of the trained models (``None``
            where undefined), for the paired comparison of :func:`choose_candidate`.
    """

    name: str
    kind: str
    groups: list[list[int]]
    selected: list[list[int]] | None = None
    predicted: float | None = None
    validation: float | None = None
    source: str = ""
    validation_tasks: list[float | None] | None = None
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
        if self.validation_tasks is not None:
            out["validation_tasks"] = self.validation_tasks
        return {**out, **self.extra}


def _cost(c: Candidate) -> tuple[int, int]:
    return (c.num_models, KINDS.index(c.kind))


def _gap(best: Candidate, other: Candidate) -> tuple[float, float]:
    """Mean and standard error of the per-task validation gap ``best - other`` (paired)."""
    import numpy as np

    if best.validation_tasks is None or other.validation_tasks is None:
        return float(best.validation) - float(other.validation), 0.0  # type: ignore[arg-type]

    def values(c: Candidate) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in c.validation_tasks or []], float)

    d = values(best) - values(other)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float(d.mean()) if d.size else 0.0, 0.0
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def choose_candidate(candidates: Sequence[Candidate], tolerance: float) -> Candidate:
    """The cheapest trained candidate not clearly worse than the best on validation.

    A candidate qualifies when its macro ROC-AUC gap to the best candidate is at most
    ``tolerance`` plus one standard error of the paired per-task gap (the one-standard-error
    rule of model selection: differences within the noise of the validation labels do not
    justify more models). Only trained candidates (``validation`` set and finite) compete; cost
    is the number of models, then the kind order.

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
    best = max(scored, key=lambda c: c.validation)  # type: ignore[arg-type, return-value]
    close = []
    for c in scored:
        gap, se = _gap(best, c)
        if gap <= tolerance + se:
            close.append(c)
    return min(close, key=_cost)
