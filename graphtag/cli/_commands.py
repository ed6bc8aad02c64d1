"""From parsed flags to typed configurations, the pipeline call and the summary lines printed."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

__all__ = ["COMMANDS", "estimator_config", "recommend_config", "run_config", "run_options"]


def _train_config(args: argparse.Namespace) -> Any:
    """The training recipe: ``--model``, ``--device`` and the overrides of its fields."""
    from ..training import TrainConfig

    cfg = TrainConfig(model=args.model, device=args.device)
    changes = {
        key: getattr(args, key, None) for key in ("epochs", "hidden_channels", "lr", "ema_decay")
    }
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})


def estimator_config(args: argparse.Namespace) -> Any:
    """Grad-TAG settings of the flags this command has (absent or unset flags keep defaults)."""
    from ..pipeline import EstimatorConfig

    # check-estimator's --num-subsets/--subset-size size its own check, not the estimator.
    flags = ("num_subsets", "subset_size", "projection_dim") if args.command == "run" else ()
    flags += ("projection_dim",)
    changes = {k: getattr(args, k) for k in flags if getattr(args, k, None) is not None}
    rows = getattr(args, "max_task_rows", None)
    if rows is not None:
        changes["max_task_rows"] = None if rows == "all" else rows
    return EstimatorConfig(**changes)


def recommend_config(args: argparse.Namespace) -> Any:
    """The :class:`~graphtag.pipeline.RecommendConfig` of ``run``'s flags (unset: defaults)."""
    from ..pipeline import RecommendConfig

    flags = ("select", "confirm", "single_task", "group_init", "score", "holdout")
    changes = {k: getattr(args, k) for k in flags if getattr(args, k, None) is not None}
    if getattr(args, "search", False):
        changes["search"] = True
    return RecommendConfig(**changes)


def run_config(args: argparse.Namespace) -> Any:
    """The :class:`~graphtag.pipeline.RunConfig` of any command's flags."""
    from ..pipeline import RunConfig

    fields: dict[str, Any] = {
        "dataset": args.dataset,
        "seed": args.seed,
        "train": _train_config(args),
        "estimator": estimator_config(args),
    }
    if args.command == "run":
        fields.update(
            method=args.method,
            grouping=args.grouping,
            num_groups=args.num_groups,
            max_groups=args.max_groups,
            num_seeds=args.num_seeds,
            finetune_recipe=args.finetune_recipe,
            recommend=recommend_config(args),
        )
    return RunConfig(**fields)


def run_options(args: argparse.Namespace) -> Any:
    """The :class:`~graphtag.pipeline.RunOptions`: ``--out``, ``--quiet``, ``--restart``, ..."""
    from ..executor import ExecutorConfig
    from ..memory import parse_memory_budget
    from ..pipeline import RunOptions

    executor = ExecutorConfig(
        getattr(args, "executor", "local"), getattr(args, "ray_address", None)
    )
    return RunOptions(
        args.out,
        progress=not args.quiet,
        restart=args.restart,
        max_memory=parse_memory_budget(args.max_memory),
        executor=executor,
    )


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from ..pipeline import run_train

    report = run_train(run_config(args), run_options(args), args.tasks)
    if not args.quiet:
        m = report["metrics"]
        print(
            f"{report['dataset']['name']}: macro AUC {m['macro_auc']:.4f}, AP "
            f"{m['macro_ap']:.4f}, F1 {m['macro_f1']:.4f}, F1(tuned) {m['macro_f1_tuned']:.4f} "
            f"-> {args.out}/report.json"
        )
    return report


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from ..pipeline import run_run

    report = run_run(run_config(args), run_options(args))
    if not args.quiet:
        print(f"recommendation: {report['recommendation']}")
        print(f"evidence: {report['evidence']}")
        print(report["verdict"])
        print(f"report: {args.out}/report.json, {args.out}/report.md, {args.out}/affinity.png")
    return report


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _check(args: argparse.Namespace) -> dict[str, Any]:
    from ..pipeline import run_check

    stats = run_check(
        run_config(args), run_options(args), args.num_subsets, args.subset_size, args.reference
    )
    if not args.quiet:
        noise = stats["reference_noise"]
        noise_text = ""
        if noise is not None:
            seeds = _fmt(noise["within_task_spearman"], ".3f")
            noise_text = f", reference seed-to-seed within-task spearman {seeds}"
        print(
            f"relative error {stats['relative_error']:.4f} (baseline "
            f"{stats['baseline_relative_error']:.4f}), within-task spearman "
            f"{_fmt(stats['within_task_spearman'], '.3f')}{noise_text}, marginal cost ratio "
            f"{stats['timings']['marginal_cost_ratio']:.4g} -> {args.out}/estimator.json"
        )
    return stats


#: The commands that run a pipeline, by name.
COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "train": _train,
    "run": _run,
    "check-estimator": _check,
}
