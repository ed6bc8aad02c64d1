"""``graphtag check-estimator``: Grad-TAG loss estimates versus real fine-tuning."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from .._utils import derive_seed
from ..artifacts import save_json
from ..errors import GraphtagError
from ._config import RunConfig, RunOptions
from ._run import Run

__all__ = ["check_estimator", "compare_losses", "reference_noise", "run_check"]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _none(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def compare_losses(
    subsets: list[tuple[int, ...]],
    estimated: np.ndarray,
    real: np.ndarray,
    base: np.ndarray,
    num_tasks: int,
    min_subsets_per_task: int = 5,
) -> dict[str, Any]:
    """Agreement statistics between estimated and real per-(subset, task) losses.

    Args:
        subsets: ``M`` subsets.
        estimated: ``[M, T]`` estimated validation losses (NaN outside the subset).
        real: ``[M, T]`` real validation losses after fine-tuning (NaN outside the subset).
        base: ``[T]`` validation losses of the base model (the "nothing changes" estimate).
        num_tasks: ``T``.
        min_subsets_per_task: Tasks in fewer checked subsets are left out of
            ``within_task_spearman``.

    Returns:
        Dict with ``relative_error`` (mean ``|L_hat - L| / L`` over (subset, task) pairs with
        ``L > 0``), ``baseline_relative_error`` (the same with ``L_hat = base``),
        ``real_mean_change`` and ``estimated_mean_change`` (mean ``(L - base) / base`` and
        ``(L_hat - base) / base``), ``pearson``, ``spearman``, ``within_task_spearman`` (mean
        over tasks in at least ``min_subsets_per_task`` subsets of the Spearman correlation of
        their estimated and real losses; + ``within_task_count``), ``affinity_spearman`` (+
        ``affinity_pairs``) and ``num_pairs``.
    """
    from ..estimation import subset_affinity

    member = ~np.isnan(real)
    est, rl = estimated[member], real[member]
    base_rows = np.broadcast_to(base, real.shape)[member]
    ok = rl > 0
    rel = np.abs(est[ok] - rl[ok]) / rl[ok]
    rel_base = np.abs(base_rows[ok] - rl[ok]) / rl[ok]
    pos = base_rows > 0
    change_real = (rl[pos] - base_rows[pos]) / base_rows[pos]
    change_est = (est[pos] - base_rows[pos]) / base_rows[pos]
    within = []
    for t in range(num_tasks):
        rows = member[:, t]
        if rows.sum() >= min_subsets_per_task:
            r = _spearman(estimated[rows, t], real[rows, t])
            if np.isfinite(r):
                within.append(r)
    out: dict[str, Any] = {
        "relative_error": _none(float(rel.mean())) if rel.size else None,
        "baseline_relative_error": _none(float(rel_base.mean())) if rel_base.size else None,
        "real_mean_change": _none(float(change_real.mean())) if change_real.size else None,
        "estimated_mean_change": _none(float(change_est.mean())) if change_est.size else None,
        "pearson": _none(_pearson(est, rl)),
        "spearman": _none(_spearman(est, rl)),
        "within_task_spearman": _none(float(np.mean(within))) if within else None,
        "within_task_count": len(within),
        "num_pairs": int(member.sum()),
    }
    co = np.zeros((num_tasks, num_tasks), dtype=np.int64)
    for s in subsets:
        idx = np.array(s)
        co[np.ix_(idx, idx)] += 1
    mask = (co > 0) & ~np.eye(num_tasks, dtype=bool)
    if mask.sum() >= 3:
        # Pairs that never co-occur are excluded from the comparison below, so the estimator's
        # warning about them is expected here.
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            a_est = subset_affinity(subsets, estimated, num_tasks)
            a_real = subset_affinity(subsets, real, num_tasks)
        out["affinity_spearman"] = _none(_spearman(a_est[mask], a_real[mask]))
        out["affinity_pairs"] = int(mask.sum())
    else:
        out["affinity_spearman"] = None
        out["affinity_pairs"] = int(mask.sum())
    return out


def reference_noise(
    real: np.ndarray,
    other: np.ndarray,
    num_tasks: int,
    min_subsets_per_task: int = 5,
) -> dict[str, Any]:
    """Seed noise of a stochastic reference: two fine-tunes of the same subsets, compared.

    Args:
        real: ``[M, T]`` real validation losses of the first seed (NaN outside the subset).
        other: ``[M, T]`` the same subsets fine-tuned with a second seed.
        num_tasks: ``T``.
        min_subsets_per_task: Tasks in fewer subsets are left out of ``within_task_spearman``.

    Returns:
        Dict with ``within_task_spearman`` (mean over tasks in at least
        ``min_subsets_per_task`` subsets of the Spearman correlation between the two seeds'
        losses of that task; tasks whose losses are constant are left out), ``count`` (tasks
        in that mean), ``relative_difference`` (mean ``|L1 - L2| / L1`` over (subset, task)
        pairs with ``L1 > 0``) and ``num_pairs``. An estimator's ``within_task_spearman``
        against one seed's table can hardly exceed about the square root of this one.
    """
    member = ~np.isnan(real) & ~np.isnan(other)
    within = []
    for t in range(num_tasks):
        rows = member[:, t]
        if rows.sum() >= min_subsets_per_task:
            r = _spearman(real[rows, t], other[rows, t])
            if np.isfinite(r):
                within.append(r)
    a, b = real[member], other[member]
    ok = a > 0
    rel = np.abs(a[ok] - b[ok]) / a[ok]
    return {
        "within_task_spearman": _none(float(np.mean(within))) if within else None,
        "relative_difference": _none(float(rel.mean())) if rel.size else None,
        "count": len(within),
        "num_pairs": int(member.sum()),
    }


def _network_loss_fn(run: Run, feats: Any) -> Any:
    """``fn(subsets, weights)``: the real network at theta0 + P w on the features' val rows."""
    from ..gradients import VAL, GradientProjector, network_subset_losses

    settings = run.estimator.feature_settings()
    model = run.base_model()
    projector = GradientProjector(
        dim=settings["projection_dim"], block=settings["block"], seed=settings["seed"]
    ).fit(model)
    data = run.data
    val = feats.split.cpu() == VAL
    val_mask = torch.zeros_like(data.val_mask, dtype=torch.bool)
    val_mask[feats.node.cpu()[val], feats.task.cpu()[val]] = True

    def fn(subsets: list[tuple[int, ...]], weights: torch.Tensor) -> torch.Tensor:
        return network_subset_losses(
            model, run.inputs, data, projector, subsets, weights.float(), val_mask=val_mask
        )

    return fn


def _checkpointed_seconds(
    folder: Any,
    fingerprint: str,
    subsets: list[tuple[int, ...]],
    recipe: dict[str, Any],
    seed: int,
) -> float | None:
    """Summed compute seconds of the fine-tunes of ``subsets`` recorded in their checkpoints.

    Checkpoints (``graphtag.executor``) hold each job's key and seconds, so the cost of a real
    fine-tune is known even when it was trained by an earlier, interrupted check. Only records of
    this context, ``recipe`` and ``seed`` count. ``None`` when some subset has no readable record
    (the caller then uses this process's wall clock).
    """
    import json

    wanted = {tuple(int(t) for t in s) for s in subsets}
    found: dict[tuple[int, ...], float] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            key = rec["key"]
            subset = tuple(int(t) for t in key["subset"])
            if (
                key.get("context") == fingerprint
                and key.get("recipe") == recipe
                and key.get("seed") == seed
                and subset in wanted
            ):
                found[subset] = float(rec["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if set(found) != wanted:
        return None
    return float(sum(found.values()))


def _estimates(run: Run, subsets: list[tuple[int, ...]], l2: float | None = None) -> dict[str, Any]:
    """Grad-TAG's estimated losses of ``subsets`` with the run's estimator settings, timed.

    ``l2`` (absolute) replaces the settings' ridge (``experiments/ridge_check.py`` scans it).
    """
    from ..estimation import (
        base_losses,
        estimate_losses,
        fit_surrogates,
        matched_ridge,
        task_statistics,
    )

    feats = run.features()
    est_cfg = run.config.estimator
    if l2 is not None:
        l2_relative = False
    elif est_cfg.l2 is None:
        l2, l2_relative = matched_ridge(), False
    else:
        l2, l2_relative = float(est_cfg.l2), True
    network_fn = _network_loss_fn(run, feats) if est_cfg.loss == "network" else None
    # Per-task statistics are computed once per feature set whatever the number of subsets (as
    # in GradTAG.fit): a fixed cost, like the features.
    start = time.perf_counter()
    task_stats = task_statistics(feats)
    stats_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fit = fit_surrogates(feats, subsets, l2, l2_relative=l2_relative, stats=task_stats)
    estimated = estimate_losses(
        feats, subsets, fit.weights, kind=est_cfg.loss, network_loss_fn=network_fn
    )
    return {
        "estimated": np.asarray(estimated.double().cpu()),
        "base": np.asarray(base_losses(feats).double().cpu()),
        "fit": fit,
        "stats_seconds": stats_seconds,
        "estimate_seconds": time.perf_counter() - start,
    }


def _real_tables(
    run: Run, subsets: list[tuple[int, ...]], reference: str
) -> tuple[list[np.ndarray], float]:
    """Real fine-tunes of ``subsets`` (one table per seed) and their compute seconds."""
    from ..estimation import FINETUNE_RECIPES, RealContext, real_subset_losses

    context = RealContext(run.base_model(), run.data, run.inputs, run.config.train)
    seed0 = run.config.seed
    seeds = [seed0] if reference == "gd" else [seed0, seed0 + 1]
    executor = run.options.executor
    tables, real_seconds = [], 0.0
    for seed in seeds:
        t0 = time.perf_counter()
        tables.append(
            real_subset_losses(
                context,
                subsets,
                seed=seed,
                executor=executor.kind,
                checkpoint_dir=run.out / "finetune",
                progress=run.progress,
                ray_address=executor.address,
                recipe=reference,
            )
        )
        seconds = _checkpointed_seconds(
            run.out / "finetune", context.fingerprint(), subsets, FINETUNE_RECIPES[reference], seed
        )
        real_seconds += time.perf_counter() - t0 if seconds is None else seconds
    return tables, real_seconds


def _timings(
    run: Run, fixed: float, est_per_subset: float, real_per_subset: float
) -> dict[str, Any]:
    """Fixed and marginal costs of both paths, extrapolated to 2,000 subsets."""
    n_ref = 2000
    grad_tag = fixed + n_ref * est_per_subset
    finetune = run.timings.get("base", 0.0) + n_ref * real_per_subset
    return {
        "fixed_seconds": fixed,
        "estimate_seconds_per_subset": est_per_subset,
        "finetune_seconds_per_subset": real_per_subset,
        "marginal_cost_ratio": est_per_subset / real_per_subset if real_per_subset else None,
        "extrapolated_subsets": n_ref,
        "extrapolated_grad_tag_seconds": grad_tag,
        "extrapolated_finetune_seconds": finetune,
        "extrapolated_cost_ratio": grad_tag / finetune if finetune else None,
    }


def check_estimator(
    run: Run, num_subsets: int, subset_size: int, *, reference: str = "gd"
) -> dict[str, Any]:
    """Estimate ``num_subsets`` random subsets with Grad-TAG and fine-tune them for real.

    The reference is :func:`graphtag.estimation.finetune_subset` with recipe ``reference``,
    run through :func:`graphtag.estimation.real_subset_losses` (checkpointed per subset, seed
    and recipe under ``run.out / "finetune"``, so an interrupted check resumes and a check with
    the other recipe reuses nothing):

    * ``"gd"`` (default): deterministic full-batch gradient descent from theta0.
      ``reference_noise`` is ``None`` (a second fine-tune gives the same losses).
    * ``"base"``: the base model's recipe (Adam, dropout, mini-batches, early stopping on the
      subset's validation loss). Every subset is fine-tuned twice, with seeds ``seed`` and
      ``seed + 1``; the statistics compare the estimates with the first seed's table,
      ``vs_mean_of_seeds`` with the mean of both, and ``reference_noise``
      (:func:`reference_noise`) compares the two seeds' tables: the ceiling any estimator can
      reach against this reference.

    The surrogates use the run's estimator settings whatever the reference (with ``l2=None``
    the ridge matched to the ``"gd"`` budget).

    Timings: ``fixed_seconds`` is what Grad-TAG pays once whatever the number of subsets (base
    model, gradient features, per-task statistics); ``estimate_seconds_per_subset`` the
    surrogate fits and loss estimates per checked subset; ``finetune_seconds_per_subset`` the
    compute seconds of one real fine-tune of a subset (from the checkpoints, so a resumed check
    reports the fine-tunes of earlier runs too), and ``marginal_cost_ratio`` their ratio.

    Raises:
        GraphtagError: For an unknown ``reference`` or a subset size above ``T``.
    """
    from ..estimation import FINETUNE_RECIPES, sample_task_subsets

    if not isinstance(reference, str) or reference not in FINETUNE_RECIPES:
        choices = ", ".join(FINETUNE_RECIPES)
        raise GraphtagError(f"--reference {reference!r} is not a fine-tune recipe; use {choices}")
    num_tasks = run.num_tasks
    if subset_size > num_tasks:
        raise GraphtagError(
            f"--subset-size {subset_size} is larger than the number of tasks ({num_tasks})"
        )
    run.base_model()
    run.features()
    fixed = run.timings.get("base", 0.0) + run.timings.get("features", 0.0)
    seed = derive_seed(run.config.seed, "check-subsets")
    subsets = sample_task_subsets(num_tasks, subset_size, num_subsets, seed=seed, min_pair_count=0)
    est = _estimates(run, subsets)
    tables, real_seconds = _real_tables(run, subsets, reference)
    real, estimated = tables[0], est["estimated"]
    stats = compare_losses(subsets, estimated, real, est["base"], num_tasks)
    stats["reference"] = reference
    if len(tables) > 1:
        noise = reference_noise(real, tables[1], num_tasks)
        stats["reference_noise"] = {**noise, "seeds": [run.config.seed, run.config.seed + 1]}
        mean = (tables[0] + tables[1]) / 2
        stats["vs_mean_of_seeds"] = compare_losses(subsets, estimated, mean, est["base"], num_tasks)
    else:
        stats["reference_noise"] = None
        stats["reference_noise_note"] = (
            "the gd reference is deterministic: a second fine-tune gives the same losses"
        )
    m = len(subsets)
    stats.update(
        num_subsets=m,
        subset_size=subset_size,
        converged=int(torch.as_tensor(est["fit"].converged).sum()),
        l2_absolute=float(est["fit"].l2),
        finetune=dict(FINETUNE_RECIPES[reference]),
    )
    timings = _timings(
        run,
        fixed + est["stats_seconds"],
        est["estimate_seconds"] / m,
        real_seconds / (m * len(tables)),
    )
    stats["timings"] = {"statistics_seconds": est["stats_seconds"], **timings}
    stats["subsets"] = [list(s) for s in subsets]

    def rows(table: np.ndarray) -> list[list[float | None]]:
        return [[_none(v) for v in table[k, list(s)]] for k, s in enumerate(subsets)]

    stats["estimated_losses"] = rows(estimated)
    stats["real_losses"] = rows(real)
    if len(tables) > 1:
        stats["real_losses_second_seed"] = rows(tables[1])
    return stats


def run_check(
    config: RunConfig,
    options: RunOptions,
    num_subsets: int,
    subset_size: int,
    reference: str = "gd",
) -> dict[str, Any]:
    """``graphtag check-estimator``: writes ``DIR/estimator.json`` and returns its content."""
    run = Run(config, options)
    run.check_memory(("inputs", "base", "features", "affinity"))
    stats = check_estimator(run, num_subsets, subset_size, reference=reference)
    report = run.header()
    report["estimator"] = asdict(config.estimator)
    report.update(stats)
    report["warnings"] = run.warnings()
    save_json(run.out / "estimator.json", report)
    return report
