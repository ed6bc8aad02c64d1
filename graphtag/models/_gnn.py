"""Message-passing multi-task GNNs (GraphSAGE, GCN, GAT) from PyG convolutions."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from ..errors import GraphtagError
from ._config import MultiTaskHeadMixin

__all__ = ["ENCODERS", "MultiTaskGNN", "gcn_edge_weights"]

#: Attention heads of every GAT layer (concatenated, ``hidden_channels // GAT_HEADS`` each).
GAT_HEADS = 4


def _sage(in_channels: int, out_channels: int) -> nn.Module:
    return SAGEConv(in_channels, out_channels, aggr="mean")


def _gcn(in_channels: int, out_channels: int) -> nn.Module:
    # normalize=False: MultiTaskGNN supplies the symmetric normalisation as edge weights (computed
    # on the full graph for exact batches), so subgraph outputs equal full-graph ones. cached=False
    # because the graph changes from batch to batch.
    return GCNConv(in_channels, out_channels, cached=False, normalize=False, add_self_loops=False)


def _gat(in_channels: int, out_channels: int) -> nn.Module:
    if out_channels % GAT_HEADS:
        raise GraphtagError(
            f"encoder='gat' needs hidden_channels divisible by {GAT_HEADS} (its heads), "
            f"got {out_channels}"
        )
    return GATConv(in_channels, out_channels // GAT_HEADS, heads=GAT_HEADS, concat=True)


#: The encoders of :class:`MultiTaskGNN`: name -> ``conv(in_channels, out_channels)`` factory.
ENCODERS: dict[str, Callable[[int, int], nn.Module]] = {"sage": _sage, "gcn": _gcn, "gat": _gat}


def gcn_edge_weights(
    edge_index: Tensor, num_nodes: int, degree: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Symmetric GCN normalisation with self-loops, optionally from given (full-graph) degrees.

    Without ``degree`` this is PyG's ``gcn_norm`` (``Â = D^-1/2 (A + I) D^-1/2`` on the given
    graph). With ``degree`` (the in-degree of every node of the subgraph *in the full graph*,
    self-loops excluded), the weight of edge ``j -> i`` is
    ``deg_i / c_i / sqrt((deg_i + 1)(deg_j + 1))`` where ``c_i`` is the number of edges into ``i``
    present in ``edge_index``, and the self-loop weight is ``1 / (deg_i + 1)``. When ``i`` has all
    its neighbours (``c_i = deg_i``) this is exactly the full-graph normalisation; for a
    neighbour-sampled ``i`` it is the unbiased importance-weighted estimate of the full-graph
    aggregation.

    Args:
        edge_index: int64 ``[2, e]`` edges ``j -> i`` (``edge_index[1]`` is the target), no
            self-loops.
        num_nodes: Number of nodes ``n`` of the (sub)graph.
        degree: Optional ``[n]`` full-graph in-degrees.

    Returns:
        ``(edge_index, edge_weight)``: ``[2, e + n]`` edges with self-loops appended and their
        ``[e + n]`` float32 weights.
    """
    if degree is None:
        ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
        return ei, w
    row, col = edge_index[0], edge_index[1]
    deg = degree.to(torch.float32)
    count = torch.zeros(num_nodes, device=edge_index.device).index_add(
        0, col, torch.ones(col.numel(), device=edge_index.device)
    )
    dinv = (deg + 1.0).rsqrt()
    scale = deg / count.clamp(min=1.0)
    w = dinv[row] * dinv[col] * scale[col]
    loop = torch.arange(num_nodes, device=edge_index.device)
    ei = torch.cat([edge_index, torch.stack([loop, loop])], dim=1)
    return ei, torch.cat([w, dinv * dinv])


class MultiTaskGNN(MultiTaskHeadMixin, nn.Module):
    """``num_layers`` graph convolutions (ReLU, dropout after each) and a multi-task head.

    The encoder is resolved by name through :data:`ENCODERS`: ``"sage"`` (mean-aggregation
    GraphSAGE), ``"gcn"`` (symmetric normalisation with self-loops, ``cached=False``) or ``"gat"``
    (``GAT_HEADS`` concatenated heads). ``forward`` has no in-place operations and no
    data-dependent control flow, so it runs under :mod:`torch.func` in eval mode.

    Args:
        in_channels: Feature width ``F``.
        hidden_channels: Width of every convolution's output.
        num_tasks: Number of outputs ``T``.
        num_layers: Number of convolutions (receptive field in hops).
        encoder: ``"sage"``, ``"gcn"`` or ``"gat"``.
        dropout: Dropout probability on the input of every layer after the first and of the head.

    Shapes:
        - input ``x``: ``[n, F]``, ``edge_index``: ``[2, e]`` (message ``j -> i`` for column
          ``(j, i)``), optional ``edge_weight``: ``[e]`` (GCN only, already normalised, including
          the self-loops; see :func:`gcn_edge_weights`)
        - output: ``[n, T]`` logits

    Example:
        >>> model = MultiTaskGNN(4, 8, num_tasks=3, encoder="sage")
        >>> ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> model(torch.randn(3, 4), ei).shape
        torch.Size([3, 3])
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_tasks: int,
        num_layers: int = 2,
        encoder: str = "sage",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise GraphtagError(
                f"unknown encoder {encoder!r}; choose one of {', '.join(map(repr, ENCODERS))}"
            )
        if num_layers < 1:
            raise GraphtagError(f"num_layers must be >= 1, got {num_layers}")
        self.in_channels = int(in_channels)
        self.hidden_channels = int(hidden_channels)
        self.num_tasks = int(num_tasks)
        self.num_layers = int(num_layers)
        self.encoder = encoder
        self.dropout = float(dropout)
        make = ENCODERS[encoder]
        self.convs = nn.ModuleList(
            make(in_channels if i == 0 else hidden_channels, hidden_channels)
            for i in range(num_layers)
        )
        self.head = nn.Linear(hidden_channels, num_tasks)

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (from the global RNG)."""
        for conv in self.convs:
            conv.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """Logits ``[n, T]`` of every node of the given graph."""
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise GraphtagError(
                f"MultiTaskGNN expects node features [n, {self.in_channels}], got {tuple(x.shape)}"
            )
        if self.encoder == "gcn":
            if edge_weight is None:
                edge_index, edge_weight = gcn_edge_weights(edge_index, x.size(0))
            conv_kwargs = {"edge_weight": edge_weight}
        elif edge_weight is not None:
            raise GraphtagError(
                f"edge_weight is only used by encoder='gcn', not {self.encoder!r}; drop it"
            )
        else:
            conv_kwargs = {}
        h = x
        for i, conv in enumerate(self.convs):
            if i > 0:
                h = F.dropout(h, p=self.dropout, training=self.training)
            h = F.relu(conv(h, edge_index, **conv_kwargs))
        h = F.dropout(h, p=self.dropout, training=self.training)
        return self.head(h)
