"""Measuring memory: free memory, resident set size, peaks, and the glibc allocator settings."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import GraphtagError

__all__ = [
    "PeakTracker",
    "available_memory",
    "configure_allocator",
    "current_rss",
    "peak_rss",
    "release_memory",
    "reset_peak_rss",
]


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    m = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_available() -> int | None:
    """Free bytes under this process's cgroup memory limit (v2 or v1), if it has one."""
    root = Path("/sys/fs/cgroup")
    candidates = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[0] == "0":
                candidates.append((root / parts[2].lstrip("/"), "v2"))
    except OSError:
        pass
    candidates += [(root, "v2"), (root / "memory", "v1")]
    for folder, kind in candidates:
        limit_file, usage_file, key = (
            ("memory.max", "memory.current", "inactive_file")
            if kind == "v2"
            else ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        )
        limit = _read_int(folder / limit_file)
        usage = _read_int(folder / usage_file)
        if limit is None or usage is None or limit >= 2**60:
            continue
        inactive = 0
        try:
            m = re.search(rf"^{key} (\d+)", (folder / "memory.stat").read_text(), re.MULTILINE)
            inactive = int(m.group(1)) if m else 0
        except OSError:
            pass
        return max(0, limit - usage + inactive)
    return None


def available_memory() -> int:
    """Bytes that new allocations can use now.

    ``MemAvailable`` of ``/proc/meminfo`` (``psutil`` where there is no ``/proc``), lowered to
    the free part of this process's cgroup memory limit when it has one (containers, Slurm).

    Raises:
        GraphtagError: When neither source exists (pass ``--max-memory`` explicitly).
    """
    value = _meminfo_available()
    if value is None:
        try:
            import psutil  # optional; not a dependency
        except ImportError:
            raise GraphtagError(
                "cannot read the available memory on this system (no /proc/meminfo, no psutil); "
                "give the budget explicitly with --max-memory, e.g. --max-memory 16G"
            ) from None
        value = int(psutil.virtual_memory().available)
    limit = _cgroup_available()
    return min(value, limit) if limit is not None else value


def _status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def current_rss() -> int:
    """Resident set size of this process in bytes (``/proc/self/statm``; 0 if unknown)."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
        return resident * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil
        except ImportError:
            return 0
        return int(psutil.Process().memory_info().rss)


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) of this process; ``False`` if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def peak_rss() -> int | None:
    """Peak resident set size of this process since start or the last reset, in bytes.

    The kernel's ``VmHWM`` counter (Linux); ``None`` where it cannot be read.
    """
    return _status_kib("VmHWM")


def reset_peak_rss() -> bool:
    """Reset :func:`peak_rss` to the current RSS (Linux ``clear_refs``); ``False`` if refused."""
    return _reset_peak()


def _libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018  (glibc only)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def configure_allocator(mmap_threshold: int = 2**20) -> bool:
    """Serve CPU allocations of at least ``mmap_threshold`` bytes by ``mmap`` (glibc).

    glibc raises its mmap threshold adaptively (up to 32 MiB) after large blocks are freed, so
    PyTorch's large temporaries then come from the heap, where they fragment and stay resident.
    With a fixed threshold, large blocks return to the OS when freed and peaks follow
    :func:`graphtag.memory.estimate_run_memory` (measurements: experiments/README.md). This
    changes a process-wide setting: applications (the ``graphtag`` command, benchmarks) call it
    once at start; the library never does.

    Args:
        mmap_threshold: Bytes (glibc caps it at 32 MiB on 64-bit systems).

    Returns:
        Whether the setting was applied (``False`` where glibc is not the allocator).
    """
    libc = _libc()
    if libc is None:
        return False
    m_mmap_threshold = -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, int(mmap_threshold)))


def release_memory() -> int:
    """Return freed heap memory to the operating system (glibc ``malloc_trim``); bytes released.

    PyTorch's CPU tensors come from ``malloc``; glibc keeps freed blocks below its (adaptive, up
    to 32 MiB) mmap threshold in the heap, so without this a finished stage's temporaries stay
    resident and the next stage's peak adds to them. Call it between stages. A no-op (returning
    0) where glibc is not the allocator.
    """
    libc = _libc()
    if libc is None:
        return 0
    before = current_rss()
    libc.malloc_trim(0)
    return max(0, before - current_rss())


class PeakTracker:
    """Measure the peak RSS growth of a block of code (``with PeakTracker() as p: ...``).

    Uses the kernel's peak counter where it can be reset (Linux ``clear_refs``; exact), else a
    thread sampling :func:`current_rss` every ``interval`` seconds (may miss short peaks).

    Attributes:
        start: RSS in bytes when the block started.
        peak: Peak RSS in bytes during the block.
        growth: ``peak - start``.
        seconds: Wall-clock seconds of the block.
        method: ``"hwm"`` or ``"sampling"``.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = self.growth = 0
        self.seconds = 0.0
        self.method = "hwm"

    def __enter__(self) -> PeakTracker:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start = current_rss()
        self.peak = self.start
        if not _reset_peak():
            self.method = "sampling"
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, current_rss())
        else:
            self.peak = max(self.start, _status_kib("VmHWM") or 0, current_rss())
        self.growth = self.peak - self.start
