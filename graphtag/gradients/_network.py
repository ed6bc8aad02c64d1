"""The "network" loss estimate: the real model moved to ``theta0 + P w_S``.

See docs/algorithms.md §4.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap
from torch_geometric.data import Data

from ..data._validate import as_multilabel
from ..defaults import FEATURE_NODE_BATCH
from ..errors import GraphtagError
from ..models._batch import ForwardKwargs, NodeBatch, call_model, eval_mode
from ._batches import BatchSource, node_batches, plan_batches
from ._extract import check_tasks
from ._jvp import DEFAULT_MAX_CACHE_BYTES, _prepare, _select_tasks
from ._projector import GradientProjector

__all__ = ["network_subset_losses"]


def _membership(subsets: Sequence[Iterable[int]], num_tasks: int) -> Tensor:
    """Bool ``[M, T']``: ``member[m, t]`` iff task ``t`` is in subset ``m``."""
    member = torch.zeros(len(subsets), num_tasks, dtype=torch.bool)
    for m, subset in enumerate(subsets):
        idx = torch.as_tensor(sorted(int(t) for t in subset), dtype=torch.long)
        if idx.numel() == 0:
            raise GraphtagError(f"subset {m} is empty; every subset needs at least one task")
        if int(idx.min()) < 0 or int(idx.max()) >= num_tasks:
            raise GraphtagError(
                f"subset {m} has task indices outside [0, {num_tasks}): {idx.tolist()}"
            )
        member[m, idx] = True
    return member


def _stacked_logits_fn(
    model: nn.Module, rest: dict[str, Tensor], batch: NodeBatch, task_index: Tensor
) -> Callable[[dict[str, Tensor]], Tensor]:
    """``{name: [G, *shape]} -> [G, B, T']`` logits of one batch under G parameter settings."""

    def one(params: dict[str, Tensor]) -> Tensor:
        return _select_tasks(call_model(model, batch, {**rest, **params}), task_index)

    return vmap(one)


def _validation_rows(data: Data, task_idx: Tensor, val_mask: Tensor | None) -> Tensor:
    """Bool ``[N, T']`` (CPU) validation rows: ``val_mask`` checked, or the data's."""
    if val_mask is None:
        return data.val_mask[:, task_idx].cpu()
    num_nodes, num_tasks = int(data.y.size(0)), int(task_idx.numel())
    if tuple(val_mask.shape) != (num_nodes, num_tasks) or val_mask.dtype != torch.bool:
        raise GraphtagError(
            f"val_mask must be bool [N, T'] = [{num_nodes}, {num_tasks}], got "
            f"{val_mask.dtype} {tuple(val_mask.shape)}"
        )
    return val_mask.cpu()


def network_subset_losses(
    model: nn.Module,
    inputs: BatchSource,
    data: Data,
    projector: GradientProjector,
    subsets: Sequence[Iterable[int]],
    weights: Tensor,
    *,
    tasks: Sequence[int] | Tensor | None = None,
    batch_subsets: int = 16,
    node_batch_size: int = FEATURE_NODE_BATCH,
    val_mask: Tensor | None = None,
    max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
    forward_kwargs: ForwardKwargs = (),
    inexact_ok: bool = False,
) -> Tensor:
    r"""Validation loss of each subset's tasks under the real network at ``theta0 + P w_S``.

    For subset ``S_m`` with surrogate weights ``w_m``, the parameters of the projector's block
    are moved to ``theta0 + P w_m`` (:meth:`GradientProjector.expand`; other parameters stay at
    ``theta0``) and the model is evaluated, in eval mode, on the validation nodes of each task
    ``t`` in ``S_m``:

    .. math:: L[m, t] = \frac{1}{|V_t|} \sum_{i \in V_t}
        \mathrm{BCE}(f_t(x_i; \theta_0 + P w_m), y_{it}).

    ``batch_subsets`` parameter settings are evaluated at once with :func:`torch.func.vmap` over
    stacked parameters (:func:`torch.func.functional_call`); memory grows with
    ``batch_subsets x node_batch_size x hidden`` and ``batch_subsets x D``. Node batches are
    regenerated from ``inputs`` for every group of subsets.

    Args:
        model: The base model ``theta0`` (left as it was).
        inputs: As in :func:`extract_gradient_features` (a PyG ``Data`` or loader, graphtag's
            prepared inputs, or a callable); batches are checked the same way.
        data: The labelled graph (``y`` and ``val_mask``, ``[N]`` or ``[N, T]`` masks).
        projector: The :class:`GradientProjector` the weights were fitted in.
        subsets: ``M`` collections of task indices (indices into ``tasks``, ``0..T'-1``).
        weights: ``[M, d]`` surrogate weights ``w_S``.
        tasks: Dataset task indices (default all); the model's output column ``tasks[j]`` is
            task ``j`` of the subsets.
        batch_subsets: Number of subsets evaluated per vmapped forward pass.
        node_batch_size: Nodes per batch.
        val_mask: Optional bool ``[N, T']`` validation rows to use instead of
            ``data.val_mask[:, tasks]`` (e.g. the subsample kept in the gradient features).
        max_cache_bytes: Cache the projection directions across subset groups when ``D x d``
            entries fit in this many bytes.
        forward_kwargs: Attributes of PyG batches passed to ``model`` as keyword arguments.
        inexact_ok: Use batches that differ from full-graph inference (with a warning).

    Returns:
        ``[M, T']`` losses (CPU, the model's dtype); NaN where ``t`` is not in ``S_m`` or task
        ``t`` has no validation node.

    Shapes:
        - ``weights``: ``[M, d]``; ``val_mask``: ``[N, T']``;
        - output: ``[M, T']`` with ``T' = len(tasks)`` (all ``T`` tasks by default).

    Example:
        >>> from torch_geometric.data import Data
        >>> from torch_geometric.nn import GraphSAGE
        >>> g = torch.Generator().manual_seed(0)
        >>> data = Data(x=torch.randn(20, 4, generator=g),
        ...             edge_index=torch.randint(0, 20, (2, 60), generator=g),
        ...             y=torch.randint(0, 2, (20, 3), generator=g),
        ...             val_mask=torch.arange(20) % 2 == 0)
        >>> model = GraphSAGE(4, 8, num_layers=2, out_channels=3)
        >>> proj = GradientProjector(dim=6).fit(model)
        >>> losses = network_subset_losses(model, data, data, proj, [(0, 1), (2,)],
        ...                                torch.zeros(2, 6))
        >>> losses.shape, bool(losses[1, :2].isnan().all())
        (torch.Size([2, 3]), True)
    """
    where = "network_subset_losses"
    if not isinstance(projector, GradientProjector) or not hasattr(projector, "param_names_"):
        raise GraphtagError(f"{where} needs a GradientProjector fitted on the model")
    data = as_multilabel(data, ("val_mask",), where=where)
    num_data_tasks = int(data.y.size(1))
    task_idx = check_tasks(tasks, num_data_tasks)
    num_tasks = task_idx.numel()
    if not isinstance(weights, Tensor) or weights.dim() != 2:
        raise GraphtagError(
            f"weights must be a tensor [M, d], got "
            f"{tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__}"
        )
    if weights.size(0) != len(subsets) or weights.size(1) != projector.dim:
        raise GraphtagError(
            f"weights have shape {tuple(weights.shape)} but there are {len(subsets)} subsets "
            f"and the projection has d={projector.dim}; expected [{len(subsets)}, "
            f"{projector.dim}]"
        )
    if isinstance(batch_subsets, bool) or not isinstance(batch_subsets, int) or batch_subsets < 1:
        raise GraphtagError(f"batch_subsets must be a positive int, got {batch_subsets!r}")
    member = _membership(subsets, num_tasks)
    val = _validation_rows(data, task_idx, val_mask)
    y = data.y[:, task_idx].cpu()

    block, rest, _ = _prepare(model, projector, None)
    first = next(iter(block.values()))
    dtype, device = first.dtype, first.device
    w_all = weights.to(dtype=dtype, device=device)
    task_dev = task_idx.to(device)
    val = val & member.any(dim=0)  # only tasks that appear in some subset
    nodes = torch.nonzero(val.any(dim=1)).flatten()
    counts = val.sum(dim=0).to(torch.float64)  # [T']
    totals = torch.zeros(len(subsets), num_tasks, dtype=torch.float64)

    elem = torch.empty((), dtype=dtype).element_size()
    fits = projector.num_params_ * projector.dim * elem <= max_cache_bytes
    plan = plan_batches(inputs, model, data, forward_kwargs=forward_kwargs, where=where)
    with eval_mode(model), torch.no_grad(), projector.cached() if fits else nullcontext():
        for g0 in range(0, len(subsets), batch_subsets):
            g1 = min(g0 + batch_subsets, len(subsets))
            delta = projector.expand(w_all[g0:g1])
            stacked = {name: block[name].unsqueeze(0) + delta[name] for name in block}
            if nodes.numel() == 0:
                continue
            batches = node_batches(
                plan,
                model,
                nodes,
                node_batch_size,
                forward_kwargs=forward_kwargs,
                inexact_ok=inexact_ok,
                where=where,
            )
            for batch in batches:
                logits = _stacked_logits_fn(model, rest, batch, task_dev)(stacked)  # [G, B, T']
                bnodes = batch.nodes.cpu()
                yb = y[bnodes].to(device=device, dtype=dtype)
                mb = val[bnodes].to(device=device, dtype=dtype)
                bce = F.binary_cross_entropy_with_logits(
                    logits, yb.expand_as(logits), reduction="none"
                )
                totals[g0:g1] += (bce * mb).sum(dim=1).to(device="cpu", dtype=torch.float64)
    losses = totals / counts.clamp(min=1.0)
    losses[~member | (counts == 0).unsqueeze(0)] = float("nan")
    return losses.to(dtype)
