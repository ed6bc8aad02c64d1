"""Training loop (masked multi-task BCE, validation-based selection) and exact prediction."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from tqdm.auto import tqdm

from .._utils import derive_seed, resolve_device
from ..errors import GraphtagError, NumericalError, preview
from ..metrics._evaluator import _auc_labelled
from ..models import SIGN, GraphInputs, MultiTaskGNN, NodeBatch, build_model, check_tasks
from ._config import TrainConfig
from ._loss import masked_bce, per_task_bce

__all__ = ["TrainResult", "fit_model", "predict"]

SELECT = ("auc", "loss", "auto")


@dataclass
class TrainResult:
    """Outcome of :func:`fit_model`.

    Attributes:
        model: The best checkpoint of the weight average (by the selection metric), in eval
            mode, on the inputs' device, with one output per trained task (in the order of
            ``tasks``).
        best_epoch: 1-based epoch of the best checkpoint (0: the initial model, with
            ``evaluate_init``).
        best_val: Its selection value: mean validation ROC-AUC (``select="auc"``) or mean
            validation BCE (``select="loss"``) over ``tasks``.
        history: One dict per evaluation: ``epoch``, ``train_loss`` (mean masked BCE of the
            epoch's batches), ``val_loss``, ``val_auc`` (means over ``tasks``; tasks without
            both classes in validation are left out of ``val_auc``) and ``seconds`` since start.
        seconds: Wall-clock training time.
        tasks: The dataset task index of every model output.
        select: The selection metric.
    """

    model: nn.Module
    best_epoch: int
    best_val: float
    history: list[dict[str, float]]
    seconds: float
    tasks: list[int] = field(default_factory=list)
    select: str = "auc"


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def predict(
    model: nn.Module,
    inputs: GraphInputs,
    nodes: Tensor | Sequence[int] | None = None,
    batch_size: int = 4096,
) -> Tensor:
    """Exact logits of ``nodes`` (eval mode, no gradients).

    The model's train/eval mode is restored afterwards.

    Args:
        model: A model matching ``inputs`` (on ``inputs.device``).
        inputs: From :func:`graphtag.models.prepare_inputs`.
        nodes: Node ids ``[n]``, a bool mask ``[N]``, or ``None`` for every node.
        batch_size: Seed nodes per exact inference batch.

    Returns:
        float32 ``[n, T]`` logits on the CPU, rows in the order of ``nodes``.

    Example:
        >>> from graphtag.data import build_multilabel_graph
        >>> from graphtag.models import ModelConfig, build_model, prepare_inputs
        >>> ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
        >>> data = build_multilabel_graph(ei, torch.eye(4)[:, :2], name="ring", feature_dim=2)
        >>> inputs = prepare_inputs(data, ModelConfig("sage", hidden_channels=4), "cpu")
        >>> model = build_model(inputs.config, inputs.in_channels, num_tasks=2)
        >>> predict(model, inputs).shape
        torch.Size([4, 2])
    """
    return _predict(model, inputs, nodes, batch_size, to_cpu=True)


def _predict(
    model: nn.Module,
    inputs: GraphInputs,
    nodes: Tensor | Sequence[int] | None,
    batch_size: int,
    *,
    to_cpu: bool,
) -> Tensor:
    """:func:`predict`, with the logits left on the model's device when ``to_cpu`` is false."""
    device = _model_device(model)
    if device != inputs.device:
        raise GraphtagError(
            f"the model is on {device} but the inputs on {inputs.device}; move the model with "
            f"model.to({str(inputs.device)!r})"
        )
    was_training = model.training
    model.eval()
    outs = []
    try:
        with torch.no_grad():
            for b in inputs.batches(nodes, batch_size, train=False):
                out = model(*b.args)[b.out].float()
                outs.append(out.cpu() if to_cpu else out)
    finally:
        model.train(was_training)
    if not outs:
        return torch.zeros(0, _num_outputs(model), device="cpu" if to_cpu else device)
    return torch.cat(outs)


def _num_outputs(model: nn.Module) -> int:
    head = getattr(model, "head", None)
    return int(head.out_features) if isinstance(head, nn.Linear) else 0


def _model_name(model: nn.Module) -> str | None:
    if isinstance(model, SIGN):
        return "sign"
    if isinstance(model, MultiTaskGNN):
        return model.encoder
    return None


def _check_inputs(data: Data, inputs: GraphInputs, config: TrainConfig) -> None:
    for key in ("y", "train_mask", "val_mask"):
        if getattr(data, key, None) is None:
            raise GraphtagError(
                f"the graph has no {key!r}; build it with graphtag.data.build_multilabel_graph"
            )
    if data.y.dim() != 2 or data.y.size(0) != inputs.num_nodes:
        raise GraphtagError(
            f"labels y {tuple(data.y.shape)} do not match the inputs' {inputs.num_nodes} nodes; "
            "prepare the inputs from the same graph"
        )
    for key in ("train_mask", "val_mask"):
        if getattr(data, key).shape != data.y.shape:
            raise GraphtagError(
                f"{key} {tuple(getattr(data, key).shape)} must match y {tuple(data.y.shape)}"
            )
    want, have = config.model_config, inputs.config
    if want.name != have.name or (
        want.num_hops != have.num_hops
        if want.name == "sign"
        else want.num_layers != have.num_layers
    ):
        raise GraphtagError(
            f"the inputs were prepared for {have} but the training config asks for {want}; "
            "call prepare_inputs(data, config.model_config, device) again"
        )
    if config.device != "auto" and resolve_device(config.device) != inputs.device:
        raise GraphtagError(
            f"config.device is {config.device!r} but the inputs are on {inputs.device}; prepare "
            f"the inputs on {config.device!r}"
        )


def _initial_model(
    init: nn.Module | None,
    config: TrainConfig,
    inputs: GraphInputs,
    tasks: list[int],
    num_tasks: int,
) -> nn.Module:
    if init is None:
        return build_model(config.model_config, inputs.in_channels, len(tasks))
    name = _model_name(init)
    if name is not None and name != inputs.config.name:
        raise GraphtagError(
            f"init is a {name!r} model but the inputs were prepared for {inputs.config.name!r}"
        )
    outputs = _num_outputs(init)
    if outputs == num_tasks and hasattr(init, "with_tasks"):
        model = init.with_tasks(tasks)
    elif outputs == len(tasks):
        model = copy.deepcopy(init)
    else:
        model = None
    if model is not None:
        if hasattr(model, "set_dropout"):  # the recipe's dropout, not the init's
            model.set_dropout(config.dropout, config.input_dropout)
        return model
    raise GraphtagError(
        f"init has {outputs} outputs; warm-starting needs one per dataset task ({num_tasks}, "
        f"restricted to tasks) or one per trained task ({len(tasks)})"
    )


def _check_finite_inputs(inputs: GraphInputs, stage: str) -> None:
    """Reject NaN/inf node features up front, naming the feature columns.

    For SIGN the hop features are checked; hop 0 is ``data.x`` itself, so NaN/inf there are
    reported as node features (the later hops only spread them to the neighbours).
    """
    t = inputs.hops if inputs.hops is not None else inputs.x
    if t is None or not t.is_floating_point():
        return
    if bool(torch.isfinite(t.sum())):  # one reduction without a temporary; exact check below
        return
    if t.dim() == 3 and not bool(torch.isfinite(t[:, 0]).all()):
        t = t[:, 0]  # the node features x
    bad = ~torch.isfinite(t)
    if not bool(bad.any()):  # the sum overflowed; every entry is finite
        return
    nodes = int(bad.flatten(1).any(1).sum())
    columns = torch.nonzero(bad.flatten(0, -2).any(0)).flatten().tolist()
    first = torch.nonzero(bad)[0].tolist()
    if t.dim() == 3:  # only propagated SIGN hops: an overflow of huge (finite) features
        source = f"the SIGN hop {first[1]} features (propagated from finite but huge data.x)"
        where = f"node {first[0]}, hop {first[1]}, column {first[2]}"
        fix = "rescale data.x (e.g. standardise the columns)"
    else:
        source = "the node features x"
        where = f"node {first[0]}, column {first[1]}"
        fix = "replace or impute them in data.x (e.g. torch.nan_to_num) or drop those columns"
    raise NumericalError(
        f"stage {stage!r}: {source} hold NaN/inf at {nodes} nodes in columns "
        f"[{preview(columns)}] (first at {where}); {fix}, then prepare the inputs again",
        stage=stage,
    )


def _describe_tasks(bad: list[int], data: Data) -> str:
    names = getattr(data, "task_names", None)
    if names is not None and len(names) > max(bad, default=-1):
        return preview([f"{t} ({names[t]!r})" for t in bad])
    return preview(bad)


def _diverged(
    stage: str,
    what: str,
    epoch: int,
    logits: Tensor,
    y: Tensor,
    mask: Tensor,
    task_list: list[int],
    data: Data,
    lr: float,
) -> NumericalError:
    """The error for a non-finite loss: stage, epoch, offending tasks and a hint.

    ``logits``, ``y`` and ``mask`` are the ``[n, T']`` of the batch (or of the validation
    nodes) where it happened; ``task_list`` maps their columns to dataset tasks.
    """
    logits = logits.detach().float()
    per_task = per_task_bce(logits, y.to(logits.dtype), mask)
    labelled = mask.any(0)
    # A task is bad when its loss over its labelled rows is non-finite, or (rarely) when its
    # logits are non-finite only outside them.
    bad_pos = (labelled & ~torch.isfinite(per_task)) | ~torch.isfinite(logits).all(0)
    pos = torch.nonzero(bad_pos).flatten().tolist()
    bad = [task_list[i] for i in pos]
    values = [f"{float(per_task[i]):g}" for i in pos]
    if bad:
        which = (
            f"the loss is non-finite for tasks [{_describe_tasks(bad, data)}] "
            f"({len(bad)} of {len(task_list)} trained; per-task loss {preview(values)})"
        )
    else:  # cannot happen with finite per-task losses, kept for a clear message anyway
        which = f"the mean loss is non-finite ({len(task_list)} tasks trained)"
    return NumericalError(
        f"stage {stage!r}: {what} diverged at epoch {epoch}: {which}; lower the learning rate "
        f"(lr={lr:g} now), or check the node features and labels for NaN/inf or huge values",
        stage=stage,
        tasks=bad[:5],
    )


def _val_scores(logits: Tensor, y: Tensor, mask: Tensor, defined: Tensor) -> tuple[float, float]:
    """Mean validation BCE and mean ROC-AUC over ``defined`` tasks, on the logits' device.

    ``logits`` float32, ``y`` and ``mask`` bool ``[n, T]`` on one device (validated once by
    :func:`fit_model`, so the per-epoch check and CPU copies of the public metric are skipped).
    """
    loss = per_task_bce(logits, y, mask)
    val_loss = float(loss[~torch.isnan(loss)].mean()) if (~torch.isnan(loss)).any() else math.nan
    auc = _auc_labelled(y, logits, mask).cpu()
    val_auc = float(auc[defined].mean()) if bool(defined.any()) else math.nan
    return val_loss, val_auc


@dataclass
class _Labels:
    """The labels and masks of the trained tasks (columns in the order of ``tasks``)."""

    tasks: list[int]
    y: Tensor  # [N, T'] on the device
    train: Tensor  # [N, T'] bool on the device
    train_nodes: Tensor  # nodes with a training label in some task
    val_nodes: Tensor  # nodes with a validation label in some task
    y_val: Tensor  # [n_val, T'] float (CPU)
    m_val: Tensor  # [n_val, T'] bool (CPU)
    y_val_dev: Tensor  # [n_val, T'] bool on the device
    m_val_dev: Tensor
    defined: Tensor  # [T'] tasks with both classes in validation

    @classmethod
    def of(
        cls, data: Data, tasks: Sequence[int] | None, select: str, device: torch.device
    ) -> _Labels:
        """Check the tasks' labels and move them to ``device``."""
        num_tasks = int(data.y.size(1))
        task_list = check_tasks(range(num_tasks) if tasks is None else tasks, num_tasks)
        cols = torch.tensor(task_list)
        y_all = data.y.index_select(1, cols).float()
        train_mask = data.train_mask.index_select(1, cols).bool()
        val_mask = data.val_mask.index_select(1, cols).bool()
        train_nodes = train_mask.any(1).nonzero().flatten()
        val_nodes = val_mask.any(1).nonzero().flatten()
        if train_nodes.numel() == 0:
            raise GraphtagError(f"tasks {task_list} have no training labels (train_mask is empty)")
        if val_nodes.numel() == 0:
            raise GraphtagError(f"tasks {task_list} have no validation labels (val_mask is empty)")
        y_val, m_val = y_all[val_nodes], val_mask[val_nodes]
        pos_val = (y_val.bool() & m_val).sum(0)
        defined = (pos_val > 0) & (pos_val < m_val.sum(0))
        if select == "auc" and not bool(defined.any()):
            raise GraphtagError(
                f"no task of {task_list} has both classes in validation, so ROC-AUC is "
                "undefined; use select='loss'"
            )
        # Validation labels on the compute device: each epoch's loss and ROC-AUC run there.
        return cls(
            task_list,
            y_all.to(device),
            train_mask.to(device),
            train_nodes,
            val_nodes,
            y_val,
            m_val,
            (y_val > 0.5).to(device),
            m_val.to(device),
            defined,
        )


@dataclass
class _Best:
    """The evaluation history and the best checkpoint so far."""

    select: str
    start: float
    state: dict[str, Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    score: float = -math.inf
    epoch: int = 0
    value: float = math.nan

    def record(
        self, model: nn.Module, epoch: int, train_loss: float, val_loss: float, val_auc: float
    ) -> None:
        """Log one evaluation; keep the model's state when it is the best so far."""
        self.history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_auc": val_auc,
                "seconds": time.perf_counter() - self.start,
            }
        )
        score = val_auc if self.select == "auc" else -val_loss
        if score > self.score:
            self.score, self.epoch = score, epoch
            self.value = val_auc if self.select == "auc" else val_loss
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


class _WeightAverage:
    """Exponential moving average of a model's weights, updated once per epoch.

    After the first update the average is the model's weights; after each later one it is
    ``decay * average + (1 - decay) * weights`` (floating tensors; other buffers are copied).
    With ``decay == 0`` :attr:`module` is the model itself and nothing is averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.module = model if self.decay == 0.0 else copy.deepcopy(model)
        self.updates = 0

    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        if self.module is model:
            return
        weight = 1.0 if self.updates == 0 else 1.0 - self.decay
        with torch.no_grad():
            mine = self.module.state_dict()
            for key, value in model.state_dict().items():
                if value.is_floating_point():
                    mine[key].lerp_(value, weight)
                else:
                    mine[key].copy_(value)
        self.updates += 1


@dataclass
class _EpochContext:
    """What one epoch of :func:`fit_model` trains and validates on."""

    data: Data
    inputs: GraphInputs
    config: TrainConfig
    lab: _Labels
    stage: str
    step_callback: Callable[[nn.Module, NodeBatch, Tensor, Tensor, float], object] | None

    def train_epoch(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, seed: int, epoch: int
    ) -> float:
        """One pass over the training nodes; the mean masked BCE of its batches."""
        lab, device = self.lab, self.inputs.device
        model.train()
        total, pairs = torch.zeros((), device=device), torch.zeros((), device=device)
        batches = self.inputs.batches(
            lab.train_nodes,
            self.config.batch_size,
            train=True,
            shuffle=True,
            seed=derive_seed(seed, "epoch", epoch),
            fanouts=self.config.resolved_fanouts,
        )
        for b in batches:
            mask = lab.train[b.nodes]
            out = model(*b.args)[b.out]
            loss = masked_bce(out, lab.y[b.nodes], mask)
            if not bool(torch.isfinite(loss)):
                lr = float(optimizer.param_groups[0]["lr"])
                raise _diverged(
                    self.stage, "training", epoch, out, lab.y[b.nodes], mask, lab.tasks,
                    self.data, lr,
                )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if self.step_callback is not None:
                # e.g. TAG's lookahead recorder: (model, batch, y [B, T], mask [B, T], lr)
                lr = float(optimizer.param_groups[0]["lr"])
                self.step_callback(model, b, lab.y[b.nodes], mask, lr)
            count = mask.sum()
            total = total + loss.detach() * count
            pairs = pairs + count
        return float(total / pairs.clamp(min=1))

    def validate(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int
    ) -> tuple[float, float]:
        """Mean validation BCE and ROC-AUC (exact inference on the validation nodes)."""
        lab = self.lab
        logits = _predict(
            model, self.inputs, lab.val_nodes, self.config.eval_batch_size, to_cpu=False
        )
        if not bool(torch.isfinite(logits).all()):
            lr = float(optimizer.param_groups[0]["lr"])
            raise _diverged(
                self.stage, "validation", epoch, logits.cpu(), lab.y_val, lab.m_val, lab.tasks,
                self.data, lr,
            )  # fmt: skip
        return _val_scores(logits, lab.y_val_dev, lab.m_val_dev, lab.defined)


def fit_model(
    data: Data,
    inputs: GraphInputs,
    tasks: Sequence[int] | None,
    config: TrainConfig,
    *,
    seed: int = 0,
    init: nn.Module | None = None,
    select: str = "auc",
    progress: bool = False,
    step_callback: Callable[[nn.Module, NodeBatch, Tensor, Tensor, float], object] | None = None,
    stage: str = "train",
    evaluate_init: bool = False,
) -> TrainResult:
    """Train a multi-task model on ``tasks`` and return its best validation checkpoint.

    Loss: masked BCE, the mean over the labelled (node, task) pairs of each batch, with only the
    training labels of ``tasks``. Training seeds are the nodes with a training label in any of
    ``tasks``. After every epoch the weights are folded into an exponential moving average
    (``config.ema_decay``; the first epoch's weights start it, ``0`` keeps the weights as they
    are). After every ``eval_every`` epochs that average is evaluated exactly on the nodes with
    a validation label; the checkpoint with the best mean validation ROC-AUC over ``tasks``
    (``select="auc"``; tasks without both classes in validation are left out) or mean
    validation BCE (``select="loss"``) is kept, and training stops after ``patience`` epochs
    without improvement.

    Warm start: with ``init``, training starts from a copy of it (``config``'s architecture
    fields are then ignored, its dropout probabilities are not: the copy trains with the
    recipe's ``dropout`` and ``input_dropout``, whatever ``init`` was built with). If ``init``
    has one output per dataset task, the copy is
    ``init.with_tasks(tasks)`` (same body, head rows of ``tasks``), so fine-tuning a subset from
    the all-task base model trains exactly the subset's outputs; if it has ``len(tasks)``
    outputs it is copied as is. ``init`` itself is never modified.

    Randomness: parameters, dropout and batch order derive from ``seed`` only. Dropout draws
    from the global torch RNG, so the loop runs inside :func:`torch.random.fork_rng` with a
    derived seed: the caller's RNG state is left untouched and the same seed gives an identical
    model on the same device.

    Args:
        data: Multi-label graph with ``y``, ``train_mask`` and ``val_mask`` ``[N, T]``.
        inputs: From ``prepare_inputs(data, config.model_config, device)``; the model lives on
            ``inputs.device`` (``config.device``, unless ``"auto"``, must agree).
        tasks: Dataset task indices to train (``None``: all ``T``).
        config: Model and optimisation settings (``input_dropout=None`` is resolved for
            ``data`` by :meth:`TrainConfig.for_data`).
        seed: Seed of initialisation, dropout and batching.
        init: Optional model to warm-start from (see above).
        select: ``"auc"``, ``"loss"`` or ``"auto"`` (ROC-AUC when some task has both classes
            in validation, else the loss: a group of tasks with a single validation class).
        progress: Show a progress bar over epochs.
        step_callback: Optional ``f(model, batch, y, mask, lr)`` called after every optimiser
            step with the batch's labels and training mask ``[B, T]`` of ``tasks`` (used by
            :class:`graphtag.baselines.TAGAffinity`); it must leave the model unchanged.
        stage: Label of the caller's stage (``"base"``, ``"finetune subset (0, 3)"``, ...),
            named in :class:`~graphtag.errors.NumericalError` messages.
        evaluate_init: Also validate the initial model (epoch 0) and keep it if no epoch beats
            it; with ``init``, the result is then never worse than the warm start on validation.

    Returns:
        A :class:`TrainResult`.

    Raises:
        GraphtagError: For bad tasks, mismatched inputs, no training or validation labels, or
            ``select="auc"`` when no task has both classes in validation.
        NumericalError: Before training, when the input features (``inputs.x`` or the SIGN
            hops) hold NaN/inf (naming the columns); during training, when a batch's training
            loss or the validation loss becomes NaN/inf (naming ``stage``, the epoch and the
            tasks whose per-task loss is non-finite, with a hint).

    Example:
        >>> from graphtag.data import build_multilabel_graph
        >>> from graphtag.models import prepare_inputs
        >>> g = torch.Generator().manual_seed(0)
        >>> ei = torch.randint(0, 60, (2, 240), generator=g)
        >>> y = (torch.rand(60, 3, generator=g) < 0.5).float()
        >>> data = build_multilabel_graph(ei, y, name="toy", feature_dim=8)
        >>> config = TrainConfig(hidden_channels=16, epochs=5, device="cpu")
        >>> inputs = prepare_inputs(data, config.model_config, "cpu")
        >>> result = fit_model(data, inputs, [0, 2], config, seed=0)
        >>> result.model.head.out_features, len(result.history)
        (2, 5)
    """
    start = time.perf_counter()
    if select not in SELECT:
        raise GraphtagError(f"select must be 'auc', 'loss' or 'auto', got {select!r}")
    config = config.for_data(data)  # input_dropout=None: decided by the node features
    _check_inputs(data, inputs, config)
    _check_finite_inputs(inputs, stage)
    lab = _Labels.of(data, tasks, select, inputs.device)
    if select == "auto":
        select = "auc" if bool(lab.defined.any()) else "loss"
    device = inputs.device
    fork_devices = (
        [device.index if device.index is not None else 0] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(derive_seed(seed, "fit_model"))
        if device.type == "cuda":
            torch.cuda.manual_seed(derive_seed(seed, "fit_model", "cuda"))
        num_tasks = int(data.y.size(1))
        model = _initial_model(init, config, inputs, lab.tasks, num_tasks).to(device)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        average = _WeightAverage(model, config.ema_decay)  # what is validated and returned
        best = _Best(select, start, {k: v.detach().clone() for k, v in model.state_dict().items()})
        bar = tqdm(
            range(1, config.epochs + 1), disable=not progress, desc="fit_model", unit="epoch"
        )
        ctx = _EpochContext(data, inputs, config, lab, stage, step_callback)
        if evaluate_init:
            best.record(model, 0, math.nan, *ctx.validate(model, optimizer, 0))
        for epoch in bar:
            train_loss = ctx.train_epoch(model, optimizer, seed, epoch)
            average.update(model)
            if epoch % config.eval_every and epoch != config.epochs:
                continue
            val_loss, val_auc = ctx.validate(average.module, optimizer, epoch)
            best.record(average.module, epoch, train_loss, val_loss, val_auc)
            bar.set_postfix(val_auc=f"{val_auc:.4f}", val_loss=f"{val_loss:.4f}")
            if epoch - best.epoch >= config.patience:
                break
    model = average.module
    model.load_state_dict(best.state)
    model.eval()
    return TrainResult(
        model=model,
        best_epoch=best.epoch,
        best_val=float(best.value),
        history=best.history,
        seconds=time.perf_counter() - start,
        tasks=lab.tasks,
        select=select,
    )
