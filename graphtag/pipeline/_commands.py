"""The CLI commands as library functions (argparse namespaces in, files out)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from .._utils import derive_seed
from ..artifacts import atomic_write, save_json
from ..errors import GraphtagError
from ..memory import parse_memory_budget
from ..reporting import plot_affinity, render_report_md, summarise_seeds
from ..training import TrainConfig, fit_model, predict
from ._config import EstimatorConfig, RunConfig
from ._run import Run, train_config_with

__all__ = ["parse_tasks", "run_command", "run_pipeline", "train_command"]


def parse_tasks(text: str, num_tasks: int) -> list[int] | None:
    """``"all"`` -> ``None``; ``"0,3,7"`` -> ``[0, 3, 7]`` (validated against ``num_tasks``)."""
    if text.strip().lower() == "all":
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise GraphtagError(
                f"--tasks: {part!r} is not a task index; use 'all' or e.g. 0,3,7"
            ) from None
    if not out:
        raise GraphtagError("--tasks is empty; use 'all' or e.g. 0,3,7")
    bad = [t for t in out if not 0 <= t < num_tasks]
    if bad:
        raise GraphtagError(
            f"--tasks {bad} out of range: the dataset has {num_tasks} tasks (0..{num_tasks - 1})"
        )
    if len(set(out)) != len(out):
        raise GraphtagError(f"--tasks lists a task twice: {text}")
    return out


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training recipe of the CLI flags (``--model``, ``--device``, ``--epochs``, ...)."""
    return train_config_with(
        TrainConfig(model=args.model, device=args.device),
        epochs=getattr(args, "epochs", None),
        hidden_channels=getattr(args, "hidden_channels", None),
    )


def estimator_config_from_args(args: argparse.Namespace, **changes: Any) -> EstimatorConfig:
    """Grad-TAG settings: :class:`EstimatorConfig` with the CLI flags the parser has.

    Flags: ``--projection-dim``, ``--block``, ``--l2``, ``--estimator-loss`` and
    ``--max-task-rows`` (``all`` keeps every row); ``changes`` (e.g. ``num_subsets``) are
    applied too. Flags left out (``None``) keep the defaults.
    """
    from dataclasses import replace

    values = {
        "projection_dim": getattr(args, "projection_dim", None),
        "block": getattr(args, "block", None),
        "l2": getattr(args, "l2", None),
        "loss": getattr(args, "estimator_loss", None),
        **changes,
    }
    est = replace(EstimatorConfig(), **{k: v for k, v in values.items() if v is not None})
    rows = getattr(args, "max_task_rows", None)
    if rows is not None:
        est = replace(est, max_task_rows=None if rows == "all" else rows)
    return est


def run_from_args(args: argparse.Namespace, config: RunConfig) -> Run:
    """A :class:`Run` in ``--out`` honouring ``--quiet``, ``--restart`` and ``--max-memory``."""
    return Run(
        args.out,
        config,
        progress=not args.quiet,
        restart=args.restart,
        max_memory=parse_memory_budget(getattr(args, "max_memory", "auto")),
    )


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    """``graphtag train``: one multi-task model, ``DIR/report.json``."""
    config = RunConfig(dataset=args.dataset, seed=args.seed, train=train_config_from_args(args))
    run = run_from_args(args, config)
    data = run.data
    tasks = parse_tasks(args.tasks, int(data.y.size(1)))
    run.check_memory(("inputs", "base_training"))
    from ..grouping import evaluate_logits

    if tasks is None:
        logits = run.base_logits()
        info = None
    else:
        start = time.perf_counter()
        res = fit_model(
            data, run.inputs, tasks, config.train, seed=config.seed, progress=run.progress
        )
        run.timings["train"] = time.perf_counter() - start
        logits = predict(res.model, run.inputs, batch_size=config.train.eval_batch_size)
        info = {"best_epoch": res.best_epoch, "best_val_auc": res.best_val}
    ev = evaluate_logits(data, logits, tasks)
    report = run.header()
    report["trained_tasks"] = tasks if tasks is not None else list(range(int(data.y.size(1))))
    report["metrics"] = ev["metrics"]
    report["per_task"] = ev["per_task"]
    report["warnings"] = run.warnings()
    if info:
        report["training"] = info
    report["timings"] = {k: round(v, 3) for k, v in run.timings.items()}
    report["reused_stages"] = run.reused
    save_json(run.out / "report.json", report)
    m = ev["metrics"]
    if not args.quiet:
        print(
            f"{data.name}: macro AUC {m['macro_auc']:.4f}, AP {m['macro_ap']:.4f}, "
            f"F1 {m['macro_f1']:.4f}, F1(tuned) {m['macro_f1_tuned']:.4f} -> {run.out}/report.json"
        )
    return report


def _nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (no warning) where every value is NaN."""
    finite = ~np.isnan(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def run_pipeline(run: Run) -> dict[str, Any]:
    """Affinity, groups, grouped/all-in-one/random models over seeds, and the report files."""
    from ..grouping import random_groups_like

    config = run.config
    data = run.data
    num_tasks = int(data.y.size(1))
    groups = run.groups()
    # TAG's selected, possibly overlapping groups (--grouping tag-selection), else None.
    selected = run.selected_groups()
    affinity = None if config.method == "random" else run.affinity()
    blocks: dict[str, list[dict[str, Any]]] = {"mtl_all": [], "grouped": [], "random_groups": []}
    per_task_auc: dict[str, list[list[float | None]]] = {b: [] for b in blocks}
    seeds = [config.seed + r for r in range(config.num_seeds)]
    assignments: dict[str, list[int]] = {}
    serving: dict[tuple[int, ...], list[int]] = {}
    from tqdm.auto import tqdm

    for s in tqdm(
        seeds, desc="evaluate seeds (all-in-one, grouped, random)", disable=not run.progress
    ):
        with run._timed("evaluate"):
            if s == config.seed:
                from ..grouping import evaluate_logits

                ev_all = evaluate_logits(data, run.base_logits())
            else:
                ev_all = run.evaluate_partition([list(range(num_tasks))], "mtl_all", s)
            if selected is None:
                ev_grp = run.evaluate_partition(groups, "grouped", s)
            else:
                ev_grp, sel = run.evaluate_selection(selected, "grouped", s)
                assignments[str(s)] = sel.assignment
                if s == config.seed:
                    # Report each task in the selected group that serves it (validation choice
                    # of the first seed); random groups copy these sizes.
                    groups = sel.partition()
                    serving = {tuple(b): sel.groups[sel.assignment[b[0]]] for b in groups}
            rand = random_groups_like(groups, num_tasks, seed=derive_seed(s, "random_groups"))
            ev_rnd = run.evaluate_partition(rand, "random_groups", s)
        for name, ev in (("mtl_all", ev_all), ("grouped", ev_grp), ("random_groups", ev_rnd)):
            blocks[name].append(ev["metrics"])
            per_task_auc[name].append([p["auc"] for p in ev["per_task"]])
    metrics = {name: summarise_seeds(vals) for name, vals in blocks.items()}
    mean_auc = {
        name: _nan_mean(np.array(v, dtype=np.float64), axis=0) for name, v in per_task_auc.items()
    }
    per_group = []
    for g in groups:
        row = {"tasks": g}
        for name in blocks:
            vals = mean_auc[name][g]
            row[f"{name}_auc"] = None if np.isnan(vals).all() else float(np.nanmean(vals))
        row["grouped_auc"] = row.pop("grouped_auc")
        if serving:
            row["model_tasks"] = serving[tuple(g)]
        per_group.append(row)
    g_auc, a_auc = metrics["grouped"]["macro_auc"], metrics["mtl_all"]["macro_auc"]
    if g_auc is not None and a_auc is not None:
        diff = g_auc - a_auc
        helped = "helped" if diff > 0 else "did not help"
        verdict = (
            f"grouping {helped}: grouped macro AUC {g_auc:.4f} vs all-in-one {a_auc:.4f} "
            f"({diff:+.4f}); random groups {metrics['random_groups']['macro_auc']:.4f}"
        )
    else:
        verdict = "macro AUC undefined"
    report = run.header()
    report.update(
        {
            "method": config.method,
            "grouping": config.grouping,
            "num_groups": len(groups),
            "groups": groups,
            "metrics": metrics,
            "per_group": per_group,
            "verdict": verdict,
            "warnings": run.warnings(),
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "reused_stages": run.reused,
        }
    )
    if selected is not None:
        report["selected_groups"] = selected
        report["assignment_by_seed"] = assignments
    save_json(run.out / "report.json", report)
    with atomic_write(run.out / "report.md", "w") as fh:
        fh.write(render_report_md(report))
    if affinity is not None:
        plot_affinity(affinity, groups, run.out / "affinity.png", list(data.task_names))
    return report


def run_command(args: argparse.Namespace) -> dict[str, Any]:
    """``graphtag run``: the whole pipeline."""
    est = estimator_config_from_args(
        args, num_subsets=args.num_subsets, subset_size=args.subset_size
    )
    config = RunConfig(
        dataset=args.dataset,
        seed=args.seed,
        train=train_config_from_args(args),
        estimator=est,
        method=args.method,
        grouping=args.grouping,
        num_groups=args.num_groups,
        max_groups=getattr(args, "max_groups", 6),
        num_seeds=args.num_seeds,
        finetune_recipe=getattr(args, "finetune_recipe", "gd"),
    )
    run = run_from_args(args, config)
    num_tasks = int(run.data.y.size(1))
    if config.num_groups != "auto" and int(config.num_groups) > num_tasks:
        raise GraphtagError(
            f"--num-groups {config.num_groups} is larger than the number of tasks ({num_tasks}); "
            f"use at most {num_tasks}, or auto"
        )
    run.executor = getattr(args, "executor", "local")
    run.ray_address = getattr(args, "ray_address", None)
    if config.method == "grad-tag":
        run.check_memory()
    else:  # no gradient features or surrogates; real training is like base training
        run.check_memory(("inputs", "base_training", "clustering"))
    report = run_pipeline(run)
    if not args.quiet:
        print(report["verdict"])
        print(f"groups: {report['groups']}")
        if "selected_groups" in report:
            print(f"selected groups (TAG network selection): {report['selected_groups']}")
        print(f"report: {run.out}/report.json, {run.out}/report.md, {run.out}/affinity.png")
    return report
