"""Benchmark: projected gradients by batched JVPs versus naive per-(node, task) autograd.

For T in {10, 100, 500} tasks, a SIGN model on a random graph, and a d-dimensional projection:

* JVP path: ``graphtag.gradients.iter_projected_gradients`` (the streaming form of
  ``compute_projected_gradients``) on ``--num-nodes`` nodes in one call, timed per node batch;
  the first batch (warm-up, and generation of the cached projection directions) is dropped;
  seconds per node = median over batches (the JSON also has total time / nodes).
* naive path: ``graphtag.gradients.naive_projected_gradients`` (one backward per (node, task),
  then ``P^T``; the same reference the unit tests use). It costs ``T`` backward passes and ``T``
  projections per node, so it is timed on a subsample of ``max(2, --naive-pairs // T)`` nodes,
  one node per call after a warm-up node, and extrapolated as the median seconds per node.

Both paths run on the same model, projector and nodes; their outputs are compared on the
subsample (``max err``, relative). Times are wall clock and process CPU time (the latter is robust
to other jobs sharing the cores; on CUDA only wall clock is meaningful). The naive path's cost is
``T x (backward + D x d projection)`` per node, the JVP path's about ``3 x d`` forward passes per
node whatever ``T``. The last line printed is the headline ratio (naive / JVP seconds per node)
at T = 100. Seeds: the graph from ``torch_generator(seed, ...)``, the model from
``torch.manual_seed(seed)``, the projection from ``seed``; config, versions and git SHA are
printed first and saved with ``--out``.

Commands:
    PYTHONPATH=. python experiments/bench_gradients.py   # default size, a few minutes on 2 cores
    PYTHONPATH=. python experiments/bench_gradients.py --smoke --out runs/bench_gradients.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from graphtag._utils import experiment_header, torch_generator
from graphtag.artifacts import save_json
from graphtag.data import build_multilabel_graph
from graphtag.gradients import (
    GradientProjector,
    iter_projected_gradients,
    naive_projected_gradients,
)
from graphtag.models import SIGN, ModelConfig, prepare_inputs

SMOKE = {
    "num_nodes": 60,
    "num_features": 8,
    "hidden": 8,
    "dim": 8,
    "tasks": "3,10",
    "naive_pairs": 20,
    "node_batch_size": 20,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-nodes", type=int, default=1000, help="nodes featurised by the JVP path")
    p.add_argument("--avg-degree", type=float, default=10.0)
    p.add_argument("--num-features", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--num-hops", type=int, default=3)
    p.add_argument("--dim", type=int, default=200, help="projection dimension d")
    p.add_argument("--kind", default="rademacher", choices=["rademacher", "gaussian"])
    p.add_argument("--block", default="all", choices=["all", "body"])
    p.add_argument("--chunk-size", type=int, default=32, help="directions per vmapped JVP")
    p.add_argument("--node-batch-size", type=int, default=200)
    p.add_argument("--tasks", default="10,100,500", help="comma-separated task counts T")
    p.add_argument("--naive-pairs", type=int, default=500, help="(node, task) pairs for naive")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny preset, runs in seconds")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args


def random_graph(args: argparse.Namespace, num_tasks: int):
    gen = torch_generator(args.seed, "bench_gradients", "graph")
    n = args.num_nodes
    edges = torch.randint(0, n, (2, int(n * args.avg_degree / 2)), generator=gen)
    y = (torch.rand(n, num_tasks, generator=gen) < 0.2).float()
    x = torch.randn(n, args.num_features, generator=gen)
    return build_multilabel_graph(edges, y, name="bench-random", x=x, seed=args.seed)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clocks() -> tuple[float, float]:
    """(wall, process CPU) seconds; CPU time is robust to other jobs sharing the cores."""
    return time.perf_counter(), time.process_time()


def time_jvp(model, inputs, proj, nodes, args, device) -> tuple[dict, torch.Tensor]:
    """Median wall/CPU seconds per node over batches (first dropped), total wall, grads."""
    wall, cpu, outs = [], [], []
    batches = inputs.batches(nodes, args.node_batch_size, train=False)
    stream = iter_projected_gradients(model, batches, proj, chunk_size=args.chunk_size)
    sync(device)
    start = time.perf_counter()
    w0, c0 = clocks()
    for batch, _, g in stream:
        sync(device)
        w1, c1 = clocks()
        wall.append((w1 - w0) / batch.nodes.numel())
        cpu.append((c1 - c0) / batch.nodes.numel())
        outs.append(g)
        w0, c0 = clocks()
    total = (time.perf_counter() - start) / nodes.numel()
    # The first batch also generates the (cached) projection directions: dropped as warm-up.
    k = 1 if len(wall) > 1 else 0
    times = {
        "wall": statistics.median(wall[k:]),
        "cpu": statistics.median(cpu[k:]),
        "wall_with_setup": total,
    }
    return times, torch.cat(outs)


def time_naive(model, inputs, proj, nodes, device) -> tuple[dict, torch.Tensor]:
    """Median wall/CPU seconds per node (one node per call, after a warm-up node), grads."""
    wall, cpu, outs = [], [], []
    # One direction cache for all calls, as a stored P would be: the warm-up call generates it.
    with proj.cached():
        warm = next(iter(inputs.batches(nodes[:1], 1, train=False)))
        naive_projected_gradients(model, [warm], proj)
        for batch in inputs.batches(nodes, 1, train=False):
            sync(device)
            w0, c0 = clocks()
            outs.append(naive_projected_gradients(model, [batch], proj))
            sync(device)
            w1, c1 = clocks()
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}, torch.cat(outs)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    task_counts = [int(t) for t in args.tasks.split(",")]
    meta = experiment_header(args)
    print(json.dumps(meta))
    data = random_graph(args, max(task_counts))
    inputs = prepare_inputs(data, ModelConfig("sign", args.hidden, num_hops=args.num_hops), device)
    nodes = torch.arange(args.num_nodes)
    rows = []
    print(
        f"{'T':>5} {'D':>8} {'jvp s/node':>11} {'naive s/node':>13} {'ratio':>8} "
        f"{'jvp cpu':>10} {'naive cpu':>10} {'cpu ratio':>8} {'max err':>9}"
    )
    for num_tasks in task_counts:
        torch.manual_seed(args.seed)  # model initialisation (script-level seeding)
        model = SIGN(args.num_features, args.hidden, num_tasks, num_hops=args.num_hops).to(device)
        proj = GradientProjector(args.dim, kind=args.kind, block=args.block, seed=args.seed)
        proj.fit(model)
        jvp, g_fast = time_jvp(model, inputs, proj, nodes, args, device)
        num_naive = min(args.num_nodes, max(2, args.naive_pairs // num_tasks))
        naive, g_slow = time_naive(model, inputs, proj, nodes[:num_naive], device)
        err = float((g_fast[:num_naive] - g_slow).abs().max() / g_slow.abs().max())
        row = {
            "num_tasks": num_tasks,
            "num_params": proj.num_params_,
            "jvp_seconds_per_node": jvp["wall"],
            "jvp_cpu_seconds_per_node": jvp["cpu"],
            "jvp_seconds_per_node_with_setup": jvp["wall_with_setup"],
            "naive_seconds_per_node": naive["wall"],
            "naive_cpu_seconds_per_node": naive["cpu"],
            "naive_nodes": num_naive,
            "ratio": naive["wall"] / jvp["wall"],
            "cpu_ratio": naive["cpu"] / jvp["cpu"],
            "max_relative_error": err,
        }
        rows.append(row)
        print(
            f"{num_tasks:>5} {proj.num_params_:>8} {jvp['wall']:>11.2e} {naive['wall']:>13.2e} "
            f"{row['ratio']:>8.1f} {jvp['cpu']:>10.2e} {naive['cpu']:>10.2e} "
            f"{row['cpu_ratio']:>8.1f} {err:>9.1e}",
            flush=True,
        )
    lo, hi = rows[0], rows[-1]
    growth = hi["jvp_cpu_seconds_per_node"] / lo["jvp_cpu_seconds_per_node"]
    naive_growth = hi["naive_cpu_seconds_per_node"] / lo["naive_cpu_seconds_per_node"]
    print(
        f"JVP CPU s/node grows {growth:.2f}x from T={lo['num_tasks']} to T={hi['num_tasks']} "
        f"(naive: {naive_growth:.1f}x)"
    )
    result = {**meta, "rows": rows}
    if args.out is not None:
        save_json(args.out, result)
    at = next((r for r in rows if r["num_tasks"] == 100), rows[-1])
    print(
        f"headline: at T={at['num_tasks']} the JVP path is {at['ratio']:.1f}x faster per node "
        f"than naive per-(node, task) autograd (wall clock; {at['cpu_ratio']:.1f}x in CPU time; "
        f"d={args.dim}, D={at['num_params']})"
    )
    return result


if __name__ == "__main__":
    main()
