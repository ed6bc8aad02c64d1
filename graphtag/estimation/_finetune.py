"""Real fine-tuning of a task subset from the base model: THE one real-training path.

Every consumer of "train the subset for real" (``check-estimator``, the higher-order and pairwise
affinity methods, the benchmarks) goes through :func:`finetune_subset`, so the recipes are
defined in one place. Two recipes exist (:data:`FINETUNE_RECIPES`); both start from theta0 (the
base model, head restricted to the subset's rows), train every parameter on the subset's
training labels only (masked BCE, mean over labelled (node, task) pairs) and report each task's
validation BCE (exact inference):

* ``"gd"`` (the default, :data:`FINETUNE_RECIPE`): full-batch gradient descent (the gradient of
  the whole training loss, accumulated over exact node chunks), ``steps`` steps of size ``lr``
  (:data:`FINETUNE_STEPS`, :data:`FINETUNE_LR`), eval-mode forward passes (no dropout), no
  validation-based checkpoint selection (the losses after the last step). Deterministic: the
  losses of a subset are a function of the subset alone (``seed`` is ignored). A step that
  raises the training loss is undone and retried at half the step size, so the training loss
  never increases; :attr:`FinetuneResult.lr` reports the step size in use at the end.
* ``"base"``: the base model's own recipe via :func:`~graphtag.training.fit_model`
  (``init=theta0``, ``select="loss"``): Adam with ``TrainConfig.lr`` and ``weight_decay``,
  dropout, shuffled mini-batches, at most ``TrainConfig.epochs`` epochs with early stopping on
  the subset's mean validation BCE. Stochastic: ``seed`` drives dropout and batching.

``"gd"`` is the reference estimators are ranked against: the differences between subsets are
what the subsets do, not what a seed did, and ``steps`` of gradient descent of size ``lr`` act
like a ridge of ``1 / (lr * steps)`` (early stopping as implicit regularisation), the surrogate
Grad-TAG solves (docs/algorithms.md §4; :func:`matched_ridge`). ``"base"`` answers what training
the subset with the project's own recipe gives; ``check-estimator --reference base`` measures
how much of that is seed noise. The evidence for both choices (noise of the base recipe, the
budget, the matched ridge) is in experiments/README.md ("Reference fine-tune").

Job keys (:func:`~graphtag.estimation.real_subset_losses`, ``check-estimator``) hold the recipe's
entry of :data:`FINETUNE_RECIPES`, so checkpoints of one recipe are never reused for the other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from ..errors import GraphtagError, NumericalError
from ..models import GraphInputs, check_tasks
from ..training import TrainConfig, fit_model, per_task_bce, predict
from ..training._loop import _check_finite_inputs, _check_inputs, _diverged, _initial_model

__all__ = [
    "FINETUNE_LR",
    "FINETUNE_RECIPE",
    "FINETUNE_RECIPES",
    "FINETUNE_STEPS",
    "FinetuneResult",
    "finetune_subset",
    "matched_ridge",
]

#: Step size of the real fine-tune's gradient descent (see the module docstring).
FINETUNE_LR = 0.1

#: Number of full-batch gradient steps of the real fine-tune (see the module docstring).
FINETUNE_STEPS = 30

#: What the default fine-tune is, for job keys and reports: checkpoints of another recipe (the
#: earlier Adam/dropout/early-stopping one, or another budget) must not be reused.
FINETUNE_RECIPE = {
    "method": "full-batch gradient descent from theta0, eval mode, every parameter",
    "lr": FINETUNE_LR,
    "steps": FINETUNE_STEPS,
    "selection": "none (validation losses after the last step)",
    "deterministic": True,
}

#: The recipes :func:`finetune_subset` knows, by name (``recipe=``), each described for job keys
#: and reports: ``"gd"`` is :data:`FINETUNE_RECIPE` (unchanged, so its earlier checkpoints stay
#: valid), ``"base"`` the base model's own recipe (its settings are those of the ``TrainConfig``,
#: which job keys fingerprint separately). See the module docstring.
FINETUNE_RECIPES: dict[str, dict] = {
    "gd": FINETUNE_RECIPE,
    "base": {
        "method": "the base recipe (fit_model) from theta0: Adam with TrainConfig lr and "
        "weight_decay, dropout, shuffled mini-batches, every parameter",
        "epochs": "TrainConfig.epochs, early stopping after TrainConfig.patience epochs",
        "selection": "best checkpoint by the subset's mean validation BCE",
        "deterministic": False,
    },
}

# A step is undone when it raises the training loss by more than this fraction (float32 sums
# over ~1e5 pairs round at ~1e-7), and at most this many halvings of the step are tried.
_RISE_TOLERANCE = 1e-6
_MAX_HALVINGS = 20


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune_subset`.

    Attributes:
        tasks: The subset (dataset task indices, in the order given).
        val_losses: float64 ``[|S|]`` validation BCE of each task of the reported model.
        best_epoch: ``"gd"``: number of gradient steps taken (each a full pass over the
            training nodes); the model after the last one is reported. ``"base"``: the 1-based
            epoch of the reported (best validation loss) checkpoint.
        seconds: Wall-clock seconds of the fine-tune.
        train_losses: Training loss of the subset (mean BCE over its labelled training pairs).
            ``"gd"``: before the first step and after every step, ``[best_epoch + 1]``.
            ``"base"``: mean over each evaluated epoch's mini-batches (dropout on), one per
            evaluation.
        lr: ``"gd"``: step size in use at the end (smaller than the one asked for when steps
            had to be halved). ``"base"``: Adam's learning rate ``config.lr``.
    """

    tasks: list[int]
    val_losses: Tensor
    best_epoch: int
    seconds: float
    train_losses: list[float] = field(default_factory=list)
    lr: float = math.nan


def matched_ridge(lr: float = FINETUNE_LR, steps: int = FINETUNE_STEPS) -> float:
    """Absolute ridge of the Grad-TAG surrogate matched to the real fine-tune's budget.

    ``steps`` gradient steps of size ``lr`` from ``w = 0`` on a (locally) quadratic loss shrink
    the direction of curvature ``h`` by ``1 - (1 - lr h)^steps ~ 1 - exp(-lr steps h)``; a ridge
    ``lam`` shrinks it by ``h / (h + lam)``. Both keep the stiff directions and damp the flat
    ones, with the same cross-over at ``lam = 1 / (lr * steps)``. Projected gradient descent
    moves the logits like full gradient descent in expectation (``E[P P^T] = I``), so this is
    the ridge, in the surrogate's absolute units (``l2_relative=False``), whose solution mimics
    :func:`finetune_subset`.

    Args:
        lr: Step size of the real fine-tune.
        steps: Number of steps.

    Returns:
        ``1 / (lr * steps)``.

    Example:
        >>> round(matched_ridge(0.1, 30), 4)
        0.3333
    """
    _check_budget(lr, steps)
    return 1.0 / (float(lr) * int(steps))


def _check_budget(lr: float, steps: int) -> None:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
        raise GraphtagError(f"fine-tune lr must be a positive number, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GraphtagError(f"fine-tune steps must be a positive integer, got {steps!r}")


class _FullBatch:
    """Full-batch training loss (and gradient) of a subset, accumulated over exact chunks."""

    def __init__(
        self,
        model: nn.Module,
        inputs: GraphInputs,
        data: Data,
        tasks: list[int],
        batch_size: int,
        stage: str,
    ) -> None:
        cols = torch.tensor(tasks)
        device = inputs.device
        self.model, self.inputs, self.data, self.tasks = model, inputs, data, tasks
        self.y = data.y.index_select(1, cols).float().to(device)
        self.mask = data.train_mask.index_select(1, cols).bool().to(device)
        self.nodes = torch.nonzero(self.mask.any(1)).flatten().cpu()
        self.pairs = float(self.mask.sum())
        self.batch_size, self.stage = batch_size, stage
        if self.nodes.numel() == 0:
            raise GraphtagError(f"tasks {tasks} have no training labels (train_mask is empty)")

    def __call__(self, step: int, lr: float, *, grad: bool) -> float:
        """Mean training BCE at the current parameters (``.grad`` set to its gradient if ``grad``).

        Raises :class:`NumericalError` (naming the tasks) on a non-finite loss.
        """
        model = self.model
        model.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float64, device=self.inputs.device)
        with torch.set_grad_enabled(grad):
            for b in self.inputs.batches(self.nodes, self.batch_size, train=False):
                out = model(*b.args)[b.out]
                y, mask = self.y[b.nodes], self.mask[b.nodes]
                loss = (
                    F.binary_cross_entropy_with_logits(out, y, reduction="none") * mask
                ).sum() / self.pairs
                if not bool(torch.isfinite(loss)):
                    raise _diverged(
                        self.stage, "training", step, out, y, mask, self.tasks, self.data, lr
                    )
                if grad:
                    loss.backward()
                total += loss.detach().double()
        return float(total)


def finetune_subset(
    base_model: nn.Module,
    data: Data,
    inputs: GraphInputs,
    subset: Sequence[int],
    config: TrainConfig,
    *,
    seed: int = 0,
    lr: float | None = None,
    steps: int | None = None,
    recipe: str = "gd",
) -> FinetuneResult:
    """Fine-tune ``base_model`` on the tasks of ``subset`` and measure their validation losses.

    ``recipe="gd"`` (default): full-batch gradient descent from theta0 on every parameter
    (eval-mode forward passes), ``steps`` steps of size ``lr``. ``recipe="base"``: the base
    model's recipe, :func:`~graphtag.training.fit_model` from theta0 with ``select="loss"``
    (Adam, dropout, mini-batches, early stopping on the subset's mean validation BCE), the best
    checkpoint. Then each task's validation BCE (exact inference). See the module docstring for
    the recipes and the evidence behind them.

    Args:
        base_model: theta0, with one output per dataset task (left unchanged).
        data: The multi-label graph.
        inputs: Prepared inputs matching ``base_model``.
        subset: Dataset task indices ``S``.
        config: ``"gd"``: supplies the node chunk sizes (``batch_size`` for the gradient passes,
            ``eval_batch_size`` for validation) and the device checks; its optimiser settings
            are not used. ``"base"``: the whole recipe (optimiser, ``lr``, ``weight_decay``,
            ``dropout``, ``batch_size``, ``epochs``, ``patience``).
        seed: ``"gd"``: ignored (deterministic; kept for the job interface). ``"base"``: seed
            of dropout and batch order.
        lr: ``"gd"`` only: gradient step size (``None``: :data:`FINETUNE_LR`).
        steps: ``"gd"`` only: number of gradient steps (``None``: :data:`FINETUNE_STEPS`).
        recipe: A key of :data:`FINETUNE_RECIPES` (``"gd"`` or ``"base"``).

    Returns:
        A :class:`FinetuneResult`; for ``"base"``, ``best_epoch`` is the selected epoch,
        ``train_losses`` the mean training BCE of every evaluated epoch and ``lr`` is
        ``config.lr``.

    Raises:
        GraphtagError: For an unknown recipe, ``lr``/``steps`` given to ``"base"``, bad tasks,
            budget or inputs, or tasks without training (or, for ``"base"``, validation) labels.
        NumericalError: When a training loss becomes NaN/inf (naming the tasks), or, for
            ``"gd"``, when no step size down to ``lr / 2**20`` lowers the loss.

    Example:
        >>> from graphtag.data import build_multilabel_graph
        >>> from graphtag.models import prepare_inputs
        >>> from graphtag.training import fit_model
        >>> g = torch.Generator().manual_seed(0)
        >>> ei = torch.randint(0, 60, (2, 240), generator=g)
        >>> y = (torch.rand(60, 3, generator=g) < 0.5).float()
        >>> data = build_multilabel_graph(ei, y, name="toy", feature_dim=8)
        >>> config = TrainConfig(hidden_channels=8, num_hops=2, epochs=5, device="cpu")
        >>> inputs = prepare_inputs(data, config.model_config, "cpu")
        >>> base = fit_model(data, inputs, None, config, select="loss").model
        >>> res = finetune_subset(base, data, inputs, [0, 2], config, steps=5)
        >>> res.val_losses.shape, res.best_epoch, res.train_losses[-1] <= res.train_losses[0]
        (torch.Size([2]), 5, True)
        >>> res = finetune_subset(base, data, inputs, [0, 2], config, recipe="base", seed=1)
        >>> res.val_losses.shape, 1 <= res.best_epoch <= config.epochs, res.lr == config.lr
        (torch.Size([2]), True, True)
    """
    if not isinstance(recipe, str) or recipe not in FINETUNE_RECIPES:
        choices = ", ".join(repr(k) for k in FINETUNE_RECIPES)
        raise GraphtagError(f"unknown fine-tune recipe {recipe!r}; choose one of {choices}")
    if recipe == "base":
        if lr is not None or steps is not None:
            raise GraphtagError(
                "lr and steps belong to the 'gd' fine-tune; the 'base' recipe takes its "
                "optimiser settings from config (TrainConfig lr, epochs, patience)"
            )
        return _finetune_base(base_model, data, inputs, subset, config, seed)
    lr = FINETUNE_LR if lr is None else lr
    steps = FINETUNE_STEPS if steps is None else steps
    del seed  # deterministic by design (see the module docstring)
    start = time.perf_counter()
    _check_budget(lr, steps)
    _check_inputs(data, inputs, config)
    num_tasks = int(data.y.size(1))
    tasks = check_tasks([int(t) for t in subset], num_tasks)
    stage = f"finetune subset {tuple(tasks)}"
    _check_finite_inputs(inputs, stage)
    model = _initial_model(base_model, config, inputs, tasks, num_tasks).to(inputs.device)
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn = _FullBatch(model, inputs, data, tasks, config.batch_size, stage)

    step_size = float(lr)
    losses = [loss_fn(1, step_size, grad=True)]
    halvings = 0
    while len(losses) <= steps:
        saved = [(p.detach().clone(), p.grad) for p in params]
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-step_size)
        last = len(losses) == steps
        try:
            new = loss_fn(len(losses) + 1, step_size, grad=not last)
        except NumericalError:
            new = math.inf  # the step overshot into overflow: undo it like any rise
        if new > losses[-1] * (1 + _RISE_TOLERANCE):
            halvings += 1
            if halvings > _MAX_HALVINGS:
                raise NumericalError(
                    f"stage {stage!r}: no gradient step down to lr={step_size:g} lowers the "
                    f"training loss ({losses[-1]:g}) at step {len(losses)}; check the base "
                    "model and the inputs for huge values",
                    stage=stage,
                    tasks=tasks[:5],
                )
            with torch.no_grad():
                for p, (value, grad) in zip(params, saved):
                    p.copy_(value)
                    p.grad = grad
            step_size /= 2
            continue
        losses.append(new)

    val_nodes = torch.nonzero(data.val_mask[:, tasks].any(1)).flatten()
    logits = predict(model, inputs, val_nodes, batch_size=config.eval_batch_size)
    val = per_task_bce(
        logits.double(), data.y[val_nodes][:, tasks].double(), data.val_mask[val_nodes][:, tasks]
    )
    return FinetuneResult(
        tasks, val, steps, time.perf_counter() - start, train_losses=losses, lr=step_size
    )


def _finetune_base(
    base_model: nn.Module,
    data: Data,
    inputs: GraphInputs,
    subset: Sequence[int],
    config: TrainConfig,
    seed: int,
) -> FinetuneResult:
    """The ``"base"`` recipe: ``fit_model`` from theta0 on ``subset``, best-loss checkpoint."""
    start = time.perf_counter()
    _check_inputs(data, inputs, config)
    tasks = check_tasks([int(t) for t in subset], int(data.y.size(1)))
    res = fit_model(
        data,
        inputs,
        tasks,
        config,
        seed=seed,
        init=base_model,
        select="loss",
        stage=f"finetune subset {tuple(tasks)}",
    )
    val_nodes = torch.nonzero(data.val_mask[:, tasks].any(1)).flatten()
    logits = predict(res.model, inputs, val_nodes, batch_size=config.eval_batch_size)
    val = per_task_bce(
        logits.double(), data.y[val_nodes][:, tasks].double(), data.val_mask[val_nodes][:, tasks]
    )
    return FinetuneResult(
        tasks,
        val,
        int(res.best_epoch),
        time.perf_counter() - start,
        train_losses=[float(h["train_loss"]) for h in res.history],
        lr=float(config.lr),
    )
