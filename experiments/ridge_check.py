"""The surrogate's ridge against the real fine-tunes of a check-estimator run, at several scales.

``graphtag check-estimator`` compares Grad-TAG's estimates (ridge matched to the reference
fine-tune, ``graphtag.estimation.matched_ridge()``) with real gradient-descent fine-tunes of
random task subsets. This script reuses that run's folder (``--out``: base model, gradient
features and the checkpointed fine-tunes are reused, or computed as ``check-estimator`` would)
and refits the surrogates with the matched ridge times each of ``--scales``, printing per scale
the relative error, the within-task and the affinity Spearman correlation against the same real
losses (``graphtag.pipeline.compare_losses``).

Commands (from the repository root, ``PYTHONPATH=.`` when graphtag is not installed):
    graphtag check-estimator --dataset blogcatalog --num-subsets 40 --out runs/ce_blog
    python experiments/ridge_check.py --dataset blogcatalog --num-subsets 40 --out runs/ce_blog
    python experiments/ridge_check.py --smoke --out runs/ridge_smoke
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from graphtag._utils import derive_seed
from graphtag.cli import build_parser
from graphtag.cli._commands import run_config, run_options
from graphtag.estimation import (
    estimate_losses,
    fit_surrogates,
    matched_ridge,
    sample_task_subsets,
    task_statistics,
)
from graphtag.pipeline import Run, compare_losses
from graphtag.pipeline._check import _estimates, _real_tables

SMOKE = ["--dataset", "synthetic:num_nodes=300,num_tasks=6,num_groups=2,seed=0"]
SMOKE += ["--num-subsets", "4", "--subset-size", "3", "--epochs", "3", "--hidden-channels", "8"]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the check-estimator run folder")
    p.add_argument("--scales", default="0.1,0.3,1,3,10", help="multiples of the matched ridge")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic preset, seconds")
    args, rest = p.parse_known_args(argv)
    rest = [*SMOKE, *rest] if args.smoke else rest
    cli = build_parser().parse_args(["check-estimator", "--out", args.out, "--quiet", *rest])
    run = Run(run_config(cli), run_options(cli))
    run.base_model()
    feats = run.features()
    seed = derive_seed(run.config.seed, "check-subsets")  # the subsets check-estimator draws
    subsets = sample_task_subsets(
        run.num_tasks, cli.subset_size, cli.num_subsets, seed=seed, min_pair_count=0
    )
    real = _real_tables(run, subsets, "gd")[0][0]
    base = _estimates(run, subsets)["base"]
    stats = task_statistics(feats)
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        fit = fit_surrogates(
            feats, subsets, matched_ridge() * scale, l2_relative=False, stats=stats
        )
        est = np.asarray(estimate_losses(feats, subsets, fit.weights).double().cpu())
        s = compare_losses(subsets, est, real, base, run.num_tasks)
        row = {"scale": scale, "l2": matched_ridge() * scale}
        row.update(
            {k: s[k] for k in ("relative_error", "within_task_spearman", "affinity_spearman")}
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
