"""``make_neighbor_loader``: seeded neighbour-sampled mini-batches with or without pyg-lib."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from numbers import Integral
from typing import Literal

import torch
from torch import Tensor
from torch_geometric.data import Data

from .._utils import derive_seed, torch_generator
from ..errors import GraphtagError
from ._sampler import UniformNeighborSampler, check_fanouts

__all__ = ["make_neighbor_loader", "pyg_sampling_available"]

Backend = Literal["auto", "pyg", "torch"]


def pyg_sampling_available() -> bool:
    """Whether PyG's compiled neighbour sampling (pyg-lib or torch-sparse) is importable."""
    import torch_geometric.typing as pyg_typing

    return bool(pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE)


class _SeededGlobalRNG(Iterable[Data]):
    """Run a loader whose compiled sampler draws from torch's global CPU generator, reproducibly.

    pyg-lib and torch-sparse sample with the default CPU generator. Each batch is drawn inside
    :func:`torch.random.fork_rng` with that generator reseeded from ``(seed, epoch, batch)``, so
    batches are reproducible and the caller's global RNG state is left exactly as it was.
    """

    def __init__(self, loader: Iterable[Data], seed: int) -> None:
        self.loader = loader
        self.seed = seed
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Data]:
        epoch = self._epoch
        self._epoch += 1
        step = 0
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derive_seed(self.seed, "pyg", epoch, "iter"))
            it = iter(self.loader)
        while True:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(derive_seed(self.seed, "pyg", epoch, step))
                try:
                    batch = next(it)
                except StopIteration:
                    return
            yield batch
            step += 1


def _input_node_ids(input_nodes: Tensor, num_nodes: int) -> Tensor:
    """Validate ``input_nodes`` (bool mask ``[N]`` or int ids ``[n]``) and return int64 ids."""
    if not isinstance(input_nodes, Tensor):
        raise GraphtagError(
            f"input_nodes must be a tensor (int64 node ids or a bool mask [N]), "
            f"got {type(input_nodes).__name__}"
        )
    if input_nodes.dtype == torch.bool:
        if input_nodes.shape != (num_nodes,):
            raise GraphtagError(
                f"a bool input_nodes mask must have shape [{num_nodes}] (one entry per node), "
                f"got {list(input_nodes.shape)}"
            )
        return input_nodes.nonzero().view(-1).cpu()
    if input_nodes.dtype.is_floating_point or input_nodes.dim() != 1:
        raise GraphtagError(
            f"input_nodes must be a 1-d tensor of int node ids or a bool mask, got dtype "
            f"{input_nodes.dtype} and shape {list(input_nodes.shape)}"
        )
    ids = input_nodes.long().cpu()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
        raise GraphtagError(
            f"input_nodes must lie in [0, {num_nodes}), got min {int(ids.min())} and max "
            f"{int(ids.max())}"
        )
    return ids


def make_neighbor_loader(
    data: Data,
    input_nodes: Tensor,
    fanouts: Sequence[int],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    *,
    node_attrs: Sequence[str] = ("x",),
    backend: Backend = "auto",
) -> Iterable[Data]:
    """Mini-batches of seed nodes with their sampled multi-hop neighbourhoods.

    Each batch is a :class:`~torch_geometric.data.Data` holding the sampled subgraph: the node
    attributes named in ``node_attrs`` (default only ``x``) restricted to the sampled nodes,
    ``edge_index`` in local ids (neighbour -> target), ``n_id`` (global ids, seeds first, in input
    order within the batch), ``e_id``, ``batch_size`` (number of seeds),
    ``num_sampled_nodes``/``num_sampled_edges`` and ``input_id``. Labels and masks are left out
    by default: index the global ``[N, T]`` tensors with ``n_id[:batch_size]`` instead (or add
    ``"y"``, ``"train_mask"``, ... to ``node_attrs``).

    Backends: ``"pyg"`` is PyG's ``NeighborLoader`` (needs pyg-lib or torch-sparse), ``"torch"``
    is PyG's ``NodeLoader`` with :class:`UniformNeighborSampler`; ``"auto"`` picks ``"pyg"`` when
    available. Both sample ``min(fanout, deg)`` distinct neighbours uniformly per node and hop,
    but they draw different samples for the same seed. Both are seeded: shuffling uses a private
    generator, ``"torch"`` a private sampling generator, and ``"pyg"`` reseeds torch's global CPU
    generator per batch inside :func:`torch.random.fork_rng` (the caller's state is restored).
    The same seed therefore gives the same sequence of batches; successive epochs (iterations
    over the returned object) differ. Data loading runs in the main process (``num_workers=0``).

    Args:
        data: Graph with ``edge_index`` ``[2, E]`` and the attributes in ``node_attrs``; batches
            live on the device of those tensors.
        input_nodes: Seeds: int64 ids ``[n]`` or a bool mask ``[N]``.
        fanouts: Neighbours per node for each hop (``-1``: all), e.g. ``[15, 10]``.
        batch_size: Seeds per batch (the last batch may be smaller).
        shuffle: Shuffle the seeds every epoch.
        seed: Seed for shuffling and sampling.
        node_attrs: Node-level attributes (first dimension ``N``) copied into the batches.
        backend: ``"auto"``, ``"pyg"`` or ``"torch"``.

    Returns:
        An iterable of batches with ``len()`` (the number of batches per epoch).

    Raises:
        GraphtagError: For empty fanouts or fanouts below ``-1``, ``batch_size < 1``, bad input
            nodes, missing or non-node attributes, an unknown backend, or ``backend="pyg"``
            without pyg-lib/torch-sparse.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> ring = torch.arange(6)
        >>> edge_index = torch.cat([torch.stack([ring, (ring + 1) % 6]),
        ...                         torch.stack([(ring + 1) % 6, ring])], 1)
        >>> data = Data(x=torch.randn(6, 3), edge_index=edge_index)
        >>> loader = make_neighbor_loader(data, torch.tensor([0, 3]), [2, 2], batch_size=1,
        ...                               backend="torch")
        >>> [b.n_id[: b.batch_size].tolist() for b in loader]
        [[0], [3]]
    """
    fanouts = check_fanouts(fanouts)
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise GraphtagError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)
    if backend not in ("auto", "pyg", "torch"):
        raise GraphtagError(f"unknown backend {backend!r}; use 'auto', 'pyg' or 'torch'")
    if not isinstance(data, Data) or data.edge_index is None:
        raise GraphtagError("data must be a torch_geometric Data object with an edge_index")
    num_nodes = int(data.num_nodes)
    if isinstance(node_attrs, str):
        node_attrs = (node_attrs,)
    slim = Data(edge_index=data.edge_index, num_nodes=num_nodes)
    for name in node_attrs:
        value = data.get(name) if name in data else None
        if not isinstance(value, Tensor) or value.dim() == 0 or value.size(0) != num_nodes:
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise GraphtagError(
                f"node attribute {name!r} must be a tensor with first dimension {num_nodes} "
                f"(one row per node), got {shape}; fix node_attrs"
            )
        slim[name] = value
    ids = _input_node_ids(input_nodes, num_nodes)
    shuffle_gen = torch_generator(seed, "make_neighbor_loader", "shuffle")
    use_pyg = backend == "pyg" or (backend == "auto" and pyg_sampling_available())
    if use_pyg:
        if not pyg_sampling_available():
            raise GraphtagError(
                "backend='pyg' needs pyg-lib or torch-sparse (pip install graphtag[sparse]); "
                "use backend='torch' or 'auto'"
            )
        from torch_geometric.loader import NeighborLoader

        loader = NeighborLoader(
            slim,
            num_neighbors=fanouts,
            input_nodes=ids,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=shuffle_gen,
            num_workers=0,
        )
        return _SeededGlobalRNG(loader, derive_seed(seed, "make_neighbor_loader", "sampling"))
    from torch_geometric.loader import NodeLoader

    sampler = UniformNeighborSampler(slim, fanouts, seed=derive_seed(seed, "make_neighbor_loader"))
    return NodeLoader(
        slim,
        node_sampler=sampler,
        input_nodes=ids,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=shuffle_gen,
        num_workers=0,
    )
