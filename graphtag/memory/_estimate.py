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
from ._stages import (
    StageMemory,
    StageParts,
    base_training_stage,
    clustering_stage,
    data_stage,
    inputs_stage,
    num_parameters,
    subgraph_size,
)
from ._units import format_bytes

__all__ = [
    "STAGES",
    "MemoryEstimate",
    "RunSizes",
    "StageMemory",
    "StageParts",
    "estimate_data_memory",
    "estimate_run_memory",
    "num_parameters",
    "subgraph_size",
]

#: Stage names of a Grad-TAG run, in pipeline order (other methods have fewer stages).
STAGES = ("data", "inputs", "base_training", "features", "surrogate", "clustering")


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


def estimate_sizes(sizes: RunSizes, method: Any = None) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of a run of ``method`` (default Grad-TAG) on ``sizes``."""
    if method is None:
        from ..methods import GradTAGMethod

        method = GradTAGMethod()
    stages = (
        data_stage(sizes),
        inputs_stage(sizes),
        base_training_stage(sizes),
        *method.memory_estimate(sizes),
        clustering_stage(sizes),
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
