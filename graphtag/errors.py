"""Exceptions raised for user mistakes.

Every error a user can cause (a bad dataset spec, a malformed file, a task index out of range, ...)
is raised as a :class:`GraphtagError` with a message that says what went wrong, where, and how to
fix it. The command line turns these into one line on stderr and exit status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

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
    """Training or estimation diverged (NaN or inf) at a named stage and task."""
