"""The report stage: ``report.json``, ``report.md`` and ``affinity.png`` of a run."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifacts import atomic_write, save_json
from ..reporting import plot_affinity, render_report_md, summarise_seeds

__all__ = ["nan_mean", "write_report"]


def nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (no warning) where every value is NaN."""
    finite = ~np.isnan(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _per_group(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean test ROC-AUC of each group's tasks under every block."""
    mean_auc = {
        name: nan_mean(np.array(v, dtype=np.float64), axis=0)
        for name, v in evaluation["per_task_auc"].items()
    }
    rows = []
    for g in evaluation["groups"]:
        row: dict[str, Any] = {"tasks": g}
        for name in evaluation["blocks"]:
            vals = mean_auc[name][g]
            row[f"{name}_auc"] = None if np.isnan(vals).all() else float(np.nanmean(vals))
        row["grouped_auc"] = row.pop("grouped_auc")
        if evaluation["serving"]:
            row["model_tasks"] = evaluation["serving"][tuple(g)]
        rows.append(row)
    return rows


def _verdict(metrics: dict[str, dict[str, Any]]) -> str:
    g_auc, a_auc = metrics["grouped"]["macro_auc"], metrics["mtl_all"]["macro_auc"]
    if g_auc is None or a_auc is None:
        return "macro AUC undefined"
    diff = g_auc - a_auc
    helped = "helped" if diff > 0 else "did not help"
    return (
        f"grouping {helped}: grouped macro AUC {g_auc:.4f} vs all-in-one {a_auc:.4f} "
        f"({diff:+.4f}); random groups {metrics['random_groups']['macro_auc']:.4f}"
    )


def write_report(run: Any, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Assemble the run's report from :func:`~graphtag.pipeline._models.evaluate_seeds`."""
    config = run.config
    affinity = run.affinity()  # before the report lists the reused stages
    metrics = {name: summarise_seeds(vals) for name, vals in evaluation["blocks"].items()}
    groups = evaluation["groups"]
    report = run.header()
    report.update(
        {
            "method": config.method,
            "grouping": config.grouping,
            "num_groups": len(groups),
            "groups": groups,
            "metrics": metrics,
            "per_group": _per_group(evaluation),
            "verdict": _verdict(metrics),
            "warnings": run.warnings(),
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "reused_stages": run.reused,
        }
    )
    if evaluation["selected"] is not None:
        report["selected_groups"] = evaluation["selected"]
        report["assignment_by_seed"] = evaluation["assignments"]
    save_json(run.out / "report.json", report)
    with atomic_write(run.out / "report.md", "w") as fh:
        fh.write(render_report_md(report))
    if affinity is not None:
        plot_affinity(affinity, groups, run.out / "affinity.png", list(run.data.task_names))
    return report
