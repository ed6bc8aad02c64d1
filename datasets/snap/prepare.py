"""Parse a SNAP ground-truth community graph once, warming graphtag's cache, and print its size.

Usage (files from https://snap.stanford.edu/data/bigdata/communities/, plain or gzip)::

    python datasets/snap/prepare.py com-lj.ungraph.txt.gz com-lj.all.cmty.txt.gz --num-tasks 100

Run from the repository root with graphtag installed (``pip install -e .``) or with
``PYTHONPATH=.``. The parsed, restricted arrays go to ``graphtag.data.cache_dir()/snap/``
(``$GRAPHTAG_CACHE``); later ``load_dataset("snap:EDGES,CMTY,num_tasks=K")`` calls reuse them.
"""

from __future__ import annotations

import argparse
import time

from graphtag.data import load_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edges", help="edge list (u v per line), e.g. com-lj.ungraph.txt.gz")
    parser.add_argument("communities", help="community file, e.g. com-lj.all.cmty.txt.gz")
    parser.add_argument("--num-tasks", type=int, default=100, help="largest communities kept")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = load_dataset(
        f"snap:{args.edges},{args.communities},num_tasks={args.num_tasks}", seed=args.seed
    )
    seconds = time.perf_counter() - start
    print(
        f"{data.name}: {data.num_nodes:,} nodes, {data.edge_index.size(1) // 2:,} undirected "
        f"edges, {data.y.size(1)} tasks ({data.meta['num_communities_in_file']:,} communities "
        f"in file, {data.meta['self_loops_removed']:,} self-loops and "
        f"{data.meta['duplicate_edges_removed']:,} duplicates removed) in {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
