"""The surrogate's ridge against the real fine-tunes of a check-estimator run, at several scales.

``graphtag check-estimator`` compares Grad-TAG's estimates (ridge matched to the reference
fine-tune, ``graphtag.estimation.matched_ridge()``) with real gradient-descent fine-tunes of
random task subsets and writes the subsets and real losses to ``OUT/estimator.json``. This
script reads them back, reuses the run's base model and gradient features from ``OUT`` and
refits the surrogates with the matched ridge times each of ``--scales``, printing per scale the
relative error, the within-task and the affinity Spearman correlation against the same real
losses (``graphtag.pipeline.compare_losses``). Pass the flags the check was run with.

Commands (from the repository root, ``PYTHONPATH=.`` when graphtag is not installed):
    graphtag check-estimator --dataset blogcatalog --num-subsets 40 --out runs/ce_blog
    python experiments/ridge_check.py --dataset blogcatalog --num-subsets 40 --out runs/ce_blog
    python experiments/ridge_check.py --smoke --out runs/ridge_smoke
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from graphtag.cli import build_parser
from graphtag.cli import main as cli_main
from graphtag.cli._commands import run_config, run_options
from graphtag.estimation import matched_ridge
from graphtag.pipeline import Run, compare_losses
from graphtag.pipeline._check import _estimates

SMOKE = ["--dataset", "synthetic:num_nodes=300,num_tasks=6,num_groups=2,seed=0"]
SMOKE += ["--num-subsets", "4", "--subset-size", "3", "--epochs", "3", "--hidden-channels", "8"]
KEYS = ("relative_error", "within_task_spearman", "affinity_spearman")


def real_table(report: dict[str, Any], num_tasks: int) -> np.ndarray:
    """``[M, T]`` real losses of ``estimator.json`` (NaN outside each subset's tasks)."""
    table = np.full((len(report["subsets"]), num_tasks), np.nan)
    for k, (tasks, losses) in enumerate(zip(report["subsets"], report["real_losses"], strict=True)):
        table[k, tasks] = [np.nan if v is None else v for v in losses]
    return table


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the check-estimator run folder")
    p.add_argument("--scales", default="0.1,0.3,1,3,10", help="multiples of the matched ridge")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic preset (runs the check)")
    args, rest = p.parse_known_args(argv)
    flags = ["check-estimator", "--out", args.out, "--quiet", *(SMOKE if args.smoke else []), *rest]
    report_path = Path(args.out) / "estimator.json"
    if args.smoke and not report_path.exists():
        cli_main(flags)
    if not report_path.exists():
        p.error(f"{report_path} is missing: run `graphtag {' '.join(flags)}` first")
    report = json.loads(report_path.read_text())
    cli = build_parser().parse_args(flags)
    run = Run(run_config(cli), run_options(cli))
    subsets = [tuple(s) for s in report["subsets"]]
    real = real_table(report, run.num_tasks)
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        est = _estimates(run, subsets, l2=matched_ridge() * scale)
        stats = compare_losses(subsets, est["estimated"], real, est["base"], run.num_tasks)
        row = {"scale": scale, "l2": matched_ridge() * scale, **{k: stats[k] for k in KEYS}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
