r"""Benchmark: SNAP edge lists parsed and loaded by graphtag vs reading their bytes, numpy, pandas.

Writes (seeded) a SNAP-format graph into a temporary folder: an edge list of ``--num-edges``
undirected ``u<TAB>v`` lines over ``--num-nodes`` nodes with large, non-contiguous ids and a
``#`` comment header, and a community file of ``--num-communities`` tab-separated member lists
with heavy-tailed (Pareto) sizes; both plain and gzip (``--formats``). Then, per format, in the
same run:

* ``read``: the file's bytes (plain: ``Path.read_bytes``; gzip: ``gzip.open(...).read()``, i.e.
  with decompression). The files were just written, so this is the page cache: memory speed, an
  upper bound for disk speed. ``cold_read`` reads the stored bytes once after asking the kernel to
  drop them from the page cache (``posix_fadvise(DONTNEED)``, best effort): the device's speed;
* ``graphtag_parse``: :func:`graphtag.data._io.read_int_tokens` on the edge list (parse only,
  the same work as the references);
* ``numpy_loadtxt``: ``numpy.loadtxt(path, dtype=np.int64, comments="#")`` on the edge list;
* ``pandas_read_csv``: ``pandas.read_csv(path, sep=r"\s+", comment="#", header=None)`` (C engine;
  skipped when pandas is missing);
* ``load_uncached``: ``graphtag.data.load_dataset("snap:EDGES,CMTY,num_tasks=K")`` with an empty
  cache folder (``$GRAPHTAG_CACHE`` pointed at a fresh temporary folder): parse both files, keep the
  K largest communities, relabel, write the cache, then build the graph (clean edges, structural
  features, per-task split, checks). Split into stages in ``load_stages``;
* ``load_cached``: the same call again (hash the files, read the ``.npz``, build the graph).

Each measurement is the best of ``--repeats`` runs (wall seconds; CPU seconds of that run are
kept too). MB/s are of the text bytes (decompressed for gzip); ratios are time ratios. The last
line is the headline, for the plain file.

Commands (from the repository root, with ``PYTHONPATH=.`` when graphtag is not installed):
    python experiments/bench_snap.py                       # 2M edges, a couple of minutes
    python experiments/bench_snap.py --num-edges 30000000 --num-nodes 3000000 --repeats 1
    python experiments/bench_snap.py --smoke --out runs/bench_snap.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from graphtag._utils import git_revision, numpy_generator, versions
from graphtag.data import _snap, load_dataset
from graphtag.data._io import read_int_tokens

SMOKE = {
    "num_edges": 3_000,
    "num_nodes": 500,
    "num_communities": 40,
    "num_tasks": 10,
    "repeats": 1,
    "force_cache": True,
}
FORMATS = ("plain", "gzip")
#: Measurements per format, in the printed order.
MEASURES = (
    "read",
    "graphtag_parse",
    "numpy_loadtxt",
    "pandas_read_csv",
    "load_uncached",
    "load_cached",
)
#: Stages of the uncached load (functions of ``graphtag.data._snap`` timed while it runs).
LOAD_STAGES = ("file_digest", "_parse", "save_cache", "build_multilabel_graph")
_BLOCK_LINES = 1 << 22  # edges formatted per vectorised step when writing (bounds memory)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-edges", type=int, default=2_000_000, help="undirected edge lines")
    p.add_argument("--num-nodes", type=int, default=300_000)
    p.add_argument("--num-communities", type=int, default=5_000)
    p.add_argument("--num-tasks", type=int, default=100, help="communities kept by the loader")
    p.add_argument(
        "--id-gap", type=int, default=40, help="mean gap between consecutive node ids (>= 1)"
    )
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs per measure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--force-cache",
        action="store_true",
        help="cache whatever the size (graphtag caches inputs of at least CACHE_MIN_BYTES)",
    )
    p.add_argument("--tmp-dir", type=Path, default=None, help="parent of the temporary folder")
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny preset, runs in seconds")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    if args.num_nodes < 2 or args.num_edges < args.num_nodes - 1:
        p.error("need --num-nodes >= 2 and --num-edges >= --num-nodes - 1 (a spanning path)")
    if args.num_communities < 1 or args.num_tasks < 1 or args.repeats < 1 or args.id_gap < 1:
        p.error("--num-communities, --num-tasks, --repeats and --id-gap must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# Synthetic SNAP files


def ascii_tokens(values: np.ndarray, terminators: np.ndarray) -> bytes:
    r"""Decimal text of non-negative integers, each followed by its terminator byte (vectorised).

    Args:
        values: int64 ``[K]`` integers ``>= 0``.
        terminators: uint8 ``[K]`` byte written after each integer (tab, newline, ...).

    Returns:
        The ``K`` tokens as one bytes string, e.g. ``[10, 7], [9, 10]`` -> ``b"10\t7\n"``.
    """
    values = np.asarray(values, dtype=np.int64)
    ndig = np.ones(values.size, dtype=np.int64)
    for k in range(1, 19):
        ndig += values >= 10**k
    ends = np.cumsum(ndig + 1)  # one past each terminator
    out = np.empty(int(ends[-1]) if ends.size else 0, dtype=np.uint8)
    out[ends - 1] = terminators
    for k in range(int(ndig.max()) if ndig.size else 0):
        has = ndig > k
        out[ends[has] - 2 - k] = (values[has] // 10**k) % 10 + ord("0")
    return out.tobytes()


def make_snap_graph(
    num_nodes: int, num_edges: int, num_communities: int, *, seed: int, id_gap: int = 40
) -> dict[str, np.ndarray]:
    """A seeded SNAP-like graph: ids, undirected edges and overlapping communities.

    Node ids are increasing with random gaps (mean ``id_gap``), so they are large and
    non-contiguous, as in SNAP. The first ``num_nodes - 1`` edges form a path through all nodes in
    random order (every node occurs in the edge list, as the loader requires of community
    members); the rest join a uniform endpoint to a degree-skewed one, without self-loops.
    Communities are runs of a random node order (distinct members, overlapping), of
    Pareto-distributed sizes (at least 3, at most ``num_nodes // 10``).

    Returns:
        ``ids`` int64 ``[N]``; ``edges`` int64 ``[E, 2]`` original ids, in file order;
        ``sizes`` int64 ``[C]``; ``members`` int64 ``[sum(sizes)]`` original ids, line by line.
    """
    rng = numpy_generator(seed, "bench_snap")
    ids = np.cumsum(rng.integers(1, 2 * id_gap, size=num_nodes, dtype=np.int64))
    order = rng.permutation(num_nodes)
    extra = num_edges - (num_nodes - 1)
    u = rng.integers(0, num_nodes, size=extra)
    v = (num_nodes * rng.random(extra) ** 3).astype(np.int64)  # skewed degrees
    v = np.where(u == v, (v + 1) % num_nodes, v)
    src = np.concatenate([order[:-1], order[u]])
    dst = np.concatenate([order[1:], order[v]])
    edges = ids[np.stack([src, dst], axis=1)[rng.permutation(num_edges)]]
    max_size = max(3, num_nodes // 10)
    sizes = np.clip((3 * (1 + rng.pareto(1.2, num_communities))).astype(np.int64), 3, max_size)
    starts = rng.integers(0, num_nodes, size=num_communities)
    within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    members = ids[rng.permutation(num_nodes)[(np.repeat(starts, sizes) + within) % num_nodes]]
    return {"ids": ids, "edges": edges, "sizes": sizes, "members": members}


def write_snap_files(graph: dict[str, np.ndarray], folder: Path, formats: list[str]) -> dict:
    """Write the edge list and community file of ``graph`` in each format.

    Returns:
        ``{format: {"edges": Path, "cmty": Path}}``.
    """
    edges, sizes, members = graph["edges"], graph["sizes"], graph["members"]
    header = (
        "# Undirected graph: synthetic SNAP-like graph (experiments/bench_snap.py)\n"
        f"# Nodes: {graph['ids'].size} Edges: {edges.shape[0]}\n"
        "# FromNodeId\tToNodeId\n"
    ).encode()
    paths = {
        fmt: {
            "edges": folder / ("edges.txt" + (".gz" if fmt == "gzip" else "")),
            "cmty": folder / ("cmty.txt" + (".gz" if fmt == "gzip" else "")),
        }
        for fmt in formats
    }

    def opened(key: str) -> list[Any]:
        return [
            gzip.open(p[key], "wb", compresslevel=6) if fmt == "gzip" else open(p[key], "wb")
            for fmt, p in paths.items()
        ]

    handles = opened("edges")
    try:
        for fh in handles:
            fh.write(header)
        tabs = np.tile(np.array([9, 10], dtype=np.uint8), _BLOCK_LINES)
        for start in range(0, edges.shape[0], _BLOCK_LINES):
            block = edges[start : start + _BLOCK_LINES]
            text = ascii_tokens(block.ravel(), tabs[: block.size])
            for fh in handles:
                fh.write(text)
    finally:
        for fh in handles:
            fh.close()
    terms = np.full(members.size, 9, dtype=np.uint8)
    terms[np.cumsum(sizes) - 1] = 10
    text = ascii_tokens(members, terms)
    handles = opened("cmty")
    try:
        for fh in handles:
            fh.write(text)
    finally:
        for fh in handles:
            fh.close()
    for p in paths.values():
        for path in p.values():
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
    return paths


def expected_graph(graph: dict[str, np.ndarray], num_tasks: int | None) -> dict[str, int]:
    """Brute-force node and undirected-edge counts of the loader's induced subgraph.

    Python sets over the kept communities' members and the edge lines (for small graphs only).
    """
    sizes = graph["sizes"].tolist()
    lines, pos = [], 0
    for s in sizes:
        lines.append(graph["members"][pos : pos + s].tolist())
        pos += s
    order = sorted(range(len(lines)), key=lambda i: (-len(lines[i]), i))
    kept = order if num_tasks is None else order[:num_tasks]
    nodes = {m for i in kept for m in lines[i]}
    pairs = {
        (min(a, b), max(a, b))
        for a, b in graph["edges"].tolist()
        if a != b and a in nodes and b in nodes
    }
    return {"num_nodes": len(nodes), "num_undirected_edges": len(pairs), "num_tasks": len(kept)}


# ---------------------------------------------------------------------------------------------
# Timing


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[dict[str, Any], Any]:
    """Run ``fn`` ``repeats`` times; the best wall time, that run's CPU time, and its result."""
    walls: list[float] = []
    best: tuple[float, float, Any] | None = None
    for _ in range(repeats):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        walls.append(wall)
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
        del result
    assert best is not None
    return {"seconds": best[0], "cpu_seconds": best[1], "all_seconds": walls}, best[2]


def cold_read(path: Path) -> float | None:
    """Seconds to read the stored bytes after dropping them from the page cache (best effort)."""
    if not hasattr(os, "posix_fadvise"):
        return None
    with open(path, "rb") as fh:
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        t0 = time.perf_counter()
        while fh.read(1 << 24):
            pass
        return time.perf_counter() - t0


def read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


@contextlib.contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def staged(stages: dict[str, float]) -> Iterator[None]:
    """Accumulate wall seconds of :data:`LOAD_STAGES` into ``stages`` while the block runs."""
    saved = {name: getattr(_snap, name) for name in LOAD_STAGES}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0

        return timed

    try:
        for name, fn in saved.items():
            setattr(_snap, name, wrap(name, fn))
        yield
    finally:
        for name, fn in saved.items():
            setattr(_snap, name, fn)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def measure_format(
    paths: dict[str, Path], spec: str, repeats: int, work: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """All measurements of one format.

    Returns:
        ``(measures, info)``: ``{measure: {"seconds", "cpu_seconds", "all_seconds", "mb_s"}}``
        and sizes, stage seconds, agreement checks and the loaded graph's shape.
    """
    edges, cmty = paths["edges"], paths["cmty"]
    info: dict[str, Any] = {
        "stored_bytes": {"edges": edges.stat().st_size, "cmty": cmty.stat().st_size},
        "cold_read_seconds": {"edges": cold_read(edges), "cmty": cold_read(cmty)},
    }
    m: dict[str, Any] = {}
    m["read"], raw = best_of(lambda: read_bytes(edges), repeats)
    m["read_cmty"], raw_cmty = best_of(lambda: read_bytes(cmty), repeats)
    text_bytes = {"edges": len(raw), "cmty": len(raw_cmty)}
    info["text_bytes"] = text_bytes
    del raw, raw_cmty
    m["graphtag_parse"], flat = best_of(
        lambda: read_int_tokens(edges, fields=2, what="edge list")[0], repeats
    )
    m["numpy_loadtxt"], ref = best_of(
        lambda: np.loadtxt(edges, dtype=np.int64, comments="#"), repeats
    )
    agree = {"numpy_loadtxt": bool(np.array_equal(ref.ravel(), flat))}
    del ref
    pd = _pandas()
    if pd is not None:
        m["pandas_read_csv"], frame = best_of(
            lambda: pd.read_csv(edges, sep=r"\s+", comment="#", header=None), repeats
        )
        agree["pandas_read_csv"] = bool(np.array_equal(frame.to_numpy().ravel(), flat))
        del frame
    info["parsers_agree"] = agree
    info["edge_lines"] = int(flat.size // 2)
    del flat

    stage_runs: list[dict[str, float]] = []
    cache_dirs: list[Path] = []

    def uncached() -> Any:
        folder = Path(tempfile.mkdtemp(prefix="cache_", dir=work))
        cache_dirs.append(folder)
        stages: dict[str, float] = {}
        stage_runs.append(stages)
        with env_var("GRAPHTAG_CACHE", str(folder)), staged(stages):
            return load_dataset(spec)

    m["load_uncached"], data = best_of(uncached, repeats)
    best = int(np.argmin(m["load_uncached"]["all_seconds"]))
    info["load_stages"] = stage_runs[best]
    info["cache_files"] = sum(1 for _ in cache_dirs[-1].rglob("*.npz"))
    info["graph"] = {
        "num_nodes": int(data.num_nodes),
        "num_undirected_edges": int(data.edge_index.size(1) // 2),
        "num_tasks": int(data.y.size(1)),
        "label_sum": float(data.y.sum()),
    }
    del data
    with env_var("GRAPHTAG_CACHE", str(cache_dirs[-1])):
        m["load_cached"], again = best_of(lambda: load_dataset(spec), repeats)
    info["cached_equal"] = bool(
        int(again.num_nodes) == info["graph"]["num_nodes"]
        and float(again.y.sum()) == info["graph"]["label_sum"]
        and int(again.edge_index.size(1) // 2) == info["graph"]["num_undirected_edges"]
    )
    del again

    both = text_bytes["edges"] + text_bytes["cmty"]
    for name, row in m.items():
        size = (
            both
            if name.startswith("load_")
            else text_bytes["cmty" if name == "read_cmty" else "edges"]
        )
        row["mb_s"] = size / 1e6 / row["seconds"]
    read_both = m["read"]["seconds"] + m["read_cmty"]["seconds"]
    parse = m["graphtag_parse"]["seconds"]
    info["ratios"] = {
        "parse_over_read": parse / m["read"]["seconds"],
        "load_uncached_over_read": m["load_uncached"]["seconds"] / read_both,
        "numpy_loadtxt_over_parse": m["numpy_loadtxt"]["seconds"] / parse,
        "uncached_over_cached": m["load_uncached"]["seconds"] / m["load_cached"]["seconds"],
    }
    if "pandas_read_csv" in m:
        info["ratios"]["pandas_over_parse"] = m["pandas_read_csv"]["seconds"] / parse
    cold = info["cold_read_seconds"]["edges"]
    info["cold_read_mb_s"] = None if not cold else info["stored_bytes"]["edges"] / 1e6 / cold
    return m, info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = {
        "num_edges": args.num_edges,
        "num_nodes": args.num_nodes,
        "num_communities": args.num_communities,
        "num_tasks": args.num_tasks,
        "id_gap": args.id_gap,
        "formats": list(args.formats),
        "repeats": args.repeats,
        "seed": args.seed,
        "force_cache": args.force_cache,
        "cache_min_bytes": _snap.CACHE_MIN_BYTES,
    }
    pd = _pandas()
    vers = {**versions(), "pandas": pd.__version__ if pd is not None else None}
    print(json.dumps({"config": config, "versions": vers, "git": git_revision()}), flush=True)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")

    results: dict[str, Any] = {}
    saved_min = _snap.CACHE_MIN_BYTES
    with (
        tempfile.TemporaryDirectory(prefix="bench_snap_", dir=args.tmp_dir) as tmp,
        contextlib.ExitStack() as restore,
    ):
        if args.force_cache:
            _snap.CACHE_MIN_BYTES = 0
            restore.callback(setattr, _snap, "CACHE_MIN_BYTES", saved_min)
        work = Path(tmp)
        t0 = time.perf_counter()
        graph = make_snap_graph(
            args.num_nodes,
            args.num_edges,
            args.num_communities,
            seed=args.seed,
            id_gap=args.id_gap,
        )
        paths = write_snap_files(graph, work, list(args.formats))
        max_id = int(graph["ids"][-1])
        community_tokens = int(graph["members"].size)
        del graph
        print(
            f"wrote {args.num_edges:,} edges over {args.num_nodes:,} nodes (ids up to {max_id:,}) "
            f"and {args.num_communities:,} communities ({community_tokens:,} members) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        for fmt, p in paths.items():
            spec = f"snap:{p['edges']},{p['cmty']},num_tasks={args.num_tasks}"
            measures, info = measure_format(p, spec, args.repeats, work)
            results[fmt] = {"measures": measures, **info}
            _print_format(fmt, measures, info)

    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    head = results.get("plain") or results[next(iter(results))]
    headline = _headline(args.num_edges, "plain" if "plain" in results else "gzip", head)
    result = {
        "config": config,
        "formats": results,
        "data": {"max_node_id": max_id, "community_members": community_tokens},
        "load_average": {"before": load_before, "after": load_after},
        "versions": vers,
        "git": git_revision(),
        "headline": headline,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(headline, flush=True)
    return result


def _print_format(fmt: str, m: dict[str, Any], info: dict[str, Any]) -> None:
    tb, sb = info["text_bytes"], info["stored_bytes"]
    print(
        f"[{fmt}] edge list {tb['edges'] / 1e6:.1f} MB text ({sb['edges'] / 1e6:.1f} MB stored), "
        f"communities {tb['cmty'] / 1e6:.2f} MB text; {info['edge_lines']:,} edge lines"
    )
    for name in ("read", "read_cmty", *MEASURES[1:]):
        if name not in m:
            continue
        row = m[name]
        print(
            f"  {name:<16s} {row['seconds']:8.3f} s  cpu {row['cpu_seconds']:8.3f} s  "
            f"{row['mb_s']:8.1f} MB/s"
        )
    cold = info["cold_read_mb_s"]
    print(
        "  cold read of the stored edge file (page cache dropped, best effort): "
        + (f"{cold:.1f} MB/s" if cold else "n/a")
    )
    stages = ", ".join(f"{k} {v:.3f} s" for k, v in info["load_stages"].items())
    print(f"  uncached load stages: {stages}")
    g = info["graph"]
    print(
        f"  loaded graph: {g['num_nodes']:,} nodes, {g['num_undirected_edges']:,} undirected "
        f"edges, {g['num_tasks']} tasks; parsers agree {info['parsers_agree']}; "
        f"cache files {info['cache_files']}; cached equal {info['cached_equal']}"
    )
    r = info["ratios"]
    print(
        f"  ratios: parse/read {r['parse_over_read']:.2f}, uncached load/read "
        f"{r['load_uncached_over_read']:.2f}, loadtxt/parse {r['numpy_loadtxt_over_parse']:.2f}"
        + (f", pandas/parse {r['pandas_over_parse']:.2f}" if "pandas_over_parse" in r else "")
        + f", uncached/cached {r['uncached_over_cached']:.2f}"
    )


def _vs(ratio: float) -> str:
    """``"3.0x faster"`` for a time ratio reference / graphtag of 3, ``"2.0x slower"`` for 0.5."""
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def _headline(num_edges: int, fmt: str, res: dict[str, Any]) -> str:
    m, r = res["measures"], res["ratios"]
    pandas = f", {_vs(r['pandas_over_parse'])} than pandas" if "pandas_over_parse" in r else ""
    return (
        f"headline: graphtag parses the {num_edges:,}-edge SNAP file ({fmt}) at "
        f"{m['graphtag_parse']['mb_s']:.0f} MB/s, {r['parse_over_read']:.2f}x the time of "
        f"reading its bytes; {_vs(r['numpy_loadtxt_over_parse'])} than numpy.loadtxt"
        f"{pandas}; full load {m['load_uncached']['seconds']:.2f} s uncached "
        f"({r['load_uncached_over_read']:.1f}x the read), {m['load_cached']['seconds']:.2f} s "
        f"cached ({r['uncached_over_cached']:.1f}x faster)"
    )


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
