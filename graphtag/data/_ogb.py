"""ogbn-proteins from its raw OGB files (never through OGB's pickle-based processed files).

Layout (what OGB's ``proteins.zip`` unpacks to, renamed as OGB does)::

    ROOT/ogbn_proteins/raw/edge.csv.gz           E x 2 node ids, each undirected edge once
    ROOT/ogbn_proteins/raw/edge-feat.csv.gz      E x 8 association scores in [0, 1]
    ROOT/ogbn_proteins/raw/node-label.csv.gz     N x 112 binary labels
    ROOT/ogbn_proteins/raw/node_species.csv.gz   N x 1 NCBI taxonomy id
    ROOT/ogbn_proteins/split/species/{train,valid,test}.csv.gz   node ids, one per line

``ROOT`` may also be the ``ogbn_proteins`` folder itself. ``ogb`` is used only to download the
archive when files are missing; the CSVs are parsed here with pandas and the parsed arrays cached
as ``.npz`` under :func:`graphtag.data.cache_dir` (``ogbn-proteins/<key>.npz``, keyed by a hash of
the raw files' bytes).

Node features: ogbn-proteins has edge features only. ``x`` is the mean of the 8 edge features over
each node's incident edges (nodes without edges get zeros), the choice of OGB's own reference
examples for this dataset; the species id is kept in ``data.meta`` (species counts), not used as a
feature, because the split is by species. Split: the official species split (train/valid/test node
sets) applied to every task.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from ..errors import DataFormatError, GraphtagError
from ._graph import build_multilabel_graph
from ._io import (
    cache_key,
    file_digest,
    load_cache,
    open_binary,
    require_two_classes,
    save_cache,
)

__all__ = ["OGB_DIR", "OGB_URL", "load_ogbn_proteins", "ogbn_proteins_files"]

OGB_NAME = "ogbn-proteins"
OGB_DIR = "ogbn_proteins"
OGB_URL = "http://snap.stanford.edu/ogb/data/nodeproppred/proteins.zip"  # ogb 1.3.6 master.csv
RAW_FILES = ("edge.csv.gz", "edge-feat.csv.gz", "node-label.csv.gz", "node_species.csv.gz")
SPLIT_FILES = ("train.csv.gz", "valid.csv.gz", "test.csv.gz")
EDGE_FEATURES = 8  # association scores per edge
_CACHE_KEYS = ("edge_index", "x", "y", "train", "valid", "test", "species")


def ogbn_proteins_files(root: Path) -> dict[str, Path]:
    """The raw files :func:`load_ogbn_proteins` reads under ``root``, by file name.

    ``root`` is the folder holding ``ogbn_proteins/`` (or that folder itself).
    """
    root = Path(root)
    base = root if (root / "raw" / RAW_FILES[0]).exists() else root / OGB_DIR
    out = {f: base / "raw" / f for f in RAW_FILES}
    out.update({f: base / "split" / "species" / f for f in SPLIT_FILES})
    return out


def load_ogbn_proteins(
    root: Path,
    *,
    seed: int = 0,
    download: bool = True,
    features: str = "auto",
    embedding_dim: int | None = None,
) -> Data:
    """Load ogbn-proteins (112 binary tasks, species split) as a multi-label graph.

    Args:
        root: Folder holding ``ogbn_proteins/`` (created by the download when missing).
        seed: Seed of the embedding (the split is the official one).
        download: Download OGB's archive (about 216 MB) with ``ogb`` when files are missing.
        features: Feature recipe (:func:`~graphtag.data.node_features`).
        embedding_dim: Embedding width (default: the method's).

    Returns:
        A multi-label graph: ``x`` from the recipe (``given``: ``[N, 8]`` mean incident edge
        features; ``auto`` adds the embedding), ``y`` ``[N, T]``
        (``T = 112`` for the real data), masks from the official species split for every task.

    Raises:
        GraphtagError: Raw files are missing and cannot be downloaded; the message lists the
            missing paths and the download URL.
        DataFormatError: A raw file is malformed (naming the file and, where known, the line):
            unparsable line, shape, id range, non-binary label, constant task, non-finite edge
            feature, overlapping or incomplete split, no positive label among training nodes.
    """
    root = Path(root)
    files = ogbn_proteins_files(root)
    missing = [p for p in files.values() if not p.is_file()]
    if missing:
        reason = "download disabled"
        if download:
            try:
                _download(root)
                reason = ""
            except Exception as exc:  # network, disk or archive errors: one clear message
                reason = f"download failed: {type(exc).__name__}: {exc}"
            files = ogbn_proteins_files(root)
            missing = [p for p in files.values() if not p.is_file()]
        if missing:
            raise GraphtagError(_missing_message(root, missing, reason))

    from ._registry import cache_dir

    memo = cache_dir() / "digests"
    digests = (file_digest(files[f], memo_dir=memo) for f in (*RAW_FILES, *SPLIT_FILES))
    key = cache_key(OGB_NAME, *digests)
    cache_file = cache_dir() / OGB_NAME / f"{key}.npz"
    arrays = load_cache(cache_file, _CACHE_KEYS)
    if arrays is not None and not _cache_is_consistent(arrays):
        warnings.warn(f"ignoring inconsistent cache file {cache_file}; recomputing", stacklevel=2)
        arrays = None
    if arrays is None:
        arrays = _parse(files)
        save_cache(cache_file, arrays)

    num_nodes, num_tasks = arrays["y"].shape
    masks = []
    for part in ("train", "valid", "test"):
        m = torch.zeros(num_nodes, dtype=torch.bool)
        m[torch.from_numpy(arrays[part].astype(np.int64))] = True
        masks.append(m)
    species, counts = np.unique(arrays["species"], return_counts=True)
    meta: dict[str, Any] = {
        "source": f"OGB {OGB_NAME} raw files under {files[RAW_FILES[0]].parent.parent}",
        "attributes": "mean of the 8 edge features over incident edges",
        "split": "official species split (OGB), the same for every task",
        "species_counts": {int(s): int(c) for s, c in zip(species, counts)},
    }
    return build_multilabel_graph(
        torch.from_numpy(arrays["edge_index"].astype(np.int64)),
        torch.from_numpy(arrays["y"]),
        name=OGB_NAME,
        x=torch.from_numpy(arrays["x"]),
        task_names=[f"task_{t}" for t in range(num_tasks)],
        seed=seed,
        features=features,
        feature_dim=embedding_dim,
        meta=meta,
        masks=(masks[0], masks[1], masks[2]),
    )


def _download_url() -> str:
    """The URL ``ogb`` downloads from (read from its ``master.csv`` without importing ``ogb``)."""
    try:
        spec = importlib.util.find_spec("ogb")
        if spec is None or spec.origin is None:
            return OGB_URL
        master = Path(spec.origin).parent / "nodeproppred" / "master.csv"
        import pandas as pd

        table = pd.read_csv(master, index_col=0, keep_default_na=False)
        return str(table[OGB_NAME]["url"])
    except Exception:
        return OGB_URL


def _missing_message(root: Path, missing: list[Path], reason: str) -> str:
    base = ogbn_proteins_files(root)[RAW_FILES[0]].parent.parent
    listed = ", ".join(str(p.relative_to(base)) for p in missing)
    why = f" ({reason})" if reason else ""
    return (
        f"ogbn-proteins raw files are missing under {base}{why}: {listed}. Download "
        f"{_download_url()} (about 216 MB), unzip it and move its 'proteins' folder to {base}, "
        f"so that {base / 'raw' / RAW_FILES[0]} and "
        f"{base / 'split' / 'species' / SPLIT_FILES[0]} exist (or run "
        f"`python datasets/ogbn_proteins/prepare.py --root {root}` where the internet is "
        "reachable, then copy the folder)"
    )


def _download(root: Path) -> None:
    """Fetch and unpack OGB's archive into ``root/ogbn_proteins`` (keeps files already there)."""
    from ogb.utils.url import download_url, extract_zip

    root.mkdir(parents=True, exist_ok=True)
    zip_path = Path(download_url(_download_url(), str(root)))
    staging = root / ".ogbn_proteins-extract"
    try:
        extract_zip(str(zip_path), str(staging))
        unpacked = staging / "proteins"
        target = root / OGB_DIR
        for src in sorted(unpacked.rglob("*")):
            dst = target / src.relative_to(unpacked)
            if src.is_file() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src), str(dst))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if zip_path.exists():
            os.unlink(zip_path)


def _read_csv(path: Path, dtype: Any, what: str, columns: int | None = None) -> np.ndarray:
    """Parse a headerless CSV of numbers (``columns`` per line when given) into ``[rows, cols]``.

    On failure the file is scanned line by line (error path only) to name the first bad line.
    """
    import pandas as pd

    try:
        with open_binary(path) as fh:
            table = pd.read_csv(fh, header=None, dtype=dtype, engine="c")
    except DataFormatError:
        raise
    except Exception as exc:  # pandas parser errors, bad numbers, gzip errors
        integer = np.issubdtype(np.dtype(dtype), np.integer)
        kind = "integers" if integer else "numbers"
        bad = _first_bad_line(path, columns, integer)
        if bad is not None:
            lineno, line, problem = bad
            hint = ""
            if any(sep in line for sep in (";", "\t", " ", "|")):
                hint = " (fields must be separated by ',')"
            raise DataFormatError(
                f"cannot parse the {what}: {line[:60]!r} {problem}; expected "
                f"{columns or 'the same number of'} comma-separated {kind} per line, no header"
                f"{hint}; download the OGB files again",
                path=path,
                line=lineno,
            ) from None
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise DataFormatError(
            f"cannot parse the {what} as comma-separated {kind} without a header "
            f"({reason}); download the OGB files again",
            path=path,
        ) from None
    out = table.to_numpy()
    if columns is not None and out.shape[1] != columns:
        raise DataFormatError(
            f"expected {columns} comma-separated column(s) in the {what}, got shape {out.shape}",
            path=path,
        )
    return out


def _first_bad_line(path: Path, columns: int | None, integer: bool) -> tuple[int, str, str] | None:
    """``(1-based line, its text, what is wrong)`` of the first malformed CSV line, if any.

    Only called after the vectorised parser failed, so a Python loop over lines is acceptable.
    Returns ``None`` when no line is at fault (e.g. a truncated gzip stream).
    """
    try:
        with open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.decode("latin-1").rstrip("\r\n")
                fields = line.split(",")
                if columns is None:
                    columns = len(fields)
                if len(fields) != columns:
                    return lineno, line, f"has {len(fields)} field(s) instead of {columns}"
                for field in fields:
                    problem = _bad_number(field.strip(), integer)
                    if problem:
                        return lineno, line, problem
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _bad_number(text: str, integer: bool) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return f"holds {text[:20]!r}, not a number"
    if integer and not (value.is_integer() and abs(value) < 2**63):
        return f"holds {text[:20]!r}, not a 64-bit integer"
    return None


def _read_split(files: dict[str, Path], y: np.ndarray) -> dict[str, np.ndarray]:
    """The official train/valid/test node ids, checked to partition the nodes."""
    num_nodes = y.shape[0]
    parts = {}
    for key, fname in zip(("train", "valid", "test"), SPLIT_FILES):
        idx = _read_csv(files[fname], np.int64, "split node ids", 1)
        if idx.ndim != 2 or idx.shape[1] != 1:
            raise DataFormatError(
                f"expected one node id per line, got shape {idx.shape}", path=files[fname]
            )
        _check_ids(idx, num_nodes, files[fname])
        parts[key] = idx[:, 0]
    if not y[parts["train"]].any():
        raise DataFormatError(
            f"no task has a positive node among the {parts['train'].size} training nodes: "
            "nothing can be learned; the split files do not match the labels (download the OGB "
            "files again)",
            path=files[SPLIT_FILES[0]],
        )
    cover = np.bincount(np.concatenate(list(parts.values())), minlength=num_nodes)
    if (cover > 1).any():
        node = int(np.flatnonzero(cover > 1)[0])
        raise DataFormatError(
            f"node {node} appears more than once in the train/valid/test split files",
            path=files[SPLIT_FILES[0]].parent,
        )
    if (cover == 0).any():
        raise DataFormatError(
            f"the split files cover {int((cover > 0).sum())} of {num_nodes} nodes; every node "
            "must be in exactly one of train/valid/test",
            path=files[SPLIT_FILES[0]].parent,
        )
    return parts


def _parse(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Read and validate the raw CSVs; returns the arrays that are cached."""
    label_file = files["node-label.csv.gz"]
    y = _read_csv(label_file, np.float64, "node labels")
    num_nodes = y.shape[0]
    bad = (y != 0) & (y != 1)
    if bad.any():
        i, t = (int(v) for v in np.argwhere(bad)[0])
        raise DataFormatError(
            f"label of node {i}, task {t} is {float(y[i, t])!r}; labels must be 0 or 1",
            path=label_file,
            line=i + 1,
        )
    names = [f"task_{t}" for t in range(y.shape[1])]
    fix = "OGB's file has none: download it again"
    require_two_classes(y.sum(0), num_nodes, names, path=label_file, fix=fix)
    edges = _read_csv(files["edge.csv.gz"], np.int64, "edge list", 2)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise DataFormatError(
            f"expected 2 columns (u,v), got shape {edges.shape}", path=files["edge.csv.gz"]
        )
    _check_ids(edges, num_nodes, files["edge.csv.gz"])
    feat_file = files["edge-feat.csv.gz"]
    feat = _read_csv(feat_file, np.float32, "edge features", EDGE_FEATURES)
    if feat.shape[0] != edges.shape[0]:
        raise DataFormatError(
            f"{feat.shape[0]} rows of edge features for {edges.shape[0]} edges", path=feat_file
        )
    finite = np.isfinite(feat).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataFormatError(
            f"edge features must be finite numbers, got {feat[row].tolist()}",
            path=feat_file,
            line=row + 1,
        )
    species = _read_csv(files["node_species.csv.gz"], np.int64, "node species", 1)
    if species.shape != (num_nodes, 1):
        raise DataFormatError(
            f"expected one species id per node ({num_nodes} x 1), got shape {species.shape}",
            path=files["node_species.csv.gz"],
        )
    parts = _read_split(files, y)
    x = _mean_edge_features(torch.from_numpy(edges), torch.from_numpy(feat), num_nodes)
    index_dtype = np.int32 if num_nodes < 2**31 else np.int64
    return {
        "edge_index": np.ascontiguousarray(edges.T.astype(index_dtype)),
        "x": x.numpy(),
        "y": y.astype(np.uint8),
        "train": parts["train"],
        "valid": parts["valid"],
        "test": parts["test"],
        "species": species[:, 0],
    }


def _check_ids(ids: np.ndarray, num_nodes: int, path: Path) -> None:
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
        flat = ids.reshape(ids.shape[0], -1)
        row = int(np.flatnonzero(((flat < 0) | (flat >= num_nodes)).any(axis=1))[0])
        raise DataFormatError(
            f"node id out of range [0, {num_nodes}) (node-label.csv.gz has {num_nodes} rows): "
            f"{flat[row].tolist()}",
            path=path,
            line=row + 1,
        )


def _mean_edge_features(edges: torch.Tensor, feat: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``[N, F]`` mean of ``feat`` ``[E, F]`` over the edges incident to each node (0 if none)."""
    total = torch.zeros(num_nodes, feat.size(1), dtype=feat.dtype)
    total.index_add_(0, edges[:, 0], feat).index_add_(0, edges[:, 1], feat)
    deg = torch.bincount(edges[:, 0], minlength=num_nodes) + torch.bincount(
        edges[:, 1], minlength=num_nodes
    )
    return (total / deg.clamp(min=1).unsqueeze(1)).float()


def _cache_is_consistent(a: dict[str, np.ndarray]) -> bool:
    try:
        n = a["y"].shape[0]
        ei = a["edge_index"]
        ok = (
            a["y"].ndim == 2
            and a["x"].shape[0] == n
            and ei.ndim == 2
            and ei.shape[0] == 2
            and a["species"].shape == (n,)
            and sum(a[k].size for k in ("train", "valid", "test")) == n
        )
        if ok and ei.size:
            ok = int(ei.min()) >= 0 and int(ei.max()) < n
        return bool(ok)
    except (KeyError, ValueError, TypeError, IndexError):
        return False
