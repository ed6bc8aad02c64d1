"""Benchmark: batched Newton surrogates versus per-subset scipy L-BFGS and scikit-learn.

Synthetic gradient features (``graphtag.estimation.make_synthetic_features``: ``T`` tasks in
planted groups, ``--train-rows`` + ``--val-rows`` rows per task, ``N(0, I_d)`` features, base
logits ``N(-1, 1)``) stand in for real projected gradients: the default 100 tasks x (500 train +
500 validation) rows x d = 200 is the size of a SNAP community benchmark with a 200-d projection.
``M`` subsets of size ``s`` (default 2,000 of 10) are drawn with ``sample_task_subsets``.

1. graphtag: ``task_statistics`` + ``fit_surrogates`` for all ``M`` subsets at once (timed end to
   end, then ``estimate_losses`` and ``subset_affinity`` are timed too).
2. scipy: ``scipy.optimize.minimize(method="L-BFGS-B")`` one subset at a time on the same offset
   objective (same absolute ridge), stopped at the matched tolerance (``gtol = tol ||grad
   F(0)|| / sqrt(d)`` on the max-abs gradient, ``ftol = 0``). A random sample of ``--ref-sample``
   subsets is timed (only the ``minimize`` call; gathering the subset's rows is not counted,
   which favours scipy) and the mean time per subset is extrapolated to ``M`` subsets.
3. scikit-learn: ``LogisticRegression(fit_intercept=False, C=1 / (lam n_S), tol=<matched>)``
   on the same sample with the offsets set to zero (it has no offset term); its time is
   extrapolated likewise, and ``fit_surrogates`` is rerun on the offset-free features.

Accuracy: every solution is compared with a tight scipy solution (``gtol = 1e-12``, untimed):
maximum relative disagreement ``max_k ||w_k - w_ref,k||_inf / ||w_ref,k||_inf``. ``--tol``
(default 1e-5, the library default) sets the stopping rule of all three solvers. For timing,
run with ``OMP_NUM_THREADS=1 --threads 1`` so that numpy/scipy and torch get one core each.

Printed: seconds of each path, the disagreements and the speed ratios. The last line is the
headline: extrapolated scipy seconds / graphtag seconds. Config, seeds, versions and git SHA are
printed first (one JSON line) and saved with ``--out``.

``--l2-sweep`` instead fits the surrogates for relative ridges 1e-4 .. 1 and prints, per value,
Newton steps, ``||w||``, the mean estimated validation loss of member tasks, the split-half
reliability of the affinity (Spearman correlation between the affinities of two disjoint halves
of the subsets) and the planted-group margin (mean within-group minus mean between-group
affinity) on the synthetic features.

``--l2-check DATASET`` is the evidence behind ``graphtag.estimation.DEFAULT_L2`` on real
features: it trains a SIGN base model (hidden 64, 100 epochs) with the pipeline
(``graphtag.pipeline.Run``, cached under ``--run-dir``), fine-tunes ``--num-subsets`` subsets
for real (``check-estimator``'s path) and, for relative ridges 1e-3 .. 10, compares the linear
estimate, the real network at ``theta0 + P w_S`` (``network_subset_losses``) and the fine-tuned
losses. Results (d = 64, seed 0; mean relative errors):

    dataset (T, M, s)              l2:  1e-3   1e-2   0.1    1      10    (nothing changes)
    synthetic planted (12, 60, 4)  lin-vs-network  91%    78%    19%    1.1%   0.05%
                                   lin-vs-real     128%   64%    21%    5.3%   4.2%   (4.6%)
    blogcatalog (39, 40, 5)        lin-vs-network  16%    13%    3.7%   0.37%  0.02%
                                   lin-vs-real     9.6%   7.9%   3.4%   1.7%   1.8%   (1.8%)

Small ridges move ``w`` out of the region where the linearisation holds (the real network then
disagrees with the surrogate by 10-90%); from a relative ridge of 1 on, the surrogate and the
network agree to about 1% and the estimate is as close to real fine-tuning as the "nothing
changes" baseline or closer. Hence ``DEFAULT_L2 = 1`` (relative).

Commands:
    PYTHONPATH=. python experiments/bench_surrogate.py                  # a few minutes, 2 cores
    PYTHONPATH=. python experiments/bench_surrogate.py --large          # 200 tasks, d = 400
    PYTHONPATH=. python experiments/bench_surrogate.py --l2-sweep
    PYTHONPATH=. python experiments/bench_surrogate.py --l2-check blogcatalog --num-subsets 40 \
        --subset-size 5 --dim 64                                         # ~15 min on 2 cores
    PYTHONPATH=. python experiments/bench_surrogate.py --smoke --out runs/bench_surrogate.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from graphtag._utils import experiment_header, numpy_generator
from graphtag.artifacts import save_json
from graphtag.estimation import (
    DEFAULT_L2,
    estimate_losses,
    fit_surrogates,
    make_synthetic_features,
    sample_task_subsets,
    subset_affinity,
    task_statistics,
)
from graphtag.gradients import TRAIN, GradientFeatures

PRESETS = {
    "default": {"num_tasks": 100, "num_subsets": 2000, "subset_size": 10, "train_rows": 500,
                "val_rows": 500, "dim": 200, "ref_sample": 20, "min_pair_count": 5},
    "smoke": {"num_tasks": 12, "num_subsets": 40, "subset_size": 4, "train_rows": 30,
              "val_rows": 30, "dim": 8, "ref_sample": 5, "min_pair_count": 1},
    "large": {"num_tasks": 200, "num_subsets": 4000, "subset_size": 10, "train_rows": 1000,
              "val_rows": 1000, "dim": 400, "ref_sample": 10, "min_pair_count": 2},
}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny run (seconds)")
    p.add_argument("--large", action="store_true", help="200 tasks, 1000+1000 rows, d = 400")
    for name in PRESETS["default"]:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    p.add_argument("--num-groups", type=int, default=10)
    p.add_argument("--l2", type=float, default=DEFAULT_L2, help="relative ridge (see l2_scale)")
    p.add_argument("--tol", type=float, default=1e-5, help="relative gradient-norm tolerance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--l2-sweep", action="store_true")
    p.add_argument("--l2-check", default=None, metavar="DATASET", help="real-feature l2 check")
    p.add_argument("--run-dir", type=Path, default=Path("runs/bench_surrogate_l2"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    preset = PRESETS["smoke" if args.smoke else "large" if args.large else "default"]
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.num_groups = min(args.num_groups, args.num_tasks)
    return args


def subset_rows(feats: GradientFeatures, subset: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    sel = (feats.split == TRAIN) & torch.isin(feats.task, torch.tensor(subset))
    return tuple(x[sel].double().numpy() for x in (feats.features, feats.offsets, feats.labels))


def objective(g: np.ndarray, o: np.ndarray, y: np.ndarray, lam: float):
    n = len(y)

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = o + g @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        value = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w @ w
        return value, g.T @ (p - y) / n + lam * w

    return fun


def matched_gtol(g: np.ndarray, o: np.ndarray, y: np.ndarray, tol: float) -> float:
    """scipy/sklearn ``gtol`` (max-abs gradient) matching ``||grad|| <= tol ||grad F(0)||``."""
    grad0 = objective(g, o, y, 0.0)(np.zeros(g.shape[1]))[1]
    return tol * float(np.linalg.norm(grad0)) / np.sqrt(g.shape[1])


def scipy_fit(g: np.ndarray, o: np.ndarray, y: np.ndarray, lam: float, gtol: float) -> np.ndarray:
    from scipy.optimize import minimize

    opts = {"gtol": gtol, "ftol": 0.0, "maxiter": 20000, "maxcor": 10}
    x0 = np.zeros(g.shape[1])
    return minimize(objective(g, o, y, lam), x0, jac=True, method="L-BFGS-B", options=opts).x


def rel_disagreement(w: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(w - ref).max(1) / np.abs(ref).max(1)))


def benchmark(args: argparse.Namespace, feats: GradientFeatures, subsets: list) -> dict:
    start = time.perf_counter()
    stats = task_statistics(feats, device=args.device)
    fit = fit_surrogates(feats, subsets, args.l2, tol=args.tol, device=args.device, stats=stats)
    t_fit = time.perf_counter() - start
    start = time.perf_counter()
    losses = estimate_losses(feats, subsets, fit.weights, device=args.device)
    t_losses = time.perf_counter() - start
    start = time.perf_counter()
    subset_affinity(subsets, losses, args.num_tasks, symmetric=True)
    t_affinity = time.perf_counter() - start
    print(
        f"graphtag: {t_fit:.2f} s for {len(subsets)} surrogates (Newton steps mean "
        f"{fit.iterations.double().mean():.2f}, max {int(fit.iterations.max())}, "
        f"{fit.num_failed} not converged); losses {t_losses:.2f} s, affinity {t_affinity:.3f} s"
    )
    rng = numpy_generator(args.seed, "bench-sample")
    sample = sorted(
        rng.choice(len(subsets), size=min(args.ref_sample, len(subsets)), replace=False)
    )
    tight, matched, seconds = [], [], []
    for k in sample:
        g, o, y = subset_rows(feats, subsets[k])
        tight.append(scipy_fit(g, o, y, fit.l2, gtol=1e-12))  # accuracy reference, not timed
        gtol = matched_gtol(g, o, y, args.tol)
        start = time.perf_counter()
        matched.append(scipy_fit(g, o, y, fit.l2, gtol=gtol))
        seconds.append(time.perf_counter() - start)
    t_scipy = float(np.mean(seconds)) * len(subsets)
    dis_ours = rel_disagreement(fit.weights[sample].numpy(), np.stack(tight))
    dis_scipy = rel_disagreement(np.stack(matched), np.stack(tight))
    print(
        f"scipy L-BFGS-B: {np.mean(seconds):.4f} s per subset ({len(sample)} timed) -> "
        f"{t_scipy:.1f} s extrapolated; max relative disagreement with a tight (gtol 1e-12) "
        f"solution: graphtag {dis_ours:.2e}, scipy at the matched tolerance {dis_scipy:.2e}"
    )

    from sklearn.linear_model import LogisticRegression

    free = GradientFeatures(feats.features, torch.zeros_like(feats.offsets), feats.labels,
                            feats.task, feats.node, feats.split, feats.num_tasks, {})  # fmt: skip
    picked = [subsets[k] for k in sample]
    ours = fit_surrogates(free, picked, fit.l2, l2_relative=False, tol=args.tol).weights.numpy()
    ref, seconds = [], []
    for subset in picked:
        g, o, y = subset_rows(free, subset)
        clf = LogisticRegression(C=1.0 / (fit.l2 * len(y)), fit_intercept=False,
                                 tol=matched_gtol(g, o, y, args.tol), max_iter=10000)  # fmt: skip
        start = time.perf_counter()
        clf.fit(g, y)
        seconds.append(time.perf_counter() - start)
        ref.append((scipy_fit(g, o, y, fit.l2, gtol=1e-12), clf.coef_[0]))
    t_sklearn = float(np.mean(seconds)) * len(subsets)
    tight_free = np.stack([r[0] for r in ref])
    dis_sklearn = rel_disagreement(np.stack([r[1] for r in ref]), tight_free)
    dis_ours_free = rel_disagreement(ours, tight_free)
    print(
        f"scikit-learn (offset-free): {np.mean(seconds):.4f} s per subset -> {t_sklearn:.1f} s "
        f"extrapolated; max relative disagreement with tight scipy: sklearn {dis_sklearn:.2e}, "
        f"graphtag {dis_ours_free:.2e}"
    )
    return {
        "graphtag_seconds": t_fit,
        "losses_seconds": t_losses,
        "affinity_seconds": t_affinity,
        "newton_steps_mean": float(fit.iterations.double().mean()),
        "not_converged": fit.num_failed,
        "l2_absolute": fit.l2,
        "scipy_seconds_extrapolated": t_scipy,
        "graphtag_max_rel_disagreement": dis_ours,
        "scipy_max_rel_disagreement": dis_scipy,
        "sklearn_seconds_extrapolated": t_sklearn,
        "sklearn_max_rel_disagreement": dis_sklearn,
        "graphtag_offset_free_max_rel_disagreement": dis_ours_free,
        "speedup_vs_scipy": t_scipy / t_fit,
        "speedup_vs_sklearn": t_sklearn / t_fit,
        "sample": [int(k) for k in sample],
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def l2_sweep(args: argparse.Namespace, feats: GradientFeatures, subsets: list) -> dict:
    import warnings

    num_tasks = args.num_tasks
    group = np.arange(num_tasks) * args.num_groups // num_tasks
    same = group[:, None] == group[None, :]
    off = ~np.eye(num_tasks, dtype=bool)
    stats = task_statistics(feats, device=args.device)
    half = len(subsets) // 2
    rows = {}
    for rel in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        fit = fit_surrogates(feats, subsets, rel, tol=args.tol, device=args.device, stats=stats)
        losses = estimate_losses(feats, subsets, fit.weights, device=args.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # halves may leave pairs apart
            full = subset_affinity(subsets, losses, num_tasks, symmetric=True)
            a = subset_affinity(subsets[:half], losses[:half], num_tasks, symmetric=True)
            b = subset_affinity(subsets[half:], losses[half:], num_tasks, symmetric=True)
        upper = np.triu(off)
        row = {
            "newton_steps": float(fit.iterations.double().mean()),
            "w_norm": float(fit.weights.norm(dim=1).mean()),
            "val_loss": float(np.nanmean(losses.numpy())),
            "split_half_spearman": spearman(a[upper], b[upper]),
            "planted_margin": float(full[same & off].mean() - full[~same].mean()),
        }
        rows[rel] = row
        print(f"l2={rel:g}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
    best = min(rows, key=lambda r: rows[r]["val_loss"])
    print(f"lowest mean estimated validation loss at relative l2 = {best:g}")
    return {"sweep": {str(k): v for k, v in rows.items()}, "best_val_loss_l2": best}


def l2_check(args: argparse.Namespace) -> dict:
    import warnings

    from graphtag.estimation import base_losses
    from graphtag.gradients import GradientProjector, network_subset_losses
    from graphtag.pipeline import (
        EstimatorConfig,
        Run,
        RunConfig,
        RunOptions,
        check_estimator,
        compare_losses,
    )
    from graphtag.training import TrainConfig

    train = TrainConfig(model="sign", device=args.device, hidden_channels=64, epochs=100)
    est = EstimatorConfig(projection_dim=args.dim)
    cfg = RunConfig(dataset=args.l2_check, seed=args.seed, train=train, estimator=est)
    run = Run(cfg, RunOptions(args.run_dir, progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few subsets leave pairs apart
        checked = check_estimator(run, args.num_subsets, args.subset_size)
    subsets = [tuple(s) for s in checked["subsets"]]
    num_tasks = int(run.data.y.size(1))
    real = np.full((len(subsets), num_tasks), np.nan)
    for k, (subset, values) in enumerate(zip(subsets, checked["real_losses"])):
        real[k, list(subset)] = values
    feats, model = run.features(), run.base_model()
    seed = run.estimator.feature_settings()["seed"]
    projector = GradientProjector(dim=args.dim, block=est.block, seed=seed)
    projector.fit(model)
    base, stats = base_losses(feats).numpy(), task_statistics(feats)
    member = ~np.isnan(real)
    rows = {}
    print(f"nothing-changes relative error {checked['baseline_relative_error']:.4f}")
    for rel in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        fit = fit_surrogates(feats, subsets, rel, stats=stats)
        lin = estimate_losses(feats, subsets, fit.weights).numpy()
        net = network_subset_losses(model, run.inputs, run.data, projector, subsets, fit.weights)
        net = net.double().numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = compare_losses(subsets, lin, real, base, num_tasks)
            b = compare_losses(subsets, net, real, base, num_tasks)
        rows[rel] = {
            "w_norm": float(fit.weights.norm(dim=1).mean()),
            "lin_vs_network": float(np.mean(np.abs(lin - net)[member] / net[member])),
            "lin_vs_real": a["relative_error"],
            "network_vs_real": b["relative_error"],
            "lin_affinity_spearman": a["affinity_spearman"],
            "network_affinity_spearman": b["affinity_spearman"],
        }
        print(f"l2={rel:g}: " + ", ".join(f"{k} {v:.4g}" for k, v in rows[rel].items()))
    return {
        "l2_check": {str(k): v for k, v in rows.items()},
        **{k: checked[k] for k in ("baseline_relative_error", "num_subsets", "subset_size")},
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = experiment_header(args)
    print(json.dumps(meta))
    if args.l2_check is not None:
        result = {**meta, **l2_check(args)}
    else:
        feats = make_synthetic_features(
            num_tasks=args.num_tasks,
            num_groups=args.num_groups,
            train_rows=args.train_rows,
            val_rows=args.val_rows,
            dim=args.dim,
            seed=args.seed,
        )
        subsets = sample_task_subsets(
            args.num_tasks,
            args.subset_size,
            args.num_subsets,
            seed=args.seed,
            min_pair_count=args.min_pair_count,
        )
        if args.l2_sweep:
            result = {**meta, **l2_sweep(args, feats, subsets)}
        else:
            result = {**meta, **benchmark(args, feats, subsets)}
            print(
                f"sklearn speed-up (extrapolated sklearn s / graphtag s): "
                f"{result['speedup_vs_sklearn']:.1f}x"
            )
            print(
                f"headline: batched Newton is {result['speedup_vs_scipy']:.1f}x faster than "
                f"per-subset scipy L-BFGS-B on {args.num_subsets} subsets (max rel. "
                f"disagreement {result['graphtag_max_rel_disagreement']:.1e})"
            )
    if args.out is not None:
        save_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
