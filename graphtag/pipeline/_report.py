"""The report stage: ``report.json``, ``report.md``, ``affinity.png``; the recommendation first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifacts import atomic_write, save_json
from ..reporting import plot_affinity, render_report_md, summarise_seeds

__all__ = ["nan_mean", "recommendation_text", "spearman", "write_report"]

#: Report names of the evaluated configurations.
BLOCK_NAMES = {
    "recommended": "recommended",
    "mtl_all": "one model",
    "random_groups": "random groups",
    "single_task": "one model per task",
}


def nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (no warning) where every value is NaN."""
    finite = ~np.isnan(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def spearman(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    """Spearman correlation of paired finite values (``None`` with fewer than 3 or no spread)."""
    from scipy.stats import spearmanr

    x = np.array([np.nan if v is None else v for v in a], dtype=np.float64)
    y = np.array([np.nan if v is None else v for v in b], dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def recommendation_text(rec: Any) -> str:
    """One sentence: what to train."""
    if rec.kind == "one":
        return "train one model for all tasks"
    if rec.kind == "single":
        return "train each task alone (one model per task)"
    if rec.kind == "selection":
        return f"train TAG's {rec.num_models} selected groups {rec.selected}"
    return f"train these {len(rec.groups)} groups: {rec.groups}"


def _evidence(candidates: list[Any], rec: Any) -> str:
    """The validation evidence of the recommendation, in words."""
    trained = [c for c in candidates if c.validation is not None]
    others = sorted((c for c in trained if c is not rec), key=lambda c: -c.validation)
    parts = [f"validation macro ROC-AUC {rec.validation:.4f}"]
    parts += [f"{c.name} {c.validation:.4f}" for c in others[:3]]
    return f"{parts[0]} (vs {', '.join(parts[1:])})" if others else parts[0]


def _per_group(evaluation: dict[str, Any], groups: list[list[int]]) -> list[dict[str, Any]]:
    """Mean test ROC-AUC of each recommended group's tasks under every evaluated block."""
    mean_auc = {
        name: nan_mean(np.array(v, dtype=np.float64), axis=0)
        for name, v in evaluation["per_task_auc"].items()
    }
    rows = []
    for g in groups:
        row: dict[str, Any] = {"tasks": g}
        for name in evaluation["blocks"]:
            vals = mean_auc[name][g]
            row[f"{name}_auc"] = None if np.isnan(vals).all() else float(np.nanmean(vals))
        rows.append(row)
    return rows


def _verdict(rec: Any, metrics: dict[str, dict[str, Any]]) -> str:
    auc = {name: m.get("macro_auc") for name, m in metrics.items()}
    if auc["recommended"] is None or auc["mtl_all"] is None:
        return f"{recommendation_text(rec)}; test macro AUC undefined"
    text = f"{recommendation_text(rec)}: test macro AUC {auc['recommended']:.4f}"
    if rec.kind != "one":
        text += f" vs one model {auc['mtl_all']:.4f} ({auc['recommended'] - auc['mtl_all']:+.4f})"
    names = [n for n in ("random_groups", "single_task") if auc.get(n) is not None]
    others = [f"{BLOCK_NAMES[n]} {auc[n]:.4f}" for n in names]
    return text + (f"; {', '.join(others)}" if others else "")


def write_report(run: Any, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Assemble the run's report from :func:`~graphtag.pipeline._models.evaluate_seeds`."""
    config = run.config
    affinity = run.affinity()  # before the report lists the reused stages
    rec = evaluation["recommendation"]
    candidates = run.candidates()
    metrics = {name: summarise_seeds(vals) for name, vals in evaluation["blocks"].items()}
    trained = [c for c in candidates if c.validation is not None and c.predicted is not None]
    report = run.header()
    report.update(
        {
            "recommendation": recommendation_text(rec),
            "evidence": _evidence(candidates, rec),
            "recommended": {**rec.to_dict(), "metrics": metrics["recommended"]},
            "method": config.method,
            "grouping": config.grouping,
            "select": config.recommend.select,
            "num_groups": len(rec.groups),
            "groups": rec.groups,
            "metrics": metrics,
            "candidates": [c.to_dict() for c in candidates],
            "spearman_predicted_vs_validation": spearman(
                [c.predicted for c in trained], [c.validation for c in trained]
            ),
            "random_groups_sizes": [len(g) for g in evaluation["control"]],
            "per_group": _per_group(evaluation, rec.groups),
            "verdict": _verdict(rec, metrics),
            "warnings": run.warnings(),
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "reused_stages": run.reused,
        }
    )
    if rec.selected is not None:
        report["selected_groups"] = rec.selected
        report["assignment_by_seed"] = evaluation["assignments"]
    save_json(run.out / "report.json", report)
    with atomic_write(run.out / "report.md", "w") as fh:
        fh.write(render_report_md(report))
    if affinity is not None:
        plot_affinity(affinity, rec.groups, run.out / "affinity.png", list(run.data.task_names))
    return report
