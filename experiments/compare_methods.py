"""Compare task-grouping methods on one dataset: the predicted choice next to the validation sweep.

For every method in ``--methods`` the script runs ``graphtag run --method METHOD`` twice
(through ``graphtag.cli.main``, in-process): with ``--select predicted`` (cheap predicted
scores, then the best ``--confirm`` candidates and one model trained and compared on validation;
the default) into ``OUT/METHOD/``, and with ``--select validation`` (every candidate trained)
into ``OUT/METHOD-validation/``. Every run gets the same dataset, master seed, evaluation seeds,
recipe and ``--num-groups``; the base model is trained once and its files copied into the other
runs (the pipeline re-checks them), and finished stages and models are reused on a rerun.

Rows of the table (``OUT/compare.{md,csv,json,png}``): one model for all tasks, one model per
task (when a validation run trained it), random groups (the sizes of the first method's
predicted recommendation), then per method and mode the recommended configuration. Columns:
test macro ROC-AUC / AP / tuned F1 (mean ± std over the evaluation seeds), the recommendation's
validation macro ROC-AUC, the Spearman correlation of the predicted and the trained validation
scores of the run's candidates, wall seconds of the run (0 for reused work; use a fresh
``--out`` for timings) and the ARI with planted groups (synthetic graphs). Nothing is chosen on
test labels.

Commands (from the repository root):
    PYTHONPATH=. python experiments/compare_methods.py --smoke
    PYTHONPATH=. python experiments/compare_methods.py --hidden-channels 8   # planted groups
    PYTHONPATH=. python experiments/compare_methods.py --dataset blogcatalog --methods grad-tag
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from graphtag._utils import git_revision, versions
from graphtag.artifacts import atomic_write, load_json, save_json
from graphtag.cli import main as graphtag_main
from graphtag.errors import GraphtagError
from graphtag.methods import METHODS, get_method

DEFAULT_METHODS = "grad-tag,tag,higher-order,random"
SMOKE_DATASET = "synthetic:num_nodes=400,num_tasks=6,num_groups=2,seed=0"
METRICS = ("macro_auc", "macro_ap", "macro_f1_tuned")
BASE_FILES = ("base_model.pt", "base.json", "base.manifest.json")  # manifest last
MODES = ("predicted", "validation")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="synthetic", help="dataset spec (default: synthetic)")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"from {', '.join(METHODS)}")
    p.add_argument("--modes", default=",".join(MODES), help="predicted,validation (default)")
    p.add_argument("--seeds", type=int, default=3, help="evaluation seeds (3)")
    p.add_argument("--seed", type=int, default=0, help="master seed (0)")
    p.add_argument("--out", type=Path, default=None, help="default: experiments/results/compare/")
    p.add_argument("--num-groups", default="auto")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--hidden-channels", type=int, default=None)
    p.add_argument("--num-subsets", type=int, default=None, help="grad-tag subsets")
    p.add_argument("--projection-dim", type=int, default=None)
    p.add_argument("--ho-num-subsets", type=int, default=200, help="higher-order subsets (200)")
    p.add_argument("--max-pairwise-tasks", type=int, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny graph and settings (a minute)")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.methods if m not in METHODS] + [m for m in args.modes if m not in MODES]
    if bad or not args.methods or not args.modes:
        p.error(
            f"--methods/--modes: unknown {bad or 'empty list'}; methods are {', '.join(METHODS)}"
        )
    if args.smoke:
        args.dataset = SMOKE_DATASET if args.dataset == "synthetic" else args.dataset
        args.seeds, args.epochs, args.hidden_channels = 2, 5, 16
        args.num_subsets, args.projection_dim, args.ho_num_subsets = 20, 16, 20
    return args


def run_argv(method: str, mode: str, args: argparse.Namespace, out: Path) -> list[str]:
    """The ``graphtag`` arguments of one method's run in one selection mode."""
    argv = ["run", "--dataset", args.dataset, "--out", str(out), "--method", method]
    argv += ["--seed", str(args.seed), "--num-seeds", str(args.seeds), "--select", mode]
    argv += ["--num-groups", str(args.num_groups)]
    optional = {"--epochs": args.epochs, "--hidden-channels": args.hidden_channels}
    optional |= {"--num-subsets": args.num_subsets, "--projection-dim": args.projection_dim}
    if "projection_dim" not in get_method(method)().get_params():  # real training's budget
        optional["--num-subsets"] = args.ho_num_subsets
    optional["--device"] = args.device
    argv += [x for flag, v in optional.items() if v is not None for x in (flag, str(v))]
    return [*argv, "--quiet"] if args.quiet else argv


def share_base(src: Path, dst: Path) -> None:
    """Copy a finished ``base`` stage from ``src`` into ``dst`` (the pipeline re-checks it)."""
    if (dst / "base.manifest.json").exists() or not all((src / f).exists() for f in BASE_FILES):
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in BASE_FILES:
        with atomic_write(dst / name, "wb") as fh, open(src / name, "rb") as fin:
            shutil.copyfileobj(fin, fh)


def run_method(argv: list[str]) -> tuple[int, str | None, float]:
    """Run ``graphtag`` with ``argv``: ``(exit status, error line or None, wall seconds)``."""
    err = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err):
            status = graphtag_main(argv)
    except Exception as exc:  # a bug in one method must not lose the others' results
        traceback.print_exc()
        return 1, f"crashed: {type(exc).__name__}: {exc}", time.perf_counter() - start
    if status == 130:
        raise KeyboardInterrupt
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("graphtag: error:")]
    error = lines[-1] if lines else (f"exit status {status}" if status else None)
    return status, error, time.perf_counter() - start


def ari(groups: list[list[int]], planted: list[list[int]], num_tasks: int) -> float:
    """Adjusted Rand index of two partitions of ``0..num_tasks-1``."""
    from sklearn.metrics import adjusted_rand_score

    def labels(parts: list[list[int]]) -> np.ndarray:
        out = np.full(num_tasks, -1)
        for k, g in enumerate(parts):
            out[np.asarray(g, dtype=np.int64)] = k
        return out

    return float(adjusted_rand_score(labels(planted), labels(groups)))


def _row(label: str, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    row = {"row": label}
    for k in METRICS:
        row[k], row[f"{k}_std"] = metrics.get(k), metrics.get(f"{k}_std")
    return {**row, **extra}


def build_rows(results: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Baseline rows, then one row per (method, mode) run."""
    first = next(iter(results.values()))["report"]
    rows = [_row("one model", first["metrics"]["mtl_all"], models=1)]
    singles = [r["report"] for r in results.values() if "single_task" in r["report"]["metrics"]]
    if singles:
        rows.append(_row("one model per task", singles[0]["metrics"]["single_task"]))
    sizes = first["random_groups_sizes"]
    rows.append(_row(f"random groups (sizes {sizes})", first["metrics"]["random_groups"]))
    planted = first["dataset"].get("planted_groups")
    num_tasks = int(first["dataset"]["num_tasks"])
    for (method, mode), res in results.items():
        rep = res["report"]
        rec = rep["recommended"]
        row = _row(
            f"{method}, {mode}: {rec['name']}",
            rep["metrics"]["recommended"],
            models=rec["num_models"],
            val_macro_auc=rec["validation"],
            spearman=rep["spearman_predicted_vs_validation"],
            seconds=round(res["seconds"], 1),
            groups=json.dumps(rec["groups"]),
        )
        if planted:
            row["ari_planted"] = round(ari(rec["groups"], planted, num_tasks), 3)
        rows.append(row)
    return rows


def _f(v: Any, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# {meta['dataset']['name']}: recommendation by method and selection mode", ""]
    lines += [f"Command: `{meta['command']}`", "", f"Seeds: {meta['seeds']}; git {meta['git']}."]
    head = "| row | models | test macro AUC | test macro AP | tuned macro F1 | val AUC | "
    lines += ["", head + "Spearman | seconds | ARI planted |", "|---" * 9 + "|"]
    for r in rows:
        cells = [f"{_f(r[k])} ± {_f(r[k + '_std'])}" for k in METRICS]
        extra = [_f(r.get("val_macro_auc")), _f(r.get("spearman"), ".3f")]
        extra += [_f(r.get("seconds"), ".1f"), _f(r.get("ari_planted"), ".3f")]
        lines.append(f"| {r['row']} | {r.get('models', '-')} | " + " | ".join(cells + extra) + " |")
    if meta["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in meta["notes"]]
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    y = np.arange(len(rows))
    auc = [r["macro_auc"] or np.nan for r in rows]
    std = [r["macro_auc_std"] or 0.0 for r in rows]
    ax.barh(y, auc, xerr=std, color="tab:blue", alpha=0.7)
    ax.set_yticks(y, [r["row"][:60] for r in rows], fontsize=7)
    lo = np.nanmin(auc) - 3 * max([*std, 0.002])
    ax.set_xlim(lo, np.nanmax(auc) + 3 * max([*std, 0.002]))
    ax.set_xlabel("test macro ROC-AUC (mean ± std over seeds)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    command = "PYTHONPATH=. python experiments/compare_methods.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    name = args.dataset.split(":")[0]
    out = args.out or Path(__file__).resolve().parent / "results" / "compare" / name
    from graphtag.data import load_dataset

    num_tasks = int(load_dataset(args.dataset, seed=args.seed).y.size(1))
    notes: list[str] = []
    results: dict[tuple[str, str], dict[str, Any]] = {}
    base: Path | None = None
    for method in args.methods:
        if method == "pairwise" and num_tasks > args.max_pairwise_tasks:
            notes.append(
                f"pairwise skipped: {num_tasks} tasks > --max-pairwise-tasks "
                f"{args.max_pairwise_tasks} (it fine-tunes {num_tasks * (num_tasks + 1) // 2} "
                "models)"
            )
            print(f"compare_methods: {notes[-1]}", file=sys.stderr)
            continue
        for mode in args.modes:
            run_dir = out / (method if mode == "predicted" else f"{method}-{mode}")
            if base is not None:
                share_base(base, run_dir)
            argv_m = run_argv(method, mode, args, run_dir)
            print(f"== {method}, {mode}: graphtag {shlex.join(argv_m)}", flush=True)
            status, error, seconds = run_method(argv_m)
            if status != 0:
                notes.append(f"{method} ({mode}) failed: {error}")
                print(f"compare_methods: {notes[-1]}", file=sys.stderr)
                continue
            results[(method, mode)] = {"report": load_json(run_dir / "report.json"), "dir": run_dir}
            results[(method, mode)]["seconds"] = seconds
            base = base or run_dir
    if not results:
        print(f"compare_methods: error: nothing finished ({'; '.join(notes)})", file=sys.stderr)
        raise SystemExit(1)
    rows = build_rows(results)
    first = next(iter(results.values()))["report"]
    meta = {
        "command": command,
        "config": {k: str(v) for k, v in vars(args).items()},
        "versions": versions(),
        "git": git_revision(),
        "seeds": [args.seed + r for r in range(args.seeds)],
        "dataset": first["dataset"],
        "notes": notes,
    }
    save_json(out / "compare.json", {**meta, "rows": rows})
    with atomic_write(out / "compare.md", "w") as fh:
        fh.write(markdown(rows, meta))
    with atomic_write(out / "compare.csv", "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    plot(out / "compare.png", rows, f"{meta['dataset']['name']}: seeds {meta['seeds']}")
    print(markdown(rows, meta))
    return {**meta, "rows": rows, "out": str(out)}


if __name__ == "__main__":
    try:
        main()
    except GraphtagError as exc:
        print(f"compare_methods: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
