"""Projected per-(node, task) gradients by batched forward-mode JVPs (docs/algorithms.md §3).

Column ``k`` of ``g[i, t, :] = P^T grad_theta f_t(x_i; theta0)`` is the directional derivative of
the logit ``f_t(x_i)`` along ``p_k = P[:, k]``. One forward-mode Jacobian-vector product along
``p_k`` gives it for every node of a batch and every task at once, so ``d`` JVPs give the whole
``[n, T, d]`` tensor at a cost independent of ``T``. Directions are processed ``chunk_size`` at a
time with :func:`torch.func.vmap` over :func:`torch.func.jvp`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from ..defaults import JVP_CHUNK
from ..errors import GraphtagError
from ..models._batch import ForwardKwargs, NodeBatch, call_model, eval_mode
from ._projector import GradientProjector

__all__ = ["compute_projected_gradients", "iter_projected_gradients"]

DEFAULT_MAX_CACHE_BYTES = 2**28


def _prepare(
    model: nn.Module, projector: GradientProjector, tasks: Sequence[int] | Tensor | None
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor | None]:
    """Split the model's state into (block params, other params and buffers) and check tasks."""
    if not isinstance(model, nn.Module):
        raise GraphtagError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(projector, GradientProjector):
        raise GraphtagError(f"expected a GradientProjector, got {type(projector).__name__}")
    if not hasattr(projector, "param_names_"):
        raise GraphtagError("the GradientProjector is not fitted; call projector.fit(model) first")
    projector.check_model(model)
    params = dict(model.named_parameters())
    block = {n: params[n].detach() for n in projector.param_names_}
    rest = {n: p.detach() for n, p in params.items() if n not in block}
    rest.update(dict(model.named_buffers()))
    task_index = None
    if tasks is not None:
        raw = torch.as_tensor(tasks).flatten()
        if raw.numel() == 0:
            raise GraphtagError("tasks is empty; pass None for all tasks or a list of indices")
        if raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool:
            raise GraphtagError(f"tasks must be integer task indices, got {raw.tolist()}")
        task_index = raw.long()
    return block, rest, task_index


def _check_batch(
    batch: object, *, inexact_ok: bool = False, forward_kwargs: ForwardKwargs = ()
) -> NodeBatch:
    """A ``NodeBatch`` (PyG ``Data`` batches converted) that is exact unless ``inexact_ok``."""
    from torch_geometric.data import Data

    if isinstance(batch, Data):
        batch = NodeBatch.from_pyg(batch, forward_kwargs=forward_kwargs)
    if not isinstance(batch, NodeBatch):
        raise GraphtagError(
            f"batches must yield graphtag.models.NodeBatch or PyG Data objects, got "
            f"{type(batch).__name__}; use inputs.batches(nodes, batch_size, train=False)"
        )
    if not batch.exact and not inexact_ok:
        raise GraphtagError(
            "projected gradients need exact node batches (full neighbourhoods); got a "
            "neighbour-sampled batch: use inputs.batches(..., train=False), or "
            "extract_gradient_features, which checks PyG mini-batches against full-graph "
            "inference (or pass inexact_ok=True)"
        )
    return batch


def _select_tasks(logits: Tensor, task_index: Tensor | None) -> Tensor:
    if task_index is None:
        return logits
    num_out = logits.size(-1)
    if int(task_index.min()) < -num_out or int(task_index.max()) >= num_out:
        raise GraphtagError(
            f"task indices must lie in [0, {num_out}) (the model has {num_out} outputs), got "
            f"range [{int(task_index.min())}, {int(task_index.max())}]"
        )
    return logits.index_select(-1, task_index.to(logits.device) % num_out)


def _jvp_fn(
    model: nn.Module,
    block: dict[str, Tensor],
    rest: dict[str, Tensor],
    batch: NodeBatch,
    task_index: Tensor | None,
) -> Callable[[dict[str, Tensor]], tuple[Tensor, Tensor]]:
    """``tangent -> (logits [B, T], JVP of the logits along tangent [B, T])`` for one batch."""

    def logits_fn(block_params: dict[str, Tensor]) -> Tensor:
        return _select_tasks(call_model(model, batch, {**rest, **block_params}), task_index)

    def one_direction(tangent: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        out = jvp(logits_fn, (block,), (tangent,))
        return out[0], out[1]

    return one_direction


def iter_projected_gradients(
    model: nn.Module,
    batches: Iterable[NodeBatch],
    projector: GradientProjector,
    *,
    chunk_size: int = JVP_CHUNK,
    tasks: Sequence[int] | Tensor | None = None,
    max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
    inexact_ok: bool = False,
    forward_kwargs: ForwardKwargs = (),
) -> Iterator[tuple[NodeBatch, Tensor, Tensor]]:
    """Stream ``(batch, logits [B, T], grads [B, T, d])`` batch by batch (eval mode).

    The logits are the primal outputs of the same forward pass as the JVPs (base logits
    ``o[i, t]``). Arguments are those of :func:`compute_projected_gradients`. The model is in
    eval mode while the generator runs and is restored when it is exhausted or closed.
    """
    block, rest, task_index = _prepare(model, projector, tasks)
    first = next(iter(block.values()))
    dtype, device = first.dtype, first.device
    # Directions are regenerated for every node batch unless they fit in the cache budget.
    elem = torch.empty((), dtype=dtype).element_size()
    fits = projector.num_params_ * projector.dim * elem <= max_cache_bytes
    chunks = list(projector._chunks(chunk_size))

    with eval_mode(model), projector.cached() if fits else nullcontext():
        for raw in batches:
            batch = _check_batch(raw, inexact_ok=inexact_ok, forward_kwargs=forward_kwargs)
            one_direction = _jvp_fn(model, block, rest, batch, task_index)
            logits = None
            cols = []
            with torch.no_grad():
                for start, stop in chunks:
                    dirs = projector.directions(start, stop, dtype=dtype, device=device)
                    if stop - start == 1:
                        # No vmap for single directions: the fallback for ops without a
                        # batching rule.
                        primal, tangent = one_direction({n: v[0] for n, v in dirs.items()})
                        tangent = tangent.unsqueeze(0)
                    else:
                        primal, tangent = vmap(one_direction)(dirs)
                        primal = primal[0]
                    if logits is None:
                        logits = primal
                    cols.append(tangent)  # [c, B, T]
            assert logits is not None
            grads = torch.cat(cols, dim=0).permute(1, 2, 0)  # [B, T, d]
            yield batch, logits, grads


def compute_projected_gradients(
    model: nn.Module,
    batches: Iterable[NodeBatch],
    projector: GradientProjector,
    *,
    chunk_size: int = JVP_CHUNK,
    tasks: Sequence[int] | Tensor | None = None,
    max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
    inexact_ok: bool = False,
    forward_kwargs: ForwardKwargs = (),
) -> Tensor:
    r"""Projected gradients ``g[i, t] = P^T grad_B f_t(x_i; theta0)`` of every node and task.

    For each node batch, :func:`torch.func.jvp` of the batch's logits
    (:func:`~graphtag.models.call_model`: ``model(*b.args, **b.kwargs)[b.out]``)
    is evaluated along ``chunk_size`` projection directions at once (:func:`torch.func.vmap`
    over the tangents): column ``k`` of ``g`` is the JVP along ``p_k``, for all nodes and all
    tasks in one pass, so the cost does not grow with ``T`` (beyond the output layer itself).
    Parameters outside the projector's block get zero tangents. The model runs in eval mode (no
    dropout) and its training flag is restored afterwards.

    Memory and speed knob: ``chunk_size``. Each vmapped JVP holds ``chunk_size`` copies of every
    activation of the batch (``chunk_size x B x hidden``) plus ``chunk_size x D`` direction
    entries; larger chunks mean fewer, better-vectorised passes. Caveats of ``vmap``: every op of
    the forward pass needs a batching rule and a forward-mode derivative (PyG's SAGE/GCN/GAT
    convolutions and plain ``torch.nn`` layers have them); in-place updates of tensors created
    outside the forward, ``.item()`` and data-dependent Python control flow on activations are
    not allowed. ``chunk_size=1`` skips ``vmap`` (plain ``jvp`` per direction), the slow fallback
    for a forward pass that ``vmap`` rejects.

    Directions are regenerated from the seed for every node batch, unless the whole ``D x d``
    projection fits in ``max_cache_bytes`` (then each chunk is generated once per call and
    dropped at the end).

    Args:
        model: The base model ``theta0`` (its ``forward`` takes ``*batch.args, **batch.kwargs``).
            Its parameters, buffers and training flags are left as they were.
        batches: Exact node batches: ``NodeBatch`` (``inputs.batches(nodes, batch_size,
            train=False)``) or PyG ``Data`` (a full graph; a mini-batch counts as inexact, see
            :func:`extract_gradient_features` for batches checked against the full graph).
        projector: A :class:`GradientProjector` fitted on ``model``.
        chunk_size: Number of projection directions per vmapped JVP.
        tasks: Optional task (output column) indices; ``None`` keeps all ``T`` outputs.
        max_cache_bytes: Cache the generated directions when ``D x d`` entries fit in this many
            bytes (0 disables the cache).
        inexact_ok: Accept batches that are not exact (gradients of approximate logits).
        forward_kwargs: Attributes of PyG batches passed to ``model`` as keyword arguments.

    Returns:
        ``[n, T, d]`` (``T = len(tasks)`` when given), rows in the order of the batches' nodes,
        in the dtype and on the device of the model's parameters.

    Shapes:
        - batch outputs: ``model(*b.args)[b.out]`` is ``[B, T_model]``;
        - output: ``[n, T, d]`` with ``n`` the total number of batch nodes.

    Example:
        >>> from graphtag.models import NodeBatch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3))
        >>> proj = GradientProjector(dim=8, seed=0).fit(model)
        >>> x = torch.randn(5, 4)
        >>> batch = NodeBatch(nodes=torch.arange(5), args=(x,), out=torch.arange(5))
        >>> compute_projected_gradients(model, [batch], proj).shape
        torch.Size([5, 3, 8])
    """
    outs = [
        g
        for _, _, g in iter_projected_gradients(
            model,
            batches,
            projector,
            chunk_size=chunk_size,
            tasks=tasks,
            max_cache_bytes=max_cache_bytes,
            inexact_ok=inexact_ok,
            forward_kwargs=forward_kwargs,
        )
    ]
    if not outs:
        block = next(iter(dict(model.named_parameters()).values()))
        head = getattr(model, "head", None)
        num_out = len(tasks) if tasks is not None else int(getattr(head, "out_features", 0))
        return torch.zeros(0, num_out, projector.dim, dtype=block.dtype, device=block.device)
    return torch.cat(outs, dim=0)
