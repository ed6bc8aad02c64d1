r"""Benchmark: the Grad-TAG pipeline stage by stage at growing graph sizes (seconds, peak memory).

For every (N, T) in ``--nodes`` x ``--tasks`` a planted synthetic graph
(``graphtag.data.make_multilabel_graph`` through the ``synthetic:`` dataset spec, average degree
``--avg-degree``, ``min(4, T)`` planted groups) goes through ``graphtag.pipeline.Run`` in a
fresh temporary run directory: ``data`` (load), ``inputs`` (SIGN hops), ``base_training``,
``features`` (projected gradients), ``surrogate`` (``Run.affinity``: subset surrogates, losses,
affinity; it reloads the saved features), ``clustering`` (``Run.groups``) and, with
``--evaluate``, ``grouped_training`` (one model per group, one seed). Each size runs in its own
Python process (``--in-process`` to skip that), so sizes do not share allocator state.

Per stage: wall and process CPU seconds, and the peak RSS growth during the stage (the kernel's
peak-RSS counter, reset at the stage start: ``graphtag.memory.PeakTracker``), next to
``graphtag.memory.estimate_data_memory``'s estimate of the stage (for ``surrogate`` plus the
features it reloads). ``run peak`` compares the peak RSS above the process at the start with
the estimated run peak. Memory the C allocator keeps after a stage frees it lowers the next
stage's measured growth, so each worker first sets the allocator up as the ``graphtag`` command
does (``graphtag.memory.configure_allocator``: large blocks from mmap) and calls
``graphtag.memory.release_memory`` after every stage; ``--glibc-defaults`` measures without both.

Outputs in ``--out``: ``bench_pipeline.json`` (config, seeds, versions, git SHA, one row per
size and stage) and ``bench_pipeline.png`` (log-log total seconds against N, edges and T). The
last line printed is the headline: the fitted exponent ``a`` of total seconds ~ N^a at the
largest T (least squares on log-log), and the run's measured versus estimated peak memory at the
largest size. Seeds: graph and split ``--seed``, run seed ``--seed``.

Commands:
    python experiments/bench_pipeline.py                 # N 2k/8k/32k x T 10/40, minutes
    python experiments/bench_pipeline.py --nodes 100000,300000 --tasks 100 --epochs 20 \
        --projection-dim 200 --num-subsets 1000 --evaluate
    python experiments/bench_pipeline.py --smoke --out runs/bench_pipeline
    python experiments/bench_pipeline.py --device cuda --in-process --nodes 1000000 --tasks 500 \
        --num-groups 50 --avg-degree 40 --epochs 20 --projection-dim 200 --num-subsets 2000 \
        --subset-size 10     # the scale issue's GPU target (experiments/device_check.sh)

With ``--device cuda`` every stage also records its peak device memory
(``torch.cuda.max_memory_allocated``, reset at the stage start) next to the estimate's device
part, and each row names the device.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from graphtag.memory import STAGES  # noqa: E402  (after the path set-up)

SMOKE = {
    "nodes": "200,400",
    "tasks": "4",
    "epochs": 1,
    "hidden_channels": 8,
    "projection_dim": 8,
    "num_subsets": 12,
    "subset_size": 2,
    "in_process": True,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="2000,8000,32000", help="comma-separated node counts N")
    p.add_argument("--tasks", default="10,40", help="comma-separated task counts T")
    p.add_argument("--avg-degree", type=float, default=16.0, help="synthetic avg_degree")
    p.add_argument("--epochs", type=int, default=3, help="base model epochs")
    p.add_argument("--hidden-channels", type=int, default=128, help="SIGN hidden width")
    p.add_argument("--projection-dim", type=int, default=64, help="gradient dimension d")
    p.add_argument("--num-subsets", type=int, default=300, help="Grad-TAG subsets M")
    p.add_argument("--subset-size", type=int, default=5, help="tasks per subset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda[:N]: the run's device; per-stage peak device memory is "
        "recorded (torch.cuda.max_memory_allocated) with the device name",
    )
    p.add_argument(
        "--num-groups",
        type=int,
        default=None,
        help="planted groups of the graph and k of the clustering (default min(4, T))",
    )
    p.add_argument("--evaluate", action="store_true", help="also train the grouped models")
    p.add_argument("--in-process", action="store_true", help="no subprocess per size")
    p.add_argument("--glibc-defaults", action="store_true", help="no allocator set-up, no release")
    p.add_argument("--out", type=Path, default=REPO / "experiments/results/bench_pipeline")
    p.add_argument("--smoke", action="store_true", help="tiny preset, seconds")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args


def run_size(job: dict) -> dict:
    """All stages of one (N, T) through graphtag.pipeline.Run; seconds and memory per stage."""
    import torch

    from graphtag.memory import (
        PeakTracker,
        configure_allocator,
        current_rss,
        estimate_data_memory,
        release_memory,
    )
    from graphtag.pipeline import EstimatorConfig, Run, RunConfig, RunOptions, fit_partition
    from graphtag.training import TrainConfig

    n, t = job["num_nodes"], job["num_tasks"]
    k = min(4, t) if job.get("num_groups") is None else int(job["num_groups"])
    spec = (
        f"synthetic:num_nodes={n},num_tasks={t},num_groups={k},"
        f"avg_degree={job['avg_degree']},seed={job['seed']}"
    )
    device = job.get("device", "cpu")
    cuda = torch.device(device).type == "cuda"
    train = TrainConfig(epochs=job["epochs"], hidden_channels=job["hidden_channels"], device=device)
    estimator = EstimatorConfig(
        projection_dim=job["projection_dim"],
        num_subsets=job["num_subsets"],
        subset_size=job["subset_size"],
    )
    config = RunConfig(
        dataset=spec, seed=job["seed"], train=train, estimator=estimator, num_groups=k
    )
    tuned = not job["glibc_defaults"]
    if tuned:
        configure_allocator()
    rows: list[dict] = []
    start_rss = current_rss()
    peak = start_rss
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(config, RunOptions(tmp, progress=False))

        def stage(name: str, fn: Callable[[], Any]) -> Any:
            nonlocal peak
            cpu = time.process_time()
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            with PeakTracker() as tracker:
                value = fn()
                if cuda:
                    torch.cuda.synchronize(device)
            peak = max(peak, tracker.peak)
            if tuned:
                release_memory()
            rows.append(
                {
                    "stage": name,
                    "seconds": tracker.seconds,
                    "cpu_seconds": time.process_time() - cpu,
                    "rss_growth": tracker.growth,
                    "rss_peak_above_start": tracker.peak - start_rss,
                    "method": tracker.method,
                    "device_peak": torch.cuda.max_memory_allocated(device) if cuda else None,
                }
            )
            return value

        data = stage("data", lambda: run.data)
        estimate = estimate_data_memory(data, train, run.method, device=device)
        stage("inputs", lambda: run.inputs)
        stage("base_training", run.base_model)
        feats = stage("features", run.features)
        feature_bytes = estimate.stage("features").held
        del feats  # the pipeline does not keep them: the affinity stage reloads features.npz
        stage("surrogate", run.affinity)
        groups = stage("clustering", run.groups)
        if job["evaluate"]:
            stage(
                "grouped_training",
                lambda: fit_partition(run, groups, "grouped", job["seed"]),
            )
    for row in rows:
        name = row["stage"]
        est = estimate.stage(name).total if name in STAGES else None
        if name == "surrogate":
            est += feature_bytes
        row["estimate"] = est
        if cuda and name in STAGES:
            dev = estimate.stage(name)
            row["device_estimate"] = dev.device_held + dev.device_transient
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "num_nodes": n,
        "num_tasks": t,
        "num_edges": int(data.edge_index.size(1)) // 2,
        "num_features": int(data.x.size(1)),
        "stages": rows,
        "total_seconds": sum(r["seconds"] for r in rows),
        "peak_above_start": peak - start_rss,
        "estimated_peak": estimate.peak,
        "estimate": estimate.to_dict(),
    }


def run_worker(job: dict) -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(REPO))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker for {job} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) on log(x) (``None`` with fewer than 2 distinct x)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def mib(num: float | None) -> str:
    return "-" if num is None else f"{num / 2**20:.1f}"


def print_table(result: dict) -> None:
    print(
        f"\nN={result['num_nodes']} T={result['num_tasks']} E={result['num_edges']} "
        f"F={result['num_features']} device={result.get('device', 'cpu')}"
    )
    print(
        f"{'stage':<17}{'seconds':>9}{'cpu s':>9}{'RSS growth MiB':>16}{'estimate MiB':>14}"
        f"{'est/meas':>10}{'device peak MiB':>17}{'device est MiB':>16}"
    )
    for r in result["stages"]:
        ratio = (
            f"{r['estimate'] / r['rss_growth']:.2f}"
            if r["estimate"] is not None and r["rss_growth"] > 0
            else "-"
        )
        print(
            f"{r['stage']:<17}{r['seconds']:>9.2f}{r['cpu_seconds']:>9.2f}"
            f"{mib(r['rss_growth']):>16}{mib(r['estimate']):>14}{ratio:>10}"
            f"{mib(r.get('device_peak')):>17}{mib(r.get('device_estimate')):>16}"
        )
    print(
        f"{'run peak':<17}{result['total_seconds']:>9.2f}{'':>9}"
        f"{mib(result['peak_above_start']):>16}{mib(result['estimated_peak']):>14}"
        f"{result['estimated_peak'] / max(result['peak_above_start'], 1):>10.2f}"
    )


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    tasks = sorted({r["num_tasks"] for r in results})
    nodes = sorted({r["num_nodes"] for r in results})
    for t in tasks:
        rs = sorted((r for r in results if r["num_tasks"] == t), key=lambda r: r["num_nodes"])
        secs = [r["total_seconds"] for r in rs]
        axes[0].loglog([r["num_nodes"] for r in rs], secs, "o-", label=f"T={t}")
        axes[1].loglog([r["num_edges"] for r in rs], secs, "o-", label=f"T={t}")
    for n in nodes:
        rs = sorted((r for r in results if r["num_nodes"] == n), key=lambda r: r["num_tasks"])
        axes[2].loglog(
            [r["num_tasks"] for r in rs], [r["total_seconds"] for r in rs], "o-", label=f"N={n}"
        )
    for ax, xlabel in zip(axes, ("nodes N", "undirected edges", "tasks T")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("total seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Grad-TAG pipeline cost (data to groups)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run_size(json.loads(args.worker))))
        return {}
    from tqdm.auto import tqdm

    from graphtag._utils import git_revision, versions

    nodes = [int(x) for x in str(args.nodes).split(",") if x]
    tasks = [int(x) for x in str(args.tasks).split(",") if x]
    config = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "worker"
    }
    meta = {"config": config, "seeds": {"graph": args.seed, "run": args.seed}}
    meta["versions"] = versions()
    meta["git_sha"] = git_revision()
    print(json.dumps(meta))
    results = []
    jobs = [
        {
            "num_nodes": n,
            "num_tasks": t,
            "avg_degree": args.avg_degree,
            "epochs": args.epochs,
            "hidden_channels": args.hidden_channels,
            "projection_dim": args.projection_dim,
            "num_subsets": args.num_subsets,
            "subset_size": args.subset_size,
            "seed": args.seed,
            "evaluate": args.evaluate,
            "glibc_defaults": args.glibc_defaults,
            "device": args.device,
            "num_groups": args.num_groups,
        }
        for t in tasks
        for n in nodes
    ]
    with tqdm(jobs, desc="sizes", file=sys.stderr, disable=args.smoke) as bar:
        for job in bar:
            bar.set_postfix(N=job["num_nodes"], T=job["num_tasks"])
            res = run_size(job) if args.in_process else run_worker(job)
            results.append(res)
            print_table(res)
    exponents = {}
    for t in tasks:
        rs = [r for r in results if r["num_tasks"] == t]
        exponents[f"nodes@T={t}"] = fit_exponent(
            [r["num_nodes"] for r in rs], [r["total_seconds"] for r in rs]
        )
        exponents[f"edges@T={t}"] = fit_exponent(
            [r["num_edges"] for r in rs], [r["total_seconds"] for r in rs]
        )
    for n in nodes:
        rs = [r for r in results if r["num_nodes"] == n]
        exponents[f"tasks@N={n}"] = fit_exponent(
            [r["num_tasks"] for r in rs], [r["total_seconds"] for r in rs]
        )
    out = {**meta, "rows": results, "exponents": exponents}
    args.out.mkdir(parents=True, exist_ok=True)
    from graphtag.artifacts import save_json

    save_json(args.out / "bench_pipeline.json", out)
    plot(results, args.out / "bench_pipeline.png")
    print("\nfitted log-log exponents of total seconds:")
    for k, v in exponents.items():
        print(f"  {k}: {'n/a' if v is None else f'{v:.2f}'}")
    biggest = max(results, key=lambda r: (r["num_tasks"], r["num_nodes"]))
    a = exponents[f"nodes@T={max(tasks)}"]
    slope = "n/a (one N)" if a is None else f"N^{a:.2f}"
    print(
        f"headline: total seconds scale as {slope} at T={max(tasks)}; peak memory at "
        f"N={biggest['num_nodes']}, T={biggest['num_tasks']}: "
        f"{biggest['peak_above_start'] / 2**20:.0f} MiB measured, "
        f"{biggest['estimated_peak'] / 2**20:.0f} MiB estimated"
    )
    return out


if __name__ == "__main__":
    main()
