"""Report helpers: metric summaries over seeds, the markdown report and the affinity heatmap."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .artifacts import atomic_write

__all__ = ["METRIC_KEYS", "jsonable", "plot_affinity", "render_report_md", "summarise_seeds"]

METRIC_KEYS = ("macro_auc", "macro_ap", "macro_f1", "macro_f1_tuned")


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types (arrays and tensors as lists, other objects as strings)."""
    import json

    return json.loads(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def _clean(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def summarise_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Mean and (population) standard deviation of each macro metric over seeds.

    Args:
        per_seed: One metrics dict per seed holding :data:`METRIC_KEYS`.

    Returns:
        ``{"macro_auc": mean, "macro_auc_std": std, ..., "num_seeds": n}`` (floats).

    Example:
        >>> summarise_seeds([{"macro_auc": 0.7}, {"macro_auc": 0.9}])["macro_auc"]
        0.8
    """
    out: dict[str, Any] = {}
    for key in METRIC_KEYS:
        vals = np.array([m.get(key, np.nan) for m in per_seed], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        out[key] = _clean(round(float(vals.mean()), 12)) if vals.size else None
        out[f"{key}_std"] = _clean(round(float(vals.std()), 12)) if vals.size else None
    out["num_seeds"] = len(per_seed)
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _header(report: Mapping[str, Any]) -> list[str]:
    ds = report.get("dataset", {})
    lines = [f"# graphtag report: {ds.get('name', '?')}", ""]
    if report.get("recommendation"):
        lines += [f"**Recommendation: {report['recommendation']}.**", ""]
        if report.get("evidence"):
            how = f"{report.get('select', '?')} selection"
            lines += [f"Evidence ({how}): {report['evidence']}.", ""]
    lines += [
        f"- nodes: {ds.get('num_nodes')}, edges: {ds.get('num_edges')}, tasks: "
        f"{ds.get('num_tasks')}",
        f"- method: {report.get('method')}, groups: {report.get('num_groups')}, "
        f"seed: {report.get('seed')}",
    ]
    if report.get("verdict"):
        lines.append(f"- {report['verdict']}")
    return lines


def _candidates_table(report: Mapping[str, Any]) -> list[str]:
    rows = report.get("candidates") or []
    if not rows:
        return []
    lines = ["", "## Candidates (validation macro ROC-AUC)", ""]
    rho = report.get("spearman_predicted_vs_validation")
    if rho is not None:
        lines += [f"Spearman correlation of predicted and trained scores: {rho:.3f}", ""]
    lines += ["| candidate | models | predicted | trained | source |", "|---|---|---|---|---|"]
    for c in rows:
        lines.append(
            f"| {c['name']} | {c['num_models']} | {_fmt(c.get('predicted'))} | "
            f"{_fmt(c.get('validation'))} | {c.get('source', '')} |"
        )
    return lines


def render_report_md(report: Mapping[str, Any]) -> str:
    """A readable markdown summary of a ``graphtag run`` report (recommendation first)."""
    lines = _header(report)
    lines += ["", "## Test metrics (mean ± std over seeds)", ""]
    lines.append("| model | macro AUC | macro AP | macro F1 | macro F1 (tuned) | seeds |")
    lines.append("|---|---|---|---|---|---|")
    for block, m in report.get("metrics", {}).items():
        cells = [f"{_fmt(m.get(k))} ± {_fmt(m.get(k + '_std'))}" for k in METRIC_KEYS]
        lines.append(f"| {block} | " + " | ".join(cells) + f" | {m.get('num_seeds')} |")
    lines += _candidates_table(report)
    groups = report.get("groups") or []
    names = report.get("tasks") or []
    per_group = report.get("per_group") or []
    if len(groups) > 1:
        lines += [
            "",
            "## Recommended groups (test macro AUC of their tasks)",
            "",
            "| group | tasks | recommended | one model |",
            "|---|---|---|---|",
        ]
        for i, g in enumerate(groups):
            label = ", ".join(str(names[t]) if t < len(names) else str(t) for t in g)
            pg = per_group[i] if i < len(per_group) else {}
            lines.append(
                f"| {i} | {label} | {_fmt(pg.get('recommended_auc'))} | "
                f"{_fmt(pg.get('mtl_all_auc'))} |"
            )
    if report.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    if report.get("timings"):
        lines += ["", "## Timings (s)", ""]
        lines += [f"- {k}: {v:.1f}" for k, v in report["timings"].items()]
    return "\n".join(lines) + "\n"


def plot_affinity(
    affinity: np.ndarray,
    groups: Sequence[Sequence[int]],
    path: str | os.PathLike,
    task_names: Sequence[str] | None = None,
) -> None:
    """Save a heatmap of ``affinity`` [T, T] with tasks ordered by group and borders drawn."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    order = [t for g in groups for t in g]
    a = np.asarray(affinity, dtype=np.float64)[np.ix_(order, order)]
    t = len(order)
    size = min(12.0, 3.0 + 0.12 * t)
    fig, ax = plt.subplots(figsize=(size, size))
    lim = float(np.nanmax(np.abs(a))) or 1.0
    im = ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    edge = 0
    for g in groups:
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (edge - 0.5, edge - 0.5), len(g), len(g), fill=False, lw=1.5, ec="black"
            )
        )
        edge += len(g)
    if task_names is not None and t <= 60:
        labels = [str(task_names[i]) for i in order]
        ax.set_xticks(range(t), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(t), labels, fontsize=6)
    ax.set_title("task affinity (ordered by group)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
