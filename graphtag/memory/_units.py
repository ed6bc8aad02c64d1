"""Memory sizes as text: ``--max-memory`` values and human-readable byte counts."""

from __future__ import annotations

import re

from ..errors import GraphtagError

__all__ = ["format_bytes", "parse_memory", "parse_memory_budget"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 2**10,
    "kib": 2**10,
    "m": 2**20,
    "mb": 2**20,
    "mib": 2**20,
    "g": 2**30,
    "gb": 2**30,
    "gib": 2**30,
    "t": 2**40,
    "tb": 2**40,
    "tib": 2**40,
}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_memory(text: str) -> int:
    """Parse a memory size: ``"512M"``, ``"16G"``, ``"1.5GiB"``, ``"2048"`` (bytes).

    Units are binary and case-insensitive (``K``/``KB``/``KiB`` = 1024 bytes, likewise
    ``M``, ``G``, ``T``), as in Slurm's ``--mem`` and Docker's ``--memory``; no unit (or ``B``)
    means bytes.

    Args:
        text: The size.

    Returns:
        Bytes (rounded down), at least 1.

    Raises:
        GraphtagError: For anything else (negative, zero, unknown unit, not a number).

    Example:
        >>> parse_memory("512M"), parse_memory("16g"), parse_memory("1.5GiB")
        (536870912, 17179869184, 1610612736)
    """
    if not isinstance(text, str):
        raise GraphtagError(f"memory size must be a string like '16G', got {text!r}")
    match = _MEMORY_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise GraphtagError(
            f"cannot read memory size {text!r}; use a number with an optional binary unit, "
            "e.g. 512M, 16G, 1.5GiB or 2048 (bytes)"
        )
    value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise GraphtagError(f"memory size {text!r} is zero; give a positive size such as 16G")
    return value


def parse_memory_budget(text: str | int) -> int | str:
    """Parse a ``--max-memory`` value: ``"auto"``, ``"off"`` or a size for :func:`parse_memory`.

    Args:
        text: ``auto`` (the memory available when the check runs), ``off`` (no check), a size
            such as ``16G`` (a limit on the whole process), or an already parsed budget.

    Returns:
        ``"auto"``, ``"off"`` or bytes.

    Raises:
        GraphtagError: For anything else.

    Example:
        >>> parse_memory_budget("AUTO"), parse_memory_budget("off"), parse_memory_budget("1K")
        ('auto', 'off', 1024)
    """
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    if not isinstance(text, str):
        raise GraphtagError(f"--max-memory must be auto, off or a size such as 16G, got {text!r}")
    if text.strip().lower() in ("auto", "off"):
        return text.strip().lower()
    try:
        return parse_memory(text)
    except GraphtagError as exc:
        raise GraphtagError(f"--max-memory: {exc}, or auto, or off") from None


def format_bytes(num: float) -> str:
    """``1536 -> '1.5 KiB'`` (binary units, three significant digits)."""
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(value) < 1024 or unit == "EiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.0f} {unit}" if abs(value) >= 100 else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} EiB"  # pragma: no cover
