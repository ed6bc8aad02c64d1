"""Model inputs of a graph and their node batches (exact or neighbour-sampled)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import k_hop_subgraph

from .._utils import resolve_device, torch_generator
from ..errors import GraphtagError
from ..loader import make_neighbor_loader
from ._batch import NodeBatch
from ._config import ModelConfig
from ._gnn import gcn_edge_weights
from ._sign import sign_features

__all__ = ["GraphInputs", "prepare_inputs"]


class GraphInputs:
    """Everything a model of one :class:`ModelConfig` needs to compute node outputs.

    Build it with :func:`prepare_inputs`. For SIGN it holds the hop features ``[N, K + 1, F]``
    on ``device``; for message passing the node features ``[N, F]``, the edges ``[2, E]`` and
    the full-graph in-degrees ``[N]`` (GCN edge weights) on ``device``.

    Attributes:
        config: The model configuration the inputs were prepared for.
        device: Where batches (and models using them) live.
        num_nodes: ``N``.
        in_channels: ``F``, the ``in_channels`` of the model.
        hops: SIGN only: ``[N, K + 1, F]``.
        x: Message passing only: ``[N, F]``.
        edge_index: Message passing only: ``[2, E]``.
        degree: Message passing only: int64 ``[N]`` in-degrees.
    """

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        *,
        hops: Tensor | None = None,
        x: Tensor | None = None,
        edge_index: Tensor | None = None,
    ) -> None:
        self.config = config
        self.device = device
        self.hops = hops
        self.x = x
        self.edge_index = edge_index
        self.degree: Tensor | None = None
        self._cpu_graph: Data | None = None
        if config.message_passing:
            assert x is not None and edge_index is not None
            self.num_nodes = int(x.size(0))
            self.in_channels = int(x.size(1))
            self.degree = torch.bincount(edge_index[1], minlength=self.num_nodes)
        else:
            assert hops is not None
            self.num_nodes = int(hops.size(0))
            self.in_channels = int(hops.size(2))

    def __repr__(self) -> str:
        kind = "hops" if self.hops is not None else "message passing"
        return (
            f"GraphInputs({self.config.name}, {kind}, num_nodes={self.num_nodes}, "
            f"in_channels={self.in_channels}, device={self.device})"
        )

    def to(self, device: str | torch.device) -> GraphInputs:
        """These inputs on ``device`` (``self`` when already there, else a moved copy)."""
        dev = resolve_device(device)
        if dev == self.device:
            return self

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(dev)

        return GraphInputs(
            self.config, dev, hops=move(self.hops), x=move(self.x), edge_index=move(self.edge_index)
        )

    def node_ids(self, nodes: Tensor | Sequence[int] | None) -> Tensor:
        """Normalise ``nodes`` (ids, a bool mask ``[N]`` or ``None`` = all) to int64 CPU ids."""
        if nodes is None:
            return torch.arange(self.num_nodes)
        nodes = torch.as_tensor(nodes).cpu()
        if nodes.dtype == torch.bool:
            if nodes.shape != (self.num_nodes,):
                raise GraphtagError(
                    f"a boolean node mask must have shape [{self.num_nodes}], "
                    f"got {tuple(nodes.shape)}"
                )
            return nodes.nonzero().flatten()
        if nodes.dim() != 1 or nodes.is_floating_point():
            raise GraphtagError(
                f"nodes must be a 1-d int64 tensor of ids or a bool mask [{self.num_nodes}], "
                f"got {nodes.dtype} {tuple(nodes.shape)}"
            )
        nodes = nodes.long()
        if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= self.num_nodes):
            raise GraphtagError(
                f"node ids must lie in [0, {self.num_nodes}), got range "
                f"[{int(nodes.min())}, {int(nodes.max())}]"
            )
        return nodes

    def batches(
        self,
        nodes: Tensor | Sequence[int] | None,
        batch_size: int,
        *,
        train: bool,
        shuffle: bool = False,
        seed: int = 0,
        fanouts: Sequence[int] = (15, 10),
    ) -> Iterator[NodeBatch]:
        """Yield batches covering ``nodes`` (each once, in order unless ``shuffle``).

        ``model(*b.args)[b.out]`` are the logits of ``b.nodes``. SIGN batches are always exact
        (rows of the hop features). For message passing, ``train=False`` gives each chunk of
        seeds with its complete ``num_layers``-hop in-neighbourhood (exact: outputs equal
        full-graph inference); ``train=True`` samples ``fanouts[l]`` neighbours per node at hop
        ``l`` with :func:`graphtag.loader.make_neighbor_loader` (the sampled ``j -> i`` edges
        only; GCN edge weights use full-graph degrees rescaled by ``deg_i / sampled_i``, see
        :func:`~graphtag.models.gcn_edge_weights`).

        Args:
            nodes: Seed node ids ``[n]``, a bool mask ``[N]``, or ``None`` for all nodes.
            batch_size: Seeds per batch.
            train: Neighbour sampling (message passing only) instead of exact subgraphs.
            shuffle: Permute the seeds first (seeded by ``seed``).
            seed: Seed of the shuffle and of the neighbour sampler.
            fanouts: Sampled neighbours per hop (``-1``: all); needs ``num_layers`` entries.

        Yields:
            :class:`NodeBatch` with ``nodes`` and ``out`` on :attr:`device`.
        """
        ids = self.node_ids(nodes)
        if batch_size < 1:
            raise GraphtagError(f"batch_size must be >= 1, got {batch_size}")
        if self.config.message_passing and train:
            fanouts = tuple(int(f) for f in fanouts)
            if len(fanouts) != self.config.num_layers or any(f < 1 and f != -1 for f in fanouts):
                raise GraphtagError(
                    f"fanouts {fanouts} must give one sample size (>= 1, or -1 for all "
                    f"neighbours) per layer (num_layers={self.config.num_layers})"
                )
            yield from self._sampled_batches(ids, batch_size, shuffle, seed, fanouts)
            return
        if shuffle:
            ids = ids[torch.randperm(ids.numel(), generator=torch_generator(seed, "batches"))]
        for chunk in ids.split(batch_size):
            yield self._exact_batch(chunk)

    def full_batch(self, nodes: Tensor | Sequence[int] | None = None) -> NodeBatch:
        """One exact batch over the whole graph whose outputs are the logits of ``nodes``.

        The reference that other batchings are checked against: for message passing the model
        sees every node and edge (for ``"gcn"``, with the full-graph normalisation), for SIGN
        every node's hops.

        Args:
            nodes: Nodes whose outputs are kept (ids, a bool mask ``[N]``, ``None``: all).

        Example:
            >>> from graphtag.data import load_dataset
            >>> data = load_dataset("synthetic:num_nodes=100,num_tasks=4,num_groups=2")
            >>> inputs = prepare_inputs(data, ModelConfig("sage"), "cpu")
            >>> inputs.full_batch([3, 5]).args[0].shape
            torch.Size([100, 16])
        """
        ids = self.node_ids(nodes).to(self.device)
        if self.hops is not None:
            return NodeBatch(ids, (self.hops,), ids)
        assert self.edge_index is not None
        everything = torch.arange(self.num_nodes, device=self.device)
        return NodeBatch(ids, self._mp_args(everything, self.edge_index), ids)

    def built_for(self, model: object) -> bool:
        """Whether these batches are exact for ``model`` by construction.

        True for graphtag's own models of the configuration the inputs were prepared for
        (:class:`~graphtag.models.SIGN` with as many hops, :class:`~graphtag.models.MultiTaskGNN`
        with the same encoder and number of layers); any other model's batches are checked
        against :meth:`full_batch` before they are trusted.
        """
        from ._gnn import MultiTaskGNN
        from ._sign import SIGN

        if isinstance(model, SIGN):
            return self.hops is not None and model.num_hops == self.config.num_hops
        if isinstance(model, MultiTaskGNN):
            return (
                self.config.message_passing
                and model.encoder == self.config.name
                and model.num_layers == self.config.num_layers
            )
        return False

    def _exact_batch(self, chunk: Tensor) -> NodeBatch:
        nodes = chunk.to(self.device)
        if self.hops is not None:
            return NodeBatch(
                nodes, (self.hops[nodes],), torch.arange(nodes.numel(), device=self.device)
            )
        assert self.x is not None and self.edge_index is not None
        subset, sub_ei, mapping, _ = k_hop_subgraph(
            nodes,
            self.config.num_layers,
            self.edge_index,
            relabel_nodes=True,
            num_nodes=self.num_nodes,
            directed=True,
        )
        return NodeBatch(nodes, self._mp_args(subset, sub_ei), mapping)

    def _mp_args(self, subset: Tensor, sub_ei: Tensor) -> tuple[Tensor, ...]:
        assert self.x is not None and self.degree is not None
        x = self.x[subset]
        if self.config.name == "gcn":
            ei, w = gcn_edge_weights(sub_ei, subset.numel(), self.degree[subset])
            return (x, ei, w)
        return (x, sub_ei)

    def _sampled_batches(
        self,
        ids: Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int,
        fanouts: tuple[int, ...],
    ) -> Iterator[NodeBatch]:
        assert self.x is not None and self.edge_index is not None
        if self._cpu_graph is None:
            # Sampling runs on the CPU; features are gathered on the device from n_id.
            self._cpu_graph = Data(edge_index=self.edge_index.cpu(), num_nodes=self.num_nodes)
        loader = make_neighbor_loader(
            self._cpu_graph,
            ids,
            fanouts,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            node_attrs=(),
        )
        for batch in loader:
            n_id = batch.n_id.to(self.device)
            size = int(batch.batch_size)
            args = self._mp_args(n_id, batch.edge_index.to(self.device))
            out = torch.arange(size, device=self.device)
            yield NodeBatch(n_id[:size], args, out, exact=False)


def prepare_inputs(
    data: Data, config: ModelConfig, device: str | torch.device = "auto"
) -> GraphInputs:
    """Precompute what a model of ``config`` needs on ``data`` and move it to ``device``.

    Args:
        data: A graph with ``x`` ``[N, F]`` and ``edge_index`` ``[2, E]`` (both directions).
        config: Model configuration (SIGN hop count or message-passing depth).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``, ...

    Returns:
        The :class:`GraphInputs`.

    Raises:
        GraphtagError: When ``data`` lacks features or edges.

    Example:
        >>> from graphtag.data import load_dataset
        >>> data = load_dataset("synthetic:num_nodes=100,num_tasks=4,num_groups=2")
        >>> inputs = prepare_inputs(data, ModelConfig("sign", num_hops=2), "cpu")
        >>> inputs.hops.shape[:2]
        torch.Size([100, 3])
    """
    x = getattr(data, "x", None)
    edge_index = getattr(data, "edge_index", None)
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise GraphtagError(
            "the graph needs node features x [N, F]; build it with "
            "graphtag.data.build_multilabel_graph (it adds structural features)"
        )
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise GraphtagError("the graph needs edge_index [2, E]")
    dev = resolve_device(device)
    x = x.to(dev, torch.float32)
    edge_index = edge_index.to(dev, torch.long)
    if config.message_passing:
        return GraphInputs(config, dev, x=x, edge_index=edge_index)
    return GraphInputs(config, dev, hops=sign_features(x, edge_index, config.num_hops))
