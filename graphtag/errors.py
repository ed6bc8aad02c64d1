"""Exceptions raised for user mistakes.

Every error a user can cause (a bad dataset spec, a malformed file, a task index out of range, ...)
is raised as a :class:`GraphtagError` with a message that says what went wrong, where, and how to
fix it. The command line turns these into one line on stderr and exit status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DataFormatError", "GraphtagError", "NumericalError"]


class GraphtagError(ValueError):
    """A user-facing error: bad input, bad configuration or an impossible request."""


class DataFormatError(GraphtagError):
    """A data file is missing, unreadable or malformed.

    Args:
        message: What is wrong and how to fix it.
        path: The offending file, if any.
        line: The 1-based line number in ``path``, if known.
    """

    def __init__(self, message: str, *, path: object = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class NumericalError(GraphtagError):
    """Training or estimation diverged (NaN, inf or exploding values) at a named stage.

    The message is self-contained (stage, epoch or subset, the offending tasks, a hint); the
    keyword attributes repeat the key facts for programs.

    Args:
        message: What diverged, where, and how to fix it.
        stage: The stage label (e.g. ``"train"``, ``"gradient features"``), if known.
        tasks: Dataset task indices involved (first few), if known.
        subsets: Task subsets involved (first few), if known.

    Example:
        >>> err = NumericalError("loss is nan", stage="base", tasks=[3])
        >>> str(err), err.stage, err.tasks, err.subsets
        ('loss is nan', 'base', [3], [])
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        tasks: Sequence[int] = (),
        subsets: Sequence[Sequence[int]] = (),
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.tasks = [int(t) for t in tasks]
        self.subsets = [tuple(int(t) for t in s) for s in subsets]


def preview(items: Sequence[object], limit: int = 5) -> str:
    """``"a, b, c"`` of the first ``limit`` items, with ``" ... (N in all)"`` when cut.

    Example:
        >>> preview([1, 2, 3, 4], limit=2)
        '1, 2 ... (4 in all)'
    """
    shown = ", ".join(str(x) for x in list(items)[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")
