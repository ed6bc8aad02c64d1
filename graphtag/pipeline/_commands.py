"""The commands of the CLI as library functions: typed configurations in, report files out."""

from __future__ import annotations

import time
from typing import Any

from ..artifacts import save_json
from ..errors import GraphtagError
from ._config import RunConfig, RunOptions
from ._models import evaluate_seeds
from ._report import write_report
from ._run import Run

__all__ = ["parse_tasks", "run_pipeline", "run_run", "run_train"]


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


def run_train(config: RunConfig, options: RunOptions, tasks: str = "all") -> dict[str, Any]:
    """``graphtag train``: one multi-task model on ``tasks``; writes ``DIR/report.json``."""
    from ..grouping import evaluate_logits
    from ..training import fit_model, predict

    run = Run(config, options)
    data = run.data
    task_list = parse_tasks(tasks, run.num_tasks)
    run.check_memory(("inputs", "base"))
    info = None
    if task_list is None:
        logits = run.base_logits()
    else:
        start = time.perf_counter()
        res = fit_model(
            data, run.inputs, task_list, config.train, seed=config.seed, progress=run.progress
        )
        run.timings["train"] = time.perf_counter() - start
        logits = predict(res.model, run.inputs, batch_size=config.train.eval_batch_size)
        info = {"best_epoch": res.best_epoch, "best_val_auc": res.best_val}
    ev = evaluate_logits(data, logits, task_list)
    report = run.header()
    report["trained_tasks"] = task_list if task_list is not None else list(range(run.num_tasks))
    report["metrics"] = ev["metrics"]
    report["per_task"] = ev["per_task"]
    report["warnings"] = run.warnings()
    if info:
        report["training"] = info
    report["timings"] = {k: round(v, 3) for k, v in run.timings.items()}
    report["reused_stages"] = run.reused
    save_json(run.out / "report.json", report)
    return report


def run_pipeline(run: Run) -> dict[str, Any]:
    """Affinity, groups, grouped/all-in-one/random models over seeds, and the report files."""
    return write_report(run, evaluate_seeds(run))


def run_run(config: RunConfig, options: RunOptions) -> dict[str, Any]:
    """``graphtag run``: the whole pipeline in ``options.out``; returns the report."""
    run = Run(config, options)
    num_tasks = run.num_tasks
    if config.num_groups != "auto" and int(config.num_groups) > num_tasks:
        raise GraphtagError(
            f"--num-groups {config.num_groups} is larger than the number of tasks ({num_tasks}); "
            f"use at most {num_tasks}, or auto"
        )
    run.check_memory()
    return run_pipeline(run)
