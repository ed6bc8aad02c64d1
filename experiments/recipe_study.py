"""Training-recipe variants judged on held-out validation labels, one change at a time.

For each seed ``s`` the dataset is loaded with the split of ``s``, and each task's validation
labels are halved per class (``graphtag.recommend.holdout_split(data, 0.5, s)``): one half
chooses every variant's checkpoint (early stopping), the other half judges it. Test labels are
never read. A variant is a JSON object of :class:`graphtag.training.TrainConfig` fields plus an
optional ``"spec"`` suffix appended to the dataset spec (e.g. ``":embedding_dim=64"``); ``{}``
is the current default. Each row prints the held-out macro ROC-AUC, macro AP and macro F1 with
per-task thresholds tuned on the choosing half (``graphtag.grouping.evaluate_logits``), mean ±
std over seeds, epochs trained and seconds per model.

Commands (from the repository root, ``PYTHONPATH=.`` when graphtag is not installed):
    python experiments/recipe_study.py --dataset blogcatalog --variants '[{}, {"ema_decay": 0}]'
    python experiments/recipe_study.py --smoke
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

from graphtag._utils import experiment_header
from graphtag.artifacts import save_json
from graphtag.data import load_dataset
from graphtag.grouping import evaluate_logits
from graphtag.models import prepare_inputs
from graphtag.recommend import holdout_split
from graphtag.training import TrainConfig, fit_model, predict

SMOKE = {
    "dataset": "synthetic:num_nodes=300,num_tasks=4,num_groups=2,seed=0",
    "seeds": "0,1",
    "variants": '[{"epochs": 5, "hidden_channels": 16}, '
    '{"epochs": 5, "hidden_channels": 16, "ema_decay": 0}]',
}
METRICS = ("macro_auc", "macro_ap", "macro_f1_tuned")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="blogcatalog", help="dataset spec")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated split and model seeds")
    p.add_argument("--variants", default="[{}]", help="JSON list of TrainConfig overrides")
    p.add_argument("--holdout", type=float, default=0.5, help="share of validation that judges")
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic preset, seconds")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    args.variants = json.loads(args.variants)
    if not isinstance(args.variants, list) or not all(isinstance(v, dict) for v in args.variants):
        p.error("--variants must be a JSON list of objects")
    return args


def run_variant(data: Any, variant: dict[str, Any], seed: int, holdout: float) -> dict[str, Any]:
    """Held-out validation metrics, epochs and seconds of one variant on one split."""
    fields = {k: v for k, v in variant.items() if k != "spec"}
    config = TrainConfig(device="cpu", **fields)
    train, held = holdout_split(data, holdout, seed)
    start = time.perf_counter()
    inputs = prepare_inputs(train, config.model_config, "cpu")
    result = fit_model(train, inputs, None, config, seed=seed)
    logits = predict(result.model, inputs)
    seconds = time.perf_counter() - start
    judged = copy.copy(train)  # thresholds tuned on the choosing half, scored on the held half
    judged.test_mask = held
    metrics = evaluate_logits(judged, logits)["metrics"]
    return {
        **{k: metrics[k] for k in METRICS},
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "seconds": seconds,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and std over seeds of every metric, epochs and seconds."""
    out: dict[str, float] = {}
    for key in (*METRICS, "epochs", "seconds"):
        values = [r[key] for r in rows]
        out[key] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def table(names: list[str], summaries: list[dict[str, float]]) -> str:
    """Markdown table: one row per variant, mean ± std over seeds."""
    lines = [
        "| variant | held-out macro AUC | macro AP | tuned macro F1 | epochs | s / model |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in zip(names, summaries, strict=True):
        cells = [f"{r[k]:.4f} ± {r[k + '_std']:.4f}" for k in METRICS]
        lines.append(f"| {name} | {' | '.join(cells)} | {r['epochs']:.0f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    meta = experiment_header(args)
    print(json.dumps(meta), flush=True)
    names = [json.dumps(v, sort_keys=True) if v else "default" for v in args.variants]
    per_variant: list[list[dict[str, Any]]] = [[] for _ in args.variants]
    for seed in args.seeds:
        loaded: dict[str, Any] = {}
        for i, variant in enumerate(args.variants):
            spec = args.dataset + str(variant.get("spec", ""))
            if spec not in loaded:
                loaded[spec] = load_dataset(spec, seed=seed)
            row = run_variant(loaded[spec], variant, seed, args.holdout)
            per_variant[i].append(row)
            print(json.dumps({"seed": seed, "variant": names[i], **row}), flush=True)
    summaries = [summarize(rows) for rows in per_variant]
    print(table(names, summaries))
    result = {**meta, "variants": names, "per_variant": per_variant, "summary": summaries}
    if args.out is not None:
        save_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
