"""Task affinity by real training: higher-order (KDD'23) and pairwise (HOA-style).

Both methods fine-tune one model per task subset from the base model theta0 with
:func:`~graphtag.estimation.finetune_subset` (the one real subset-training path), measure each
task's validation BCE, and turn the loss table into an affinity matrix with the same formulas as
Grad-TAG (docs/algorithms.md §5): :func:`~graphtag.estimation.subset_affinity` for random subsets of
size ``s``, :func:`~graphtag.estimation.pairwise_affinity` for all singles and pairs. They are the
"true" affinities Grad-TAG estimates, and the reference of ``check-estimator`` (§6).

Each fine-tune is one :class:`~graphtag.executor.Job` run by :func:`~graphtag.executor.run_jobs`
(locally in-process or on Ray) with a per-job checkpoint, so a killed run resumes where it
stopped. A job's key holds a fingerprint of the context (base model weights, graph, labels,
splits and recipe), the subset and the seed; its training seed is derived from that key, so the
losses of a subset do not depend on which other subsets are trained, in what order, or where.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .._utils import resolve_device
from ..errors import GraphtagError, NumericalError
from ..executor import Job, run_jobs
from ..models import GraphInputs
from ..training import TrainConfig
from ._affinity import pairwise_affinity, pairwise_loss_tables, subset_affinity
from ._finetune import FINETUNE_RECIPES, finetune_subset
from ._subsets import check_subsets, pairwise_subsets, sample_task_subsets

__all__ = [
    "PAIRWISE_MAX_TASKS",
    "RealContext",
    "higher_order_affinity",
    "pairwise_real_affinity",
    "real_subset_losses",
]

#: Largest ``T`` :func:`pairwise_real_affinity` accepts by default: ``T (T + 1) / 2`` fine-tunes
#: (820 at ``T = 40``). Pass ``max_tasks=None`` to go beyond it.
PAIRWISE_MAX_TASKS = 40

_HASH_CHUNK = 1 << 26  # bytes per update when fingerprinting tensors


def _hash_tensor(h: Any, name: str, t: Tensor | None) -> None:
    if t is None:
        h.update(f"{name}:None;".encode())
        return
    t = t.detach().cpu().contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
    flat = t.reshape(-1).view(torch.uint8)
    for start in range(0, flat.numel(), _HASH_CHUNK):  # bounded extra memory on large graphs
        h.update(flat[start : start + _HASH_CHUNK].numpy().tobytes())


def _inputs_on(inputs: GraphInputs, device: torch.device) -> GraphInputs:
    """``inputs`` with every tensor moved to ``device`` (``inputs`` itself when already there)."""
    if inputs.device == device:
        return inputs

    def move(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    return GraphInputs(
        inputs.config,
        device,
        hops=move(inputs.hops),
        x=move(inputs.x),
        edge_index=move(inputs.edge_index),
    )


@dataclass
class RealContext:
    """What every real fine-tune shares: theta0, the graph, its prepared inputs and the recipe.

    Passed once to the executor (the local back-end uses it as is; Ray puts it in the object
    store once). When pickled (for Ray), the model and inputs are stored on the CPU; a worker
    moves them once to ``config.device`` (``"auto"``: the GPU Ray assigned, else the CPU).

    Args:
        base_model: theta0 with one output per dataset task (never modified).
        data: The multi-label graph (``y``, ``train_mask``, ``val_mask`` ``[N, T]``).
        inputs: ``prepare_inputs(data, config.model_config, device)``, matching ``base_model``.
        config: The base recipe (:class:`~graphtag.training.TrainConfig`).

    Example:
        >>> import torch
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
        >>> context = RealContext(base, data, inputs, config)
        >>> affinity, subsets, losses = higher_order_affinity(context, 3, 2, min_pair_count=1)
        >>> affinity.shape, losses.shape, sorted(subsets)
        ((3, 3), (3, 3), [(0, 1), (0, 2), (1, 2)])
        >>> affinity, single, pair = pairwise_real_affinity(context)
        >>> bool(np.isfinite(affinity).all()), single.shape, pair.shape
        (True, (3,), (3, 3))
    """

    base_model: nn.Module
    data: Data
    inputs: GraphInputs
    config: TrainConfig
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)
    _unpickled: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        y = getattr(self.data, "y", None)
        if not isinstance(y, Tensor) or y.dim() != 2:
            raise GraphtagError("RealContext: data needs labels y [N, T]")
        if not isinstance(self.config, TrainConfig):
            raise GraphtagError(
                f"RealContext: config must be a TrainConfig, got {type(self.config).__name__}"
            )

    @property
    def num_tasks(self) -> int:
        """``T``, the number of dataset tasks."""
        return int(self.data.y.size(1))

    def fingerprint(self) -> str:
        """SHA-256 of everything a fine-tune depends on (computed once, then cached).

        Covers the base model's class and weights, the recipe (``config`` fields), the graph
        (``x``, ``edge_index``), labels and train/val masks, and the input kind. Checkpoints of
        another base model or dataset are therefore never reused.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(type(self.base_model).__qualname__.encode())
            for name, t in self.base_model.state_dict().items():
                _hash_tensor(h, f"model.{name}", t)
            h.update(repr(sorted(asdict(self.config).items())).encode())
            h.update(repr(self.inputs.config).encode())
            for name in ("x", "edge_index", "y", "train_mask", "val_mask"):
                _hash_tensor(h, f"data.{name}", getattr(self.data, name, None))
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def __getstate__(self) -> dict[str, Any]:
        self.fingerprint()
        state = dict(self.__dict__)
        cpu = torch.device("cpu")
        state["base_model"] = copy.deepcopy(self.base_model).to(cpu)
        state["inputs"] = _inputs_on(self.inputs, cpu)
        state["data"] = copy.copy(self.data).cpu() if self.data.is_cuda else self.data
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._unpickled = True

    def ready(self) -> RealContext:
        """This context, on ``config.device`` when it was unpickled in a worker (once)."""
        if self._unpickled:
            device = resolve_device(self.config.device)
            if self.inputs.device != device:
                self.inputs = _inputs_on(self.inputs, device)
                self.base_model = self.base_model.to(device)
            self._unpickled = False
        return self


def _finetune_job(context: RealContext, job: Job) -> dict[str, Any]:
    """Job function: fine-tune ``job.key["subset"]`` from theta0; validation BCE per task.

    A divergence is re-raised as a :class:`~graphtag.errors.NumericalError` that names the
    subset (it is not retried: the same seed would diverge again).
    """
    ctx = context.ready()
    subset = tuple(int(t) for t in job.key["subset"])
    recipe = next(k for k, v in FINETUNE_RECIPES.items() if v == job.key["recipe"])
    try:
        res = finetune_subset(
            ctx.base_model,
            ctx.data,
            ctx.inputs,
            subset,
            ctx.config,
            seed=job.seed(job.key["seed"]),
            recipe=recipe,
        )
    except NumericalError as exc:
        raise NumericalError(
            f"fine-tuning task subset {subset} from the base model diverged: {exc}",
            stage=f"finetune subset {subset}",
            tasks=exc.tasks or subset,
            subsets=[subset],
        ) from exc
    return {"val_losses": res.val_losses.tolist(), "best_epoch": int(res.best_epoch)}


def _check_context(context: object) -> RealContext:
    if not isinstance(context, RealContext):
        raise GraphtagError(
            f"context must be a graphtag.estimation.RealContext(base_model, data, inputs, "
            f"config), got {type(context).__name__}"
        )
    return context


def real_subset_losses(
    context: RealContext,
    subsets: Sequence[Sequence[int]],
    *,
    seed: int = 0,
    executor: str = "local",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
    ray_address: str | None = None,
    num_gpus_per_job: float = 0,
    max_retries: int = 2,
    recipe: str = "gd",
) -> np.ndarray:
    """Fine-tune every subset for real from theta0 and tabulate validation losses.

    Each subset ``S_k`` is one job: :func:`~graphtag.estimation.finetune_subset` from
    ``context.base_model`` on the tasks of ``S_k`` with ``recipe`` (seed derived from ``seed``
    and the job key), then the validation BCE of each task of ``S_k`` at the selected
    checkpoint. The job key holds the recipe's description, so checkpoints of one recipe are
    never reused for another.

    Args:
        context: The shared :class:`RealContext`.
        subsets: ``M`` subsets of task indices (sorted internally).
        seed: Base seed of the fine-tunes.
        executor: ``"local"`` or ``"ray"`` (see :func:`graphtag.executor.run_jobs`).
        checkpoint_dir: Folder of per-subset checkpoints (``None``: none; a rerun with the same
            folder reuses finished subsets).
        progress: Show a progress bar over subsets.
        ray_address: Ray cluster address (``"auto"``, ``"HOST:PORT"``; ``None``: local).
        num_gpus_per_job: GPUs per Ray task.
        max_retries: Retries of a failing fine-tune (and of a lost Ray worker).
        recipe: Fine-tune recipe, a key of
            :data:`~graphtag.estimation._finetune.FINETUNE_RECIPES` (``"gd"`` or ``"base"``).

    Returns:
        float64 ``[M, T]``: ``losses[k, t]`` is task ``t``'s validation BCE after fine-tuning
        ``S_k``, NaN for ``t`` not in ``S_k`` (or without validation labels).

    Raises:
        GraphtagError: For invalid subsets or options.
        graphtag.executor.JobsFailedError: When some fine-tunes failed (the others are
            checkpointed); a diverged fine-tune (NaN/inf training or validation loss) fails
            with a :class:`~graphtag.errors.NumericalError` naming its subset, which the
            message of this error repeats for the first failure.
    """
    context = _check_context(context)
    if not isinstance(recipe, str) or recipe not in FINETUNE_RECIPES:
        choices = ", ".join(repr(k) for k in FINETUNE_RECIPES)
        raise GraphtagError(f"unknown fine-tune recipe {recipe!r}; choose one of {choices}")
    num_tasks = context.num_tasks
    subsets = check_subsets(subsets, num_tasks)
    fp = context.fingerprint()
    jobs = [
        Job(
            {
                "kind": "finetune_subset",
                "context": fp,
                "recipe": FINETUNE_RECIPES[recipe],
                "subset": list(s),
                "seed": int(seed),
            }
        )
        for s in subsets
    ]
    results = run_jobs(
        jobs,
        _finetune_job,
        context,
        checkpoint_dir=checkpoint_dir,
        executor=executor,
        progress=progress,
        ray_address=ray_address,
        num_gpus_per_job=num_gpus_per_job,
        max_retries=max_retries,
        desc="fine-tune subsets",
    )
    losses = np.full((len(subsets), num_tasks), np.nan)
    rows = np.repeat(np.arange(len(subsets)), [len(s) for s in subsets])
    cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in subsets])
    losses[rows, cols] = np.concatenate(
        [np.asarray(r["val_losses"], dtype=np.float64) for r in results]
    )
    return losses


def higher_order_affinity(
    context: RealContext,
    num_subsets: int,
    subset_size: int,
    *,
    seed: int = 0,
    min_pair_count: int = 5,
    **options: Any,
) -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
    """Higher-order task affinity by real training (Li et al., KDD'23).

    :func:`~graphtag.estimation.sample_task_subsets` draws ``num_subsets`` subsets of size
    ``subset_size`` (every pair co-occurring ``min_pair_count`` times), each is fine-tuned for
    real (:func:`real_subset_losses`), and :func:`~graphtag.estimation.subset_affinity` turns
    the losses into the affinity, exactly as Grad-TAG does with estimated losses.

    Args:
        context: The shared :class:`RealContext`.
        num_subsets: ``M``.
        subset_size: ``s``.
        seed: Seed of the subset draw and of the fine-tunes.
        min_pair_count: Minimum co-occurrence of every pair of tasks.
        **options: Keyword arguments of :func:`real_subset_losses` (``executor``,
            ``checkpoint_dir``, ``progress``, ``ray_address``, ``num_gpus_per_job``,
            ``max_retries``, ``recipe``).

    Returns:
        ``(affinity [T, T], subsets, losses [M, T])``; ``subsets`` are the ``M`` sorted tuples in
        the order of the rows of ``losses``.
    """
    context = _check_context(context)
    subsets = sample_task_subsets(
        context.num_tasks, subset_size, num_subsets, seed=seed, min_pair_count=min_pair_count
    )
    losses = real_subset_losses(context, subsets, seed=seed, **options)
    affinity = subset_affinity(subsets, losses, context.num_tasks)
    return np.asarray(affinity, dtype=np.float64), subsets, losses


def pairwise_real_affinity(
    context: RealContext,
    *,
    seed: int = 0,
    max_tasks: int | None = PAIRWISE_MAX_TASKS,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise task affinity by real training (HOA-style, Standley et al., ICML 2020).

    Fine-tunes every single task and every pair from theta0 (``T (T + 1) / 2`` jobs) and applies
    :func:`~graphtag.estimation.pairwise_affinity`. Meant for small ``T``.

    Args:
        context: The shared :class:`RealContext`.
        seed: Seed of the fine-tunes.
        max_tasks: Refuse more tasks than this (default :data:`PAIRWISE_MAX_TASKS` = 40);
            ``None`` forces any ``T``.
        **options: Keyword arguments of :func:`real_subset_losses` (``executor``,
            ``checkpoint_dir``, ``progress``, ``ray_address``, ``num_gpus_per_job``,
            ``max_retries``, ``recipe``).

    Returns:
        ``(affinity [T, T], single_losses [T], pair_losses [T, T])``: ``single_losses[i]`` is
        task ``i``'s validation BCE trained alone, ``pair_losses[i, j]`` task ``i``'s trained
        with ``j`` (NaN diagonal).

    Raises:
        GraphtagError: When ``T > max_tasks``.
    """
    context = _check_context(context)
    num_tasks = context.num_tasks
    if max_tasks is not None and num_tasks > max_tasks:
        count = num_tasks * (num_tasks + 1) // 2
        raise GraphtagError(
            f"pairwise affinity by real training needs T(T+1)/2 = {count} fine-tunes for "
            f"{num_tasks} tasks (limit max_tasks={max_tasks}); use higher_order_affinity or "
            f"Grad-TAG for many tasks, or pass max_tasks=None to force it"
        )
    subsets = pairwise_subsets(num_tasks)
    losses = real_subset_losses(context, subsets, seed=seed, **options)
    single, pair = pairwise_loss_tables(subsets, losses, num_tasks)
    affinity = pairwise_affinity(single, pair)
    return np.asarray(affinity, dtype=np.float64), single, pair
