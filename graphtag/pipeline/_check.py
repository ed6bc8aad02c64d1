"""``graphtag check-estimator``: Grad-TAG loss estimates versus real fine-tuning."""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from .._utils import derive_seed
from ..artifacts import save_json
from ..errors import GraphtagError
from ._config import EstimatorConfig, RunConfig
from ._run import Run

__all__ = ["check_estimator", "check_estimator_command", "compare_losses"]


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
        Dict with ``relative_error``, ``baseline_relative_error``, ``pearson``, ``spearman``,
        ``within_task_spearman`` (+ ``within_task_count``), ``affinity_spearman`` (+
        ``affinity_pairs``) and ``num_pairs``.
    """
    from ..estimation import subset_affinity

    member = ~np.isnan(real)
    est, rl = estimated[member], real[member]
    base_rows = np.broadcast_to(base, real.shape)[member]
    ok = rl > 0
    rel = np.abs(est[ok] - rl[ok]) / rl[ok]
    rel_base = np.abs(base_rows[ok] - rl[ok]) / rl[ok]
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


def check_estimator(
    run: Run,
    num_subsets: int,
    subset_size: int,
    *,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Estimate ``num_subsets`` random subsets with Grad-TAG and fine-tune them for real.

    Real fine-tunes go through :func:`graphtag.estimation.real_subset_losses` (checkpointed per
    subset under ``run.out / "finetune"``, so an interrupted check resumes). Timings of reused
    fine-tunes are those of this process only.
    """
    from ..estimation import (
        RealContext,
        base_losses,
        estimate_losses,
        fit_surrogates,
        real_subset_losses,
        sample_task_subsets,
    )

    data = run.data
    num_tasks = int(data.y.size(1))
    if subset_size > num_tasks:
        raise GraphtagError(
            f"--subset-size {subset_size} is larger than the number of tasks ({num_tasks})"
        )
    base_model = run.base_model()
    feats = run.features()
    fixed_seconds = run.timings.get("base_model", 0.0) + run.timings.get("features", 0.0)
    subsets = sample_task_subsets(
        num_tasks,
        subset_size,
        num_subsets,
        seed=derive_seed(run.config.seed, "check-subsets"),
        min_pair_count=0,
    )
    est_cfg = run.config.estimator
    start = time.perf_counter()
    kwargs: dict[str, Any] = {} if est_cfg.l2 is None else {"l2": est_cfg.l2}
    fit = fit_surrogates(feats, subsets, **kwargs)
    estimated = estimate_losses(feats, subsets, fit.weights, kind="linear")
    est_seconds = time.perf_counter() - start
    estimated_np = np.asarray(estimated.double().cpu())
    base = np.asarray(base_losses(feats).double().cpu())

    t0 = time.perf_counter()
    real = real_subset_losses(
        RealContext(base_model, data, run.inputs, run.config.train),
        subsets,
        seed=run.config.seed,
        executor=executor,
        checkpoint_dir=run.out / "finetune",
        progress=run.progress,
        ray_address=ray_address,
    )
    real_seconds = time.perf_counter() - t0
    stats = compare_losses(subsets, estimated_np, real, base, num_tasks)
    m = len(subsets)
    est_marginal = est_seconds / m
    real_marginal = real_seconds / m
    n_ref = 2000
    stats.update(
        {
            "num_subsets": m,
            "subset_size": subset_size,
            "converged": int(torch.as_tensor(fit.converged).sum()),
            "timings": {
                "fixed_seconds": fixed_seconds,
                "estimate_seconds_per_subset": est_marginal,
                "finetune_seconds_per_subset": real_marginal,
                "marginal_cost_ratio": est_marginal / real_marginal if real_marginal else None,
                "extrapolated_subsets": n_ref,
                "extrapolated_grad_tag_seconds": fixed_seconds + n_ref * est_marginal,
                "extrapolated_finetune_seconds": run.timings.get("base_model", 0.0)
                + n_ref * real_marginal,
            },
        }
    )
    t = stats["timings"]
    t["extrapolated_cost_ratio"] = (
        t["extrapolated_grad_tag_seconds"] / t["extrapolated_finetune_seconds"]
        if t["extrapolated_finetune_seconds"]
        else None
    )
    stats["subsets"] = [list(s) for s in subsets]
    stats["estimated_losses"] = [
        [_none(v) for v in estimated_np[k, list(s)]] for k, s in enumerate(subsets)
    ]
    stats["real_losses"] = [[_none(v) for v in real[k, list(s)]] for k, s in enumerate(subsets)]
    return stats


def check_estimator_command(args: argparse.Namespace) -> dict[str, Any]:
    """``graphtag check-estimator``: writes ``DIR/estimator.json``."""
    est = EstimatorConfig()
    if getattr(args, "projection_dim", None):
        est = replace(est, projection_dim=args.projection_dim)
    from ._commands import train_config_from_args

    train = train_config_from_args(args)
    config = RunConfig(dataset=args.dataset, seed=args.seed, train=train, estimator=est)
    run = Run(args.out, config, progress=not args.quiet, restart=args.restart)
    stats = check_estimator(
        run,
        args.num_subsets,
        args.subset_size,
        executor=getattr(args, "executor", "local"),
        ray_address=getattr(args, "ray_address", None),
    )
    report = run.header()
    report["estimator"] = asdict(est)
    report.update(stats)
    report["warnings"] = run.warnings()
    save_json(run.out / "estimator.json", report)
    if not args.quiet:
        print(
            f"relative error {stats['relative_error']:.4f} (baseline "
            f"{stats['baseline_relative_error']:.4f}), within-task spearman "
            f"{stats['within_task_spearman']}, marginal cost ratio "
            f"{stats['timings']['marginal_cost_ratio']:.4g} -> {run.out}/estimator.json"
        )
    return report
