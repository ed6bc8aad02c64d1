"""MATLAB ``.mat`` multi-label graphs (BlogCatalog, PPI, Flickr, YouTube social dimensions).

The file (MATLAB v5/v7, read with :func:`scipy.io.loadmat`) must hold two variables:

* ``network``: ``N x N`` adjacency (sparse or dense). Every non-zero entry ``(i, j)`` is an edge;
  weights are ignored and the pattern is symmetrised (``A`` or ``A^T`` non-zero), so a matrix that
  stores each undirected edge in both triangles yields no spurious duplicates. Diagonal entries are
  self-loops (removed and counted in ``data.meta``).
* ``group``: ``N x T`` labels, every entry 0 or 1 (sparse or dense). Task ``t`` is named
  ``group_<t>``. Every task needs at least one positive and one negative node (an all-zero
  column, an empty group, is rejected naming the task).

Real (integer, float or bool) matrices only: complex or non-numeric variables are rejected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from ..errors import DataFormatError
from ._graph import build_multilabel_graph
from ._io import require_file, require_two_classes

__all__ = ["load_mat"]

_EXPECTED = "variables 'network' (N x N sparse adjacency) and 'group' (N x T sparse 0/1 labels)"


def load_mat(
    path: Path,
    *,
    name: str,
    seed: int = 0,
    features: str = "auto",
    embedding_dim: int | None = None,
) -> Data:
    """Load a MATLAB file with ``network`` and ``group`` matrices as a multi-label graph.

    Args:
        path: The ``.mat`` file.
        name: Dataset name stored in ``data.name``.
        seed: Seed of the per-task split and of the embedding.
        features: Feature recipe (:func:`~graphtag.data.node_features`).
        embedding_dim: Embedding width (default: the method's).

    Returns:
        A multi-label graph with ``N`` nodes, ``T`` tasks (``group_0`` ... ``group_{T-1}``),
        node features of ``features`` and the per-task 20/20/60 split.

    Raises:
        DataFormatError: The file is missing, not a readable MATLAB v5/v7 file (truncated, HDF5
            v7.3, another format), lacks ``network`` or ``group`` (the message lists the
            variables found), has inconsistent shapes or no nodes, a label is not 0/1 (naming the
            node and the task), or a task is constant (naming the task).

    Example:
        >>> import tempfile, pathlib, scipy.io, scipy.sparse as sp
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "toy.mat"
        >>> a = sp.csc_matrix(([1.0, 1.0, 1.0, 1.0], ([0, 1, 1, 2], [1, 0, 2, 1])), shape=(3, 3))
        >>> g = sp.csc_matrix(([1.0, 1.0], ([0, 2], [0, 1])), shape=(3, 2))
        >>> scipy.io.savemat(f, {"network": a, "group": g})
        >>> data = load_mat(f, name="toy")
        >>> data.y.tolist(), data.edge_index.size(1)
        ([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], 4)
    """
    path = Path(path)
    require_file(path, "MATLAB")
    mat = _read(path)
    found = sorted(k for k in mat if not k.startswith("__"))
    missing = [k for k in ("network", "group") if k not in mat]
    if missing:
        raise DataFormatError(
            f"missing variable(s) {', '.join(repr(k) for k in missing)}; the file holds "
            f"{', '.join(repr(k) for k in found) or 'no variables'}; expected {_EXPECTED}",
            path=path,
        )
    net = _as_sparse(mat["network"], "network", path)
    grp = _as_sparse(mat["group"], "group", path)
    n = net.shape[0]
    if net.shape[0] != net.shape[1]:
        raise DataFormatError(
            f"'network' must be a square N x N adjacency matrix, got shape {net.shape}", path=path
        )
    if grp.shape[0] != n:
        hint = " (it looks transposed: store it as N x T)" if grp.shape[1] == n else ""
        raise DataFormatError(
            f"'group' must have one row per node: shape {grp.shape} but 'network' has {n} "
            f"nodes{hint}",
            path=path,
        )
    if n == 0:
        raise DataFormatError("'network' is empty (0 x 0): the graph has no nodes", path=path)
    if grp.shape[1] == 0:
        raise DataFormatError("'group' has 0 columns: no tasks", path=path)
    y = _labels(grp, path)
    require_two_classes(
        np.asarray(grp.getnnz(axis=0)),
        n,
        [f"group_{t}" for t in range(grp.shape[1])],
        path=path,
        fix="remove that column from 'group' (or add its members)",
    )
    edge_index, asymmetric, weighted = _edges(net)
    meta: dict[str, Any] = {
        "source": f"MATLAB file {path}",
        "asymmetric_entries": asymmetric,
        "weights_ignored": weighted,
    }
    return build_multilabel_graph(
        edge_index,
        y,
        name=name,
        task_names=[f"group_{t}" for t in range(y.size(1))],
        seed=seed,
        features=features,
        feature_dim=embedding_dim,
        meta=meta,
    )


def _read(path: Path) -> dict[str, Any]:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer to HDF5-based v7.3 files
        raise DataFormatError(
            "MATLAB v7.3 (HDF5) files are not supported; re-save it from MATLAB with "
            "save(FILE, 'network', 'group', '-v7')",
            path=path,
        ) from None
    except Exception as exc:  # scipy raises many types for corrupt or foreign files
        raise DataFormatError(
            f"not a readable MATLAB v5/v7 .mat file ({type(exc).__name__}: {exc}); it may be "
            f"truncated or in another format; expected {_EXPECTED}",
            path=path,
        ) from None


def _as_sparse(value: Any, key: str, path: Path) -> sp.csr_matrix:
    dtype = getattr(value, "dtype", None)
    real = dtype is not None and any(
        np.issubdtype(dtype, kind) for kind in (np.integer, np.floating, np.bool_)
    )
    if real and (sp.issparse(value) or (isinstance(value, np.ndarray) and value.ndim == 2)):
        m = sp.csr_matrix(value)
    else:
        kind = getattr(value, "dtype", type(value).__name__)
        shape = getattr(value, "shape", "?")
        raise DataFormatError(
            f"variable {key!r} must be a numeric 2-D matrix of real values, got {kind} with shape "
            f"{shape}",
            path=path,
        )
    m.eliminate_zeros()
    return m


def _labels(grp: sp.csr_matrix, path: Path) -> torch.Tensor:
    coo = grp.tocoo()
    vals = coo.data.astype(np.float64)
    bad = vals != 1.0  # explicit zeros were eliminated; NaN compares unequal
    if bad.any():
        order = np.lexsort((coo.col[bad], coo.row[bad]))
        i = int(coo.row[bad][order[0]])
        t = int(coo.col[bad][order[0]])
        v = float(vals[bad][order[0]])
        raise DataFormatError(
            f"label of node {i}, task {t} (group_{t}) is {v!r}; 'group' must hold only 0 and 1",
            path=path,
        )
    y = torch.zeros(grp.shape[0], grp.shape[1])
    y[torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))] = 1.0
    return y


def _edges(net: sp.csr_matrix) -> tuple[torch.Tensor, int, bool]:
    """Upper triangle (with diagonal) of the symmetrised non-zero pattern as ``[2, E]`` edges."""
    pattern = (net != 0).astype(np.int8)
    asymmetric = int((pattern != pattern.T).nnz)
    weighted = bool(net.nnz and not np.all(net.data == 1))
    sym = sp.triu(pattern.maximum(pattern.T), format="coo")
    edge_index = torch.from_numpy(np.vstack([sym.row, sym.col]).astype(np.int64))
    return edge_index, asymmetric, weighted
