"""TAG lookahead inter-task affinity (Fifty et al., NeurIPS 2021), with per-task losses.

At a measured training step on batch ``X_t`` (shared body parameters ``theta_s``, output head
fixed), for every source task ``i``::

    theta_s' = theta_s - eta * grad_{theta_s} L_i(X_t)
    Z[j][i]  = 1 - L_j(X_t; theta_s') / L_j(X_t; theta_s)      for every recipient task j

``Z[j][i] > 0`` means a step on task ``i`` lowers the loss of task ``j``. ``L_i`` is the masked
per-task BCE (mean over the labelled rows of task ``i`` in the batch), never the all-task loss.
See ALGORITHMS.md §9.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp, vmap

from .._utils import torch_generator
from ..errors import GraphtagError
from ..models._batch import NodeBatch

__all__ = ["TAGAffinity"]

_MODES = ("exact", "first_order", "naive")
#: Default number of tasks (or sketch directions) per vmapped chunk on CPU.
CPU_CHUNK_SIZE = 8
_LOOKAHEADS = ("sgd",)


class TAGAffinity:
    """Record TAG's lookahead affinity during training (or over fixed batches).

    The recorder is called after every optimiser step with
    ``recorder.step(model, batch, y, mask, lr)`` and measures every ``every``-th call itself (the
    1st, the ``every + 1``-th, ...). :meth:`measure` computes the affinity over a fixed list of
    batches without training. Per measured step, ``Z[j][i]`` is accumulated for every pair of
    tasks ``(j, i)`` that both have labelled rows in the batch; :attr:`affinity_` is the mean over
    the steps where the pair was measured (``counts_``).

    Conventions (ALGORITHMS.md §9):

    * Shared parameters ``theta_s`` are all trainable parameters of ``model`` except those of
      ``model.head`` (the final ``nn.Linear(hidden, T)``), which stay fixed in the lookahead.
    * The step size ``eta`` is ``lr`` when given here, else the ``lr`` passed to :meth:`step`
      (the optimiser's current learning rate). The lookahead is a plain SGD step
      (``lookahead="sgd"``, the only rule implemented) whatever the training optimiser is.
    * Forwards and gradients are computed in eval mode (no dropout, no batch-norm statistic
      updates); the training flag of every submodule is restored afterwards. The model's
      parameters and ``.grad`` are never modified.
    * The recorder runs after the optimiser step, so the lookahead starts from the parameters
      just updated with ``X_t``; it is measured on ``X_t``.
    * ``divide_by_lr=True`` stores ``Z / eta``. To first order ``Z ~= eta <g_i, g_j> / L_j``,
      so ``Z / eta`` does not depend on the step size and averages taken across a decaying
      learning-rate schedule weigh all measured steps alike.
    * Storage is ``[recipient j][source i]``: row ``j`` says how much each task's step helps
      task ``j``. The diagonal is each task's self-affinity.

    Modes (all give the same ``Z`` up to float error, except ``first_order``):

    * ``"exact"`` (default): per-task gradients of ``theta_s`` in one batched backward pass
      (``torch.func.vmap`` over tasks of the vector-Jacobian product of the ``T`` per-task
      losses), then all lookahead forwards batched with ``vmap`` over stacked parameters.
    * ``"naive"``: the literal loop, one extra backward and one extra forward per task.
    * ``"first_order"``: ``Z[j][i] ~= eta <g_i, g_j> / L_j`` from the same batched gradients
      without the lookahead forwards. With ``projection_dim=d`` the Gram matrix is sketched
      instead: ``d`` batched forward-mode JVPs along seeded Rademacher directions (entries
      ``+-1/sqrt(d)``, fresh for every measured step) give ``G P`` ``[T, d]`` at a cost
      independent of ``T``, and ``<g_i, g_j> ~= (G P)_i . (G P)_j`` (unbiased).

    Args:
        every: Measure every ``every``-th call of :meth:`step` (``>= 1``).
        lookahead: Lookahead update rule; only ``"sgd"`` (``theta_s - eta g_i``).
        lr: Fixed lookahead step size; ``None`` uses the ``lr`` passed to :meth:`step`.
        divide_by_lr: Store ``Z / eta`` instead of ``Z``.
        mode: ``"exact"``, ``"first_order"`` or ``"naive"``.
        seed: Seed of the sketch directions (only used with ``projection_dim``).
        chunk_size: Number of source tasks (or sketch directions) per vmapped chunk; bounds
            memory at about ``chunk_size`` times one forward-backward. ``None``: all at once
            on CUDA, :data:`CPU_CHUNK_SIZE` on CPU (on CPU, vmapping brings no parallelism and
            large chunks only add memory traffic: at ``T = 200``, a 1024-node batch and
            hidden 256, chunks of 10 / 50 / 200 took 1.1x / 1.6x / 1.8x the naive loop).
        projection_dim: Sketch dimension ``d`` for ``mode="first_order"``; ``None`` is exact.

    Shapes:
        - step/measure inputs: ``y``, ``mask`` ``[B, T]`` for the ``B`` seed nodes of a batch.
        - :attr:`affinity_`: ``[T, T]`` float64, ``[recipient][source]``; :attr:`counts_`:
          ``[T, T]`` int64.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from graphtag.models import NodeBatch
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.body = nn.Linear(4, 8)
        ...         self.head = nn.Linear(8, 3)
        ...     def forward(self, x):
        ...         return self.head(torch.tanh(self.body(x)))
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(16, 4, generator=g)
        >>> batch = NodeBatch(nodes=torch.arange(16), args=(x,), out=torch.arange(16))
        >>> y = (torch.rand(16, 3, generator=g) < 0.5).float()
        >>> mask = torch.ones(16, 3, dtype=torch.bool)
        >>> tag = TAGAffinity(every=1).measure(Net(), [batch], y, mask, lr=0.1)
        >>> tag.affinity_.shape, int(tag.counts_.min())
        ((3, 3), 1)
    """

    def __init__(
        self,
        every: int = 10,
        lookahead: str = "sgd",
        lr: float | None = None,
        divide_by_lr: bool = False,
        mode: str = "exact",
        seed: int = 0,
        chunk_size: int | None = None,
        projection_dim: int | None = None,
    ) -> None:
        self.every = every
        self.lookahead = lookahead
        self.lr = lr
        self.divide_by_lr = divide_by_lr
        self.mode = mode
        self.seed = seed
        self.chunk_size = chunk_size
        self.projection_dim = projection_dim
        self._check_params()
        self.reset()

    def __repr__(self) -> str:
        return (
            f"TAGAffinity(every={self.every}, lookahead={self.lookahead!r}, lr={self.lr}, "
            f"divide_by_lr={self.divide_by_lr}, mode={self.mode!r}, seed={self.seed}, "
            f"chunk_size={self.chunk_size}, projection_dim={self.projection_dim})"
        )

    # ------------------------------------------------------------------ state

    def reset(self) -> TAGAffinity:
        """Forget every measurement (and the step counter); returns ``self``."""
        self.num_calls_ = 0
        self.num_measured_ = 0
        self.num_tasks_: int | None = None
        self._sum: np.ndarray | None = None
        self._counts: np.ndarray | None = None
        return self

    @property
    def counts_(self) -> np.ndarray:
        """``[T, T]`` int64: measured steps in which both tasks ``j`` and ``i`` had labels."""
        self._check_measured()
        assert self._counts is not None
        return self._counts.copy()

    @property
    def affinity_(self) -> np.ndarray:
        """``[T, T]`` float64 mean ``Z[j][i]`` (row = recipient, column = source).

        Pairs never measured together (``counts_ == 0``) are NaN.
        """
        self._check_measured()
        assert self._sum is not None and self._counts is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self._sum / self._counts
        out[self._counts == 0] = np.nan
        return out

    def symmetric(self) -> np.ndarray:
        """``(Z + Z^T) / 2`` ``[T, T]`` float64, for clustering.

        Raises:
            GraphtagError: If a pair of tasks was never measured together (its entry is NaN).
        """
        z = self.affinity_
        bad = np.argwhere(np.isnan(z))
        if bad.size:
            j, i = (int(v) for v in bad[0])
            raise GraphtagError(
                f"TAG affinity of tasks {j} and {i} (and {len(bad) - 1} more pairs) was never "
                "measured: they never both had labelled rows in a measured batch; measure more "
                "steps (smaller `every`) or use larger batches"
            )
        return (z + z.T) / 2.0

    # ------------------------------------------------------------------ public steps

    def step(
        self,
        model: nn.Module,
        batch: NodeBatch,
        y: Tensor,
        mask: Tensor,
        lr: float | None = None,
    ) -> bool:
        """Count one optimiser step; measure the affinity on ``batch`` if it is a measured step.

        Args:
            model: The model being trained, with a ``.head`` module (fixed in the lookahead).
            batch: The batch of the step; ``model(*batch.args)[batch.out]`` are its logits.
            y: ``[B, T]`` labels in {0, 1} of ``batch.nodes`` (values outside ``mask`` ignored).
            mask: ``[B, T]`` bool, labelled (training) rows of each task.
            lr: Current learning rate (the lookahead step unless ``lr`` was fixed here).

        Returns:
            Whether this call was measured.
        """
        measured = self.num_calls_ % self.every == 0
        if measured:
            self._measure_one(model, batch, y, mask, lr)
        self.num_calls_ += 1  # a call that raised is not counted
        return measured

    def measure(
        self,
        model: nn.Module,
        batches: Iterable[NodeBatch],
        y: Tensor | Sequence[Tensor],
        masks: Tensor | Sequence[Tensor],
        lr: float | None = None,
    ) -> TAGAffinity:
        """Compute the affinity over fixed batches without training; resets first.

        Every batch is measured (``every`` is ignored).

        Args:
            model: Model with a ``.head`` module.
            batches: The batches.
            y: Either one ``[N, T]`` tensor of labels of all nodes (rows taken at
                ``batch.nodes``) or a sequence of ``[B, T]`` tensors, one per batch.
            masks: Same layout as ``y``: ``[N, T]`` bool or a sequence of ``[B, T]`` bool.
            lr: Lookahead step size (unless fixed in the constructor).

        Returns:
            ``self``, with :attr:`affinity_` and :attr:`counts_`.
        """
        self.reset()
        batches = list(batches)
        if isinstance(y, Tensor) and isinstance(masks, Tensor):
            pairs = [_global_rows(y, masks, b, k) for k, b in enumerate(batches)]
        elif not isinstance(y, Tensor) and not isinstance(masks, Tensor):
            if len(y) != len(batches) or len(masks) != len(batches):
                raise GraphtagError(
                    f"measure(): got {len(batches)} batches but {len(y)} label and {len(masks)} "
                    "mask tensors; pass one [B, T] tensor of each per batch"
                )
            pairs = list(zip(y, masks))
        else:
            raise GraphtagError(
                "measure(): pass `y` and `masks` in the same layout, both [N, T] tensors or both "
                "sequences of [B, T] tensors (one per batch)"
            )
        for b, (yb, mb) in zip(batches, pairs):
            self._measure_one(model, b, yb, mb, lr)
            self.num_calls_ += 1
        return self

    # ------------------------------------------------------------------ internals

    def _check_params(self) -> None:
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise GraphtagError(f"TAGAffinity: every={self.every!r} must be an integer >= 1")
        if self.lookahead not in _LOOKAHEADS:
            raise GraphtagError(
                f"TAGAffinity: lookahead={self.lookahead!r} is not supported; use 'sgd' "
                "(a plain SGD lookahead step, as in ALGORITHMS.md §9)"
            )
        if self.mode not in _MODES:
            raise GraphtagError(
                f"TAGAffinity: mode={self.mode!r} is unknown; use one of {', '.join(_MODES)}"
            )
        if self.lr is not None:
            _check_lr(self.lr, "TAGAffinity: lr")
        if self.chunk_size is not None and (
            not isinstance(self.chunk_size, int) or self.chunk_size < 1
        ):
            raise GraphtagError(
                f"TAGAffinity: chunk_size={self.chunk_size!r} must be a positive integer or None"
            )
        if self.projection_dim is not None:
            if self.mode != "first_order":
                raise GraphtagError(
                    f"TAGAffinity: projection_dim is only used by mode='first_order', not "
                    f"mode={self.mode!r}; drop it or switch the mode"
                )
            if not isinstance(self.projection_dim, int) or self.projection_dim < 1:
                raise GraphtagError(
                    f"TAGAffinity: projection_dim={self.projection_dim!r} must be a positive "
                    "integer or None"
                )

    def _check_measured(self) -> None:
        if self._sum is None:
            raise GraphtagError(
                "TAGAffinity has no measurement yet: call step() during training (the first call "
                "is measured) or measure() on fixed batches first"
            )

    def _measure_one(
        self, model: nn.Module, batch: NodeBatch, y: Tensor, mask: Tensor, lr: float | None
    ) -> None:
        eta = self.lr if self.lr is not None else lr
        if eta is None:
            raise GraphtagError(
                "TAGAffinity: no lookahead step size; pass lr= to step()/measure() (the "
                "optimiser's current learning rate) or fix it with TAGAffinity(lr=...)"
            )
        eta = _check_lr(eta, "TAGAffinity: lr")
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Module):
            raise GraphtagError(
                f"TAGAffinity needs a model with a `.head` module (the task-specific output "
                f"layer); {type(model).__name__} has none"
            )
        states = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            z, present = self._compute(model, head, batch, y, mask, eta)
        finally:
            for m, flag in states:
                m.training = flag
        num_tasks = z.shape[0]
        if self._sum is None:
            self.num_tasks_ = num_tasks
            self._sum = np.zeros((num_tasks, num_tasks))
            self._counts = np.zeros((num_tasks, num_tasks), dtype=np.int64)
        elif num_tasks != self.num_tasks_:
            raise GraphtagError(
                f"TAGAffinity: this batch has {num_tasks} tasks but earlier ones had "
                f"{self.num_tasks_}; call reset() before measuring a different task set"
            )
        assert self._counts is not None
        if self.divide_by_lr:
            z = z / eta
        pair = np.outer(present, present) & np.isfinite(z)  # L_j == 0 (underflow): unmeasured
        self._sum[pair] += z[pair]
        self._counts += pair
        self.num_measured_ += 1

    def _compute(
        self,
        model: nn.Module,
        head: nn.Module,
        batch: NodeBatch,
        y: Tensor,
        mask: Tensor,
        eta: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``Z`` ``[T, T]`` (garbage outside present pairs) and ``present`` ``[T]``."""
        head_ids = {id(p) for p in head.parameters()}
        shared: dict[str, Tensor] = {}
        fixed: dict[str, Tensor] = {}
        for name, p in model.named_parameters():
            if p.requires_grad and id(p) not in head_ids:
                shared[name] = p.detach()
            else:
                fixed[name] = p.detach()
        if not shared:
            raise GraphtagError(
                "TAGAffinity: the model has no trainable parameters outside `.head`; the "
                "lookahead moves the shared body, so there is nothing to measure"
            )
        fixed.update(dict(model.named_buffers()))
        out_idx = batch.out

        def logits_fn(params: dict[str, Tensor]) -> Tensor:
            return functional_call(model, {**params, **fixed}, batch.args)[out_idx]

        with torch.no_grad():
            logits0 = logits_fn(shared)
        if logits0.dim() != 2:
            raise GraphtagError(
                f"TAGAffinity: model(*batch.args)[batch.out] has shape {tuple(logits0.shape)}; "
                "expected [B, T] logits"
            )
        num_rows, num_tasks = logits0.shape
        for what, t in (("y", y), ("mask", mask)):
            if tuple(t.shape) != (num_rows, num_tasks):
                raise GraphtagError(
                    f"TAGAffinity: {what} has shape {tuple(t.shape)} but the batch has "
                    f"{num_rows} seed nodes and the model {num_tasks} tasks; pass [B, T] rows "
                    "of the batch's nodes"
                )
        mask = mask.to(device=logits0.device, dtype=torch.bool)
        yf = torch.where(mask, y.to(device=logits0.device, dtype=logits0.dtype), 0.0)
        count = mask.sum(0)
        weight = mask.to(logits0.dtype) / count.clamp(min=1).to(logits0.dtype)
        present_t = count > 0
        present = present_t.cpu().numpy()
        src = torch.nonzero(present_t).flatten()

        def task_losses(logits: Tensor) -> Tensor:
            bce = F.binary_cross_entropy_with_logits(logits, yf, reduction="none")
            return (bce * weight).sum(0)

        def loss_fn(params: dict[str, Tensor]) -> Tensor:
            return task_losses(logits_fn(params))

        z = np.zeros((num_tasks, num_tasks))
        if src.numel() == 0:
            return z, present
        with torch.enable_grad():
            if self.mode == "naive":
                zt = _naive(loss_fn, shared, src, eta)
            elif self.mode == "exact":
                zt = self._exact(loss_fn, shared, src, eta, num_tasks)
            elif self.projection_dim is None:
                zt = self._first_order(loss_fn, shared, src, eta, num_tasks)
            else:
                zt = self._sketched(loss_fn, shared, src, eta)
        z[:, src.cpu().numpy()] = zt.detach().double().cpu().numpy()
        return z, present

    def _chunks(self, n: int, device: torch.device) -> list[slice]:
        if self.chunk_size is not None:
            size = self.chunk_size
        else:
            size = n if device.type == "cuda" else CPU_CHUNK_SIZE
        return [slice(a, min(a + size, n)) for a in range(0, n, size)]

    def _task_grads(
        self, loss_fn: Callable[[dict[str, Tensor]], Tensor], shared: dict[str, Tensor]
    ) -> tuple[Tensor, Callable[[Tensor], dict[str, Tensor]]]:
        loss0, vjp_fn = vjp(loss_fn, shared)[:2]

        def grads(cot: Tensor) -> dict[str, Tensor]:
            return _vmapped(lambda c: vjp_fn(c)[0], cot)

        return loss0.detach(), grads

    def _source_grads(
        self,
        loss_fn: Callable[[dict[str, Tensor]], Tensor],
        shared: dict[str, Tensor],
        src: Tensor,
        num_tasks: int,
    ) -> tuple[Tensor, Iterator[dict[str, Tensor]]]:
        """Losses ``[T]`` at ``shared`` and, chunk by chunk of ``src``, the source tasks' gradients.

        Each yielded chunk maps a parameter name to ``[c, *shape]`` gradients of the ``c`` source
        tasks ``src[chunk]`` (one batched vector-Jacobian pass per chunk).
        """
        loss0, grads = self._task_grads(loss_fn, shared)
        eye = torch.eye(num_tasks, dtype=loss0.dtype, device=loss0.device)
        chunks = (grads(eye[src[sl]]) for sl in self._chunks(src.numel(), loss0.device))
        return loss0, chunks

    def _exact(
        self,
        loss_fn: Callable[[dict[str, Tensor]], Tensor],
        shared: dict[str, Tensor],
        src: Tensor,
        eta: float,
        num_tasks: int,
    ) -> Tensor:
        loss0, chunks = self._source_grads(loss_fn, shared, src, num_tasks)
        cols = []
        for g in chunks:
            with torch.no_grad():
                stacked = {n: shared[n] - eta * g[n] for n in shared}
                new = _vmapped(loss_fn, stacked)  # [c, T]: row k = losses after a step on src[k]
            cols.append(1.0 - new.T / loss0[:, None])
        return torch.cat(cols, dim=1)

    def _first_order(
        self,
        loss_fn: Callable[[dict[str, Tensor]], Tensor],
        shared: dict[str, Tensor],
        src: Tensor,
        eta: float,
        num_tasks: int,
    ) -> Tensor:
        loss0, chunks = self._source_grads(loss_fn, shared, src, num_tasks)
        flat = []
        for g in chunks:
            flat.append(torch.cat([v.detach().flatten(1) for v in g.values()], dim=1))
        gmat = torch.cat(flat)  # [S, P] gradients of the present tasks
        return _first_order_z(gmat, loss0, src, eta)

    def _sketched(
        self,
        loss_fn: Callable[[dict[str, Tensor]], Tensor],
        shared: dict[str, Tensor],
        src: Tensor,
        eta: float,
    ) -> Tensor:
        d = int(self.projection_dim)  # type: ignore[arg-type]
        with torch.no_grad():
            loss0 = loss_fn(shared)
        parts = []
        for sl in self._chunks(d, loss0.device):
            dirs = self._directions(shared, sl, d)

            def tangent(v: dict[str, Tensor]) -> Tensor:
                return jvp(loss_fn, (shared,), (v,))[1]

            parts.append(_vmapped(tangent, dirs).detach())  # [c, T]
        sketch = torch.cat(parts).T[src]  # [S, d]
        return _first_order_z(sketch, loss0, src, eta)

    def _directions(self, shared: dict[str, Tensor], sl: slice, d: int) -> dict[str, Tensor]:
        """Rademacher directions ``sl`` of the shared parameters (entries ``+-1/sqrt(d)``).

        Direction ``k`` at measured step ``m`` is drawn from its own generator
        ``(seed, m, k)`` over the concatenated parameters, so it does not depend on
        ``chunk_size``. Returns ``{name: [c, *shape]}``.
        """
        sizes = [p.numel() for p in shared.values()]
        rows = [
            torch.randint(
                0,
                2,
                (sum(sizes),),
                generator=torch_generator(self.seed, "tag", self.num_measured_, k),
            )
            for k in range(sl.start, sl.stop)
        ]
        flat = torch.stack(rows)
        out = {}
        for (name, p), part in zip(shared.items(), flat.split(sizes, dim=1)):
            signs = part.to(device=p.device, dtype=p.dtype).view(-1, *p.shape)
            out[name] = (2.0 * signs - 1.0) / d**0.5
        return out


def _global_rows(y: Tensor, masks: Tensor, batch: NodeBatch, k: int) -> tuple[Tensor, Tensor]:
    """Rows ``batch.nodes`` of ``[N, T]`` labels and masks, with a clear error when out of range."""
    nodes = batch.nodes.to(y.device)
    num_rows = min(len(y), len(masks))
    if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= num_rows):
        raise GraphtagError(
            f"measure(): batch {k} has node id {int(nodes.max())} but y/masks have "
            f"{len(y)}/{len(masks)} rows; pass [N, T] labels of all nodes (rows taken at "
            "batch.nodes) or lists of [B, T] tensors, one per batch"
        )
    return y[nodes], masks[nodes.to(masks.device)]


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


def _check_lr(lr: object, what: str) -> float:
    try:
        value = float(lr)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GraphtagError(f"{what}={lr!r} must be a positive number") from None
    if not np.isfinite(value) or value <= 0:
        raise GraphtagError(f"{what}={lr!r} must be a positive finite number")
    return value
