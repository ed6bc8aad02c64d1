"""Up-front memory estimates of a run, stage by stage, before anything is computed.

A run's memory is dominated by a few arrays whose sizes follow from the data and the
configuration. :func:`estimate_run_memory` adds the stages every run has (data, inputs, base
training, clustering) to the stages its affinity method declares
(:meth:`graphtag.methods.AffinityMethod.memory_estimate`; Grad-TAG's features and surrogates).

Notation: ``N`` nodes, ``E`` undirected edges (``edge_index`` holds ``2E`` columns), ``F`` node
features, ``T`` tasks, ``K`` SIGN hops, ``h`` hidden width, ``L`` message-passing layers, ``P``
model parameters (counted exactly on the ``meta`` device), ``B`` node batch sizes.
float32 = 4 bytes, float64/int64 = 8.

Stage model (:class:`StageMemory`): each stage *holds* some bytes afterwards (kept by later
stages) and needs some *transient* bytes while it runs. The run's peak is
``max_k (held_1 + ... + held_k + transient_k)`` (conservative: everything held is counted as
alive to the end).

===============  ===============================================================================
stage            dominant terms (bytes)
===============  ===============================================================================
data             held ``4NF + 32E + 7NT`` (x, edge_index, y float32, 3 masks); transient edge
                 cleaning ``~192E``, labels and split ``16NT`` plus split histograms per task,
                 modules imported on first use
inputs           SIGN: held ``4N(K+1)F`` (hops), transient the hop list plus the normalised
                 adjacency (``~200E``); message passing: ``8N`` degrees
base_training    held ``4P`` (the best model); transient Adam + gradients + best-state copy
                 (``16P``), label and mask copies (``~11NT``), each epoch's validation loss and
                 ROC-AUC (``~12NT`` plus ``~100`` bytes per labelled validation pair), batch
                 activations
clustering       SCS (``T <= SDP_AUTO_MAX_TASKS``): ``~120 x 8T^2``; ADMM: ``~24 x 8T^2``
===============  ===============================================================================

The estimates assume a process that called :func:`graphtag.memory.configure_allocator` and
:func:`graphtag.memory.release_memory` after every stage, as the ``graphtag`` command does.
On CUDA the parts placed on the accelerator are reported in
:attr:`MemoryEstimate.device_peak` and left out of the host peak. Calibration against measured
peaks: ``tests/unit/core/test_memory.py`` and ``experiments/bench_pipeline.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..defaults import SPLIT_RATIOS
from ..errors import GraphtagError
from ._units import format_bytes

__all__ = [
    "STAGES",
    "MemoryEstimate",
    "RunSizes",
    "StageMemory",
    "StageParts",
    "estimate_data_memory",
    "estimate_run_memory",
]

#: Stage names of a Grad-TAG run, in pipeline order (other methods have fewer stages).
STAGES = ("data", "inputs", "base_training", "features", "surrogate", "clustering")

# Calibrated constants (measured on SIGN and SAGE runs of synthetic graphs; experiments/README.md).
_TRAIN_FACTOR = 3.0  # activations kept for backward, gradients and optimiser temporaries
_SPLIT_TASK_BYTES = 288 * 2**10  # per-task split histograms (2 classes x 4096 buckets, int64)
_LAZY_IMPORT_BYTES = 20 * 2**20  # modules the first dataset load imports
_MANIFEST_IMPORT_BYTES = 8 * 2**20  # the first stage manifest (package metadata)
_SCS_FIRST_BYTES = 16 * 2**20  # building and solving the first cvxpy problem


@dataclass(frozen=True)
class StageMemory:
    """Bytes of one pipeline stage.

    Attributes:
        name: Stage name.
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


class StageParts:
    """Collects the terms of one stage, routing accelerator terms when ``on_device``.

    Example:
        >>> st = StageParts("toy", on_device=False)
        >>> st.add("weights", 4 * 1000, "held", device=True)
        >>> st.add("scratch", 100.5, "transient")
        >>> st.build().total
        4101
    """

    def __init__(self, name: str, on_device: bool) -> None:
        self.name = name
        self.on_device = on_device
        self.terms: list[tuple[str, int, str]] = []

    def add(self, label: str, num: float, kind: str, device: bool = False) -> None:
        """Add ``num`` bytes (rounded up) as ``kind`` (``"held"``/``"transient"``)."""
        place = "device-" if device and self.on_device else ""
        self.terms.append((label, max(0, math.ceil(num)), place + kind))

    def build(self) -> StageMemory:
        """The :class:`StageMemory` of the terms added so far."""

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


@dataclass(frozen=True)
class RunSizes:
    """The sizes a memory estimate is computed from (build with :meth:`from_counts`).

    Attributes:
        num_nodes: ``N``.
        num_edges: ``E`` (undirected).
        num_features: ``F``.
        num_tasks: ``T``.
        train: The :class:`~graphtag.training.TrainConfig` of every trained model.
        num_parameters: ``P`` of the base model.
        num_train_rows: ``sum_t |train_t|`` (labelled training (node, task) pairs).
        num_val_rows: ``sum_t |val_t|``.
        max_task_train_rows: ``max_t |train_t|``.
        max_task_val_rows: ``max_t |val_t|``.
        task_train_rows: ``|train_t|`` per task when known (exact per-task caps), else ``None``.
        num_labelled_rows: Labelled pairs, when given instead of the row counts.
        on_device: Whether the run computes on CUDA.
    """

    num_nodes: int
    num_edges: int
    num_features: int
    num_tasks: int
    train: Any
    num_parameters: int
    num_train_rows: int
    num_val_rows: int
    max_task_train_rows: int
    max_task_val_rows: int
    task_train_rows: tuple[int, ...] | None = None
    num_labelled_rows: int | None = None
    on_device: bool = False

    @property
    def degree(self) -> float:
        """Mean degree ``2E / N``."""
        return 2.0 * self.num_edges / self.num_nodes

    @classmethod
    def from_counts(
        cls,
        num_nodes: int,
        num_edges: int,
        num_features: int,
        num_tasks: int,
        train_config: Any,
        *,
        num_labelled_rows: int | None = None,
        num_train_rows: int | None = None,
        num_val_rows: int | None = None,
        max_task_train_rows: int | None = None,
        max_task_val_rows: int | None = None,
        task_train_rows: Sequence[int] | None = None,
        device: str | torch.device = "cpu",
    ) -> RunSizes:
        """Sizes from counts; row counts default to graphtag's per-task split of the labels.

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
        labelled = num_nodes * num_tasks if num_labelled_rows is None else int(num_labelled_rows)
        r_tr = int(SPLIT_RATIOS[0] * labelled) if num_train_rows is None else int(num_train_rows)
        r_va = int(SPLIT_RATIOS[1] * labelled) if num_val_rows is None else int(num_val_rows)
        return cls(
            num_nodes,
            num_edges,
            num_features,
            num_tasks,
            train_config,
            num_parameters(train_config.model_config, num_features, num_tasks),
            r_tr,
            r_va,
            int(max_task_train_rows) if max_task_train_rows else math.ceil(r_tr / num_tasks),
            int(max_task_val_rows) if max_task_val_rows else math.ceil(r_va / num_tasks),
            None if task_train_rows is None else tuple(int(c) for c in task_train_rows),
            num_labelled_rows,
            on_device,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready sizes (for reports and messages)."""
        return {
            "num_nodes": self.num_nodes,
            "num_edges": self.num_edges,
            "num_features": self.num_features,
            "num_tasks": self.num_tasks,
            "num_parameters": self.num_parameters,
            "train_rows": self.num_train_rows,
            "val_rows": self.num_val_rows,
            "max_task_train_rows": self.max_task_train_rows,
            "max_task_val_rows": self.max_task_val_rows,
            "model": self.train.model,
            "device": "cuda" if self.on_device else "cpu",
        }


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes of every stage of a run and the run's peak.

    Build it with :func:`estimate_run_memory` or :func:`estimate_data_memory`.

    Attributes:
        stages: One :class:`StageMemory` per stage, in pipeline order.
        sizes: The sizes and settings the estimate was computed from (JSON-ready).
        run_sizes: The :class:`RunSizes` (for re-estimation with other settings).
        method: The affinity method whose stages are included.
    """

    stages: tuple[StageMemory, ...]
    sizes: dict[str, Any] = field(default_factory=dict)
    run_sizes: RunSizes | None = None
    method: Any = None

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The names of :attr:`stages`, in order."""
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> StageMemory:
        """The :class:`StageMemory` called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise GraphtagError(f"unknown stage {name!r}; stages are {', '.join(self.stage_names)}")

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
        """Host bytes of extracting the gradient features (Grad-TAG)."""
        return self.stage("features").total

    @property
    def surrogate(self) -> int:
        """Host bytes of fitting the surrogates and estimating losses (Grad-TAG)."""
        return self.stage("surrogate").total

    @property
    def clustering(self) -> int:
        """Host bytes of clustering the affinity."""
        return self.stage("clustering").total

    def check_names(self, stages: Sequence[str] | str | None) -> tuple[str, ...]:
        """Validate stage names (``None``: all of them)."""
        if stages is None:
            return self.stage_names
        if isinstance(stages, str):
            stages = (stages,)
        bad = [x for x in stages if x not in self.stage_names]
        if bad:
            raise GraphtagError(f"unknown stage(s) {bad}; stages are {', '.join(self.stage_names)}")
        return tuple(stages)

    def _peaks(self, device: bool, stages: Sequence[str] | None = None) -> list[int]:
        """Peak so far at each of ``stages`` (default all), counting only their held bytes."""
        names = self.check_names(stages)
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
            stages: Stage names (see :attr:`stage_names`).
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
            "sizes": dict(self.sizes),
        }


def num_parameters(config: Any, num_features: int, num_tasks: int) -> int:
    """Exact parameter count of the model (built on the ``meta`` device, no RNG touched).

    Sizes too large for any tensor (the meta build overflows) get an analytic upper bound.
    """
    from ..models import build_model

    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = build_model(config, num_features, num_tasks)
        return sum(p.numel() for p in model.parameters())
    except (RuntimeError, OverflowError, ValueError):
        f, h, k = int(num_features), int(config.hidden_channels), int(config.num_hops)
        depth = k + 1 if config.name == "sign" else int(config.num_layers)
        return 3 * depth * (f + 2) * h + (depth + 3) * h * h + (h + 1) * int(num_tasks)


def subgraph_size(seeds: int, degree: float, depth: int, num_nodes: int) -> tuple[int, int]:
    """Nodes and directed edges of the ``depth``-hop in-neighbourhood of ``seeds`` (capped)."""
    nodes = float(seeds)
    frontier = float(seeds)
    for _ in range(depth):
        frontier *= max(degree, 1.0)
        nodes += frontier
    n = int(min(num_nodes, nodes))
    e = int(min(num_nodes * degree, n * degree))
    return n, e


def _data_stage(sz: RunSizes) -> StageMemory:
    """The Data object, and what building it allocates (edge cleaning, split)."""
    N, E, F, T = sz.num_nodes, sz.num_edges, sz.num_features, sz.num_tasks
    st = StageParts("data", sz.on_device)
    st.add("x", 4 * N * F, "held")
    st.add("edge_index", 32 * E, "held")
    st.add("y + masks", 7 * N * T, "held")
    st.add("edge cleaning", 6 * 32 * E + 64 * N, "transient")
    st.add("labels and split", 16 * N * T + _SPLIT_TASK_BYTES * T, "transient")
    st.add("modules imported on first use", _LAZY_IMPORT_BYTES, "held")
    return st.build()


def _inputs_stage(sz: RunSizes) -> StageMemory:
    """SIGN hops (on the compute device) or degrees."""
    N, E, F = sz.num_nodes, sz.num_edges, sz.num_features
    K = int(sz.train.num_hops)
    st = StageParts("inputs", sz.on_device)
    if sz.train.model != "sign":
        st.add("degrees", 8 * N, "held", device=True)
        st.add("x copy", 4 * N * F if sz.on_device else 0, "held", device=True)
    else:
        st.add("hops", 4 * N * (K + 1) * F, "held", device=True)
        st.add("hop list", 4 * N * (K + 1) * F, "transient", device=True)
        st.add("adjacency", 200 * E + 16 * N, "transient", device=True)
    return st.build()


def _training_activations(sz: RunSizes) -> int:
    """Bytes of one training batch's (or one exact inference batch's) activations."""
    tc, N, E, F, T = sz.train, sz.num_nodes, sz.num_edges, sz.num_features, sz.num_tasks
    h, K, L = int(tc.hidden_channels), int(tc.num_hops), int(tc.num_layers)
    bt, be = min(int(tc.batch_size), N), min(int(tc.eval_batch_size), N)
    if tc.model != "sign":
        sampled, frontier = float(bt), float(bt)
        for f in tc.resolved_fanouts:
            frontier *= f if f > 0 else max(sz.degree, 1.0)
            sampled += frontier
        n_s = int(min(N, sampled))
        e_s = int(min(2 * E, n_s * max(max(tc.resolved_fanouts), 1)))
        train_act = 4 * _TRAIN_FACTOR * (n_s * (F + 3 * h * L) + e_s * (F + h))
        n_e, e_e = subgraph_size(be, sz.degree, L, N)
        eval_act = 4 * 2.0 * (n_e * (F + 3 * h) + e_e * max(F, h)) + 24 * e_e
    else:
        width = (K + 1) * (2 * F + 3 * h) + 4 * h + 2 * T
        train_act = 4 * _TRAIN_FACTOR * bt * width
        eval_act = 4 * 1.25 * be * width
    return int(max(train_act, eval_act))


def _base_training_stage(sz: RunSizes) -> StageMemory:
    """Training the base model (and, alike, every other model of the run)."""
    N, T, P = sz.num_nodes, sz.num_tasks, sz.num_parameters
    val_nodes = N  # nodes with a validation label in some task (all of them for T >~ 10)
    st = StageParts("base_training", sz.on_device)
    st.add("model", 4 * P, "held", device=True)
    st.add("first stage manifest", _MANIFEST_IMPORT_BYTES, "held")
    st.add("optimiser + grads + best state", 16 * P, "transient", device=True)
    st.add("labels and masks", 6 * N * T + 5 * val_nodes * T, "transient")
    # Each epoch's validation logits, loss and ROC-AUC live on the compute device.
    st.add(
        "validation scores", 12 * val_nodes * T + 100 * sz.num_val_rows, "transient", device=True
    )
    if sz.on_device:
        st.add("labels on device", 5 * N * T + 2 * val_nodes * T, "transient", device=True)
    st.add("activations", _training_activations(sz), "transient", device=True)
    return st.build()


def _clustering_stage(sz: RunSizes) -> StageMemory:
    """The ``T x T`` clustering problem."""
    from ..clustering import SDP_AUTO_MAX_TASKS

    T = sz.num_tasks
    st = StageParts("clustering", sz.on_device)
    if T <= SDP_AUTO_MAX_TASKS:
        st.add("SCS problem", 120 * 8 * T * T, "transient")
        st.add("first SCS solve", _SCS_FIRST_BYTES, "held")
    else:
        st.add("ADMM iterates", 24 * 8 * T * T, "transient")
    st.add("affinity", 8 * T * T, "held")
    return st.build()


def estimate_sizes(sizes: RunSizes, method: Any = None) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of a run of ``method`` (default Grad-TAG) on ``sizes``."""
    if method is None:
        from ..methods import GradTAGMethod

        method = GradTAGMethod()
    stages = (
        _data_stage(sizes),
        _inputs_stage(sizes),
        _base_training_stage(sizes),
        *method.memory_estimate(sizes),
        _clustering_stage(sizes),
    )
    described = {**sizes.describe(), "method": method.cache_key()}
    return MemoryEstimate(stages, described, sizes, method)


def estimate_run_memory(
    num_nodes: int,
    num_edges: int,
    num_features: int,
    num_tasks: int,
    train_config: Any,
    method: Any = None,
    *,
    num_labelled_rows: int | None = None,
    num_train_rows: int | None = None,
    num_val_rows: int | None = None,
    max_task_train_rows: int | None = None,
    max_task_val_rows: int | None = None,
    device: str | torch.device = "cpu",
) -> MemoryEstimate:
    """Estimate the bytes of every stage of a run (formulas: module docstring and the method's).

    Args:
        num_nodes: ``N``.
        num_edges: ``E``, undirected edges (``edge_index`` has ``2E`` columns).
        num_features: ``F``, node feature width.
        num_tasks: ``T``.
        train_config: A :class:`~graphtag.training.TrainConfig` (model, hidden width, hops,
            batch sizes, fanouts).
        method: The :class:`~graphtag.methods.AffinityMethod` (default
            :class:`~graphtag.methods.GradTAGMethod` with its defaults), whose
            :meth:`~graphtag.methods.AffinityMethod.memory_estimate` adds its stages.
        num_labelled_rows: Labelled (node, task) pairs (default ``N T``); train and validation
            rows default to 20% of them each (graphtag's per-task split).
        num_train_rows: Exact training rows ``sum_t |train_t|`` (overrides the 20%).
        num_val_rows: Exact validation rows.
        max_task_train_rows: Largest ``|train_t|`` (default: the mean).
        max_task_val_rows: Largest ``|val_t|`` (default: the mean).
        device: Where the run computes; on CUDA the accelerator-resident terms are reported
            separately (:attr:`MemoryEstimate.device_peak`).

    Returns:
        A :class:`MemoryEstimate`.

    Raises:
        GraphtagError: For non-positive sizes.

    Example:
        >>> from graphtag.training import TrainConfig
        >>> est = estimate_run_memory(10_000, 80_000, 128, 40, TrainConfig())
        >>> est.stage_names[3:5], est.peak_stage in ("features", "surrogate")
        (('features', 'surrogate'), True)
    """
    sizes = RunSizes.from_counts(
        num_nodes,
        num_edges,
        num_features,
        num_tasks,
        train_config,
        num_labelled_rows=num_labelled_rows,
        num_train_rows=num_train_rows,
        num_val_rows=num_val_rows,
        max_task_train_rows=max_task_train_rows,
        max_task_val_rows=max_task_val_rows,
        device=device,
    )
    return estimate_sizes(sizes, method)


def data_sizes(data: Any, train_config: Any, *, device: str | torch.device = "cpu") -> RunSizes:
    """The exact :class:`RunSizes` of a loaded multi-label graph."""
    n_train = data.train_mask.sum(0)
    n_val = data.val_mask.sum(0)
    return RunSizes.from_counts(
        int(data.num_nodes),
        int(data.edge_index.size(1)) // 2,
        int(data.x.size(1)),
        int(data.y.size(1)),
        train_config,
        num_train_rows=int(n_train.sum()),
        num_val_rows=int(n_val.sum()),
        max_task_train_rows=int(n_train.max()),
        max_task_val_rows=int(n_val.max()),
        task_train_rows=n_train.tolist(),
        device=device,
    )


def estimate_data_memory(
    data: Any, train_config: Any, method: Any = None, *, device: str | torch.device = "cpu"
) -> MemoryEstimate:
    """:func:`estimate_run_memory` with the exact sizes and row counts of a loaded graph.

    Note that the data stage is then already spent; its bytes are still reported.

    Args:
        data: A multi-label graph (``x``, ``edge_index``, ``y``, ``train_mask``, ``val_mask``).
        train_config: A :class:`~graphtag.training.TrainConfig`.
        method: The affinity method (default Grad-TAG).
        device: Where the run computes.

    Returns:
        A :class:`MemoryEstimate`.
    """
    return estimate_sizes(data_sizes(data, train_config, device=device), method)
