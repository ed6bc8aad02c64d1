"""A vectorised, pure-PyTorch uniform neighbour sampler for PyG's ``NodeLoader``.

PyG's own ``NeighborSampler`` needs pyg-lib or torch-sparse. :class:`UniformNeighborSampler`
implements the same directional node-wise sampling with plain tensor operations (no Python loop
over nodes or edges), on whatever device the graph lives on.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, Literal

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.sampler import BaseSampler, NodeSamplerInput, SamplerOutput

from .._utils import torch_generator
from ..errors import GraphtagError

__all__ = ["UniformNeighborSampler", "check_fanouts"]

SampleMethod = Literal["auto", "floyd", "keys"]


def check_fanouts(fanouts: Sequence[int]) -> list[int]:
    """Validate a per-hop fanout list and return it as a list of ints.

    Args:
        fanouts: Number of neighbours sampled per node at each hop; ``-1`` means all neighbours.

    Returns:
        ``list(fanouts)``.

    Raises:
        GraphtagError: When ``fanouts`` is empty, holds a non-integer or a value below ``-1``.
    """
    if isinstance(fanouts, (str, bytes)) or not isinstance(fanouts, Sequence):
        raise GraphtagError(
            f"fanouts must be a sequence of ints (one per hop, -1 = all neighbours), "
            f"got {fanouts!r}; e.g. fanouts=[15, 10]"
        )
    out = list(fanouts)
    if not out:
        raise GraphtagError(
            "fanouts is empty; give one neighbour count per hop, e.g. fanouts=[15, 10]"
        )
    for hop, f in enumerate(out):
        if isinstance(f, bool) or not isinstance(f, Integral):
            raise GraphtagError(
                f"fanouts[{hop}] = {f!r} is not an int; use a non-negative int or -1 (all)"
            )
        if f < -1:
            raise GraphtagError(
                f"fanouts[{hop}] = {f} is invalid; use a non-negative int or -1 (all neighbours)"
            )
    return [int(f) for f in out]


def _unique_first_seen(values: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct values of ``values`` in order of first appearance, with that position.

    Args:
        values: int64 ``[n]``.

    Returns:
        ``(distinct [u], first_position [u])``, ordered by ``first_position``.
    """
    if values.numel() == 0:
        return values, values
    sorted_vals, order = torch.sort(values, stable=True)
    first = torch.ones_like(sorted_vals, dtype=torch.bool)
    first[1:] = sorted_vals[1:] != sorted_vals[:-1]
    vals, pos = sorted_vals[first], order[first]
    by_pos = torch.argsort(pos)
    return vals[by_pos], pos[by_pos]


def _segment_arange(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Expand segment lengths into (segment id, offset within segment) pairs.

    Args:
        counts: int64 ``[m]``, non-negative.

    Returns:
        ``(segment [sum(counts)], offset [sum(counts)])``.
    """
    seg = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    offset = torch.arange(seg.numel(), device=counts.device) - starts[seg]
    return seg, offset


def _floyd_offsets(deg: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` distinct uniform offsets in ``[0, deg_i)`` per row, by Floyd's algorithm.

    Vectorised over rows; the loop runs over the ``k`` sample slots only. Cost ``O(m k^2)``,
    independent of the degrees, so hubs are cheap.

    Args:
        deg: int64 ``[m]`` with every entry ``> k``.
        k: Number of samples per row.
        generator: Source of randomness (same device as ``deg``).

    Returns:
        int64 ``[m, k]``; each row is a uniformly random ``k``-subset of ``range(deg_i)``.
    """
    m = deg.numel()
    chosen = torch.empty((m, k), dtype=torch.long, device=deg.device)
    u = torch.rand((m, k), generator=generator, dtype=torch.float64, device=deg.device)
    for i in range(k):
        j = deg - k + i  # Floyd: draw t uniform in [0, j]; if already taken, take j instead.
        t = torch.minimum((u[:, i] * (j + 1).to(torch.float64)).long(), j)
        if i > 0:
            taken = (chosen[:, :i] == t.unsqueeze(1)).any(1)
            t = torch.where(taken, j, t)
        chosen[:, i] = t
    return chosen


def _key_offsets(deg: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` distinct uniform offsets in ``[0, deg_i)`` per row, by random keys and a sort.

    Every candidate gets a uniform key; the ``k`` smallest keys of each row win. Cost
    ``O(sum(deg) log sum(deg))``: good for large ``k`` with moderate degrees.

    Args:
        deg: int64 ``[m]`` with every entry ``> k``.
        k: Number of samples per row.
        generator: Source of randomness (same device as ``deg``).

    Returns:
        int64 ``[m, k]``; each row is a uniformly random ``k``-subset of ``range(deg_i)``.
    """
    seg, offset = _segment_arange(deg)
    keys = torch.rand(seg.numel(), generator=generator, dtype=torch.float64, device=deg.device)
    order = torch.argsort(keys)
    order = order[torch.argsort(seg[order], stable=True)]  # grouped by row, random within
    starts = torch.cumsum(deg, 0) - deg
    rank = torch.arange(order.numel(), device=deg.device) - starts[seg[order]]
    keep = order[rank < k]
    return offset[keep].view(-1, k)


class UniformNeighborSampler(BaseSampler):
    """Uniform node-wise neighbour sampling without replacement, in pure PyTorch.

    For hop ``h``, every frontier node samples ``min(fanouts[h], deg)`` distinct in-neighbours
    uniformly without replacement (``-1``: all of them). The seeds form the first frontier; the
    nodes first reached at hop ``h`` form the frontier of hop ``h + 1``. Sampled nodes are appended
    to the node list in order of first appearance, after the seeds (which keep their order).
    Edges point from the sampled neighbour to the frontier node (``source_to_target`` flow), as
    local indices into the node list. Neighbours of ``i`` are the sources ``j`` of edges
    ``(j, i)``, which for graphtag's undirected graphs are simply its neighbours.

    All graph tensors live on ``edge_index``'s device, and sampling runs there (CPU or GPU). A
    private generator seeded from ``seed`` advances with every call: successive batches get fresh
    samples, and a new sampler with the same seed replays the same sequence. In a
    ``DataLoader`` with ``num_workers > 0`` every worker would copy the same generator state, so
    use ``num_workers=0`` (as :func:`make_neighbor_loader` does).

    Args:
        data: A :class:`~torch_geometric.data.Data` with ``edge_index`` (and ``num_nodes``), or
            a tuple ``(edge_index, num_nodes)``.
        fanouts: Neighbours per node for each hop; ``-1`` takes all neighbours.
        seed: Seed of the private generator.

    Shapes:
        - ``edge_index``: int64 ``[2, E]`` with ids in ``[0, N)``.
        - output ``node``: ``[n]`` global ids (seeds first); ``row``/``col``/``edge``: ``[e]``
          local source, local target and global edge id (column of ``edge_index``).

    Example:
        >>> import torch
        >>> from torch_geometric.sampler import NodeSamplerInput
        >>> edge_index = torch.tensor([[1, 2, 3, 0, 0, 0], [0, 0, 0, 1, 2, 3]])
        >>> sampler = UniformNeighborSampler((edge_index, 4), fanouts=[2], seed=0)
        >>> out = sampler.sample_from_nodes(NodeSamplerInput(None, torch.tensor([0])))
        >>> out.num_sampled_nodes, out.num_sampled_edges
        ([1, 2], [2])
        >>> bool((out.col == 0).all())
        True
    """

    def __init__(
        self,
        data: Data | tuple[Tensor, int],
        fanouts: Sequence[int],
        seed: int = 0,
    ) -> None:
        if isinstance(data, Data):
            if data.edge_index is None:
                raise GraphtagError("data has no edge_index; give a graph with edges")
            edge_index, num_nodes = data.edge_index, data.num_nodes
        elif isinstance(data, (tuple, list)) and len(data) == 2:
            edge_index, num_nodes = data
        else:
            raise GraphtagError(
                f"UniformNeighborSampler needs a torch_geometric Data or a tuple "
                f"(edge_index, num_nodes), got {type(data).__name__}"
            )
        self.fanouts = check_fanouts(fanouts)
        self.seed = int(seed)
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else None
            raise GraphtagError(f"edge_index must be a tensor of shape [2, E], got shape {shape}")
        if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
            raise GraphtagError(f"edge_index must hold integer node ids, got {edge_index.dtype}")
        if num_nodes is None or int(num_nodes) < 0:
            raise GraphtagError(f"num_nodes must be a non-negative int, got {num_nodes!r}")
        self.num_nodes = int(num_nodes)
        edge_index = edge_index.long()
        if edge_index.numel() and (
            int(edge_index.min()) < 0 or int(edge_index.max()) >= self.num_nodes
        ):
            raise GraphtagError(
                f"edge_index holds node ids outside [0, {self.num_nodes}) "
                f"(min {int(edge_index.min())}, max {int(edge_index.max())}); fix num_nodes "
                f"or the edges"
            )
        self.device = edge_index.device
        # CSC: edges grouped by target, so the in-neighbours of i are row[colptr[i]:colptr[i+1]].
        perm = torch.argsort(edge_index[1], stable=True)
        self.perm = perm
        self.row = edge_index[0, perm]
        counts = torch.bincount(edge_index[1], minlength=self.num_nodes)
        self.colptr = torch.zeros(self.num_nodes + 1, dtype=torch.long, device=self.device)
        self.colptr[1:] = torch.cumsum(counts, 0)
        self.generator = torch_generator(self.seed, "UniformNeighborSampler", device=self.device)
        self._method: SampleMethod = "auto"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_nodes={self.num_nodes}, "
            f"num_edges={self.row.numel()}, fanouts={self.fanouts}, seed={self.seed})"
        )

    def _sample_hop(self, frontier: Tensor, fanout: int) -> tuple[Tensor, Tensor]:
        """Sample the in-edges of one hop.

        Args:
            frontier: int64 ``[m]`` global ids of the nodes that sample neighbours.
            fanout: Neighbours per node (``-1``: all).

        Returns:
            ``(position [e], target [e])``: positions into the CSC arrays and the index into
            ``frontier`` of each sampled edge, grouped by target in frontier order.
        """
        start = self.colptr[frontier]
        deg = self.colptr[frontier + 1] - start
        full = deg >= 0 if fanout < 0 else deg <= fanout
        full_idx = full.nonzero().view(-1)
        seg, offset = _segment_arange(deg[full_idx])
        target = full_idx[seg]
        position = start[target] + offset
        part_idx = (~full).nonzero().view(-1)
        if part_idx.numel() and fanout > 0:
            part_deg = deg[part_idx]
            method = self._method
            if method == "auto":
                # Floyd costs ~ m k^2 / 2 comparisons, keys ~ sum(deg) * log2(sum(deg)) * 2.
                total = int(part_deg.sum())
                floyd_cost = part_idx.numel() * fanout * (fanout + 1) / 2
                keys_cost = 2.0 * total * max(1, total.bit_length())
                method = "floyd" if floyd_cost <= keys_cost else "keys"
            sample = _floyd_offsets if method == "floyd" else _key_offsets
            offsets = sample(part_deg, fanout, self.generator)
            part_target = part_idx.repeat_interleave(fanout)
            part_position = (start[part_idx].unsqueeze(1) + offsets).view(-1)
            target = torch.cat([target, part_target])
            position = torch.cat([position, part_position])
            order = torch.argsort(target, stable=True)
            target, position = target[order], position[order]
        return position, target

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs: Any) -> SamplerOutput:
        """Sample the multi-hop neighbourhood of a batch of seed nodes.

        Args:
            index: PyG's sampler input; ``index.node`` holds the seeds' global ids ``[B]``
                (moved to the graph's device) and ``index.input_id`` their positions in the
                loader's input (returned in ``metadata``).
            **kwargs: Ignored (PyG's interface).

        Returns:
            A :class:`~torch_geometric.sampler.SamplerOutput` with ``node`` (seeds first),
            ``row``/``col`` (local source/target), ``edge`` (global edge ids),
            ``num_sampled_nodes`` ``[1 + hops]``, ``num_sampled_edges`` ``[hops]`` and
            ``metadata = (input_id, time)`` as PyG's ``NodeLoader`` expects.

        Raises:
            GraphtagError: When a seed id is outside ``[0, num_nodes)``.
        """
        seeds = index.node.to(self.device, torch.long).view(-1)
        if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= self.num_nodes):
            raise GraphtagError(
                f"seed node ids must lie in [0, {self.num_nodes}), got min {int(seeds.min())} "
                f"and max {int(seeds.max())}; check input_nodes"
            )
        local = torch.full((self.num_nodes,), -1, dtype=torch.long, device=self.device)
        distinct, first = _unique_first_seen(seeds)
        local[distinct] = first  # duplicated seeds map to their first copy
        nodes, rows, cols, edges = [seeds], [], [], []
        num_nodes_out, num_edges_out = [seeds.numel()], []
        frontier, frontier_local = seeds, torch.arange(seeds.numel(), device=self.device)
        num_total = seeds.numel()
        for fanout in self.fanouts:
            position, target = self._sample_hop(frontier, fanout)
            src = self.row[position]
            new, _ = _unique_first_seen(src[local[src] < 0])
            local[new] = torch.arange(num_total, num_total + new.numel(), device=self.device)
            rows.append(local[src])
            cols.append(frontier_local[target])
            edges.append(self.perm[position])
            nodes.append(new)
            num_nodes_out.append(new.numel())
            num_edges_out.append(position.numel())
            frontier = new
            frontier_local = torch.arange(num_total, num_total + new.numel(), device=self.device)
            num_total += new.numel()
        return SamplerOutput(
            node=torch.cat(nodes),
            row=torch.cat(rows),
            col=torch.cat(cols),
            edge=torch.cat(edges),
            batch=None,
            num_sampled_nodes=num_nodes_out,
            num_sampled_edges=num_edges_out,
            metadata=(index.input_id, index.time),
        )

    def sample_from_edges(self, index: Any, neg_sampling: Any = None) -> SamplerOutput:
        """Not supported: graphtag samples around nodes only.

        Raises:
            GraphtagError: Always.
        """
        raise GraphtagError(
            "UniformNeighborSampler samples from nodes only; use NodeLoader, not LinkLoader"
        )
