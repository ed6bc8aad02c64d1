"""SNAP ground-truth community graphs (``com-*``) as multi-label node classification.

File formats (any file name; plain text or gzip, detected by magic bytes):

* edge list: one ``u v`` pair of node ids per line;
* communities: one community per line, its member node ids;

where fields are separated by any whitespace, lines starting with ``#`` are comments, blank lines
are ignored (they are *not* empty communities), and node ids are integers in ``[0, 2**63)``,
relabelled to ``0..N-1`` in increasing order of the original id. Duplicate edges and self-loops
are accepted; :func:`~graphtag.data.build_multilabel_graph` removes and counts them.

Protocol (the community-label benchmark of the Grad-TAG papers): keep the ``num_tasks`` largest
communities (size = number of member ids on the line; ties broken by file order) as tasks, ordered
from largest to smallest, and restrict the graph to the subgraph induced by the members of the kept
communities. ``num_tasks=None`` keeps every community, in file order. Task ``t`` is named
``community_<i>`` where ``i`` is the 0-based index of its line among the file's communities.

Parsing is vectorised (numpy on the raw bytes, see :func:`graphtag.data._io.read_int_tokens`), and
for inputs of at least :data:`CACHE_MIN_BYTES` the parsed and restricted arrays are cached under
:func:`graphtag.data.cache_dir` (``snap/<key>.npz``, keyed by a hash of the files' bytes and
``num_tasks``; the hashes are remembered per file identity under ``digests/``, so an unchanged
file is not read again).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from ..errors import DataFormatError, GraphtagError
from ._graph import build_multilabel_graph
from ._io import cache_key, file_digest, load_cache, read_int_tokens, require_file, save_cache

__all__ = ["CACHE_MIN_BYTES", "load_snap"]

CACHE_MIN_BYTES = 8 * 2**20  # inputs at least this large (stored bytes, both files) are cached
_EDGE_BLOCK = 2**23  # edge endpoints looked up per vectorised step (bounds peak memory)
_CACHE_KEYS = (
    "edge_index",
    "label_rows",
    "label_cols",
    "node_ids",
    "task_index",
    "task_line",
    "task_size",
    "num_communities",
    "num_edge_lines",
)


def _check_inputs(edges_path: Path, cmty_path: Path, num_tasks: int | None) -> None:
    """Raise for ``num_tasks < 1`` and for missing or empty files."""
    if num_tasks is not None and num_tasks < 1:
        raise GraphtagError(
            f"num_tasks must be >= 1 (or None for all communities), got {num_tasks}"
        )
    require_file(edges_path, "SNAP edge list")
    require_file(cmty_path, "SNAP community")
    for path, what in ((edges_path, "edge list"), (cmty_path, "community file")):
        if path.stat().st_size == 0:
            raise DataFormatError(
                f"the {what} is empty; expected "
                + ("one 'u v' pair per line" if what == "edge list" else "one community per line"),
                path=path,
            )


def _arrays(
    edges_path: Path, cmty_path: Path, num_tasks: int | None, cache: bool | None
) -> dict[str, np.ndarray]:
    """The parsed arrays (:data:`_CACHE_KEYS`), from the cache when one is valid."""
    total = edges_path.stat().st_size + cmty_path.stat().st_size
    use_cache = cache if cache is not None else total >= CACHE_MIN_BYTES
    if not use_cache:
        return _parse(edges_path, cmty_path, num_tasks)
    from ._registry import cache_dir

    memo = cache_dir() / "digests"
    key = cache_key(
        "snap",
        file_digest(edges_path, memo_dir=memo),
        file_digest(cmty_path, memo_dir=memo),
        num_tasks,
    )
    cache_file = cache_dir() / "snap" / f"{key}.npz"
    arrays = load_cache(cache_file, _CACHE_KEYS)
    if arrays is not None and not _cache_is_consistent(arrays):
        warnings.warn(f"ignoring inconsistent cache file {cache_file}; recomputing", stacklevel=3)
        arrays = None
    if arrays is None:
        arrays = _parse(edges_path, cmty_path, num_tasks)
        save_cache(cache_file, arrays)
    return arrays


def load_snap(
    edges_path: Path,
    cmty_path: Path,
    *,
    num_tasks: int | None,
    name: str,
    seed: int = 0,
    cache: bool | None = None,
    features: str = "auto",
    embedding_dim: int | None = None,
) -> Data:
    r"""Load a SNAP edge list and community file as a multi-label graph.

    Args:
        edges_path: Edge list (``u v`` per line), plain or gzip.
        cmty_path: Communities (member ids per line), plain or gzip.
        num_tasks: Number of largest communities kept as tasks; ``None`` keeps all of them in
            file order. When the file has fewer communities, all are kept and a warning is issued.
        name: Dataset name stored in ``data.name``.
        seed: Seed of the per-task split and of the embedding.
        cache: Cache the parsed arrays; ``None`` caches inputs of at least
            :data:`CACHE_MIN_BYTES`.
        features: Feature recipe (:func:`~graphtag.data.node_features`).
        embedding_dim: Embedding width (default: the method's).

    Returns:
        A multi-label graph with ``N`` = number of distinct members of the kept communities,
        ``y[i, t] = 1`` iff node ``i`` belongs to community ``t``, node features of ``features`` and
        the per-task 20/20/60 split. ``data.meta`` holds the original ids' range, the kept
        communities' sizes and file lines, and the cleaning counts. A kept community that
        holds every node of the induced subgraph (e.g. ``num_tasks=1``) has no negative node: it
        is kept, with a warning.

    Raises:
        DataFormatError: A file is missing, empty, unreadable or malformed (naming the file and
            the 1-based line), a kept community names a node that never occurs in the edge
            list, or the kept communities hold a single node.
        GraphtagError: ``num_tasks`` is smaller than 1.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "e.txt").write_text("# toy\n10 20\n20 30\n30 10\n30 40\n")
        >>> _ = (d / "c.txt").write_text("10 20 30\n30 40\n")
        >>> data = load_snap(d / "e.txt", d / "c.txt", num_tasks=2, name="toy")
        >>> data.y.shape, data.edge_index.size(1)
        (torch.Size([4, 2]), 8)
    """
    edges_path, cmty_path = Path(edges_path), Path(cmty_path)
    _check_inputs(edges_path, cmty_path, num_tasks)
    arrays = _arrays(edges_path, cmty_path, num_tasks, cache)

    num_communities = int(arrays["num_communities"])
    if arrays["node_ids"].size < 2:
        raise DataFormatError(
            f"the kept communities hold a single node ({int(arrays['node_ids'][0])}): a graph "
            "needs at least 2 nodes; keep more communities (num_tasks) or check the file",
            path=cmty_path,
        )
    if num_tasks is not None and num_communities < num_tasks:
        warnings.warn(
            f"{cmty_path} has only {num_communities} communities, fewer than "
            f"num_tasks={num_tasks}; keeping all of them",
            stacklevel=2,
        )
    node_ids = arrays["node_ids"]
    num_nodes = int(node_ids.size)
    task_index = arrays["task_index"]
    y = torch.zeros(num_nodes, int(task_index.size))
    y[torch.from_numpy(arrays["label_rows"]), torch.from_numpy(arrays["label_cols"])] = 1.0
    full = torch.nonzero(y.sum(0) == num_nodes).flatten()
    if full.numel():
        t = int(full[0])
        warnings.warn(
            f"{cmty_path}: task {t} (community_{int(task_index[t])}) contains all {num_nodes} "
            f"nodes of the induced subgraph ({full.numel()} such task(s)), so it has no negative "
            "node and its metrics are undefined; keep more communities (num_tasks)",
            stacklevel=2,
        )
    meta = {
        "source": f"SNAP communities: {edges_path} + {cmty_path}",
        "protocol": (
            "all communities in file order"
            if num_tasks is None
            else f"top-{num_tasks} largest communities, induced subgraph"
        ),
        "num_communities_in_file": num_communities,
        "num_edge_lines": int(arrays["num_edge_lines"]),
        "community_sizes": arrays["task_size"].tolist(),
        "community_lines": arrays["task_line"].tolist(),
        "original_id_range": [int(node_ids[0]), int(node_ids[-1])],
    }
    return build_multilabel_graph(
        torch.from_numpy(arrays["edge_index"]),
        y,
        name=name,
        task_names=[f"community_{i}" for i in task_index.tolist()],
        seed=seed,
        features=features,
        feature_dim=embedding_dim,
        meta=meta,
    )


def _parse(edges_path: Path, cmty_path: Path, num_tasks: int | None) -> dict[str, np.ndarray]:
    """Parse both files, select the communities and restrict the edges (all vectorised)."""
    members_all, counts = read_int_tokens(cmty_path, what="community file")
    assert counts is not None
    lines = np.flatnonzero(counts)  # 0-based file line of each community
    if lines.size == 0:
        raise DataFormatError(
            "the community file has no communities (only blank or '#' comment lines); expected "
            "one community per line, its member node ids separated by whitespace",
            path=cmty_path,
        )
    sizes = counts[lines]
    if num_tasks is None:
        chosen = np.arange(lines.size)
    else:
        chosen = np.argsort(-sizes, kind="stable")[:num_tasks]
    offsets = np.cumsum(sizes) - sizes
    lens = sizes[chosen]
    gather = np.repeat(offsets[chosen] - (np.cumsum(lens) - lens), lens) + np.arange(lens.sum())
    members = members_all[gather]
    task_of = np.repeat(np.arange(chosen.size), lens)
    del members_all

    flat, _ = read_int_tokens(edges_path, fields=2, what="edge list")
    if flat.size == 0:
        raise DataFormatError(
            "the edge list has no edges (only blank or '#' comment lines); expected one 'u v' "
            "pair of node ids per line",
            path=edges_path,
        )
    node_ids = np.unique(members)
    seen = np.zeros(node_ids.size, dtype=bool)
    kept: list[np.ndarray] = []
    lookup = _Relabel(node_ids, budget=flat.size)
    for start in range(0, flat.size, _EDGE_BLOCK):  # _EDGE_BLOCK is even: blocks hold whole edges
        pos, hit = lookup(flat[start : start + _EDGE_BLOCK])
        seen[pos[hit]] = True
        both = hit.reshape(-1, 2).all(axis=1)
        kept.append(pos.reshape(-1, 2)[both])
    if not seen.all():
        absent = ~seen[np.searchsorted(node_ids, members)]
        file_line = lines[chosen][task_of] + 1
        k = int(np.flatnonzero(absent & (file_line == file_line[absent].min()))[0])
        raise DataFormatError(
            f"community member {int(members[k])} never occurs in the edge list {edges_path}; "
            "the community and edge files must describe the same graph",
            path=cmty_path,
            line=int(file_line[k]),
        )
    edge_index = np.ascontiguousarray(np.concatenate(kept).T)
    return {
        "edge_index": edge_index.astype(np.int64, copy=False),
        "label_rows": np.searchsorted(node_ids, members).astype(np.int64),
        "label_cols": task_of.astype(np.int64),
        "node_ids": node_ids.astype(np.int64),
        "task_index": chosen.astype(np.int64),
        "task_line": (lines[chosen] + 1).astype(np.int64),
        "task_size": lens.astype(np.int64),
        "num_communities": np.asarray(lines.size, dtype=np.int64),
        "num_edge_lines": np.asarray(flat.size // 2, dtype=np.int64),
    }


class _Relabel:
    """Map original ids to positions in the sorted ``node_ids`` (``hit`` False when absent).

    Uses a dense lookup table when the largest id is small enough (the table's bytes at most
    those of ``budget`` int64 values, i.e. of the edge array already in memory, or 2**24 entries),
    which is much faster than a binary search per endpoint (60M endpoints: 1.4 s versus 5.1 s);
    otherwise falls back to :func:`numpy.searchsorted`.
    """

    def __init__(self, node_ids: np.ndarray, budget: int) -> None:
        self.node_ids = node_ids
        self.table: np.ndarray | None = None
        size = int(node_ids[-1]) + 1
        dtype = np.int32 if node_ids.size < 2**31 else np.int64
        if size <= max(budget * 8 // np.dtype(dtype).itemsize, 1 << 24):
            self.table = np.full(size, -1, dtype=dtype)
            self.table[node_ids] = np.arange(node_ids.size, dtype=dtype)

    def __call__(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.table is not None:
            if ids.size == 0 or int(ids.max()) < self.table.size:
                pos = self.table[ids].astype(np.int64)
            else:
                inside = ids < self.table.size
                pos = np.full(ids.shape, -1, dtype=np.int64)
                pos[inside] = self.table[ids[inside]]
            hit = pos >= 0
            pos[~hit] = 0
            return pos, hit
        pos = np.searchsorted(self.node_ids, ids)
        np.minimum(pos, self.node_ids.size - 1, out=pos)
        return pos, self.node_ids[pos] == ids


def _cache_is_consistent(a: dict[str, np.ndarray]) -> bool:
    """Cheap structural checks of a loaded cache entry (shapes, dtypes, index ranges)."""
    try:
        n, t = a["node_ids"].size, a["task_index"].size
        ei, rows, cols = a["edge_index"], a["label_rows"], a["label_cols"]
        ok = (
            ei.ndim == 2
            and ei.shape[0] == 2
            and rows.shape == cols.shape
            and n > 0
            and t > 0
            and a["task_line"].size == t
            and a["task_size"].size == t
            and all(v.dtype == np.int64 for v in a.values())
        )
        if ok and ei.size:
            ok = int(ei.min()) >= 0 and int(ei.max()) < n
        if ok and rows.size:
            ok = int(rows.min()) >= 0 and int(rows.max()) < n
            ok = ok and int(cols.min()) >= 0 and int(cols.max()) < t
        return bool(ok)
    except (KeyError, ValueError, TypeError):
        return False
