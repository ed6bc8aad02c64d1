"""Convert the HumanGo CSV files into graphtag's embedded ``humango.npz`` (run once, offline).

Usage (the three files as distributed with MLGNC, github.com/Tianqi-py/MLGNC, data/HumanGo)::

    python datasets/humango/prepare.py /work/shared/data/humango graphtag/data/_embedded/humango.npz

Checks the files' sha256 against the published copy, parses them with graphtag's CSV reader
(the same code as the ``csv:`` spec) and writes a compressed archive in the ``npz:`` layout:
``edge_index`` (int16 ``[2, 18496]``, every edge line as it is, self-loops and repeats included),
``y`` (uint8 ``[3106, 14]``), ``x`` (float32 ``[3106, 32]``, the float32 values written in
``features.csv``) and ``task_names``. The 21 interaction-type weights of ``edge_list.csv`` are
dropped (graphtag ignores edge weights). ``load_dataset("humango")`` then equals
``load_dataset("csv:edges=edge_list.csv,y=labels.csv,x=features.csv")`` up to the name and the
task names (``tests/unit/data/test_attributed.py`` checks it when the CSV files are present).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from graphtag.data._attributed import _integral_edges, _read_table

SHA256 = {
    "edge_list.csv": "130a7add7b404f9a062baf1daba96a76f805abc543804be410d36ed3a9723305",
    "features.csv": "5f15a5a3f7d042e6e3eb125f7cfc47d43f36044f22e98d9192529e24c60343f1",
    "labels.csv": "bd1079a042f803784b3155d42cc94e27c3f8b1b80d50269aeb71a83297fdb9ec",
}
#: The 14 labels are subcellular locations (GO); the files do not name them.
TASK_NAMES = [f"location_{t}" for t in range(14)]


def convert(folder: Path) -> dict[str, np.ndarray]:
    """The arrays of the embedded archive, from the three CSV files in ``folder``."""
    for name, digest in SHA256.items():
        found = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        if found != digest:
            raise SystemExit(f"{folder / name}: sha256 {found} differs from the published copy")
    y, _ = _read_table(folder / "labels.csv", "label")
    x, _ = _read_table(folder / "features.csv", "attribute")
    edges, header = _read_table(folder / "edge_list.csv", "edge")
    skip = int(header is not None)
    edge_index = _integral_edges(edges, y.shape[0], folder / "edge_list.csv", skip)
    return {
        "edge_index": edge_index.astype(np.int16),
        "y": y.astype(np.uint8),
        "x": x.astype(np.float32),
        "task_names": np.array(TASK_NAMES, dtype=str),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding the three HumanGo CSV files")
    parser.add_argument("out", type=Path, help="output .npz (graphtag/data/_embedded/humango.npz)")
    args = parser.parse_args(argv)
    arrays = convert(args.folder)
    np.savez_compressed(args.out, **arrays)
    sizes = ", ".join(f"{k} {v.dtype} {list(v.shape)}" for k, v in arrays.items())
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {sizes}")


if __name__ == "__main__":
    main()
