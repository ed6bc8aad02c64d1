"""Attributed graphs: node features, edges and labels from plain files or a PyG ``Data``.

Three ways in, one result (the multi-label graph of :mod:`graphtag.data._graph`):

* ``csv:edges=E.csv,y=L.csv[,x=F.csv]`` (:func:`load_csv`): comma-separated text files, plain
  or gzip (detected by content). ``E.csv``: one edge per line, the two 0-based node ids in the
  first two columns (integers, also written as floats such as ``2746.0``); further columns
  (weights, types) are ignored. ``L.csv``: one node per line (line ``i`` is node ``i``), ``T``
  values 0/1. ``F.csv``: one node per line, ``F`` numbers. A first line holding a field that is
  not a number is a header and is skipped (the label file's header names the tasks).
* ``npz:G.npz`` (:func:`load_npz`): one NumPy archive (no pickled objects) with ``edge_index``
  int ``[2, E]``, ``y`` ``[N, T]`` in {0, 1}, optionally ``x`` ``[N, F]`` and ``task_names``
  (``T`` strings). :func:`save_graph` writes one from any graph.
* :func:`from_pyg`: any PyTorch Geometric ``Data`` with ``edge_index``, a multi-label ``y``
  ``[N, T]`` and optionally ``x``.

Edges may hold duplicates, self-loops and one or both directions (cleaned and counted). Node
attributes become ``x`` through the feature recipe (``features=auto``: attributes and a graph
embedding, every column standardised; see :mod:`graphtag.data._features`). The split is the
per-task stratified 20/20/60 split of ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..errors import DataFormatError, GraphtagError
from ._graph import build_multilabel_graph
from ._io import open_binary, require_file, require_two_classes

__all__ = ["NPZ_KEYS", "from_pyg", "load_csv", "load_npz", "save_graph"]

#: Arrays an ``npz:`` archive may hold (``edge_index`` and ``y`` are required).
NPZ_KEYS = ("edge_index", "y", "x", "task_names")


def _read_table(path: Path, what: str) -> tuple[np.ndarray, list[str] | None]:
    """Numbers ``[R, C]`` (float64) of a comma-separated file and its header, if it has one."""
    import pandas as pd

    require_file(path, what)
    with open_binary(path) as fh:
        first = fh.readline().decode("utf-8", errors="replace").strip()
    if not first:
        raise DataFormatError(f"the {what} file is empty or starts with a blank line", path=path)
    fields = [f.strip() for f in first.split(",")]
    header = None if all(_is_number(f) for f in fields) else fields
    skip = 0 if header is None else 1
    try:
        with open_binary(path) as fh:
            frame = pd.read_csv(fh, header=None, skiprows=skip, dtype=str, engine="c")
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"the {what} file has a header but no rows", path=path) from None
    except pd.errors.ParserError as exc:
        raise DataFormatError(
            f"not a comma-separated {what} file with the same number of fields on every line "
            f"({str(exc).strip().splitlines()[-1]}); line numbers count the header",
            path=path,
        ) from None
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raw = frame.iat[row, col]
        found = "an empty field" if raw is None or str(raw) == "nan" else f"{str(raw)[:40]!r}"
        raise DataFormatError(
            f"column {col + 1} of the {what} holds {found}; every field must be a number",
            path=path,
            line=row + 1 + skip,
        )
    return values, header


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _integral_edges(values: np.ndarray, num_nodes: int, path: Path, skip: int) -> np.ndarray:
    """``[2, E]`` int64 node ids from the first two columns, checked against ``num_nodes``."""
    if values.ndim != 2 or values.shape[1] < 2:
        raise DataFormatError(
            "the edge file needs at least two columns (the two node ids of each edge)", path=path
        )
    ends = values[:, :2]
    bad = ~np.isfinite(ends) | (ends != np.round(ends)) | (ends < 0) | (ends >= num_nodes)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataFormatError(
            f"node id {ends[row, col]:g} is not an integer in [0, {num_nodes}); node ids are "
            f"0-based line numbers of the label file ({num_nodes} nodes)",
            path=path,
            line=row + 1 + skip,
        )
    return np.ascontiguousarray(ends.T.astype(np.int64))


def _labels(values: np.ndarray, path: Path, skip: int, names: Sequence[str]) -> Tensor:
    """0/1 labels ``[N, T]`` as bool, or :class:`DataFormatError` naming the node and task."""
    bad = (values != 0) & (values != 1)
    if bad.any():
        node, task = (int(v) for v in np.argwhere(bad)[0])
        raise DataFormatError(
            f"label of node {node}, task {task} ({names[task]}) is {float(values[node, task])!r}; "
            "labels must be 0 or 1",
            path=path,
            line=None if skip < 0 else node + 1 + skip,
        )
    return torch.from_numpy(values == 1)


def _build(
    edge_index: np.ndarray,
    y: Tensor,
    x: np.ndarray | None,
    names: list[str],
    *,
    label_path: Path,
    name: str,
    seed: int,
    features: str,
    embedding_dim: int | None,
    meta: dict[str, Any],
) -> Data:
    num_nodes = y.size(0)
    require_two_classes(
        y.sum(0).numpy(), num_nodes, names, path=label_path, fix="remove that task's labels"
    )
    if x is not None:
        finite = np.isfinite(x)
        if not finite.all():
            node, col = (int(v) for v in np.argwhere(~finite)[0])
            raise GraphtagError(
                f"{name}: node attribute of node {node}, column {col} is {float(x[node, col])!r}; "
                "attributes must be finite numbers"
            )
    return build_multilabel_graph(
        torch.from_numpy(edge_index),
        y,
        name=name,
        x=None if x is None else torch.from_numpy(np.asarray(x, dtype=np.float32)),
        task_names=names,
        seed=seed,
        features=features,
        feature_dim=embedding_dim,
        meta=meta,
    )


def load_csv(
    edges: Path,
    labels: Path,
    attributes: Path | None = None,
    *,
    name: str,
    seed: int = 0,
    features: str = "auto",
    embedding_dim: int | None = None,
) -> Data:
    r"""Load an attributed multi-label graph from comma-separated files (module docstring).

    Args:
        edges: Edge file (node ids in the first two columns).
        labels: Label file, ``N`` lines of ``T`` 0/1 values (``N`` defines the node count).
        attributes: Optional node attribute file, ``N`` lines of ``F`` numbers.
        name: Dataset name.
        seed: Seed of the per-task split and of the embedding.
        features: Feature recipe (:func:`~graphtag.data.node_features`).
        embedding_dim: Embedding width (default: the method's).

    Returns:
        The multi-label graph; ``meta`` records the files and the ignored edge columns.

    Raises:
        DataFormatError: A file is missing, empty, ragged or holds a non-number (naming the file
            and line), a node id is not an integer in ``[0, N)``, a label is not 0/1, row counts
            differ, or a task is constant.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "e.csv").write_text("src,dst\n0,1\n1,2\n2,3\n3,0\n")
        >>> _ = (d / "y.csv").write_text("a,b\n1,0\n0,1\n1,1\n0,0\n")
        >>> _ = (d / "x.csv").write_text("0.5,1\n2,0\n1,1\n0,3\n")
        >>> g = load_csv(d / "e.csv", d / "y.csv", d / "x.csv", name="toy", features="given")
        >>> g.x.shape, g.task_names, g.edge_index.size(1)
        (torch.Size([4, 2]), ['a', 'b'], 8)
    """
    edges, labels = Path(edges), Path(labels)
    y_values, header = _read_table(labels, "label")
    num_nodes, num_tasks = y_values.shape
    names = header if header is not None else [f"task_{t}" for t in range(num_tasks)]
    y = _labels(y_values, labels, 0 if header is None else 1, names)
    edge_values, edge_header = _read_table(edges, "edge")
    edge_index = _integral_edges(edge_values, num_nodes, edges, 0 if edge_header is None else 1)
    x = None
    meta: dict[str, Any] = {
        "source": f"CSV files: edges {edges}, labels {labels}",
        "ignored_edge_columns": int(edge_values.shape[1] - 2),
    }
    if attributes is not None:
        attributes = Path(attributes)
        x, _ = _read_table(attributes, "attribute")
        if x.shape[0] != num_nodes:
            raise DataFormatError(
                f"the attribute file has {x.shape[0]} rows but the label file {labels} has "
                f"{num_nodes}: line i of both files must describe node i",
                path=attributes,
            )
        meta["source"] += f", attributes {attributes}"
        meta["attributes"] = f"{x.shape[1]} columns of {attributes.name}"
    return _build(
        edge_index,
        y,
        x,
        [str(n) for n in names],
        label_path=labels,
        name=name,
        seed=seed,
        features=features,
        embedding_dim=embedding_dim,
        meta=meta,
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``; ``DataFormatError`` for anything else."""
    require_file(path, "npz")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise DataFormatError(
                "not a NumPy .npz archive (np.savez / np.savez_compressed / "
                "graphtag.data.save_graph write one)",
                path=path,
            )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:  # object arrays need pickle
        raise DataFormatError(
            f"the archive holds an array that needs pickle ({exc}); store task_names as a "
            "unicode string array (np.array(names, dtype=str))",
            path=path,
        ) from None
    except Exception as exc:  # zipfile/numpy raise many types for foreign files
        raise DataFormatError(
            f"not a NumPy .npz archive ({type(exc).__name__}: {exc})", path=path
        ) from None
    return arrays


def load_npz(
    path: Path,
    *,
    name: str,
    seed: int = 0,
    features: str = "auto",
    embedding_dim: int | None = None,
) -> Data:
    """Load a graph saved as a NumPy ``.npz`` archive (arrays :data:`NPZ_KEYS`).

    Args:
        path: The archive (``np.savez`` or ``np.savez_compressed``; no object arrays).
        name: Dataset name.
        seed: Seed of the per-task split and of the embedding.
        features: Feature recipe (:func:`~graphtag.data.node_features`).
        embedding_dim: Embedding width (default: the method's).

    Raises:
        DataFormatError: The file is missing or not an ``.npz`` archive, an array is missing,
            unknown or of the wrong shape or type, a label is not 0/1 or a task is constant.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "g.npz"
        >>> ring = np.arange(5)
        >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
        >>> np.savez(f, edge_index=np.stack([ring, (ring + 1) % 5]), y=y)
        >>> load_npz(f, name="ring", features="structural").y.shape
        torch.Size([5, 2])
    """
    path = Path(path)
    arrays = _read_npz(path)
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    missing = [k for k in ("edge_index", "y") if k not in arrays]
    if unknown or missing:
        what = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
        raise DataFormatError(
            f"{what} array(s); an npz graph holds {', '.join(NPZ_KEYS)} (edge_index [2, E] and "
            f"y [N, T] required); found {', '.join(sorted(arrays)) or 'nothing'}",
            path=path,
        )
    edge_index, y_values = arrays["edge_index"], arrays["y"]
    if y_values.ndim != 2 or y_values.dtype.kind not in "biuf":
        raise DataFormatError(
            f"y must be a numeric [N, T] array, got {y_values.dtype} {y_values.shape}", path=path
        )
    num_nodes, num_tasks = y_values.shape
    if edge_index.ndim != 2 or edge_index.shape[0] != 2 or edge_index.dtype.kind not in "iu":
        raise DataFormatError(
            f"edge_index must be an integer [2, E] array, got {edge_index.dtype} "
            f"{edge_index.shape}",
            path=path,
        )
    if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise DataFormatError(
            f"edge_index holds node ids in [{edge_index.min()}, {edge_index.max()}] but y has "
            f"{num_nodes} rows; ids must lie in [0, {num_nodes})",
            path=path,
        )
    names = [f"task_{t}" for t in range(num_tasks)]
    if "task_names" in arrays:
        given = arrays["task_names"]
        if given.shape != (num_tasks,) or given.dtype.kind not in "US":
            raise DataFormatError(
                f"task_names must be {num_tasks} strings, got {given.dtype} {given.shape}",
                path=path,
            )
        names = [str(n) for n in given.tolist()]
    x = arrays.get("x")
    if x is not None and (x.ndim != 2 or x.shape[0] != num_nodes):
        raise DataFormatError(f"x must have shape [N={num_nodes}, F], got {x.shape}", path=path)
    y = _labels(y_values.astype(np.float64), path, -1, names)
    meta: dict[str, Any] = {"source": f"npz archive {path}"}
    if x is not None:
        meta["attributes"] = f"{x.shape[1]} columns of x in {path.name}"
    return _build(
        edge_index.astype(np.int64),
        y,
        None if x is None else x.astype(np.float64),
        names,
        label_path=path,
        name=name,
        seed=seed,
        features=features,
        embedding_dim=embedding_dim,
        meta=meta,
    )


def _check_pyg(data: Any) -> tuple[Tensor, Tensor, Tensor | None, int]:
    """``(edge_index, y, x or None, N)`` of a PyG-like graph, or :class:`GraphtagError`."""
    edge_index = getattr(data, "edge_index", None)
    y = getattr(data, "y", None)
    x = getattr(data, "x", None)
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise GraphtagError(f"data.edge_index must be an int64 tensor [2, E], got {shape}")
    if edge_index.is_floating_point() or edge_index.is_complex():
        raise GraphtagError(f"data.edge_index must hold integer ids, got {edge_index.dtype}")
    if not isinstance(y, Tensor) or y.dim() != 2:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        hint = ""
        if isinstance(y, Tensor) and y.dim() == 1:
            hint = (
                "; for single-label class ids use torch.nn.functional.one_hot(data.y).float() "
                "(one task per class)"
            )
        raise GraphtagError(f"data.y must be a multi-label tensor [N, T] of 0/1, got {shape}{hint}")
    num_nodes = y.size(0)  # unless set explicitly (PyG infers it, with a warning, otherwise)
    if isinstance(data, Data) and "num_nodes" in data and data["num_nodes"] is not None:
        num_nodes = int(data["num_nodes"])
    if y.size(0) != num_nodes:
        raise GraphtagError(f"data.y has {y.size(0)} rows but the graph has {num_nodes} nodes")
    if x is not None and (not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) != num_nodes):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise GraphtagError(f"data.x must be a tensor [N={num_nodes}, F] or None, got {shape}")
    return edge_index.long().cpu(), y.cpu(), None if x is None else x.cpu(), num_nodes


def from_pyg(
    data: Data,
    *,
    name: str = "pyg",
    seed: int = 0,
    features: str = "auto",
    embedding_dim: int | None = None,
    task_names: Sequence[str] | None = None,
) -> Data:
    """A graphtag multi-label graph from a PyTorch Geometric ``Data``.

    ``data`` needs ``edge_index`` ``[2, E]`` and a multi-label ``y`` ``[N, T]`` of 0/1 values;
    ``x`` ``[N, F]`` is used as node attributes when present. Masks of ``data`` are ignored: the
    result has the per-task 20/20/60 split of ``seed``. ``data`` is not modified. For the
    command line, write the graph with :func:`save_graph` and pass ``--dataset npz:PATH``.

    Args:
        data: The PyG graph.
        name: Dataset name.
        seed: Seed of the per-task split and of the embedding.
        features: Feature recipe (:func:`~graphtag.data.node_features`).
        embedding_dim: Embedding width (default: the method's).
        task_names: Optional ``T`` task names.

    Raises:
        GraphtagError: A missing or malformed ``edge_index``, ``y`` or ``x`` (naming it), labels
            other than 0/1, or a constant task.

    Example:
        >>> ring = torch.arange(6)
        >>> pyg = Data(x=torch.randn(6, 3), edge_index=torch.stack([ring, (ring + 1) % 6]),
        ...            y=torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]]))
        >>> g = from_pyg(pyg, name="ring", features="given")
        >>> g.x.shape, g.train_mask.shape
        (torch.Size([6, 3]), torch.Size([6, 2]))
    """
    edge_index, y, x, num_nodes = _check_pyg(data)
    names = list(task_names) if task_names is not None else None
    if y.numel():
        positives = (y.float() > 0.5).sum(0).numpy()
        constant = (positives == 0) | (positives == num_nodes)
        if constant.any():
            t = int(np.flatnonzero(constant)[0])
            kind = "positive" if positives[t] == 0 else "negative"
            raise GraphtagError(
                f"{name}: task {t} of data.y has no {kind} node; every task needs both classes "
                "(drop that column)"
            )
    return build_multilabel_graph(
        edge_index,
        y,
        name=name,
        x=x,
        task_names=names,
        seed=seed,
        features=features,
        feature_dim=embedding_dim,
        meta={"source": "PyG Data (graphtag.data.from_pyg)"},
    )


def save_graph(data: Data, path: str | Path, *, task_names: Sequence[str] | None = None) -> Path:
    """Write ``data``'s ``edge_index``, ``y``, ``x`` (when present) and task names to ``.npz``.

    The archive loads with ``load_dataset("npz:PATH")`` (CLI: ``--dataset npz:PATH``). ``x`` is
    saved as node attributes: save the source graph, not one already loaded by graphtag (whose
    ``x`` holds the embedding).

    Args:
        data: A PyG-like graph with ``edge_index`` and a multi-label ``y`` (``x`` optional).
        path: Output file (``.npz`` is appended by NumPy when missing).
        task_names: Optional task names (default: ``data.task_names`` when present).

    Returns:
        The written path.

    Example:
        >>> import tempfile, pathlib
        >>> ring = torch.arange(4)
        >>> pyg = Data(edge_index=torch.stack([ring, (ring + 1) % 4]),
        ...            y=torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]]))
        >>> out = save_graph(pyg, pathlib.Path(tempfile.mkdtemp()) / "ring.npz")
        >>> from graphtag.data import load_dataset
        >>> load_dataset(f"npz:{out},features=structural").y.shape
        torch.Size([4, 2])
    """
    edge_index, y, x, _ = _check_pyg(data)
    names = task_names if task_names is not None else getattr(data, "task_names", None)
    arrays: dict[str, np.ndarray] = {
        "edge_index": edge_index.numpy(),
        "y": y.to(torch.uint8).numpy() if y.dtype == torch.bool else y.numpy(),
    }
    if x is not None:
        arrays["x"] = x.float().numpy()
    if names is not None:
        arrays["task_names"] = np.array([str(n) for n in names], dtype=str)
    out = Path(path)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    return out
