"""The unit of the stage runner: a key, outputs written atomically, a load of finished outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["Stage"]


class Stage:
    """One pipeline stage: a key, outputs written atomically, and a load of finished outputs.

    Subclasses set :attr:`name`, :attr:`outputs` and :attr:`memory_stages` (the stages of
    :func:`graphtag.memory.estimate_run_memory` the stage accounts for) and implement
    :meth:`key`, :meth:`compute` (which writes the outputs and returns the value) and
    :meth:`load` (which reads them back). Stages without outputs are recomputed in each
    process and memoised.
    """

    name: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ()
    memory_stages: ClassVar[tuple[str, ...]] = ()
    #: Whether the runner keeps the value in memory (large values are reloaded when needed).
    keep: ClassVar[bool] = True

    def __init__(self, run: Run) -> None:
        self.run = run

    def key(self) -> dict[str, Any]:
        """Everything the outputs depend on (hashed into the stage manifest)."""
        raise NotImplementedError

    def compute(self) -> Any:
        """Compute the stage, write its outputs, return its value."""
        raise NotImplementedError

    def load(self) -> Any:
        """The value of a finished stage, read from its outputs."""
        raise NotImplementedError
