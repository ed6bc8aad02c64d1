"""Exact node batches from what a user has: graphtag inputs, a PyG graph, a PyG loader.

Gradient features and network losses need each node's logits exactly as full-graph inference
gives them. A batching is trusted without a check only when it is exact by construction: a
whole PyG graph, or graphtag's own inputs (:func:`graphtag.models.prepare_inputs`) with the
graphtag model they were prepared for. Any other batching (graphtag's inputs with a model of
another architecture, a ``NeighborLoader`` / ``NodeLoader``, an iterable of PyG mini-batches) is
checked once: the logits of the first batch's seed nodes are compared with full-graph
inference, and a mismatch is refused (or, with ``inexact_ok=True``, reported with a warning).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .._utils import derive_seed, torch_generator
from ..errors import GraphtagError
from ..loader._loader import _SeededGlobalRNG
from ..models._batch import ForwardKwargs, NodeBatch, call_model, eval_mode

__all__ = ["EXACT_TOL", "BatchSource", "check_exact", "node_batches", "plan_batches"]

BatchSource = Any  # GraphInputs, a PyG Data or loader, a callable or an iterable of batches

#: Largest accepted ``max |logit difference|`` between a batch and full-graph inference,
#: relative to ``max(1, max |full-graph logit|)`` (float32 rounding of a reordered sum stays
#: orders of magnitude below).
EXACT_TOL = 1e-4
_CHECK_SEEDS = 256  # seed nodes of the first batch compared with full-graph inference

_LOADER_FIX = (
    "sample every neighbour for as many hops as the model has layers (num_neighbors=[-1] * "
    "num_layers), or pass the Data itself (full-graph batches); a model that normalises by "
    "node degree on each batch (PyG's GCN) is exact only on the full graph"
)


@dataclass
class BatchPlan:
    """How to produce the batches of a node set and the full-graph reference to check them.

    Attributes:
        make: ``(nodes [n], batch_size) -> iterable`` of ``NodeBatch`` or PyG ``Data`` batches.
        reference: ``seeds -> NodeBatch`` of the whole graph whose outputs are ``seeds``'
            logits, or ``None`` when no full graph is known.
        trusted: Exact by construction (no check).
        what: The batching, for messages.
        fix: How to make it exact, for messages.
        verify_declared: Check batches even when they declare ``exact=True`` (graphtag's
            inputs used with a model they were not prepared for).
        x: Node features of the whole graph for PyG batches that carry none.
        verified: Result of the check, once done (batches of later calls are not re-checked).
    """

    make: Callable[[Tensor, int], Iterable[Any]]
    reference: Callable[[Tensor], NodeBatch] | None
    trusted: bool
    what: str
    fix: str
    verify_declared: bool = False
    x: Tensor | None = None
    verified: bool | None = None


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _graph_reference(
    graph: Data, forward_kwargs: ForwardKwargs, device: torch.device, where: str
) -> Callable[[Tensor], NodeBatch]:
    """``seeds -> NodeBatch`` of the whole PyG graph (moved to ``device`` once)."""
    full = NodeBatch.from_pyg(graph, forward_kwargs=forward_kwargs, where=where).to(device)

    def reference(seeds: Tensor) -> NodeBatch:
        seeds = seeds.to(device)
        return NodeBatch(seeds, full.args, seeds, True, full.kwargs)

    return reference


def _rebuilt_loader(loader: Any, seed: int) -> Callable[[Tensor, int], Iterable[Data]]:
    """``(nodes, batch_size) -> batches`` of a PyG ``NodeLoader`` re-aimed at ``nodes``.

    The user's data and sampler are kept; only the seed nodes and batch size change. Batches
    are drawn as :func:`graphtag.loader.make_neighbor_loader` draws them, inside
    :func:`torch.random.fork_rng` (PyG's compiled samplers draw from the global generator), so
    the caller's global RNG state is untouched.
    """
    from torch_geometric.loader import NodeLoader

    def make(nodes: Tensor, batch_size: int) -> Iterable[Data]:
        rebuilt = NodeLoader(
            loader.data,
            node_sampler=loader.node_sampler,
            input_nodes=nodes.cpu(),
            batch_size=batch_size,
            shuffle=False,
            transform=loader.transform,
            num_workers=0,
            generator=torch_generator(seed, "rebuilt_loader"),
        )
        return _SeededGlobalRNG(rebuilt, derive_seed(seed, "rebuilt_loader"))

    return make


def plan_batches(
    source: BatchSource,
    model: nn.Module,
    data: Any = None,
    *,
    forward_kwargs: ForwardKwargs = (),
    seed: int = 0,
    where: str = "graphtag",
) -> BatchPlan:
    """Describe how to batch ``source`` for ``model`` and how to check the batching.

    Args:
        source: One of: graphtag's inputs (:func:`graphtag.models.prepare_inputs`); a PyG
            ``Data`` (one full-graph batch, the model called as ``model(x, edge_index,
            **kwargs)``); a PyG ``NodeLoader`` / ``NeighborLoader`` (its data and sampler,
            re-aimed at the requested nodes); a callable ``(nodes, batch_size) -> iterable``; or
            an iterable of batches. Batches may be ``NodeBatch`` or PyG ``Data`` objects.
        model: The model the batches feed.
        data: The graph (``x``, ``edge_index``), the full-graph reference for PyG mini-batches
            of a callable or an iterable.
        forward_kwargs: Attributes of PyG batches passed as keyword arguments.
        seed: Seed of a re-aimed loader's sampling.
        where: The calling function, named in error messages.

    Returns:
        The :class:`BatchPlan`.
    """
    device = _model_device(model)
    if isinstance(source, Data) and source.get("n_id") is not None:
        source = [source]  # one mini-batch (checked like those of a loader)
    if isinstance(source, Data):
        full = NodeBatch.from_pyg(source, forward_kwargs=forward_kwargs, where=where).to(device)

        def whole(nodes: Tensor, batch_size: int) -> list[NodeBatch]:
            ids = nodes.to(device)
            return [NodeBatch(ids, full.args, ids, True, full.kwargs)]

        return BatchPlan(whole, None, True, "the full graph", "")
    inner = getattr(source, "loader", source)  # graphtag's seeded wrapper of a NeighborLoader
    if hasattr(inner, "node_sampler") and hasattr(inner, "data"):
        graph = inner.data
        if not isinstance(graph, Data):
            raise GraphtagError(
                f"{where}: the loader's data is a {type(graph).__name__}; graphtag needs a "
                "homogeneous torch_geometric.data.Data (x, edge_index)"
            )
        return BatchPlan(
            _rebuilt_loader(inner, seed),
            _graph_reference(graph, forward_kwargs, device, where),
            False,
            f"the {type(inner).__name__} mini-batches",
            _LOADER_FIX,
            x=graph.get("x"),
        )
    if hasattr(source, "batches"):

        def exact(nodes: Tensor, batch_size: int) -> Iterable[NodeBatch]:
            return source.batches(nodes, batch_size, train=False)

        config = getattr(source, "config", None)
        fix = (
            f"prepare_inputs(data, {config!r}) builds exact batches only for graphtag's own "
            "model of that configuration; for another model pass the Data itself (full-graph "
            "batches) or a loader that matches the model's depth"
        )
        built_for = getattr(source, "built_for", None)
        full_batch = getattr(source, "full_batch", None)
        return BatchPlan(
            exact,
            full_batch,
            full_batch is None or (callable(built_for) and bool(built_for(model))),
            "graphtag's prepared batches",
            fix,
            verify_declared=True,
        )
    reference = None
    if isinstance(data, Data) and data.get("x") is not None and data.get("edge_index") is not None:
        reference = _graph_reference(data, forward_kwargs, device, where)
    if callable(source):
        return BatchPlan(source, reference, False, "the batches", _LOADER_FIX)
    if isinstance(source, Iterable):
        items = source

        def given(nodes: Tensor, batch_size: int) -> Iterable[Any]:
            return items

        return BatchPlan(given, reference, False, "the batches", _LOADER_FIX)
    raise GraphtagError(
        f"{where}: inputs must be a PyG Data, a PyG NeighborLoader/NodeLoader, graphtag's "
        "prepared inputs (graphtag.models.prepare_inputs), a callable (nodes, batch_size) -> "
        f"batches or an iterable of batches; got {type(source).__name__}"
    )


def check_exact(
    model: nn.Module,
    batch: NodeBatch,
    reference: Callable[[Tensor], NodeBatch],
    *,
    what: str,
    fix: str,
    inexact_ok: bool,
    where: str,
) -> bool:
    """Compare the first seeds of ``batch`` with full-graph inference (eval mode, no grad).

    Returns:
        Whether the batch's logits match within :data:`EXACT_TOL`.

    Raises:
        GraphtagError: On a mismatch unless ``inexact_ok`` (then a :class:`UserWarning`).
    """
    k = min(batch.nodes.numel(), _CHECK_SEEDS)
    head = NodeBatch(batch.nodes[:k], batch.args, batch.out[:k], batch.exact, batch.kwargs)
    with eval_mode(model), torch.no_grad():
        got = call_model(model, head)
        ref = call_model(model, reference(head.nodes))
    if got.shape != ref.shape:
        raise GraphtagError(
            f"{where}: {what} give logits of shape {list(got.shape)} for {k} seed nodes but "
            f"full-graph inference gives {list(ref.shape)}"
        )
    diff = float((got.double() - ref.double()).abs().max()) if k else 0.0
    tol = EXACT_TOL * max(1.0, float(ref.abs().max()) if k else 1.0)
    if diff <= tol:  # NaN compares False
        return True
    message = (
        f"{where}: {what} are not exact for this model: for the {k} seed nodes of the first "
        f"batch, their logits differ from full-graph inference by up to {diff:.3g} (tolerance "
        f"{tol:.2g}); {fix}"
    )
    if not inexact_ok:
        raise GraphtagError(message + "; or pass inexact_ok=True to use them anyway")
    warnings.warn(message + " (used anyway: inexact_ok=True)", UserWarning, stacklevel=4)
    return False


def node_batches(
    plan: BatchPlan,
    model: nn.Module,
    nodes: Tensor,
    batch_size: int,
    *,
    forward_kwargs: ForwardKwargs = (),
    inexact_ok: bool = False,
    where: str = "graphtag",
) -> Iterator[NodeBatch]:
    """The batches of ``nodes`` as ``NodeBatch`` on the model's device, checked when needed.

    The first batch of a batching that is not :attr:`BatchPlan.trusted` is checked with
    :func:`check_exact`; when it matches, every batch counts as exact (``exact=True``). A batch
    that is still not exact is refused unless ``inexact_ok``.

    Raises:
        GraphtagError: For items that are neither ``NodeBatch`` nor PyG ``Data``, inexact
            batches (see above), or inexact batches that cannot be checked (no full graph).
    """
    device = _model_device(model)
    for item in plan.make(nodes, batch_size):
        if isinstance(item, Data):
            batch = NodeBatch.from_pyg(item, forward_kwargs=forward_kwargs, x=plan.x, where=where)
        elif isinstance(item, NodeBatch):
            batch = item
        else:
            raise GraphtagError(
                f"{where}: batches must be graphtag NodeBatch or PyG Data objects, got "
                f"{type(item).__name__}"
            )
        batch = batch.to(device)
        # PyG mini-batches and the claims of a batching not built for this model are checked.
        pyg_sampled = isinstance(item, Data) and not batch.exact
        if not plan.trusted and (plan.verify_declared or pyg_sampled):
            if plan.verified is None and plan.reference is not None:
                plan.verified = check_exact(
                    model,
                    batch,
                    plan.reference,
                    what=plan.what,
                    fix=plan.fix,
                    inexact_ok=inexact_ok,
                    where=where,
                )
            verified = bool(plan.verified)
            if batch.exact != verified:
                batch = dataclasses.replace(batch, exact=verified)
        if not batch.exact and not inexact_ok:
            raise GraphtagError(
                f"{where}: gradients need exact node batches (every neighbour the model "
                "reads); got a neighbour-sampled batch that cannot be checked against the "
                "full graph: pass the graph (x, edge_index) as data so that it can be checked, "
                "use exact batches (num_neighbors=[-1] * num_layers), or pass inexact_ok=True"
            )
        yield batch
