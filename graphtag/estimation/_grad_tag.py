"""The Grad-TAG estimator and a synthetic feature generator with planted task groups."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .._utils import resolve_device, torch_generator
from ..base import Estimator, check_is_fitted
from ..defaults import MIN_PAIR_COUNT, NUM_SUBSETS, SUBSET_SIZE
from ..errors import GraphtagError, NumericalError, preview
from ..gradients import TRAIN, GradientFeatures
from ._affinity import subset_affinity
from ._finetune import matched_ridge
from ._losses import NetworkLossFn, base_losses, estimate_losses
from ._subsets import check_subsets, sample_task_subsets
from ._surrogate import _check_features, fit_surrogates, task_statistics

__all__ = ["GradTAG", "make_synthetic_features"]


def _incidence(subsets: Sequence[Sequence[int]], num_tasks: int) -> Tensor:
    """Membership ``[M, T]`` (bool): task ``t`` is in subset ``k``."""
    inc = torch.zeros(len(subsets), num_tasks, dtype=torch.bool)
    for k, s in enumerate(subsets):
        inc[k, list(s)] = True
    return inc


def _numpy(t: Tensor) -> np.ndarray:
    """A CPU numpy copy of ``t`` (numpy for what is handed back to the user)."""
    return t.detach().cpu().numpy()


def _report_excluded(
    subsets: list[tuple[int, ...]],
    converged: Tensor,
    nonfinite: Tensor,
    max_iter: int,
    tol: float,
) -> str:
    """Warn about the subsets left out of the affinity; return a one-line summary."""
    parts = []
    failed = ~converged
    for flags, what in (
        (failed, f"surrogates did not converge within max_iter={max_iter} (tol={tol})"),
        (nonfinite & ~failed, "subsets have NaN/inf estimated losses"),
    ):
        idx = torch.nonzero(flags).flatten().tolist()
        if not idx:
            continue
        tasks = sorted({t for k in idx for t in subsets[k]})
        parts.append(
            f"{len(idx)} of {len(subsets)} {what}; their losses are left out of the "
            f"affinity: subsets {preview([f'{k} {subsets[k]}' for k in idx])} "
            f"(tasks [{preview(tasks, 10)}])"
        )
    if not parts:
        return "no subset was left out"
    hint = "raise max_iter or l2 (see converged_ and excluded_)"
    for part in parts:
        warnings.warn(f"{part}; {hint}", UserWarning, stacklevel=3)
    return "; ".join(parts)


def _finite_network_losses(fn: NetworkLossFn, bad: list[Tensor]) -> NetworkLossFn:
    """Wrap ``fn``: NaN/inf losses are recorded in ``bad`` (bool ``[M, T]``) and passed on as 0.

    :meth:`GradTAG.fit` then restores them as missing and leaves their subsets out.
    """

    def wrapped(subsets: list[tuple[int, ...]], weights: Tensor) -> Tensor:
        out = fn(subsets, weights)
        if isinstance(out, Tensor) and out.is_floating_point():
            flags = ~torch.isfinite(out.detach().cpu())
            bad.append(flags)
            out = torch.where(flags.to(out.device), torch.zeros_like(out), out)
        return out

    return wrapped


class GradTAG(Estimator):
    r"""Grad-TAG: task affinity from gradient-based surrogates of subset training.

    Li, Sharma, Zhang, "Scalable Multitask Learning Using Gradient-based Estimation of Task
    Affinity", KDD 2024. For ``M`` random subsets ``S`` of ``subset_size`` tasks, fit the
    linearised model around the base model ``theta0`` (docs/algorithms.md §4)

    .. math::
        w_S = \arg\min_w \frac{1}{n_S} \sum_{t \in S} \sum_{i \in \mathrm{train}_t}
              \mathrm{BCE}(o_{it} + g_{it}^\top w, y_{it}) + \frac{\lambda}{2} \|w\|^2

    estimate each member task's validation loss :math:`L_t(S)` under :math:`w_S`, and turn the
    table into the affinity of docs/algorithms.md §5: :math:`A_{ij}` = mean over the subsets
    holding ``i`` and ``j`` of task ``i``'s standardised score :math:`-L_i(S)`.

    The defaults are those of ``graphtag run`` (:mod:`graphtag.defaults`), so
    ``GradTAG().fit(features)`` computes what the pipeline computes from the same features and
    seed (the pipeline may grow ``subset_size`` and ``num_subsets`` for ``T`` tasks, see its
    subset plan). Follows the scikit-learn estimator contract
    (:class:`graphtag.base.Estimator`): ``fit`` validates, fitted arrays are numpy.

    Args:
        subset_size: Tasks per subset (``<= T``).
        num_subsets: Number ``M`` of distinct subsets.
        l2: Ridge strength. ``None`` (default): the ridge matched to the real fine-tune's
            budget, :func:`~graphtag.estimation.matched_ridge` (absolute, ``l2_relative`` is
            ignored). A number: relative to the curvature scale
            (:func:`~graphtag.estimation.l2_scale`) unless ``l2_relative=False``.
        min_pair_count: Every pair must share at least this many subsets
            (:func:`~graphtag.estimation.sample_task_subsets`; ``0`` disables it).
        loss: ``"linear"`` (surrogate loss on validation rows, fast) or ``"network"`` (the real
            network at ``theta0 + P w_S``, via the ``network_loss_fn`` given to :meth:`fit`, e.g.
            ``lambda subsets, w: graphtag.gradients.network_subset_losses(model, inputs, data,
            projector, subsets, w)`` with the projector the features were computed with).
        seed: Seed of the subset draw.
        device: Compute device (``None``: where the features are; ``"auto"``: CUDA if available).
        l2_relative: Whether a numeric ``l2`` is relative.
        symmetric: Store ``(A + A^T) / 2`` in ``affinity_`` (clustering-ready); ``False`` keeps the
            directional matrix (row = recipient task).
        tol: Newton convergence tolerance (relative gradient norm).
        max_iter: Maximum Newton steps per subset.
        batch_size: Subsets solved together (``None``: sized to memory).
        progress: Show progress bars.

    Attributes:
        subsets_: ``M`` sorted tuples.
        weights_: ``[M, d]`` float64 surrogate solutions.
        converged_: ``[M]`` bool.
        iterations_: ``[M]`` Newton steps taken.
        excluded_: ``[M]`` bool, the subsets left out of the affinity: their surrogate did not
            converge, or one of their estimated losses is NaN/inf (reported with a
            :class:`UserWarning` naming the first subsets and their tasks).
        losses_: ``[M, T]`` float64 estimated validation losses (NaN outside the subset).
        base_losses_: ``[T]`` float64 validation losses of the base model (``w = 0``).
        affinity_: ``[T, T]`` float64.
        l2_: Absolute ridge strength used.
        timings_: Seconds per stage (``subsets``, ``statistics``, ``surrogates``, ``losses``,
            ``affinity``).

        Every array is a numpy array.

    Example:
        >>> from graphtag.estimation import GradTAG, make_synthetic_features
        >>> feats = make_synthetic_features(num_tasks=6, num_groups=2, seed=0)
        >>> est = GradTAG(subset_size=3, num_subsets=20, min_pair_count=1).fit(feats)
        >>> est.affinity_.shape, est.losses_.shape, type(est.losses_).__name__
        ((6, 6), (20, 6), 'ndarray')
    """

    def __init__(
        self,
        subset_size: int = SUBSET_SIZE,
        num_subsets: int = NUM_SUBSETS,
        l2: float | None = None,
        min_pair_count: int = MIN_PAIR_COUNT,
        loss: str = "linear",
        seed: int = 0,
        device: str | torch.device | None = None,
        *,
        l2_relative: bool = True,
        symmetric: bool = True,
        tol: float = 1e-5,
        max_iter: int = 50,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> None:
        self.subset_size = subset_size
        self.num_subsets = num_subsets
        self.l2 = l2
        self.min_pair_count = min_pair_count
        self.loss = loss
        self.seed = seed
        self.device = device
        self.l2_relative = l2_relative
        self.symmetric = symmetric
        self.tol = tol
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.progress = progress

    def _ridge(self) -> tuple[float, bool]:
        """``(l2, l2_relative)`` passed to the surrogate fit."""
        if self.l2 is None:
            return matched_ridge(), False
        if isinstance(self.l2, bool) or not isinstance(self.l2, int | float) or self.l2 < 0:
            raise GraphtagError(
                f"GradTAG: l2 must be None (the ridge matched to the real fine-tune) or a "
                f"number >= 0, got {self.l2!r}"
            )
        return float(self.l2), bool(self.l2_relative)

    def _check_params(self, network_loss_fn: NetworkLossFn | None) -> None:
        if self.loss not in ("linear", "network"):
            raise GraphtagError(f"loss must be 'linear' or 'network', got {self.loss!r}")
        if self.loss == "network" and network_loss_fn is None:
            raise GraphtagError(
                "loss='network' needs fit(features, network_loss_fn=...) computing the real "
                "network's validation losses at theta0 + P w; or use loss='linear'"
            )
        if self.loss == "linear" and network_loss_fn is not None:
            raise GraphtagError("network_loss_fn is only used with loss='network'")
        tol, max_iter = self.tol, self.max_iter
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol > 0:
            raise GraphtagError(f"GradTAG: tol must be a positive number, got {tol!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise GraphtagError(f"GradTAG: max_iter must be a positive int, got {max_iter!r}")

    def _losses(
        self,
        features: GradientFeatures,
        weights: Tensor,
        network_loss_fn: NetworkLossFn | None,
        device: torch.device,
    ) -> Tensor:
        """``[M, T]`` estimated losses; a network's NaN/inf entries come back as missing."""
        network_bad: list[Tensor] = []
        losses = estimate_losses(
            features,
            self.subsets_,
            weights,
            kind=self.loss,
            network_loss_fn=None
            if network_loss_fn is None
            else _finite_network_losses(network_loss_fn, network_bad),
            batch_size=self.batch_size,
            device=device,
        )
        if network_bad:  # restore the non-finite entries as missing
            losses = torch.where(network_bad[0], torch.nan, losses)
        return losses

    def fit(
        self, features: GradientFeatures, network_loss_fn: NetworkLossFn | None = None
    ) -> GradTAG:
        """Sample subsets, fit their surrogates, estimate losses and the affinity.

        Args:
            features: Projected gradient features with training and validation rows for every
                task.
            network_loss_fn: Only for ``loss="network"``: ``fn(subsets, weights [M, d]) ->
                [M, T]`` validation losses of the real network at ``theta0 + P w_S``.

        Returns:
            ``self``.

        Raises:
            GraphtagError: On invalid hyperparameters, a task without training or validation
                rows, or a ``network_loss_fn`` that does not match ``loss``.
            NumericalError: When the features hold NaN/inf, or when the subsets left out
                (``excluded_``: not converged, or NaN/inf losses) leave a task without any
                estimated loss or a co-occurring pair without an estimate; the affinity is
                never computed from a non-finite loss.
        """
        self._check_params(network_loss_fn)
        l2, l2_relative = self._ridge()
        features = _check_features(features)
        self._check_rows(features)
        device = features.features.device if self.device is None else resolve_device(self.device)
        num_tasks = features.num_tasks
        timings: dict[str, float] = {}

        start = time.perf_counter()
        self.subsets_ = sample_task_subsets(
            num_tasks,
            self.subset_size,
            self.num_subsets,
            seed=self.seed,
            min_pair_count=self.min_pair_count,
        )
        timings["subsets"] = time.perf_counter() - start

        start = time.perf_counter()
        stats = task_statistics(features, device=device)
        timings["statistics"] = time.perf_counter() - start

        start = time.perf_counter()
        fit = fit_surrogates(
            features,
            self.subsets_,
            l2,
            l2_relative=l2_relative,
            max_iter=self.max_iter,
            tol=self.tol,
            batch_size=self.batch_size,
            device=device,
            stats=stats,
            progress=self.progress,
        )
        timings["surrogates"] = time.perf_counter() - start

        start = time.perf_counter()
        losses = self._losses(features, fit.weights, network_loss_fn, device)
        base = base_losses(features, device=device)
        timings["losses"] = time.perf_counter() - start

        start = time.perf_counter()
        member = _incidence(self.subsets_, num_tasks)
        nonfinite = (member & ~torch.isfinite(losses.cpu())).any(1)
        converged = fit.converged.cpu()
        excluded = ~converged | nonfinite
        summary = _report_excluded(self.subsets_, converged, nonfinite, self.max_iter, self.tol)
        try:
            self.affinity_ = subset_affinity(
                self.subsets_,
                losses,
                num_tasks,
                symmetric=self.symmetric,
                exclude=excluded.numpy(),
            )
        except NumericalError as exc:
            raise NumericalError(
                f"Grad-TAG: {summary}; {exc}", stage="affinity", tasks=exc.tasks
            ) from exc
        timings["affinity"] = time.perf_counter() - start
        self.weights_ = _numpy(fit.weights)
        self.converged_ = converged.numpy()
        self.iterations_ = _numpy(fit.iterations)
        self.excluded_ = excluded.numpy()
        self.losses_ = _numpy(losses)
        self.base_losses_ = _numpy(base)
        self.l2_ = fit.l2
        self.timings_ = timings
        self._fitted = (features, stats, network_loss_fn, device)
        return self

    @staticmethod
    def _check_rows(features: GradientFeatures) -> None:
        num_tasks = features.num_tasks
        task, labels = features.task.cpu(), features.labels.cpu()
        train = features.split.cpu() == TRAIN
        n_train = torch.bincount(task[train], minlength=num_tasks)
        n_val = torch.bincount(task[~train], minlength=num_tasks)
        for name, count in (("training", n_train), ("validation", n_val)):
            empty = torch.nonzero(count == 0).flatten().tolist()
            if empty:
                raise GraphtagError(
                    f"tasks {empty[:10]}{' ...' if len(empty) > 10 else ''} have no {name} rows "
                    f"in the gradient features; drop these tasks or re-extract features with "
                    f"{name} nodes for them"
                )
        pos = torch.zeros(num_tasks, dtype=torch.float64)
        pos.index_add_(0, task[train], labels[train].to(torch.float64))
        one_class = torch.nonzero((pos == 0) | (pos == n_train.to(pos.dtype))).flatten().tolist()
        if one_class:
            warnings.warn(
                f"tasks {one_class[:10]}{' ...' if len(one_class) > 10 else ''} have a single "
                "class among their training rows; their surrogate losses carry little signal",
                UserWarning,
                stacklevel=3,
            )

    def estimate(self, subset: Sequence[int]) -> np.ndarray:
        """Estimated validation loss of every task under the surrogate of one subset.

        Uses the fitted features, ridge and loss kind.

        Args:
            subset: Task indices.

        Returns:
            ``[T]`` float64 (NaN for tasks outside ``subset``).

        Raises:
            GraphtagError: If the estimator is not fitted or the subset is invalid.
        """
        check_is_fitted(self, "_fitted")
        features, stats, network_loss_fn, device = self._fitted
        subs = check_subsets([subset], features.num_tasks)
        fit = fit_surrogates(
            features,
            subs,
            self.l2_,
            l2_relative=False,
            max_iter=self.max_iter,
            tol=self.tol,
            device=device,
            stats=stats,
        )
        losses = estimate_losses(
            features,
            subs,
            fit.weights,
            kind=self.loss,
            network_loss_fn=network_loss_fn,
            device=device,
        )
        return _numpy(losses[0])


def make_synthetic_features(
    num_tasks: int = 6,
    num_groups: int = 2,
    train_rows: int = 40,
    val_rows: int = 40,
    dim: int = 8,
    signal: float = 2.0,
    bias: float = -1.0,
    seed: int = 0,
) -> GradientFeatures:
    """Synthetic gradient features with planted task groups (for tests and benchmarks).

    Tasks are split into ``num_groups`` contiguous groups. Group ``c`` has a direction
    ``u_c`` (``||u_c|| = signal``); the rows of task ``t`` in group ``c`` have features
    ``g ~ N(0, I_d)``, base logits ``o ~ N(bias, 1)`` and labels ``y ~ Bernoulli(sigmoid(o +
    g . u_c))``. So tasks of one group gain from moving ``w`` along the same direction and
    training them together helps; tasks of different groups pull ``w`` apart.

    Args:
        num_tasks: ``T``.
        num_groups: Planted groups (``1 <= num_groups <= T``).
        train_rows: Training rows per task.
        val_rows: Validation rows per task.
        dim: Feature dimension ``d``.
        signal: Norm of each group direction.
        bias: Mean base logit.
        seed: Seed.

    Returns:
        :class:`~graphtag.gradients.GradientFeatures`, rows sorted by (task, split, node);
        ``meta["planted_groups"]`` lists the groups.
    """
    for name, value, low in (
        ("num_tasks", num_tasks, 1),
        ("num_groups", num_groups, 1),
        ("train_rows", train_rows, 1),
        ("val_rows", val_rows, 1),
        ("dim", dim, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise GraphtagError(f"{name} must be an integer >= {low}, got {value!r}")
    if num_groups > num_tasks:
        raise GraphtagError(f"num_groups={num_groups} exceeds num_tasks={num_tasks}")
    gen = torch_generator(seed, "make_synthetic_features")
    group = torch.arange(num_tasks) * num_groups // num_tasks
    directions = torch.randn(num_groups, dim, generator=gen, dtype=torch.float64)
    directions = signal * directions / directions.norm(dim=1, keepdim=True)
    per_task = train_rows + val_rows
    num_rows = num_tasks * per_task
    g = torch.randn(num_rows, dim, generator=gen, dtype=torch.float64)
    o = bias + torch.randn(num_rows, generator=gen, dtype=torch.float64)
    task = torch.arange(num_tasks).repeat_interleave(per_task)
    true_logit = o + (g * directions[group[task]]).sum(1)
    labels = torch.bernoulli(torch.sigmoid(true_logit), generator=gen)
    split = torch.cat([torch.zeros(train_rows), torch.ones(val_rows)]).to(torch.int8)
    node = torch.arange(per_task).repeat(num_tasks)
    groups = [torch.nonzero(group == c).flatten().tolist() for c in range(num_groups)]
    return GradientFeatures(
        features=g.float(),
        offsets=o.float(),
        labels=labels.float(),
        task=task,
        node=node,
        split=split.repeat(num_tasks),
        num_tasks=num_tasks,
        meta={
            "synthetic": True,
            "seed": seed,
            "signal": signal,
            "bias": bias,
            "planted_groups": groups,
        },
    )
