"""Benchmark: seconds and peak memory of each step of the synthetic graph generator.

Runs ``graphtag.data.make_multilabel_graph`` once and splits its time into the library's own
steps, timed by temporarily wrapping the functions it calls (the code path and the result are
those of a plain call; the wrappers are removed afterwards):

* ``features``: everything in ``_generate`` except edges and labels (groups, community latent
  positions, feature maps, features and their standardisation);
* ``edges``: planted-partition edge draws (``_edges``);
* ``labels``: ball labels with label noise (``_labels``);
* ``clean_edges``: symmetrise, deduplicate, drop self-loops (``graphtag.data.clean_edges``);
* ``split``: per-task 20/20/60 masks (``graphtag.data.per_task_split``);
* ``check``: contract validation (``graphtag.data.check_multilabel_graph``);
* ``assemble``: the rest of ``build_multilabel_graph`` (label cast and checks, ``Data``).

Per step: wall seconds, process CPU seconds (all threads; robust to other jobs sharing the cores)
and the peak resident set size during the step (Linux: the kernel's ``VmHWM`` counter, reset
before each step; elsewhere the process peak so far). Config, versions, torch threads and the
load average are printed first; the last line is ``total <seconds> s``.

Commands (from the repository root, with ``PYTHONPATH=.`` when graphtag is not installed):
    python experiments/bench_synthetic.py   # 100k nodes x 100 tasks, a few seconds
    python experiments/bench_synthetic.py --num-nodes 1000000 --num-tasks 500 --num-groups 50
    python experiments/bench_synthetic.py --smoke --out runs/bench_synthetic.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from graphtag._utils import git_revision, versions
from graphtag.data import _graph, _synthetic, make_multilabel_graph
from graphtag.memory import peak_rss, reset_peak_rss

SMOKE = {"num_nodes": 400, "num_tasks": 6, "num_groups": 2}

#: Reported steps, in pipeline order.
STEPS = ("features", "edges", "labels", "clean_edges", "split", "check", "assemble")

# (module, attribute, step name): the functions timed. "generate" and "build" enclose others.
_WRAPPED = (
    (_synthetic, "_generate", "generate"),
    (_synthetic, "_edges", "edges"),
    (_synthetic, "_labels", "labels"),
    (_synthetic, "build_multilabel_graph", "build"),
    (_graph, "clean_edges", "clean_edges"),
    (_graph, "per_task_split", "split"),
    (_graph, "check_multilabel_graph", "check"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-nodes", type=int, default=100_000)
    p.add_argument("--num-tasks", type=int, default=100)
    p.add_argument("--num-groups", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: as is)"
    )
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny preset, runs in about a second")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args


def _process_peak() -> int:
    """Peak RSS of the process so far, in bytes."""
    hwm = peak_rss()
    if hwm is not None:
        return hwm
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class StepTimer:
    """Wall seconds, CPU seconds and peak RSS of nested named steps."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.peak: dict[str, int] = {}
        self.resettable = reset_peak_rss()
        self._open: list[str] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._close_peak()
        self._open.append(name)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
            self._close_peak()
            self._open.pop()

    def _close_peak(self) -> None:
        """Credit the peak since the last reset to every open step, then reset the counter."""
        hwm = _process_peak()
        for name in self._open:
            self.peak[name] = max(self.peak.get(name, 0), hwm)
        if self.resettable:
            reset_peak_rss()

    def wrap(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.step(name):
                return fn(*args, **kwargs)

        return timed


@contextlib.contextmanager
def instrumented(timer: StepTimer) -> Iterator[None]:
    """Wrap the generator's step functions with ``timer`` for the duration of the block."""
    saved = [(module, attr, getattr(module, attr)) for module, attr, _ in _WRAPPED]
    try:
        for (module, attr, name), (_, _, fn) in zip(_WRAPPED, saved):
            setattr(module, attr, timer.wrap(fn, name))
        yield
    finally:
        for module, attr, fn in saved:
            setattr(module, attr, fn)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = {
        "num_nodes": args.num_nodes,
        "num_tasks": args.num_tasks,
        "num_groups": args.num_groups,
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
    }
    load_before = os.getloadavg()
    print(json.dumps({"config": config, "versions": versions(), "git": git_revision()}))
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")

    timer = StepTimer()
    with instrumented(timer), timer.step("total"):
        data = make_multilabel_graph(
            num_nodes=args.num_nodes,
            num_tasks=args.num_tasks,
            num_groups=args.num_groups,
            seed=args.seed,
        )
    wall, cpu, peak = timer.wall, timer.cpu, timer.peak
    # Enclosing steps minus the steps they contain.
    for outer, inner, name in (
        ("generate", ("edges", "labels"), "features"),
        ("build", ("clean_edges", "split", "check"), "assemble"),
    ):
        wall[name] = wall[outer] - sum(wall[s] for s in inner)
        cpu[name] = cpu[outer] - sum(cpu[s] for s in inner)
        peak[name] = peak[outer]
    rows = [
        {"step": s, "seconds": wall[s], "cpu_seconds": cpu[s], "peak_rss_bytes": peak[s]}
        for s in STEPS
    ]
    peak_note = "during step" if timer.resettable else "process peak so far"
    for row in rows:
        print(
            f"{row['step']:<12s} {row['seconds']:8.2f} s   cpu {row['cpu_seconds']:8.2f} s   "
            f"peak RSS {row['peak_rss_bytes'] / 2**30:6.2f} GiB ({peak_note})"
        )
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(
        f"graph: {data.num_nodes} nodes, {data.edge_index.size(1) // 2} undirected edges, "
        f"{data.y.size(1)} tasks; peak RSS {peak['total'] / 2**30:.2f} GiB, "
        f"cpu {cpu['total']:.2f} s"
    )
    result = {
        "config": config,
        "graph": {
            "num_nodes": int(data.num_nodes),
            "num_undirected_edges": int(data.edge_index.size(1) // 2),
            "num_tasks": int(data.y.size(1)),
            "label_sum": float(data.y.sum()),
        },
        "rows": rows,
        "total_seconds": wall["total"],
        "total_cpu_seconds": cpu["total"],
        "peak_rss_bytes": peak["total"],
        "load_average": {"before": load_before, "after": load_after},
        "versions": versions(),
        "git": git_revision(),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(f"total {wall['total']:.2f} s")
    return result


if __name__ == "__main__":
    main()
