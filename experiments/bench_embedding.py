"""Benchmark: the ProNE embedding (graphtag's default x) versus the structural features.

Generates (seeded) an undirected graph of ``--num-nodes`` nodes and exactly ``--num-edges``
distinct undirected edges with heavy-tailed degrees (both endpoints drawn with probability
proportional to Pareto weights of shape ``--degree-shape``, a Chung-Lu graph), cleaned by
:func:`graphtag.data.clean_edges` and saved to a temporary ``.npy``. Then, in the same run, each
method runs in a fresh Python process (so its peak RSS is its own), with ``--threads`` torch
threads, on the same edges:

* ``prone``: :func:`graphtag.data.prone_embedding` (the default recipe of graphs without
  attributes, at its width: ``EMBEDDINGS["prone"].dim``);
* ``structural``: :func:`graphtag.data.structural_features` (the previous default, at its
  width ``EMBEDDINGS["structural"].dim``).

``--dim`` runs both at one width instead.

Each child reports the wall seconds and CPU seconds of the call, its peak RSS (``ru_maxrss``)
and its RSS before the call (interpreter, torch and the loaded edges). The last line is the
headline: both methods' seconds and peak RSS and the ratio ProNE / structural.

Commands (from the repository root, ``PYTHONPATH=.`` when graphtag is not installed):
    python experiments/bench_embedding.py                                # 100k nodes, 2M edges
    python experiments/bench_embedding.py --num-nodes 1000000 --num-edges 20000000
    python experiments/bench_embedding.py --smoke --out runs/bench_embedding.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphtag._utils import experiment_header, numpy_generator
from graphtag.artifacts import save_json
from graphtag.data import EMBEDDINGS, clean_edges

SMOKE = {"num_nodes": 2_000, "num_edges": 20_000, "dim": 16}
METHODS = ("prone", "structural")
_CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from graphtag.data import prone_embedding, structural_features
edge_index = torch.from_numpy(np.load(sys.argv[2]))
num_nodes, dim, method = int(sys.argv[4]), int(sys.argv[5]), sys.argv[1]
fn = {"prone": prone_embedding, "structural": structural_features}[method]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
x = fn(edge_index, num_nodes, dim, 0)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": wall, "cpu_seconds": cpu, "peak_rss_kib": peak,
                  "rss_before_kib": before, "shape": list(x.shape),
                  "finite": bool(torch.isfinite(x).all())}))
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-nodes", type=int, default=100_000)
    p.add_argument("--num-edges", type=int, default=2_000_000, help="distinct undirected edges")
    p.add_argument("--degree-shape", type=float, default=2.5, help="Pareto shape of the weights")
    p.add_argument(
        "--dim", type=int, default=None, help="width of both methods (default: each its own)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads of each child")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--tmp-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny preset, seconds")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.methods = [m for m in args.methods.split(",") if m]
    if any(m not in METHODS for m in args.methods) or not args.methods:
        p.error(f"--methods: choose from {', '.join(METHODS)}")
    max_edges = args.num_nodes * (args.num_nodes - 1) // 2
    if not 0 < args.num_edges <= max_edges // 2:
        p.error(f"--num-edges must lie in (0, {max_edges // 2}] for {args.num_nodes} nodes")
    return args


def make_graph(num_nodes: int, num_edges: int, shape: float, seed: int) -> torch.Tensor:
    """Cleaned ``[2, 2 * num_edges]`` edges of a Chung-Lu graph with Pareto degree weights."""
    rng = numpy_generator(seed, "bench_embedding")
    weights = rng.pareto(shape, num_nodes) + 1.0
    cdf = np.cumsum(weights / weights.sum())
    pairs = np.zeros((0, 2), dtype=np.int64)
    while pairs.shape[0] < num_edges:  # top up what self-loops and repeats removed
        draw = int(1.1 * (num_edges - pairs.shape[0])) + 16
        ends = np.searchsorted(cdf, rng.random((draw, 2)), side="right").clip(max=num_nodes - 1)
        ends = np.sort(ends, axis=1)
        ends = ends[ends[:, 0] != ends[:, 1]]
        pairs = np.unique(np.concatenate([pairs, ends]), axis=0)
    pairs = pairs[np.sort(rng.choice(pairs.shape[0], num_edges, replace=False))]
    edge_index, counts = clean_edges(torch.from_numpy(pairs.T.copy()), num_nodes)
    assert counts["num_undirected_edges"] == num_edges
    return edge_index


def _width(method: str, args: argparse.Namespace) -> int:
    return EMBEDDINGS[method].dim if args.dim is None else int(args.dim)


def run_child(method: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-c", _CHILD, method, str(path), str(args.threads)]
    cmd += [str(args.num_nodes), str(_width(method, args))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), *sys.path])))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{method} child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["peak_rss_gib"] = out["peak_rss_kib"] / 2**20
    out["rss_before_gib"] = out["rss_before_kib"] / 2**20
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    meta = experiment_header(args, cpu_count=os.cpu_count())
    print(json.dumps(meta), flush=True)
    start = time.perf_counter()
    edge_index = make_graph(args.num_nodes, args.num_edges, args.degree_shape, args.seed)
    degree = torch.bincount(edge_index[0], minlength=args.num_nodes)
    graph = {
        "num_nodes": args.num_nodes,
        "num_undirected_edges": edge_index.size(1) // 2,
        "max_degree": int(degree.max()),
        "isolated_nodes": int((degree == 0).sum()),
        "generate_seconds": time.perf_counter() - start,
    }
    print(json.dumps({"graph": graph}), flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        path = Path(tmp) / "edge_index.npy"
        np.save(path, edge_index.numpy())
        del edge_index, degree
        for method in args.methods:
            results[method] = {"dim": _width(method, args), **run_child(method, path, args)}
            print(json.dumps({"method": method, **results[method]}), flush=True)
    result = {**meta, "graph": graph, "methods": results}
    if len(results) == 2:
        p, s = results["prone"], results["structural"]
        result["ratio_seconds"] = p["seconds"] / s["seconds"]
        result["ratio_peak_rss"] = p["peak_rss_gib"] / s["peak_rss_gib"]
        result["headline"] = (
            f"headline: {args.num_nodes:,} nodes, {graph['num_undirected_edges']:,} edges, "
            f"{args.threads} threads: ProNE-{p['dim']} {p['seconds']:.1f} s / "
            f"{p['peak_rss_gib']:.2f} GiB peak RSS, structural-{s['dim']} {s['seconds']:.1f} s / "
            f"{s['peak_rss_gib']:.2f} GiB; ProNE / structural {result['ratio_seconds']:.2f}x "
            f"time, {result['ratio_peak_rss']:.2f}x peak RSS"
        )
        print(result["headline"])
    if args.out is not None:
        save_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
