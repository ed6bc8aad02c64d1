"""Memory of the stages every run has: data, inputs, base training, clustering (formulas).

See :mod:`graphtag.memory._estimate` for the notation and the stage model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ._estimate import RunSizes

__all__ = [
    "StageMemory",
    "StageParts",
    "base_training_stage",
    "clustering_stage",
    "data_stage",
    "inputs_stage",
    "num_parameters",
    "subgraph_size",
]

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


def data_stage(sz: RunSizes) -> StageMemory:
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


def inputs_stage(sz: RunSizes) -> StageMemory:
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


def base_training_stage(sz: RunSizes) -> StageMemory:
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


def clustering_stage(sz: RunSizes) -> StageMemory:
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
