"""TAG's lookahead ``Z[j][i]`` for one batch: exact, naive, first-order and sketched forms.

``loss_fn(params) -> [T]`` gives the per-task losses of the batch with the shared parameters
``params``; the functions here return ``Z`` ``[T, S]`` for the ``S`` present source tasks
``src`` (columns), all recipients ``j`` (rows). See :class:`~graphtag.baselines.TAGAffinity`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from .._utils import torch_generator
from ..errors import GraphtagError

__all__ = ["CPU_CHUNK_SIZE", "lookahead_z"]

#: Default number of tasks (or sketch directions) per vmapped chunk on CPU.
CPU_CHUNK_SIZE = 8

LossFn = Callable[[dict[str, Tensor]], Tensor]


def _chunks(n: int, device: torch.device, chunk_size: int | None) -> list[slice]:
    if chunk_size is None:
        chunk_size = n if device.type == "cuda" else CPU_CHUNK_SIZE
    return [slice(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]


def _source_grads(
    loss_fn: LossFn,
    shared: dict[str, Tensor],
    src: Tensor,
    num_tasks: int,
    chunk_size: int | None,
) -> tuple[Tensor, Iterator[dict[str, Tensor]]]:
    """Losses ``[T]`` at ``shared`` and, chunk by chunk of ``src``, the source tasks' gradients.

    Each yielded chunk maps a parameter name to ``[c, *shape]`` gradients of the ``c`` source
    tasks ``src[chunk]`` (one batched vector-Jacobian pass per chunk).
    """
    loss0, vjp_fn = vjp(loss_fn, shared)[:2]
    loss0 = loss0.detach()

    def grads(cot: Tensor) -> dict[str, Tensor]:
        return _vmapped(lambda c: vjp_fn(c)[0], cot)

    eye = torch.eye(num_tasks, dtype=loss0.dtype, device=loss0.device)
    chunks = (grads(eye[src[sl]]) for sl in _chunks(src.numel(), loss0.device, chunk_size))
    return loss0, chunks


def _from_gradients(
    loss_fn: LossFn,
    shared: dict[str, Tensor],
    src: Tensor,
    eta: float,
    num_tasks: int,
    chunk_size: int | None,
    first_order: bool,
) -> Tensor:
    """``Z`` from the source tasks' gradients: exact lookahead, or ``eta <g_i, g_j> / L_j``."""
    loss0, chunks = _source_grads(loss_fn, shared, src, num_tasks, chunk_size)
    if first_order:
        flat = [torch.cat([v.detach().flatten(1) for v in g.values()], dim=1) for g in chunks]
        return _first_order_z(torch.cat(flat), loss0, src, eta)  # [S, P] gradients of sources
    cols = []
    for g in chunks:
        with torch.no_grad():
            stacked = {n: shared[n] - eta * g[n] for n in shared}
            new = _vmapped(loss_fn, stacked)  # [c, T]: row k = losses after a step on src[k]
        cols.append(1.0 - new.T / loss0[:, None])
    return torch.cat(cols, dim=1)


def _sketched(
    loss_fn: LossFn,
    shared: dict[str, Tensor],
    src: Tensor,
    eta: float,
    dim: int,
    chunk_size: int | None,
    seed: int,
    step: int,
) -> Tensor:
    with torch.no_grad():
        loss0 = loss_fn(shared)
    parts = []
    for sl in _chunks(dim, loss0.device, chunk_size):
        dirs = _directions(shared, sl, dim, seed, step)

        def tangent(v: dict[str, Tensor]) -> Tensor:
            return jvp(loss_fn, (shared,), (v,))[1]

        parts.append(_vmapped(tangent, dirs).detach())  # [c, T]
    sketch = torch.cat(parts).T[src]  # [S, d]
    return _first_order_z(sketch, loss0, src, eta)


def _directions(
    shared: dict[str, Tensor], sl: slice, dim: int, seed: int, step: int
) -> dict[str, Tensor]:
    """Rademacher directions ``sl`` of the shared parameters (entries ``+-1/sqrt(d)``).

    Direction ``k`` at measured step ``step`` is drawn from its own generator
    ``(seed, step, k)`` over the concatenated parameters, so it does not depend on the chunk
    size. Returns ``{name: [c, *shape]}``.
    """
    sizes = [p.numel() for p in shared.values()]
    rows = [
        torch.randint(0, 2, (sum(sizes),), generator=torch_generator(seed, "tag", step, k))
        for k in range(sl.start, sl.stop)
    ]
    flat = torch.stack(rows)
    out = {}
    for (name, p), part in zip(shared.items(), flat.split(sizes, dim=1)):
        signs = part.to(device=p.device, dtype=p.dtype).view(-1, *p.shape)
        out[name] = (2.0 * signs - 1.0) / dim**0.5
    return out


def lookahead_z(
    mode: str,
    loss_fn: LossFn,
    shared: dict[str, Tensor],
    src: Tensor,
    eta: float,
    num_tasks: int,
    *,
    chunk_size: int | None = None,
    projection_dim: int | None = None,
    seed: int = 0,
    step: int = 0,
) -> Tensor:
    """``Z`` ``[T, S]`` of one batch: column ``k`` is the lookahead on source task ``src[k]``.

    Args:
        mode: ``"exact"``, ``"naive"`` or ``"first_order"`` (sketched when ``projection_dim``).
        loss_fn: ``params -> [T]`` per-task losses of the batch.
        shared: The shared parameters ``theta_s`` (detached).
        src: int64 ``[S]`` source tasks (those with labelled rows).
        eta: Lookahead step size.
        num_tasks: ``T``.
        chunk_size: Sources (or sketch directions) per vmapped chunk.
        projection_dim: Sketch dimension of ``"first_order"``.
        seed: Seed of the sketch directions.
        step: Index of the measured step (the sketch directions change with it).
    """
    if mode == "naive":
        return _naive(loss_fn, shared, src, eta)
    if mode == "exact" or projection_dim is None:
        first_order = mode != "exact"
        return _from_gradients(loss_fn, shared, src, eta, num_tasks, chunk_size, first_order)
    return _sketched(loss_fn, shared, src, eta, projection_dim, chunk_size, seed, step)


def _first_order_z(gmat: Tensor, loss0: Tensor, src: Tensor, eta: float) -> Tensor:
    """``Z[j][i] = eta <g_i, g_j> / L_j`` for present sources ``i`` (columns), all ``j``."""
    num_tasks = loss0.numel()
    full = gmat.new_zeros(num_tasks, gmat.size(1))
    full[src] = gmat
    return eta * (full @ gmat.T) / loss0[:, None]


def _naive(
    loss_fn: Callable[[dict[str, Tensor]], Tensor],
    shared: dict[str, Tensor],
    src: Tensor,
    eta: float,
) -> Tensor:
    """The literal TAG loop: one extra backward and one extra forward per source task."""
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in shared.items()}
    losses = loss_fn(leaves)
    loss0 = losses.detach()
    cols = []
    for i in src.tolist():
        g = torch.autograd.grad(losses[i], list(leaves.values()), retain_graph=True)
        with torch.no_grad():
            moved = {n: p - eta * gi for (n, p), gi in zip(shared.items(), g)}
            cols.append(1.0 - loss_fn(moved) / loss0)
    return torch.stack(cols, dim=1)


def _vmapped(fn: Callable[[Any], Any], arg: Any) -> Any:
    """``torch.func.vmap(fn)(arg)`` with a clear error when the model does not support vmap."""
    try:
        return vmap(fn)(arg)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, NotImplementedError) as exc:
        if "vmap" not in str(exc) and "batch" not in str(exc).lower():
            raise
        raise GraphtagError(
            f"TAGAffinity: torch.func.vmap cannot batch this model ({exc}); use mode='naive' "
            "(the per-task loop)"
        ) from exc
