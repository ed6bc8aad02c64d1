"""TAG lookahead inter-task affinity (Fifty et al., NeurIPS 2021), with per-task losses.

At a measured training step on batch ``X_t`` (shared body parameters ``theta_s``, output head
fixed), for every source task ``i``::

    theta_s' = theta_s - eta * grad_{theta_s} L_i(X_t)
    Z[j][i]  = 1 - L_j(X_t; theta_s') / L_j(X_t; theta_s)      for every recipient task j

``Z[j][i] > 0`` means a step on task ``i`` lowers the loss of task ``j``. ``L_i`` is the masked
per-task BCE (mean over the labelled rows of task ``i`` in the batch), never the all-task loss.
See docs/algorithms.md §9.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import Estimator, NotFittedError
from ..data._validate import check_labels
from ..defaults import TAG_EVERY
from ..errors import GraphtagError
from ..models._batch import ForwardKwargs, NodeBatch, call_model, eval_mode, head_parameter_ids
from ._lookahead import CPU_CHUNK_SIZE, lookahead_z

__all__ = ["CPU_CHUNK_SIZE", "TAGAffinity"]

_MODES = ("exact", "first_order", "naive")


class TAGAffinity(Estimator):
    """Record TAG's lookahead affinity during training (or over fixed batches).

    The recorder is called after every optimiser step with
    ``recorder.step(model, batch, y, mask, lr)`` and measures every ``every``-th call itself (the
    1st, the ``every + 1``-th, ...). A PyG batch (a full graph or a ``NeighborLoader``
    mini-batch) brings its own labels: ``recorder.step(model, batch, lr=lr)`` reads ``y`` and
    ``train_mask`` of its seed nodes. :meth:`fit` (alias :meth:`measure`) computes the affinity
    over a fixed list of batches without training. Per measured step, ``Z[j][i]`` is accumulated
    for every pair of tasks ``(j, i)`` that both have labelled rows in the batch;
    :attr:`affinity_` is the mean over the steps where the pair was measured (``counts_``).

    Conventions (docs/algorithms.md §9):

    * Shared parameters ``theta_s`` are all trainable parameters of ``model`` except those of
      the output layer ``head`` (``model.head`` by default), which stay fixed in the lookahead.
    * The step size ``eta`` is ``lr`` when given here, else the ``lr`` passed to :meth:`step`
      (the optimiser's current learning rate). The lookahead is a plain SGD step whatever the
      training optimiser is.
    * Forwards and gradients are computed in eval mode (no dropout, no batch-norm statistic
      updates); the training flag of every submodule is restored afterwards. The model's
      parameters (their objects, values and ``requires_grad``), buffers and ``.grad`` are never
      modified.
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
        lr: Fixed lookahead step size; ``None`` uses the ``lr`` passed to :meth:`step`.
        divide_by_lr: Store ``Z / eta`` instead of ``Z``.
        mode: ``"exact"``, ``"first_order"`` or ``"naive"``.
        seed: Seed of the sketch directions (only used with ``projection_dim``).
        chunk_size: Number of source tasks (or sketch directions) per vmapped chunk; bounds
            memory at about ``chunk_size`` times one forward-backward. ``None``: all at once
            on CUDA, :data:`CPU_CHUNK_SIZE` on CPU (on CPU, vmapping brings no parallelism and
            large chunks only add memory traffic).
        projection_dim: Sketch dimension ``d`` for ``mode="first_order"``; ``None`` is exact.
        head: The output layer kept fixed: a parameter-name prefix (``"lin"``, ``"convs.1"``),
            a submodule of the model, or ``None`` for ``model.head`` (prefer the name, which
            ``sklearn.base.clone`` keeps; it copies a module).
        forward_kwargs: Attributes of PyG batches passed to ``model`` as keyword arguments
            (``("edge_attr",)`` or ``{argument: attribute}``).

    Attributes:
        affinity_: ``[T, T]`` float64 numpy array, mean ``Z[j][i]`` (row = recipient, column =
            source); pairs never measured together are NaN.
        counts_: ``[T, T]`` int64 numpy array, measured steps in which both tasks had labels.
        num_calls_: Calls of :meth:`step` so far; ``num_measured_``: measured steps.
        num_tasks_: ``T``.

    Shapes:
        - step/measure inputs: ``y``, ``mask`` ``[B, T]`` (or ``[B]`` masks) for the ``B`` seed
          nodes of a batch.

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
        >>> tag = TAGAffinity(every=1).fit(Net(), [batch], y, mask, lr=0.1)
        >>> tag.affinity_.shape, int(tag.counts_.min())
        ((3, 3), 1)
    """

    def __init__(
        self,
        every: int = TAG_EVERY,
        lr: float | None = None,
        divide_by_lr: bool = False,
        mode: str = "exact",
        seed: int = 0,
        chunk_size: int | None = None,
        projection_dim: int | None = None,
        head: str | nn.Module | None = None,
        forward_kwargs: ForwardKwargs = (),
    ) -> None:
        self.every = every
        self.lr = lr
        self.divide_by_lr = divide_by_lr
        self.mode = mode
        self.seed = seed
        self.chunk_size = chunk_size
        self.projection_dim = projection_dim
        self.head = head
        self.forward_kwargs = forward_kwargs

    # ------------------------------------------------------------------ state

    def reset(self) -> TAGAffinity:
        """Forget every measurement (and the step counter); returns ``self``."""
        for name in ("num_calls_", "num_measured_", "num_tasks_", "_sum", "_counts"):
            self.__dict__.pop(name, None)
        return self

    @property
    def counts_(self) -> np.ndarray:
        """``[T, T]`` int64: measured steps in which both tasks ``j`` and ``i`` had labels."""
        self._check_measured()
        return self._counts.copy()

    @property
    def affinity_(self) -> np.ndarray:
        """``[T, T]`` float64 mean ``Z[j][i]`` (row = recipient, column = source).

        Pairs never measured together (``counts_ == 0``) are NaN.
        """
        self._check_measured()
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
        batch: NodeBatch | Any,
        y: Tensor | None = None,
        mask: Tensor | None = None,
        lr: float | None = None,
    ) -> bool:
        """Count one optimiser step; measure the affinity on ``batch`` if it is a measured step.

        Args:
            model: The model being trained; its output layer (``head``) is fixed in the
                lookahead.
            batch: The batch of the step: a :class:`~graphtag.models.NodeBatch` or a PyG
                ``Data`` (a full graph, or a mini-batch with ``n_id`` and ``batch_size``).
            y: ``[B, T]`` labels in {0, 1} of the batch's seed nodes (values outside ``mask``
                ignored); ``None`` for a PyG batch: its ``y`` (seed rows).
            mask: ``[B, T]`` or ``[B]`` bool, labelled (training) rows of each task; ``None`` for
                a PyG batch: its ``train_mask`` (seed rows).
            lr: Current learning rate (the lookahead step unless ``lr`` was fixed here).

        Returns:
            Whether this call was measured.

        Raises:
            GraphtagError: On invalid hyperparameters, labels or masks (shape, values outside
                {0, 1}, NaN on labelled rows), a model without the named output layer, or no
                step size.
        """
        self._check_params()
        calls = self.__dict__.get("num_calls_", 0)
        measured = calls % self.every == 0
        if measured:
            self._measure_one(model, batch, y, mask, lr)
        self.num_calls_ = calls + 1  # a call that raised is not counted
        return measured

    def fit(
        self,
        model: nn.Module,
        batches: Iterable[NodeBatch | Any],
        y: Tensor | Sequence[Tensor] | None = None,
        masks: Tensor | Sequence[Tensor] | None = None,
        lr: float | None = None,
    ) -> TAGAffinity:
        """Compute the affinity over fixed batches without training; resets first.

        Every batch is measured (``every`` is ignored).

        Args:
            model: The model (its output layer is ``head``).
            batches: The batches (``NodeBatch`` or PyG ``Data``).
            y: Either one ``[N, T]`` tensor of labels of all nodes (rows taken at
                ``batch.nodes``), a sequence of ``[B, T]`` tensors, one per batch, or ``None``
                for PyG batches (their own ``y``).
            masks: Same layout as ``y`` (bool, ``[N]``/``[N, T]`` or per batch ``[B]``/``[B, T]``;
                ``None``: the PyG batches' ``train_mask``).
            lr: Lookahead step size (unless fixed in the constructor).

        Returns:
            ``self``, with :attr:`affinity_` and :attr:`counts_`.
        """
        self._check_params()
        self.reset()
        batches = list(batches)
        if not batches:
            raise GraphtagError("TAGAffinity.fit: no batches; pass at least one batch to measure")
        if y is None and masks is None:
            pairs: list[tuple[Tensor | None, Tensor | None]] = [(None, None)] * len(batches)
        elif isinstance(y, Tensor) and isinstance(masks, Tensor):
            pairs = [_global_rows(y, masks, b, k) for k, b in enumerate(batches)]
        elif isinstance(y, Sequence) and isinstance(masks, Sequence):
            if len(y) != len(batches) or len(masks) != len(batches):
                raise GraphtagError(
                    f"measure(): got {len(batches)} batches but {len(y)} label and {len(masks)} "
                    "mask tensors; pass one [B, T] tensor of each per batch"
                )
            pairs = list(zip(y, masks))
        else:
            raise GraphtagError(
                "measure(): pass `y` and `masks` in the same layout, both [N, T] tensors or both "
                "sequences of [B, T] tensors (one per batch), or neither for PyG batches"
            )
        for b, (yb, mb) in zip(batches, pairs):
            self._measure_one(model, b, yb, mb, lr)
            self.num_calls_ = self.__dict__.get("num_calls_", 0) + 1
        return self

    measure = fit

    # ------------------------------------------------------------------ internals

    def _check_params(self) -> None:
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise GraphtagError(f"TAGAffinity: every={self.every!r} must be an integer >= 1")
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
        if "_sum" not in self.__dict__:
            raise NotFittedError(
                "TAGAffinity has no measurement yet: call step() during training (the first call "
                "is measured) or fit() on fixed batches first"
            )

    def _batch_labels(
        self, model: nn.Module, raw: Any, y: Tensor | None, mask: Tensor | None
    ) -> tuple[NodeBatch, Tensor, Tensor]:
        """The batch as a ``NodeBatch`` on the model's device and its checked labels."""
        from torch_geometric.data import Data

        where = "TAGAffinity"
        if isinstance(raw, Data):
            batch = NodeBatch.from_pyg(raw, forward_kwargs=self.forward_kwargs, where=where)
            size = batch.nodes.numel()
            for name, value in (("y", y), ("train_mask", mask)):
                if value is None and raw.get(name) is None:
                    raise GraphtagError(
                        f"{where}: the PyG batch has no {name}; pass it to step()/fit()"
                    )
            y = raw.y[:size] if y is None else y
            mask = raw.train_mask[:size] if mask is None else mask
        elif isinstance(raw, NodeBatch):
            batch = raw
            if y is None or mask is None:
                raise GraphtagError(
                    f"{where}: a NodeBatch needs its labels: pass y [B, T] and mask [B, T]"
                )
        else:
            raise GraphtagError(
                f"{where}: batch must be a graphtag NodeBatch or a PyG Data, got "
                f"{type(raw).__name__}"
            )
        for name, value in (("y", y), ("mask", mask)):
            if not isinstance(value, Tensor) or value.dim() == 0:
                raise GraphtagError(f"{where}: {name} must be a tensor [B, T], got {value!r}")
            if value.size(0) != batch.nodes.numel():
                raise GraphtagError(
                    f"{where}: {name} has shape {tuple(value.shape)} but the batch has "
                    f"{batch.nodes.numel()} seed nodes; pass [B, T] rows of the batch's nodes"
                )
        yf, masks = check_labels(y, {"mask": mask}, where=where)
        param = next(iter(model.parameters()), None)
        if param is not None and batch.nodes.device != param.device:
            batch = batch.to(param.device)
        return batch, yf, masks["mask"]

    def _measure_one(
        self,
        model: nn.Module,
        raw: NodeBatch | Any,
        y: Tensor | None,
        mask: Tensor | None,
        lr: float | None,
    ) -> None:
        eta = self.lr if self.lr is not None else lr
        if eta is None:
            raise GraphtagError(
                "TAGAffinity: no lookahead step size; pass lr= to step()/fit() (the "
                "optimiser's current learning rate) or fix it with TAGAffinity(lr=...)"
            )
        eta = _check_lr(eta, "TAGAffinity: lr")
        if not isinstance(model, nn.Module):
            raise GraphtagError(f"TAGAffinity: model must be an nn.Module, got {type(model)}")
        head_ids = head_parameter_ids(model, self.head, "TAGAffinity")
        batch, y, mask = self._batch_labels(model, raw, y, mask)
        with eval_mode(model):
            z, present = self._compute(model, head_ids, batch, y, mask, eta)
        num_tasks = z.shape[0]
        if "_sum" not in self.__dict__:
            self.num_tasks_ = num_tasks
            self._sum = np.zeros((num_tasks, num_tasks))
            self._counts = np.zeros((num_tasks, num_tasks), dtype=np.int64)
        elif num_tasks != self.num_tasks_:
            raise GraphtagError(
                f"TAGAffinity: this batch has {num_tasks} tasks but earlier ones had "
                f"{self.num_tasks_}; call reset() before measuring a different task set"
            )
        if self.divide_by_lr:
            z = z / eta
        pair = np.outer(present, present) & np.isfinite(z)  # L_j == 0 (underflow): unmeasured
        self._sum[pair] += z[pair]
        self._counts += pair
        self.num_measured_ = self.__dict__.get("num_measured_", 0) + 1

    def _compute(
        self,
        model: nn.Module,
        head_ids: set[int],
        batch: NodeBatch,
        y: Tensor,
        mask: Tensor,
        eta: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``Z`` ``[T, T]`` (garbage outside present pairs) and ``present`` ``[T]``."""
        shared: dict[str, Tensor] = {}
        fixed: dict[str, Tensor] = {}
        for name, p in model.named_parameters():
            if p.requires_grad and id(p) not in head_ids:
                shared[name] = p.detach()
            else:
                fixed[name] = p.detach()
        if not shared:
            raise GraphtagError(
                "TAGAffinity: the model has no trainable parameters outside its output layer "
                "(head); the lookahead moves the shared body, so there is nothing to measure"
            )
        fixed.update(dict(model.named_buffers()))

        def logits_fn(params: dict[str, Tensor]) -> Tensor:
            return call_model(model, batch, {**fixed, **params})

        with torch.no_grad():
            logits0 = logits_fn(shared)
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
            zt = lookahead_z(
                self.mode,
                loss_fn,
                shared,
                src,
                eta,
                num_tasks,
                chunk_size=self.chunk_size,
                projection_dim=self.projection_dim,
                seed=self.seed,
                step=self.__dict__.get("num_measured_", 0),
            )
        z[:, src.cpu().numpy()] = zt.detach().double().cpu().numpy()
        return z, present


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


def _check_lr(lr: object, what: str) -> float:
    try:
        value = float(lr)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GraphtagError(f"{what}={lr!r} must be a positive number") from None
    if not np.isfinite(value) or value <= 0:
        raise GraphtagError(f"{what}={lr!r} must be a positive finite number")
    return value
