"""Memory: up-front per-stage estimates, the budget check, and measurement helpers.

A run stops before its first stage, naming the largest stage and a fix, when
:func:`estimate_data_memory` exceeds the budget (:func:`check_run_memory`; the CLI's
``--max-memory``). Each affinity method adds its own stages
(:meth:`graphtag.methods.AffinityMethod.memory_estimate`).

Example:
    >>> from graphtag.training import TrainConfig
    >>> est = estimate_run_memory(10_000, 80_000, 128, 40, TrainConfig())
    >>> est.peak_stage in ("features", "surrogate")
    True
    >>> check_memory_budget(est, parse_memory("64G"))  # fits: returns None
    >>> parse_memory("1.5GiB") == 3 * 2**29
    True
"""

from ._check import check_memory_budget, check_run_memory
from ._estimate import (
    STAGES,
    MemoryEstimate,
    RunSizes,
    StageMemory,
    StageParts,
    data_sizes,
    estimate_data_memory,
    estimate_run_memory,
    estimate_sizes,
    subgraph_size,
)
from ._measure import (
    PeakTracker,
    available_memory,
    configure_allocator,
    current_rss,
    peak_rss,
    release_memory,
    reset_peak_rss,
)
from ._units import format_bytes, parse_memory, parse_memory_budget

__all__ = [
    "STAGES",
    "MemoryEstimate",
    "PeakTracker",
    "RunSizes",
    "StageMemory",
    "StageParts",
    "available_memory",
    "check_memory_budget",
    "check_run_memory",
    "configure_allocator",
    "current_rss",
    "data_sizes",
    "estimate_data_memory",
    "estimate_run_memory",
    "estimate_sizes",
    "format_bytes",
    "parse_memory",
    "parse_memory_budget",
    "peak_rss",
    "release_memory",
    "reset_peak_rss",
    "subgraph_size",
]
