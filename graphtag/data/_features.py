"""Node features of a multi-label graph: node attributes, graph embeddings, or both.

A **feature recipe** says how ``data.x`` is made; it is the ``features=`` option of every
dataset spec and the ``features`` argument of :func:`~graphtag.data.build_multilabel_graph`:

* ``given``: the source's node attributes, as they are;
* ``METHOD`` (a key of :data:`EMBEDDINGS`: ``prone``, ``structural``): an embedding of the graph
  alone, its columns standardised;
* ``given+METHOD``: attributes and embedding concatenated, every column standardised (so the
  parts weigh alike whatever their scales);
* ``auto`` (the default): :data:`DEFAULT_EMBEDDING` without attributes, ``given+`` that
  embedding with them (``experiments/README.md``, "Node features", has the evidence). The
  embedding alone is wider (ProNE: 128 columns) than beside attributes (64), where a wide
  embedding would outweigh the attributes.

``data.meta["features"]`` records the resolved recipe (method, width, seed, version and
parameters of the embedding), so a cache or stage key holding it changes with the features.
Embeddings of graphs with at least :data:`CACHE_MIN_EDGES` directed edges are cached under
:func:`~graphtag.data.cache_dir` (``embeddings/<key>.npz``, keyed by the recipe and a digest of
``edge_index``).

The structural features (:func:`structural_features`) are a randomized range finder on the
symmetrically normalised adjacency ``Â = D^-1/2 (A + I) D^-1/2``: starting from a seeded
Gaussian ``[N, dim]`` matrix, ``q`` multiplications by ``Â`` each followed by a QR step, then
standardised columns (smooth community indicators; cost ``O(q · dim · |E| + q · N · dim²)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._utils import torch_generator
from ..errors import GraphtagError
from ._embedding import _fix_signs, prone_embedding

__all__ = [
    "CACHE_MIN_EDGES",
    "DEFAULT_EMBEDDING",
    "EMBEDDINGS",
    "EmbeddingMethod",
    "node_features",
    "normalized_adjacency",
    "structural_features",
]

#: Graphs with at least this many directed edges (``edge_index.size(1)``) cache embeddings.
CACHE_MIN_EDGES = 1 << 15


def normalized_adjacency(edge_index: Tensor, num_nodes: int, self_loops: bool = True) -> Tensor:
    """Sparse ``D^-1/2 (A [+ I]) D^-1/2`` as a coalesced sparse COO tensor ``[N, N]``.

    Args:
        edge_index: ``[2, E]`` edges (both directions of each undirected edge).
        num_nodes: Number of nodes ``N``.
        self_loops: Add the identity before normalising.
    """
    row, col = edge_index[0], edge_index[1]
    if self_loops:
        loop = torch.arange(num_nodes, device=edge_index.device)
        row = torch.cat([row, loop])
        col = torch.cat([col, loop])
    deg = torch.zeros(num_nodes, device=edge_index.device).index_add_(
        0, row, torch.ones(row.numel(), device=edge_index.device)
    )
    dinv = deg.clamp(min=1).rsqrt()
    val = dinv[row] * dinv[col]
    adj = torch.sparse_coo_tensor(
        torch.stack([row, col]), val, (num_nodes, num_nodes), check_invariants=False
    )
    return adj.coalesce()


def structural_features(
    edge_index: Tensor, num_nodes: int, dim: int = 64, seed: int = 0, power_iters: int = 3
) -> Tensor:
    """Seeded structural embedding ``[N, dim]`` (float32) from the graph alone.

    Args:
        edge_index: ``[2, E]`` undirected edges.
        num_nodes: Number of nodes ``N``.
        dim: Embedding width (capped at ``N``).
        seed: Seed of the random start matrix.
        power_iters: Number of multiplications by ``Â``.

    Example:
        >>> ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> structural_features(ei, 3, dim=2).shape
        torch.Size([3, 2])
    """
    dim = max(1, min(dim, num_nodes))
    adj = normalized_adjacency(edge_index, num_nodes)
    gen = torch_generator(seed, "structural_features")
    q = torch.randn(num_nodes, dim, generator=gen)
    for _ in range(power_iters):
        q = adj @ q
        q, _ = torch.linalg.qr(q)
    q = _fix_signs(q)  # deterministic column signs, then standardise
    q = (q - q.mean(0)) / q.std(0).clamp(min=1e-12)
    return q.float().contiguous()


@dataclass(frozen=True)
class EmbeddingMethod:
    """An embedding of a graph without attributes, as registered in :data:`EMBEDDINGS`.

    Attributes:
        name: Registry key (the ``features=`` value).
        compute: ``compute(edge_index, num_nodes, dim, seed, **params) -> [N, d]`` float32.
        dim: Default width of the embedding alone.
        dim_with_attributes: Default width beside node attributes (``given+NAME``).
        version: Bumped whenever the output for the same inputs changes (invalidates caches).
        params: Fixed keyword arguments of ``compute``, recorded in ``meta["features"]``.
        description: One line for documentation and reports.
    """

    name: str
    compute: Callable[..., Tensor]
    dim: int
    dim_with_attributes: int
    version: int
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""


#: Embedding methods by name (``features=NAME`` or ``features=given+NAME``).
EMBEDDINGS: dict[str, EmbeddingMethod] = {
    "prone": EmbeddingMethod(
        "prone",
        prone_embedding,
        dim=128,
        dim_with_attributes=64,
        version=1,
        params={"order": 10, "mu": 0.2, "theta": 0.5, "power_iters": 5},
        description="ProNE: sparse matrix factorisation and spectral propagation",
    ),
    "structural": EmbeddingMethod(
        "structural",
        structural_features,
        dim=64,
        dim_with_attributes=64,
        version=1,
        params={"power_iters": 3},
        description="randomized range finder on the normalised adjacency",
    ),
}
#: The embedding of ``features=auto``.
DEFAULT_EMBEDDING = "prone"


def _resolve(features: str, has_given: bool) -> tuple[bool, str | None]:
    """``(use the attributes, embedding name or None)`` of a recipe string."""
    text = str(features).strip().lower()
    if text == "auto":
        return has_given, DEFAULT_EMBEDDING
    given, _, method = text.rpartition("+") if "+" in text else ("", "", text)
    use_given = given == "given" or text == "given"
    name = None if text == "given" else method
    choices = ["auto", "given", *EMBEDDINGS, *(f"given+{m}" for m in EMBEDDINGS)]
    if (given and given != "given") or (name is not None and name not in EMBEDDINGS):
        raise GraphtagError(
            f"unknown feature recipe features={features!r}; choose one of {', '.join(choices)}"
        )
    if use_given and not has_given:
        raise GraphtagError(
            f"features={features!r} needs node attributes, but this graph has none; use "
            f"features={name or DEFAULT_EMBEDDING}"
        )
    return use_given, name


def _standardize(x: Tensor) -> Tensor:
    """Columns with mean 0 and standard deviation 1 (constant columns become 0)."""
    x = x.float()
    std = x.std(0, unbiased=False) if x.size(0) > 1 else torch.zeros(x.size(1))
    return ((x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))).contiguous()


def _edges_digest(edge_index: Tensor) -> str:
    arr = np.ascontiguousarray(edge_index.cpu().numpy())
    h = hashlib.blake2b(digest_size=16)
    h.update(str((arr.shape, arr.dtype.str)).encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def _embedding(
    method: EmbeddingMethod,
    edge_index: Tensor,
    num_nodes: int,
    dim: int,
    seed: int,
    cache: bool | None,
) -> Tensor:
    """``method``'s embedding, read from / written to the cache when ``cache`` says so."""
    if cache is None:
        cache = edge_index.size(1) >= CACHE_MIN_EDGES
    path = None
    if cache:
        from ._io import cache_key, load_cache
        from ._registry import cache_dir

        key = cache_key(
            "embedding",
            method.name,
            method.version,
            dim,
            seed,
            sorted(method.params.items()),
            num_nodes,
            _edges_digest(edge_index),
        )
        path = cache_dir() / "embeddings" / f"{key}.npz"
        hit = load_cache(path, ("x",))
        if hit is not None and hit["x"].shape[0] == num_nodes:
            return torch.from_numpy(hit["x"])
    x = method.compute(edge_index, num_nodes, dim, seed, **method.params).float().contiguous()
    if path is not None:
        from ._io import save_cache

        save_cache(path, {"x": x.numpy()})
    return x


def node_features(
    edge_index: Tensor,
    num_nodes: int,
    *,
    features: str = "auto",
    given: Tensor | None = None,
    dim: int | None = None,
    seed: int = 0,
    cache: bool | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """The node features ``x`` of a feature recipe (see the module docstring) and its record.

    Args:
        edge_index: int64 ``[2, E]``, both directions of every undirected edge, no duplicates.
        num_nodes: Number of nodes ``N``.
        features: ``auto``, ``given``, an embedding name or ``given+NAME``.
        given: Optional node attributes ``[N, F]``.
        dim: Embedding width (default: the method's ``dim``, or its ``dim_with_attributes``
            beside attributes).
        seed: Seed of the embedding.
        cache: Cache the embedding (``None``: when ``E >= CACHE_MIN_EDGES``).

    Returns:
        ``(x, record)``: float32 ``x`` ``[N, F']`` and the ``meta["features"]`` dict
        (``recipe``, ``num_features``, ``given_dim`` and, with an embedding, ``method``,
        ``dim``, ``seed``, ``version``, ``params``, ``standardized``).

    Raises:
        GraphtagError: For an unknown recipe, ``given`` missing when the recipe needs it, a
            width below 1 or attributes of the wrong shape.

    Example:
        >>> ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
        >>> x, record = node_features(ei, 4, features="prone", dim=2)
        >>> x.shape, record["recipe"], record["method"]
        (torch.Size([4, 2]), 'prone', 'prone')
    """
    if given is not None and (given.dim() != 2 or given.size(0) != num_nodes):
        raise GraphtagError(
            f"node attributes must have shape [N={num_nodes}, F], got {tuple(given.shape)}"
        )
    if dim is not None and int(dim) < 1:
        raise GraphtagError(f"embedding_dim must be >= 1, got {dim}")
    use_given, name = _resolve(features, given is not None)
    record: dict[str, Any] = {"recipe": "given" if name is None else name}
    parts: list[Tensor] = []
    if use_given:
        assert given is not None
        record["recipe"] = "given" if name is None else f"given+{name}"
        record["given_dim"] = int(given.size(1))
        parts.append(given.float() if name is None else _standardize(given))
    if name is not None:
        method = EMBEDDINGS[name]
        default = method.dim_with_attributes if use_given else method.dim
        width = default if dim is None else int(dim)
        emb = _embedding(method, edge_index, num_nodes, width, int(seed), cache)
        parts.append(_standardize(emb))
        record.update(
            method=name,
            dim=int(emb.size(1)),
            seed=int(seed),
            version=method.version,
            params=dict(method.params),
            standardized=True,
        )
    x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    record["num_features"] = int(x.size(1))
    return x.contiguous(), record
