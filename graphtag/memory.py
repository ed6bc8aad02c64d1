"""Memory estimates of a Grad-TAG run, a budget check, and RSS measurement helpers.

A run's memory is dominated by a few arrays whose sizes follow from the data and the
configuration, so :func:`estimate_run_memory` predicts each stage's bytes *before* anything is
computed, and :func:`check_memory_budget` stops with one clear error (what, where, how to fix)
instead of letting the operating system kill the process hours later.

Notation: ``N`` nodes, ``E`` undirected edges (``edge_index`` holds ``2E`` columns), ``F`` node
features, ``T`` tasks, ``K`` SIGN hops, ``h`` hidden width, ``L`` message-passing layers, ``P``
model parameters (counted exactly on the ``meta`` device), ``d`` projection dimension, ``c = 32``
directions per vmapped JVP, ``B`` node batch sizes, ``R_tr``/``R_va`` kept train/validation
(node, task) rows of the gradient features, ``n_tr``/``n_va`` the largest per-task row counts
(both at most the estimator's ``max_task_rows`` per task),
``M`` subsets of ``s`` tasks. float32 = 4 bytes, float64/int64 = 8.

Stage model (:class:`StageMemory`): each stage *holds* some bytes afterwards (kept by later
stages) and needs some *transient* bytes while it runs. The run's peak is
``max_k (held_1 + ... + held_k + transient_k)``: everything earlier stages hold is counted as
still alive (conservative: the features are in fact released after the surrogate stage).

===============  ===============================================================================
stage            dominant terms (bytes)
===============  ===============================================================================
data             held ``4NF + 32E + 7NT`` (x, edge_index, y float32, 3 masks); transient edge
                 cleaning ``~192E``, labels and split ``16NT`` plus 288 KiB per task (split
                 histograms), modules imported on first use (20 MiB)
inputs           SIGN: held ``4N(K+1)F`` (hops), transient the hop list plus the normalised
                 adjacency (``~200E``); message passing: ``8N`` degrees
base_training    held ``4P`` (the best model) and what the first stage manifest loads (8 MiB;
                 versions come from package metadata); transient Adam + gradients + best-state
                 copy (``16P``), label and mask copies (``~11NT``), the validation loss and
                 ROC-AUC each epoch (``~12NT`` plus ``~100`` bytes per labelled validation pair:
                 the ROC-AUC sorts the labelled pairs only), batch activations
features         held ``R (4d + 25)`` (features, offsets, labels, task, node, split); transient
                 row index ``~41R``, label copies ``10NT``, the cached directions ``4Pd`` (when
                 at most 256 MiB), one node batch of JVP activations ``1.5 x 4cBw`` (``w`` the
                 activation width per node: SIGN ``2(K+1)h + 3h + 2F + 2T``; message passing
                 scales with the batch's k-hop subgraph), its gradients ``8BTd``, and
                 torch.func's first use (24 MiB)
surrogate        the largest of three phases: statistics, Newton, losses. Float64 per-task
                 blocks of the training rows ``8(T+1) n_tr (d + 4)``, their gather in row
                 chunks ``12 min(R_tr d, 2^25)``, statistics ``8Td^2``, per subset batch of
                 ``B_S`` (sized by the estimator to 2^25-element temporaries) the logits
                 ``2 x 8(T+1) n_tr m`` (``m`` subsets per task in a batch), ``8 B_S d^2``
                 inverse Hessians (three while factorising) and exact-Hessian row gathers of up
                 to 4 subsets; then the validation blocks ``8(T+1) n_va (d + 4)`` and their
                 gather; temporaries get a 15% margin, plus 8 MiB of bookkeeping
clustering       SCS (``T <= 150``): ``~120 x 8T^2`` plus 16 MiB for the first solve; ADMM:
                 ``~24 x 8T^2``
===============  ===============================================================================

Allocator. The estimates describe a process that called :func:`configure_allocator` (large
CPU blocks from ``mmap``, returned to the OS when freed) and :func:`release_memory` after every
stage, as the ``graphtag`` command does. With glibc's default adaptive threshold, freed
temporaries stay in a fragmented heap: the gradient-feature stage then peaked 1.7-2x above
these figures.

Calibration. Measured peak RSS growth per stage (two threads, allocator as above) over
estimate: synthetic SIGN runs of 2,500-8,000 nodes and 10-60 tasks were within 1.12-1.45 for
the run's peak so far at every stage; BlogCatalog with the default configuration (one thread,
every large block mmapped) 1.12 data, 1.44 inputs, 2.04 base training, 1.21 features, 1.16
surrogate. ``tests/unit/core/test_memory.py`` checks estimate >= measured and within 3x for the
large stages; ``experiments/bench_pipeline.py`` prints both at growing sizes. Estimates bound
what the library allocates, not Python objects or libraries imported by other code.

On CUDA (``device="cuda"``) the parts placed on the accelerator (hops, models and activations,
JVP batches, surrogate blocks) are reported in :attr:`MemoryEstimate.device_peak` and left out
of the host peak.

Example:
    >>> from graphtag.pipeline import EstimatorConfig
    >>> from graphtag.training import TrainConfig
    >>> est = estimate_run_memory(10_000, 80_000, 128, 40, TrainConfig(), EstimatorConfig())
    >>> est.peak_stage in ("features", "surrogate")
    True
    >>> check_memory_budget(est, parse_memory("64G"))  # fits: returns None
    >>> parse_memory("1.5GiB") == 3 * 2**29
    True
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .errors import GraphtagError

__all__ = [
    "STAGES",
    "MemoryEstimate",
    "PeakTracker",
    "StageMemory",
    "available_memory",
    "check_memory_budget",
    "check_run_memory",
    "configure_allocator",
    "current_rss",
    "estimate_data_memory",
    "estimate_run_memory",
    "format_bytes",
    "parse_memory",
    "parse_memory_budget",
    "peak_rss",
    "release_memory",
    "reset_peak_rss",
]

#: Stage names, in pipeline order.
STAGES = ("data", "inputs", "base_training", "features", "surrogate", "clustering")

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

# Defaults of the code paths the estimate follows (graphtag.gradients.extract_gradient_features,
# graphtag.gradients.DEFAULT_MAX_CACHE_BYTES, graphtag.estimation's _BUDGET, SDP_AUTO_MAX_TASKS).
_NODE_BATCH = 1024
_CHUNK = 32
_CACHE_BYTES = 2**28
_BUDGET = 2**25  # elements of one surrogate temporary
_SDP_AUTO_MAX_TASKS = 150
_SPLIT_TRAIN = 0.2  # per_task_split ratios (0.2, 0.2, 0.6)
_SPLIT_VAL = 0.2

# Calibrated constants (measured on SIGN and SAGE runs of synthetic graphs; see module doc).
_JVP_FACTOR = 1.5  # live copies of the per-direction activation width during a vmapped JVP
_TRAIN_FACTOR = 3.0  # activations kept for backward, gradients and optimiser temporaries
_SPLIT_TASK_BYTES = 288 * 2**10  # per-task split histograms (2 classes x 4096 buckets, int64)
_LAZY_IMPORT_BYTES = 20 * 2**20  # modules the first dataset load imports (measured ~16 MiB)
_TORCH_FUNC_BYTES = 24 * 2**20  # first vmap/jvp call (measured ~25 MiB)
#: The first stage manifest (after the base model). graphtag._utils.versions() reads package
#: metadata; when it imported cvxpy, scipy and sklearn instead, this cost ~64 MiB for good.
_MANIFEST_IMPORT_BYTES = 8 * 2**20
_SCS_FIRST_BYTES = 16 * 2**20  # building and solving the first cvxpy problem (~13 MiB)
_SURROGATE_BYTES = 8 * 2**20  # subset lists, small tensors, a second thread's arena
_MARGIN = 1.15  # on the surrogate's temporaries (measured 1.00-1.05 of the formula)


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


# ----------------------------------------------------------------------------------------------
# Estimates


@dataclass(frozen=True)
class StageMemory:
    """Bytes of one pipeline stage.

    Attributes:
        name: Stage name (one of :data:`STAGES`).
        held: Host bytes the stage leaves allocated for later stages.
        transient: Extra host bytes needed only while the stage runs.
        device_held: Like ``held``, on the accelerator (0 on CPU).
        device_transient: Like ``transient``, on the accelerator (0 on CPU).
        parts: ``(label, bytes, kind)`` terms, ``kind`` in ``held``/``transient`` and prefixed
            ``device-`` for accelerator terms (for :meth:`MemoryEstimate.describe`).
    """

    name: str
    held: int
    transient: int
    device_held: int = 0
    device_transient: int = 0
    parts: tuple[tuple[str, int, str], ...] = ()

    @property
    def total(self) -> int:
        """``held + transient`` (host): the stage's own peak growth."""
        return self.held + self.transient

    @property
    def device_total(self) -> int:
        """``device_held + device_transient``."""
        return self.device_held + self.device_transient


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes of every stage of a Grad-TAG run and the run's peak.

    Build it with :func:`estimate_run_memory` or :func:`estimate_data_memory`.

    Attributes:
        stages: One :class:`StageMemory` per stage, in :data:`STAGES` order.
        sizes: The sizes and settings the estimate was computed from (for re-estimation).
    """

    stages: tuple[StageMemory, ...]
    sizes: dict[str, Any] = field(default_factory=dict)

    def stage(self, name: str) -> StageMemory:
        """The :class:`StageMemory` called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise GraphtagError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")

    @property
    def data(self) -> int:
        """Host bytes of loading the dataset."""
        return self.stage("data").total

    @property
    def inputs(self) -> int:
        """Host bytes of the model inputs (SIGN hops)."""
        return self.stage("inputs").total

    @property
    def base_training(self) -> int:
        """Host bytes of training the base model."""
        return self.stage("base_training").total

    @property
    def features(self) -> int:
        """Host bytes of extracting the gradient features."""
        return self.stage("features").total

    @property
    def surrogate(self) -> int:
        """Host bytes of fitting the surrogates and estimating losses."""
        return self.stage("surrogate").total

    @property
    def clustering(self) -> int:
        """Host bytes of clustering the affinity."""
        return self.stage("clustering").total

    def _peaks(self, device: bool, stages: Sequence[str] | None = None) -> list[int]:
        """Peak so far at each of ``stages`` (default all), counting only their held bytes."""
        names = _check_stage_names(stages)
        held, out = 0, []
        for s in self.stages:
            if s.name not in names:
                continue
            h, t = (s.device_held, s.device_transient) if device else (s.held, s.transient)
            out.append(held + h + t)
            held += h
        return out

    def peak_of(self, stages: Sequence[str] | None = None, *, device: bool = False) -> int:
        """Peak bytes of running only ``stages`` (default all), in pipeline order.

        Stages left out are taken as done and released (their held bytes are already in the
        process, e.g. ``("inputs", ...)`` after the data was loaded) or as not run.

        Args:
            stages: Stage names (see :data:`STAGES`).
            device: Accelerator bytes instead of host bytes.
        """
        return max(self._peaks(device, stages), default=0)

    @property
    def peak(self) -> int:
        """Peak host bytes of the run (growth above the process at the start)."""
        return self.peak_of()

    @property
    def device_peak(self) -> int:
        """Peak accelerator bytes (0 on CPU)."""
        return self.peak_of(device=True)

    @property
    def peak_stage(self) -> str:
        """The stage at which the host peak is reached."""
        peaks = self._peaks(False)
        return self.stages[peaks.index(max(peaks))].name

    @property
    def largest_stage(self) -> str:
        """The stage with the largest own bytes (``held + transient``)."""
        return max(self.stages, key=lambda s: s.total).name

    def describe(self) -> str:
        """A table of every stage (held, transient, cumulative peak) and its main terms."""
        peaks = self._peaks(False)
        lines = [
            f"{'stage':<14} {'held':>10} {'transient':>10} {'peak so far':>12}  main terms",
        ]
        for s, p in zip(self.stages, peaks):
            terms = sorted(s.parts, key=lambda t: -t[1])[:3]
            text = ", ".join(f"{label} {format_bytes(b)}" for label, b, _ in terms if b > 0)
            lines.append(
                f"{s.name:<14} {format_bytes(s.held):>10} {format_bytes(s.transient):>10} "
                f"{format_bytes(p):>12}  {text}"
            )
        lines.append(f"peak {format_bytes(self.peak)} (at {self.peak_stage})")
        if self.device_peak:
            lines.append(f"accelerator peak {format_bytes(self.device_peak)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per-stage bytes, the peak and the sizes."""
        return {
            "stages": {
                s.name: {
                    "held": s.held,
                    "transient": s.transient,
                    "device_held": s.device_held,
                    "device_transient": s.device_transient,
                }
                for s in self.stages
            },
            "peak": self.peak,
            "peak_stage": self.peak_stage,
            "device_peak": self.device_peak,
            "sizes": {k: v for k, v in self.sizes.items() if k not in ("train", "estimator")},
        }


def _check_stage_names(stages: Sequence[str] | None) -> tuple[str, ...]:
    if stages is None:
        return STAGES
    if isinstance(stages, str):
        stages = (stages,)
    bad = [x for x in stages if x not in STAGES]
    if bad:
        raise GraphtagError(f"unknown stage(s) {bad}; stages are {', '.join(STAGES)}")
    return tuple(stages)


class _Parts:
    """Collects the terms of one stage, routing accelerator terms when ``on_device``."""

    def __init__(self, name: str, on_device: bool) -> None:
        self.name = name
        self.on_device = on_device
        self.terms: list[tuple[str, int, str]] = []

    def add(self, label: str, num: float, kind: str, device: bool = False) -> None:
        place = "device-" if device and self.on_device else ""
        self.terms.append((label, max(0, math.ceil(num)), place + kind))

    def build(self) -> StageMemory:
        def total(kind: str) -> int:
            return sum(b for _, b, k in self.terms if k == kind)

        return StageMemory(
            self.name,
            total("held"),
            total("transient"),
            total("device-held"),
            total("device-transient"),
            tuple(self.terms),
        )


def _num_parameters(config: Any, num_features: int, num_tasks: int) -> int:
    """Exact parameter count of the model (built on the ``meta`` device, no RNG touched).

    Sizes too large for any tensor (the meta build overflows) get an analytic upper bound.
    """
    from .models import build_model

    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = build_model(config, num_features, num_tasks)
        return sum(p.numel() for p in model.parameters())
    except (RuntimeError, OverflowError, ValueError):
        f, h, k = int(num_features), int(config.hidden_channels), int(config.num_hops)
        depth = k + 1 if config.name == "sign" else int(config.num_layers)
        return 3 * depth * (f + 2) * h + (depth + 3) * h * h + (h + 1) * int(num_tasks)


def _subgraph_size(seeds: int, degree: float, depth: int, num_nodes: int) -> tuple[int, int]:
    """Nodes and directed edges of the ``depth``-hop in-neighbourhood of ``seeds`` (capped)."""
    nodes = float(seeds)
    frontier = float(seeds)
    for _ in range(depth):
        frontier *= max(degree, 1.0)
        nodes += frontier
    n = int(min(num_nodes, nodes))
    e = int(min(num_nodes * degree, n * degree))
    return n, e


def estimate_run_memory(
    num_nodes: int,
    num_edges: int,
    num_features: int,
    num_tasks: int,
    train_config: Any,
    estimator_config: Any,
    *,
    num_labelled_rows: int | None = None,
    num_train_rows: int | None = None,
    num_val_rows: int | None = None,
    max_task_train_rows: int | None = None,
    max_task_val_rows: int | None = None,
    device: str | torch.device = "cpu",
) -> MemoryEstimate:
    """Estimate the bytes of every stage of a Grad-TAG run (formulas: module docstring).

    Args:
        num_nodes: ``N``.
        num_edges: ``E``, undirected edges (``edge_index`` has ``2E`` columns).
        num_features: ``F``, node feature width.
        num_tasks: ``T``.
        train_config: A :class:`~graphtag.training.TrainConfig` (model, hidden width, hops,
            batch sizes, fanouts).
        estimator_config: A :class:`~graphtag.pipeline.EstimatorConfig` (``projection_dim``,
            ``num_subsets``, ``subset_size``, ``val_fraction``, ``loss``).
        num_labelled_rows: Labelled (node, task) pairs (default ``N T``); train and validation
            rows default to 20% of them each (graphtag's per-task split).
        num_train_rows: Exact training rows ``sum_t |train_t|`` (overrides the 20%).
        num_val_rows: Exact validation rows (before the ``val_fraction`` subsample).
        max_task_train_rows: Largest ``|train_t|`` (default: the mean, ``R_tr / T``).
        max_task_val_rows: Largest ``|val_t|`` (default: the mean).
        device: Where the run computes; on CUDA the accelerator-resident terms are reported
            separately (:attr:`MemoryEstimate.device_peak`).

    Returns:
        A :class:`MemoryEstimate`.

    Raises:
        GraphtagError: For non-positive sizes.
    """
    for name, value in (
        ("num_nodes", num_nodes),
        ("num_edges", num_edges),
        ("num_features", num_features),
        ("num_tasks", num_tasks),
    ):
        low = 0 if name == "num_edges" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise GraphtagError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(device, str) and device == "auto":
        on_device = torch.cuda.is_available()
    else:
        on_device = torch.device(device).type == "cuda"
    N, E, F, T = num_nodes, num_edges, num_features, num_tasks
    tc, ec = train_config, estimator_config
    d = int(ec.projection_dim)
    h = int(tc.hidden_channels)
    mp = tc.model != "sign"
    K, L = int(tc.num_hops), int(tc.num_layers)
    P = _num_parameters(tc.model_config, F, T)
    degree = 2.0 * E / N
    labelled = N * T if num_labelled_rows is None else int(num_labelled_rows)
    r_tr = int(num_train_rows) if num_train_rows is not None else int(_SPLIT_TRAIN * labelled)
    r_va_all = int(num_val_rows) if num_val_rows is not None else int(_SPLIT_VAL * labelled)
    vf = float(getattr(ec, "val_fraction", 1.0))
    r_va = min(r_va_all, math.ceil(vf * r_va_all) + 2 * T)
    n_tr = int(max_task_train_rows) if max_task_train_rows else math.ceil(r_tr / T)
    n_va_all = int(max_task_val_rows) if max_task_val_rows else math.ceil(r_va_all / T)
    n_va = min(n_va_all, math.ceil(vf * n_va_all) + 2)
    cap = getattr(ec, "max_task_rows", None)
    if cap is not None:  # the per-task row cap of the gradient features
        r_tr, n_tr = min(r_tr, T * int(cap)), min(n_tr, int(cap))
        r_va, n_va = min(r_va, T * int(cap)), min(n_va, int(cap))
    rows = r_tr + r_va
    s = max(2, min(int(ec.subset_size), max(2, T // 2))) if T >= 2 else 1
    M = int(min(int(ec.num_subsets), math.comb(T, s))) if T >= 2 else 1
    val_nodes = N  # nodes with a validation label in some task (all of them for T >~ 10)
    stages = []

    # -- data: the Data object, and what building it allocates (edge cleaning, split).
    st = _Parts("data", on_device)
    st.add("x", 4 * N * F, "held")
    st.add("edge_index", 32 * E, "held")
    st.add("y + masks", 7 * N * T, "held")
    st.add("edge cleaning", 6 * 32 * E + 64 * N, "transient")
    st.add("labels and split", 16 * N * T + _SPLIT_TASK_BYTES * T, "transient")
    st.add("modules imported on first use", _LAZY_IMPORT_BYTES, "held")
    stages.append(st.build())

    # -- inputs: SIGN hops (on the compute device) or degrees.
    st = _Parts("inputs", on_device)
    if mp:
        st.add("degrees", 8 * N, "held", device=True)
        st.add("x copy", 4 * N * F if on_device else 0, "held", device=True)
    else:
        st.add("hops", 4 * N * (K + 1) * F, "held", device=True)
        st.add("hop list", 4 * N * (K + 1) * F, "transient", device=True)
        st.add("adjacency", 200 * E + 16 * N, "transient", device=True)
    stages.append(st.build())

    # -- base training.
    st = _Parts("base_training", on_device)
    st.add("model", 4 * P, "held", device=True)
    st.add("first stage manifest", _MANIFEST_IMPORT_BYTES, "held")
    st.add("optimiser + grads + best state", 16 * P, "transient", device=True)
    st.add("labels and masks", 6 * N * T + 5 * val_nodes * T, "transient")
    # Each epoch's validation logits, loss and ROC-AUC live on the compute device.
    st.add("validation scores", 12 * val_nodes * T + 100 * r_va_all, "transient", device=True)
    if on_device:
        st.add("labels on device", 5 * N * T + 2 * val_nodes * T, "transient", device=True)
    bt, be = min(int(tc.batch_size), N), min(int(tc.eval_batch_size), N)
    if mp:
        fanouts = tc.resolved_fanouts
        sampled, frontier = float(bt), float(bt)
        for f in fanouts:
            frontier *= f if f > 0 else max(degree, 1.0)
            sampled += frontier
        n_s = int(min(N, sampled))
        e_s = int(min(2 * E, n_s * max(max(fanouts), 1)))
        train_act = 4 * _TRAIN_FACTOR * (n_s * (F + 3 * h * L) + e_s * (F + h))
        n_e, e_e = _subgraph_size(be, degree, L, N)
        eval_act = 4 * 2.0 * (n_e * (F + 3 * h) + e_e * max(F, h)) + 24 * e_e
    else:
        width = (K + 1) * (2 * F + 3 * h) + 4 * h + 2 * T
        train_act = 4 * _TRAIN_FACTOR * bt * width
        eval_act = 4 * 1.25 * be * width
    st.add("activations", max(train_act, eval_act), "transient", device=True)
    stages.append(st.build())

    # -- features: kept rows, the row index, one node batch of batched JVPs.
    st = _Parts("features", on_device)
    st.add("features", 4 * rows * d, "held")
    st.add("row metadata", 25 * rows, "held")
    st.add("row index", 41 * rows, "transient")
    st.add("label copies", 10 * N * T, "transient")
    cache = 4 * P * d
    st.add(
        "directions", cache if cache <= _CACHE_BYTES else 4 * _CHUNK * P, "transient", device=True
    )
    b = min(_NODE_BATCH, N)
    if mp:
        n_sub, e_sub = _subgraph_size(b, degree, L, N)
        act = 4 * _JVP_FACTOR * _CHUNK * (n_sub * (F + 2 * h) + e_sub * max(F, h))
        act += 24 * e_sub + 8 * n_sub
    else:
        width = 2 * (K + 1) * h + 3 * h + 2 * F + 2 * T
        act = 4 * _JVP_FACTOR * _CHUNK * b * width
    st.add("JVP activations", act, "transient", device=True)
    st.add("batch gradients", 8 * b * T * d, "transient", device=True)
    st.add("torch.func on first use", _TORCH_FUNC_BYTES, "held")
    stages.append(st.build())

    # -- surrogate: statistics, batched Newton, validation losses (float64 blocks).
    st = _Parts("surrogate", on_device)
    blocks_tr = 8 * (T + 1) * n_tr * (d + 4) + 8 * (T + 1) * d
    gather = 12 * min(r_tr * d, _BUDGET) + 40 * r_tr  # row chunks of 2^25 elements
    stats = 8 * T * d * (d + 1)
    by_logits = _BUDGET / (2.0 * max(n_tr, 1) * s)
    by_factors = _BUDGET / (3.0 * d * d)
    bs = max(1, min(M, int(min(by_logits, by_factors))))
    mean = bs * s / T
    m_slots = int(min(bs, math.ceil(mean + 4 * math.sqrt(mean) + 1)))
    z = 8 * (T + 1) * n_tr * m_slots  # logits of a batch; sigmoid/softplus make a second
    slots = 8 * (T + 1) * m_slots * d  # per-slot weights and gradient sums
    factors = 8 * bs * d * d  # one [B_S, d, d] inverse Hessian (three while factorising)
    hessian = 16 * min(_BUDGET, min(bs, 4) * s * n_tr * d)  # exact-Hessian refreshes (rare)
    newton = 8 * bs * 12 * d + max(
        3 * factors, factors + 2 * z + 2 * slots, factors + hessian + 8 * min(bs, 4) * d * d
    )
    stat_tmp = 16 * min(_BUDGET, (T + 1) * n_tr * d) + stats
    blocks_va = 8 * (T + 1) * n_va * (d + 4) + 8 * (T + 1) * d
    bv = max(1, min(M, int(_BUDGET / (2.0 * max(n_va, 1) * s))))
    mean_v = bv * s / T
    m_v = int(min(bv, math.ceil(mean_v + 4 * math.sqrt(mean_v) + 1)))
    val_tmp = 2 * 8 * (T + 1) * n_va * m_v + 2 * 8 * (T + 1) * m_v * d
    results = 8 * M * (d + 2 * T + 4)
    phases = {
        "statistics": blocks_tr + _MARGIN * max(gather, stat_tmp),
        "newton": stats + blocks_tr + _MARGIN * max(gather, newton),
        "losses": stats
        + results
        + blocks_va
        + _MARGIN * max(12 * min(r_va * d, _BUDGET) + 40 * r_va, val_tmp),
    }
    phase = max(phases, key=lambda k: phases[k])
    if on_device:
        host = 4 * max(r_tr, r_va) * d + 40 * max(r_tr, r_va)
        st.add("gathered rows", host, "transient")
        st.add(f"{phase} (blocks, batches)", phases[phase], "transient", device=True)
    else:
        st.add("training blocks", blocks_tr if phase != "losses" else 0, "transient")
        st.add("validation blocks", blocks_va if phase == "losses" else 0, "transient")
        st.add("statistics", stats if phase != "statistics" else 0, "transient")
        rest = phases[phase] - sum(b for _, b, _ in st.terms)
        st.add(f"{phase} temporaries", rest, "transient")
    st.add("subset results", results, "held")
    st.add("bookkeeping and allocator arenas", _SURROGATE_BYTES, "transient")
    stages.append(st.build())

    # -- clustering: T x T problems.
    st = _Parts("clustering", on_device)
    if T <= _SDP_AUTO_MAX_TASKS:
        st.add("SCS problem", 120 * 8 * T * T, "transient")
        st.add("first SCS solve", _SCS_FIRST_BYTES, "held")
    else:
        st.add("ADMM iterates", 24 * 8 * T * T, "transient")
    st.add("affinity", 8 * T * T, "held")
    stages.append(st.build())

    sizes = {
        "num_nodes": N,
        "num_edges": E,
        "num_features": F,
        "num_tasks": T,
        "num_parameters": P,
        "projection_dim": d,
        "train_rows": r_tr,
        "val_rows": r_va,
        "max_task_train_rows": n_tr,
        "max_task_val_rows": n_va_all,
        "num_subsets": M,
        "subset_size": s,
        "model": tc.model,
        "device": "cuda" if on_device else "cpu",
        "num_labelled_rows": num_labelled_rows,
        "num_val_rows_all": r_va_all,
        "train": tc,
        "estimator": ec,
    }
    return MemoryEstimate(tuple(stages), sizes)


def estimate_data_memory(
    data: Any, train_config: Any, estimator_config: Any, *, device: str | torch.device = "cpu"
) -> MemoryEstimate:
    """:func:`estimate_run_memory` with the exact sizes and row counts of a loaded graph.

    Note that the data stage is then already spent; its bytes are still reported.

    Args:
        data: A multi-label graph (``x``, ``edge_index``, ``y``, ``train_mask``, ``val_mask``).
        train_config: A :class:`~graphtag.training.TrainConfig`.
        estimator_config: A :class:`~graphtag.pipeline.EstimatorConfig`.
        device: Where the run computes.

    Returns:
        A :class:`MemoryEstimate`.
    """
    train = data.train_mask
    val = data.val_mask
    n_train = train.sum(0)
    n_val = val.sum(0)
    cap = getattr(estimator_config, "max_task_rows", None)
    if cap is not None:  # exact kept training rows; the validation cap applies after val_fraction
        n_train = n_train.clamp(max=int(cap))
    return estimate_run_memory(
        int(data.num_nodes),
        int(data.edge_index.size(1)) // 2,
        int(data.x.size(1)),
        int(data.y.size(1)),
        train_config,
        estimator_config,
        num_train_rows=int(n_train.sum()),
        num_val_rows=int(n_val.sum()),
        max_task_train_rows=int(n_train.max()),
        max_task_val_rows=int(n_val.max()),
        device=device,
    )


def _re_estimate(estimate: MemoryEstimate, **changes: Any) -> MemoryEstimate:
    sz = estimate.sizes
    train, est = sz["train"], sz["estimator"]
    train_changes = {k: v for k, v in changes.items() if hasattr(train, k) and k != "device"}
    est_changes = {k: v for k, v in changes.items() if hasattr(est, k)}
    return estimate_run_memory(
        sz["num_nodes"],
        sz["num_edges"],
        sz["num_features"],
        sz["num_tasks"],
        replace(train, **train_changes),
        replace(est, **est_changes),
        num_labelled_rows=sz["num_labelled_rows"],
        num_train_rows=sz["train_rows"],
        num_val_rows=sz["num_val_rows_all"],
        max_task_train_rows=sz["max_task_train_rows"],
        max_task_val_rows=sz["max_task_val_rows"],
        device=sz["device"],
    )


def _largest_fitting(
    estimate: MemoryEstimate,
    name: str,
    current: int,
    budget: int,
    floor: int,
    stages: Sequence[str] | None,
) -> int | None:
    """Largest value of integer setting ``name`` below ``current`` whose peak fits ``budget``."""
    lo, hi = floor, current - 1

    def fits(value: int) -> bool:
        return _re_estimate(estimate, **{name: value}).peak_of(stages) <= budget

    if hi < lo or not fits(lo):
        return None
    while lo < hi:  # every peak grows with the settings searched here
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_memory_budget(
    estimate: MemoryEstimate,
    max_bytes: int,
    *,
    in_use: int = 0,
    stages: Sequence[str] | None = None,
    source: str = "--max-memory",
) -> None:
    """Raise when the estimated peak does not fit in ``max_bytes``.

    The job fits when ``in_use + estimate.peak_of(stages) <= max_bytes``. Pass ``in_use =
    current_rss()`` when ``max_bytes`` limits the whole process (``--max-memory``); leave it 0
    when ``max_bytes`` is what is still free (:func:`available_memory`). After the data is
    loaded, pass the remaining stages (e.g. ``STAGES[1:]``): the data is then in ``in_use`` or
    no longer in the free memory.

    Args:
        estimate: From :func:`estimate_run_memory` or :func:`estimate_data_memory`.
        max_bytes: The budget in bytes.
        in_use: Bytes the process already holds.
        stages: The stages still to run (default all).
        source: Where the budget came from, for the message (e.g. ``"--max-memory"``).

    Raises:
        GraphtagError: Naming the largest stage with its main terms, the estimate, the budget
            and concrete fixes (a smaller setting that fits, or the budget the job needs).
    """
    names = _check_stage_names(stages)
    need = in_use + estimate.peak_of(names)
    if need <= max_bytes:
        return
    big = max((estimate.stage(n) for n in names), key=lambda st: st.total)
    sz = estimate.sizes
    room = max_bytes - in_use
    terms = sorted(big.parts, key=lambda t: -t[1])[:2]
    top = terms[0][0] if terms else ""
    fixes: list[str] = []
    if in_use >= max_bytes:
        pass  # nothing fits: only a larger budget helps
    elif big.name in ("features", "surrogate"):
        if top in ("JVP activations", "batch gradients"):
            h = _largest_fitting(
                estimate, "hidden_channels", sz["train"].hidden_channels, room, 8, names
            )
            if h is not None:
                fixes.append(f"--hidden-channels {h} (now {sz['train'].hidden_channels})")
            fixes.append("a smaller node_batch_size or chunk_size of the gradient features")
        d = _largest_fitting(estimate, "projection_dim", sz["projection_dim"], room, 8, names)
        if d is not None:
            fixes.append(f"--projection-dim {d} (now {sz['projection_dim']})")
        if top in ("features", "row metadata", "validation blocks", "losses temporaries"):
            fixes.append("fewer validation rows (EstimatorConfig.val_fraction < 1)")
    elif big.name in ("base_training", "inputs"):
        h = _largest_fitting(
            estimate, "hidden_channels", sz["train"].hidden_channels, room, 8, names
        )
        if h is not None:
            fixes.append(f"--hidden-channels {h} (now {sz['train'].hidden_channels})")
        if big.name == "inputs" and sz["model"] == "sign":
            fixes.append(
                f"fewer SIGN hops (TrainConfig.num_hops, now {sz['train'].num_hops}) or a "
                "message-passing model (--model sage)"
            )
        else:
            fixes.append("a smaller TrainConfig.batch_size or eval_batch_size")
    elif big.name == "clustering":
        fixes.append("--grouping spectral")
    elif big.name == "data":
        fixes.append("a smaller dataset (fewer tasks or nodes)")
    fixes.append(f"a budget of at least {format_bytes(math.ceil(need * 1.1))} ({source})")
    used = f", of which {format_bytes(in_use)} already in use" if in_use else ""
    raise GraphtagError(
        f"not enough memory: the estimated peak is {format_bytes(need)} but the budget is "
        f"{format_bytes(max_bytes)} ({source}{used}); the largest stage is {big.name} "
        f"({format_bytes(big.total)}: "
        + ", ".join(f"{label} {format_bytes(b)}" for label, b, _ in terms)
        + f"; N={sz['num_nodes']}, T={sz['num_tasks']}"
        + (f", d={sz['projection_dim']}" if {"features", "surrogate"} & set(names) else "")
        + "). "
        + "Try "
        + "; or ".join(fixes)
    )


def check_run_memory(
    data: Any,
    train_config: Any,
    estimator_config: Any,
    budget: int | str = "auto",
    *,
    stages: Sequence[str] | None = STAGES[1:],
    device: str | torch.device = "cpu",
) -> MemoryEstimate:
    """Estimate a run on loaded ``data`` and stop early if it cannot fit (the pipeline's check).

    Call it after loading the data and before the first expensive stage. With ``budget="auto"``
    the remaining ``stages`` must fit in :func:`available_memory`; with a size, the whole
    process must (:func:`current_rss` now plus the remaining peak); ``"off"`` only estimates.
    On CUDA the accelerator peak must also fit in the device's free memory.

    Args:
        data: The loaded multi-label graph.
        train_config: A :class:`~graphtag.training.TrainConfig`.
        estimator_config: A :class:`~graphtag.pipeline.EstimatorConfig`.
        budget: ``"auto"``, ``"off"`` or bytes (see :func:`parse_memory_budget`).
        stages: Stages still to run (default: all after ``data``; ``train`` needs only
            ``("inputs", "base_training")``).
        device: Where the run computes.

    Returns:
        The :class:`MemoryEstimate`.

    Raises:
        GraphtagError: When the estimate exceeds the budget (see :func:`check_memory_budget`).
    """
    if isinstance(budget, str) and budget not in ("auto", "off"):
        budget = parse_memory_budget(budget)
    estimate = estimate_data_memory(data, train_config, estimator_config, device=device)
    if budget == "off":
        return estimate
    if budget == "auto":
        check_memory_budget(
            estimate,
            available_memory(),
            stages=stages,
            source="memory available now; --max-memory SIZE or off overrides it",
        )
    else:
        check_memory_budget(
            estimate, int(budget), in_use=current_rss(), stages=stages, source="--max-memory"
        )
    if estimate.sizes["device"] == "cuda" and torch.cuda.is_available():
        dev = torch.device(device) if not (isinstance(device, str) and device == "auto") else None
        free, _ = torch.cuda.mem_get_info(dev)
        need = estimate.peak_of(stages, device=True)
        if need > free:
            names = _check_stage_names(stages)
            big = max((estimate.stage(n) for n in names), key=lambda st: st.device_total)
            raise GraphtagError(
                f"not enough accelerator memory: the estimated peak is {format_bytes(need)} but "
                f"{format_bytes(free)} is free on {device}; the largest stage is {big.name} "
                f"({format_bytes(big.device_total)}). Try a smaller --projection-dim or "
                "--hidden-channels, or --device cpu"
            )
    return estimate


# ----------------------------------------------------------------------------------------------
# Measurement


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
    PyTorch's large temporaries then come from the heap, where they fragment and stay resident:
    on a SIGN run the gradient-feature stage peaked 1.7-2x above its live tensors. With a fixed
    threshold, large blocks are returned to the OS when freed and peaks follow the estimates
    (same run: 1.0-1.2x), at no measurable speed cost. This changes a process-wide setting:
    applications (the ``graphtag`` command, benchmarks) call it once at start; the library
    never does.

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
