"""Benchmark: the cost of TAG's lookahead affinity versus Grad-TAG's, measured in the same run.

For each dataset (default: BlogCatalog, 39 tasks, and a 200-task synthetic graph with 20 planted
groups), on one SIGN recipe (``graphtag.training.TrainConfig`` with ``--hidden``, ``--epochs``,
``--batch-size``):

1. **plain training** -- ``fit_model`` on all tasks with seed ``--seed``. This is Grad-TAG's base
   model ``theta0`` and the training TAG piggybacks on.
2. **TAG** -- the same training again, with TAG's lookahead recorders
   (``graphtag.baselines.TAGAffinity``, every ``--every``-th optimiser step, as
   ``graphtag run --method tag`` does) called from ``fit_model``'s ``step_callback``. Every
   recorder mode in ``--modes`` (``exact``: vmapped per-task gradients + vmapped lookahead
   forwards; ``first_order``: ``eta <g_i, g_j> / L_j`` from the same gradients; ``sketch``:
   first-order from ``--sketch-dim`` batched JVPs, cost independent of ``T``; ``naive``: the
   per-task loop) is run at each step and timed separately; the recorders never change the model
   or the random state, so the training trajectory is the plain one (checked: ``same_trajectory``
   in the JSON). TAG's cost of a mode = plain training + that recorder's time; the training
   time of the instrumented run minus all recorder time is printed as a consistency check.
3. **Grad-TAG** -- from the plain model: projected gradient features
   (``GradientProjector(dim=--dim)`` + ``extract_gradient_features``) and the surrogates,
   estimated losses and affinity (``GradTAG`` with the pipeline's defaults and its subset plan,
   ``graphtag.estimation.plan_subsets``: subsets grow when ``num_subsets`` cannot give every pair
   ``min_pair_count`` co-occurrences, e.g. at ``T = 200``).

Ratios TAG / Grad-TAG are printed for every mode, **with base training** ((plain + recorder) /
(plain + features + surrogates)) and **without** (recorder / (features + surrogates)), in wall
clock and in process CPU time (robust to other jobs sharing the cores). Input preparation (SIGN
hop features) is shared by both and excluded; an untimed warm-up pass of every path on a tiny
graph runs first, so one-off costs (imports, first ``torch.func`` calls) fall on no path.
Agreement of the affinities (Pearson correlation of the symmetrised off-diagonal entries, exact
versus each other mode and versus Grad-TAG) is printed too. The last line is the headline:
BlogCatalog (the first dataset), exact mode.

Sizes. The default runs ``--epochs 4`` (few measured TAG steps; minutes on 2 CPU cores) on a
3,000-node synthetic graph; ``--full`` trains with the library's recipe (up to 100 epochs, early
stopping, exactly as the pipeline's base model) on a 10,000-node synthetic graph. TAG's recorder
time grows with the number of measured steps (training length / ``--every``) while Grad-TAG's
features and surrogates do not, so default-size ratios understate TAG's cost of a full run: the
per-measured-step seconds are printed to extrapolate. Timings from a loaded machine are not
product figures.

Seeds: the split from ``load_dataset(spec, seed=--seed)``, the models from ``fit_model(seed=)``,
the projection and subsets from ``derive_seed(seed, "projection" | "subsets")`` (as the pipeline),
the sketch from ``--seed``. Config, versions and git SHA are printed first (one JSON line) and
saved with ``--out``.

Commands:
    PYTHONPATH=. python experiments/bench_tag.py                    # minutes on 2 cores
    PYTHONPATH=. python experiments/bench_tag.py --full             # full training, 10k nodes
    PYTHONPATH=. python experiments/bench_tag.py --smoke --out runs/bench_tag.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphtag._utils import derive_seed, git_revision, versions
from graphtag.artifacts import save_json
from graphtag.baselines import TAGAffinity
from graphtag.data import load_dataset
from graphtag.estimation import GradTAG, plan_subsets
from graphtag.gradients import GradientProjector, extract_gradient_features
from graphtag.models import prepare_inputs
from graphtag.pipeline import EstimatorConfig
from graphtag.training import TrainConfig, fit_model

DEFAULT_DATASETS = ["blogcatalog", "synthetic:num_nodes=3000,num_tasks=200,num_groups=20,seed=0"]
FULL_DATASETS = ["blogcatalog", "synthetic:num_nodes=10000,num_tasks=200,num_groups=20,seed=0"]
SMOKE = {
    "datasets": [
        "synthetic:num_nodes=200,num_tasks=6,num_groups=2,seed=0",
        "synthetic:num_nodes=200,num_tasks=12,num_groups=3,seed=0",
    ],
    "epochs": 2,
    "hidden": 8,
    "batch_size": 64,
    "every": 2,
    "dim": 8,
    "sketch_dim": 8,
    "num_subsets": 40,
    "subset_size": 3,
    "min_pair_count": 1,
}
WARM_UP_DATASET = "synthetic:num_nodes=200,num_tasks=6,num_groups=2,seed=0"
MODES = ("exact", "first_order", "sketch", "naive")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    est = EstimatorConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset",
        dest="datasets",
        action="append",
        default=None,
        help="dataset spec (repeatable; the first gives the headline; default: BlogCatalog and "
        "a 200-task synthetic graph)",
    )
    p.add_argument("--full", action="store_true", help="full training (the library's recipe)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 4)")
    p.add_argument("--hidden", type=int, default=TrainConfig.hidden_channels)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--every", type=int, default=10, help="TAG measures every k-th step (10)")
    p.add_argument(
        "--modes", default="exact,first_order,sketch", help=f"TAG recorder modes of {MODES}"
    )
    p.add_argument("--sketch-dim", type=int, default=est.projection_dim, help="TAG sketch d")
    p.add_argument("--dim", type=int, default=est.projection_dim, help="Grad-TAG projection d")
    p.add_argument("--num-subsets", type=int, default=est.num_subsets)
    p.add_argument("--subset-size", type=int, default=est.subset_size)
    p.add_argument("--min-pair-count", type=int, default=est.min_pair_count)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny preset, runs in seconds")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            if key == "datasets" and args.datasets:
                continue
            setattr(args, key, value)
    if args.datasets is None:
        args.datasets = list(FULL_DATASETS if args.full else DEFAULT_DATASETS)
    if args.epochs is None:
        args.epochs = TrainConfig.epochs if args.full else 4
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        p.error(f"--modes: unknown {bad}; choose from {', '.join(MODES)}")
    return args


class Clock:
    """Accumulated wall and process-CPU seconds (``with clock: ...``)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.wall = 0.0
        self.cpu = 0.0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        sync(self.device)
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            sync(self.device)
            self.wall += time.perf_counter() - w0
            self.cpu += time.process_time() - c0

    def as_dict(self) -> dict[str, float]:
        return {"wall": self.wall, "cpu": self.cpu}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_recorder(mode: str, args: argparse.Namespace) -> TAGAffinity:
    if mode == "sketch":
        return TAGAffinity(
            every=args.every, mode="first_order", projection_dim=args.sketch_dim, seed=args.seed
        )
    return TAGAffinity(every=args.every, mode=mode, seed=args.seed)


def offdiag_corr(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of the symmetrised upper-triangle entries (finite in both)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iu = np.triu_indices(a.shape[0], 1)
    x, y = ((a + a.T) / 2)[iu], ((b + b.T) / 2)[iu]
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
        return None
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def warm_up(args: argparse.Namespace, device: torch.device) -> None:
    """One untimed pass of every path on a tiny graph (library loading, first-call overheads)."""
    tiny = argparse.Namespace(**{**vars(args), **SMOKE, "modes": args.modes})
    bench_dataset(WARM_UP_DATASET, tiny, device)


def bench_dataset(spec: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    data = load_dataset(spec, seed=args.seed)
    num_nodes, num_tasks = (int(v) for v in data.y.shape)
    config = TrainConfig(
        hidden_channels=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=str(device),
    )
    notes: list[str] = []
    prep = Clock(device)
    with prep():
        inputs = prepare_inputs(data, config.model_config, device)

    # 1. plain training: Grad-TAG's base model, TAG's training without the recorder.
    plain = Clock(device)
    with plain():
        base = fit_model(data, inputs, None, config, seed=args.seed)

    # 2. TAG: the same training with every recorder mode, each timed on its own.
    recorders = {m: make_recorder(m, args) for m in args.modes}
    rec_clocks = {m: Clock(device) for m in args.modes}

    def callback(model, batch, y, mask, lr) -> None:
        for m, rec in recorders.items():
            with rec_clocks[m]():
                rec.step(model, batch, y, mask, lr)

    tag_run = Clock(device)
    with tag_run():
        tag_res = fit_model(data, inputs, None, config, seed=args.seed, step_callback=callback)
    same = tag_res.best_epoch == base.best_epoch and [h["val_auc"] for h in tag_res.history] == [
        h["val_auc"] for h in base.history
    ]
    if not same:
        notes.append("the instrumented run's trajectory differs from the plain run's")
    rec_wall = sum(c.wall for c in rec_clocks.values())
    rec_cpu = sum(c.cpu for c in rec_clocks.values())

    # 3. Grad-TAG from the plain model.
    plan = plan_subsets(num_tasks, args.subset_size, args.num_subsets, args.min_pair_count)
    notes.extend(plan.notes)  # the pipeline's subset plan (graphtag.estimation.plan_subsets)
    size, num_subsets, min_pair = plan.subset_size, plan.num_subsets, plan.min_pair_count
    feat = Clock(device)
    with feat():
        projector = GradientProjector(
            dim=args.dim, block="all", seed=derive_seed(args.seed, "projection")
        ).fit(base.model)
        feats = extract_gradient_features(
            base.model, inputs, data, projector, seed=derive_seed(args.seed, "projection")
        )
    surr = Clock(device)
    with surr():
        gt = GradTAG(
            subset_size=size,
            num_subsets=num_subsets,
            min_pair_count=min_pair,
            seed=derive_seed(args.seed, "subsets"),
            device=device,
        ).fit(feats)

    gt_wall = feat.wall + surr.wall
    gt_cpu = feat.cpu + surr.cpu
    steps = recorders[args.modes[0]].num_calls_
    measured = recorders[args.modes[0]].num_measured_
    modes: dict[str, Any] = {}
    exact_aff = recorders["exact"].affinity_ if "exact" in recorders else None
    for m, rec in recorders.items():
        c = rec_clocks[m]
        corr_exact = None if exact_aff is None else offdiag_corr(rec.affinity_, exact_aff)
        modes[m] = {
            "recorder": c.as_dict(),
            "seconds_per_measured_step": c.wall / max(measured, 1),
            "ratio_with_base": (plain.wall + c.wall) / (plain.wall + gt_wall),
            "ratio_without_base": c.wall / gt_wall,
            "cpu_ratio_with_base": (plain.cpu + c.cpu) / max(plain.cpu + gt_cpu, 1e-12),
            "cpu_ratio_without_base": c.cpu / max(gt_cpu, 1e-12),
            "corr_with_exact": corr_exact,
            "corr_with_grad_tag": offdiag_corr(rec.affinity_, gt.affinity_),
        }
    return {
        "dataset": spec,
        "name": str(data.name),
        "num_nodes": num_nodes,
        "num_tasks": num_tasks,
        "epochs_run": len(base.history),
        "best_epoch": base.best_epoch,
        "steps": steps,
        "measured_steps": measured,
        "same_trajectory": bool(same),
        "prepare_inputs": prep.as_dict(),
        "plain_training": plain.as_dict(),
        "tag_training_run": tag_run.as_dict(),
        "tag_training_minus_recorders": {
            "wall": tag_run.wall - rec_wall,
            "cpu": tag_run.cpu - rec_cpu,
        },
        "grad_tag_features": feat.as_dict(),
        "grad_tag_surrogates": surr.as_dict(),
        "grad_tag_num_feature_rows": int(feats.features.shape[0]),
        "grad_tag_subsets": {"size": size, "num": num_subsets, "min_pair_count": min_pair},
        "grad_tag_converged": int(np.asarray(gt.converged_).sum()),
        "modes": modes,
        "notes": notes,
    }


def print_row(row: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n[{row['name']}] T={row['num_tasks']} N={row['num_nodes']}: {row['epochs_run']} epochs, "
        f"{row['steps']} steps, {row['measured_steps']} measured by TAG (every {args.every})"
    )
    print(f"  {'component':<38} {'wall s':>9} {'cpu s':>9}")

    def line(label: str, d: dict[str, float]) -> None:
        print(f"  {label:<38} {d['wall']:>9.2f} {d['cpu']:>9.2f}")

    line("prepare inputs (shared, excluded)", row["prepare_inputs"])
    line("plain training (= Grad-TAG base)", row["plain_training"])
    line("TAG run (training + all recorders)", row["tag_training_run"])
    line("  of which training", row["tag_training_minus_recorders"])
    for m, d in row["modes"].items():
        label = f"  TAG recorder {m}" + (f" (d={args.sketch_dim})" if m == "sketch" else "")
        line(label, d["recorder"])
    line(f"Grad-TAG features (d={args.dim})", row["grad_tag_features"])
    sub = row["grad_tag_subsets"]
    line(f"Grad-TAG surrogates ({sub['num']} x {sub['size']})", row["grad_tag_surrogates"])
    print(
        f"  {'TAG / Grad-TAG':<16} {'with base':>10} {'without':>9} {'cpu with':>9} "
        f"{'cpu w/o':>8} {'s/step':>8} {'r(exact)':>9} {'r(GT)':>7}"
    )
    for m, d in row["modes"].items():
        ce = "-" if d["corr_with_exact"] is None else f"{d['corr_with_exact']:.3f}"
        cg = "-" if d["corr_with_grad_tag"] is None else f"{d['corr_with_grad_tag']:.3f}"
        print(
            f"  {m:<16} {d['ratio_with_base']:>10.2f} {d['ratio_without_base']:>9.2f} "
            f"{d['cpu_ratio_with_base']:>9.2f} {d['cpu_ratio_without_base']:>8.2f} "
            f"{d['seconds_per_measured_step']:>8.3f} {ce:>9} {cg:>7}"
        )
    for n in row["notes"]:
        print(f"  note: {n}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    meta = {
        "config": config,
        "seeds": {
            "split_and_models": args.seed,
            "projection": derive_seed(args.seed, "projection"),
            "subsets": derive_seed(args.seed, "subsets"),
            "tag_sketch": args.seed,
        },
        "versions": versions(),
        "git_sha": git_revision(),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(meta), flush=True)
    if not args.smoke:  # the smoke preset is the warm-up graph itself
        warm_up(args, device)
    rows = []
    for spec in args.datasets:
        row = bench_dataset(spec, args, device)
        rows.append(row)
        print_row(row, args)
    result = {**meta, "rows": rows}
    if args.out is not None:
        save_json(args.out, result)
    head = rows[0]
    mode = "exact" if "exact" in head["modes"] else args.modes[0]
    d = head["modes"][mode]
    print(
        f"headline: {head['name']} (T={head['num_tasks']}): TAG's {mode} lookahead affinity costs "
        f"{d['ratio_with_base']:.2f}x Grad-TAG's with base training, "
        f"{d['ratio_without_base']:.2f}x without (recorder vs features + surrogates); wall clock, "
        f"{head['epochs_run']} epochs, {head['measured_steps']} measured steps "
        f"(CPU time: {d['cpu_ratio_with_base']:.2f}x / {d['cpu_ratio_without_base']:.2f}x)"
    )
    return result


if __name__ == "__main__":
    main()
