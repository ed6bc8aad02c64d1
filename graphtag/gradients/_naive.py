"""Reference projected gradients: one autograd backward per (node, task), then ``P^T``.

Deliberately simple and slow (``n x T`` backward passes); used only by tests and by
``experiments/bench_gradients.py`` to check and time :func:`compute_projected_gradients`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from ..models._batch import NodeBatch, call_model, eval_mode
from ._jvp import _check_batch, _prepare, _select_tasks
from ._projector import GradientProjector

__all__ = ["naive_projected_gradients"]


def naive_projected_gradients(
    model: nn.Module,
    batches: Iterable[NodeBatch],
    projector: GradientProjector,
    tasks: Sequence[int] | Tensor | None = None,
    *,
    max_rows: int = 1024,
) -> Tensor:
    """Projected gradients by brute force: ``P^T grad f_t(x_i)`` for every (node, task) pair.

    For each batch the model runs once in eval mode; then, for every node ``i`` and task ``t``,
    :func:`torch.autograd.grad` gives the full gradient of the logit ``f_t(x_i)`` with respect
    to the projector's block (zeros for parameters it does not reach), and the gradients are
    projected with :meth:`GradientProjector.project`, ``max_rows`` rows at a time. The projection
    directions are generated once per call (:meth:`GradientProjector.cached`), as a stored ``P``
    would be, so the timing reflects the per-pair backward passes, not the random number
    generator; memory is ``O(D x d + max_rows x D)``.

    Args:
        model: The base model.
        batches: Exact node batches.
        projector: A :class:`GradientProjector` fitted on ``model``.
        tasks: Optional task (output column) indices; ``None`` keeps all outputs.
        max_rows: Number of (node, task) gradients held before projecting them.

    Returns:
        ``[n, T, d]``, equal (up to rounding) to :func:`compute_projected_gradients`.

    Example:
        >>> from graphtag.gradients import compute_projected_gradients
        >>> from graphtag.models import NodeBatch
        >>> model = torch.nn.Linear(4, 3).double()
        >>> proj = GradientProjector(dim=5).fit(model)
        >>> batch = NodeBatch(torch.arange(6), (torch.randn(6, 4).double(),), torch.arange(6))
        >>> ref = naive_projected_gradients(model, [batch], proj)
        >>> torch.allclose(ref, compute_projected_gradients(model, [batch], proj))
        True
    """
    block, _, task_index = _prepare(model, projector, tasks)
    params = dict(model.named_parameters())
    names = projector.param_names_
    targets = [params[n] for n in names]
    out_batches = []
    with eval_mode(model), projector.cached():
        for raw in batches:
            batch = _check_batch(raw)
            with torch.enable_grad():
                logits = _select_tasks(call_model(model, batch), task_index)  # [B, T]
            num_nodes, num_tasks = logits.shape
            rows: list[Tensor] = []
            projected: list[Tensor] = []
            for i in range(num_nodes):
                for t in range(num_tasks):
                    grads = torch.autograd.grad(
                        logits[i, t], targets, retain_graph=True, allow_unused=True
                    )
                    rows.append(
                        torch.cat(
                            [
                                (torch.zeros_like(p) if g is None else g).flatten()
                                for p, g in zip(targets, grads)
                            ]
                        )
                    )
                    if len(rows) >= max_rows:
                        projected.append(projector.project(torch.stack(rows)))
                        rows = []
            if rows:
                projected.append(projector.project(torch.stack(rows)))
            dtype = next(iter(block.values())).dtype
            flat = (
                torch.cat(projected)
                if projected
                else torch.zeros(0, projector.dim, dtype=dtype, device=logits.device)
            )
            out_batches.append(flat.reshape(num_nodes, num_tasks, projector.dim))
    return torch.cat(out_batches) if out_batches else torch.zeros(0, 0, projector.dim)
