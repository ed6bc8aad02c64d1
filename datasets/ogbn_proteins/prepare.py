"""Download (if needed) and parse ogbn-proteins once, warming graphtag's cache; print its size.

Usage::

    python datasets/ogbn_proteins/prepare.py --root /data/ogb

Run from the repository root with graphtag installed (``pip install -e .``) or with
``PYTHONPATH=.``. Without ``--root`` the raw files live in ``graphtag.data.cache_dir()/ogb``.
Missing raw files are downloaded by ``ogb`` from
http://snap.stanford.edu/ogb/data/nodeproppred/proteins.zip (about 216 MB); offline, unzip that
archive's ``proteins/`` folder to ``ROOT/ogbn_proteins/`` by hand. The parsed arrays are cached in
``cache_dir()/ogbn-proteins/`` (``$GRAPHTAG_CACHE``).
"""

from __future__ import annotations

import argparse
import time

from graphtag.data import load_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="folder holding ogbn_proteins/")
    parser.add_argument("--seed", type=int, default=0, help="recorded seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = load_dataset("ogbn-proteins", seed=args.seed, root=args.root)
    seconds = time.perf_counter() - start
    counts = [int(m[:, 0].sum()) for m in (data.train_mask, data.val_mask, data.test_mask)]
    print(
        f"{data.name}: {data.num_nodes:,} nodes, {data.edge_index.size(1) // 2:,} undirected "
        f"edges, {data.y.size(1)} tasks, x {tuple(data.x.shape)}, species split "
        f"{counts[0]:,}/{counts[1]:,}/{counts[2]:,} nodes, in {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
