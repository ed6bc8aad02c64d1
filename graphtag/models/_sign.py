"""SIGN: an MLP over precomputed propagated features, with a multi-task head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data import normalized_adjacency
from ..errors import GraphtagError
from ._config import MultiTaskHeadMixin

__all__ = ["SIGN", "sign_features"]

#: Whether :func:`sign_features` adds self-loops before normalising (see its docstring).
SIGN_SELF_LOOPS = False


def sign_features(
    x: Tensor, edge_index: Tensor, num_hops: int, *, self_loops: bool = SIGN_SELF_LOOPS
) -> Tensor:
    """Propagated features ``X_k = Â^k X`` for ``k = 0..K``, stacked along dimension 1.

    ``Â = D^-1/2 A D^-1/2`` by default (the operator of the SIGN paper), so ``X_k`` with
    ``k >= 1`` only mixes neighbours' features and isolated nodes get zero rows there. With
    ``self_loops=True``, ``Â = D^-1/2 (A + I) D^-1/2`` (GCN's operator) instead. The default was
    chosen on validation evidence (``experiments/README.md``, "Training defaults").

    Args:
        x: ``[N, F]`` node features.
        edge_index: int64 ``[2, E]``, both directions of every undirected edge.
        num_hops: ``K >= 0``.
        self_loops: Add the identity to ``A`` before normalising.

    Returns:
        ``[N, K + 1, F]`` tensor (``x``'s dtype and device), hop ``0`` being ``x`` itself.

    Example:
        >>> x = torch.eye(3)
        >>> ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> sign_features(x, ei, num_hops=2).shape
        torch.Size([3, 3, 3])
    """
    if x.dim() != 2:
        raise GraphtagError(f"x must have shape [N, F], got {tuple(x.shape)}")
    if num_hops < 0:
        raise GraphtagError(f"num_hops must be >= 0, got {num_hops}")
    num_nodes = x.size(0)
    hops = [x]
    if num_hops > 0:
        adj = normalized_adjacency(edge_index.to(x.device), num_nodes, self_loops=self_loops)
        adj = adj.to(x.dtype)
        for _ in range(num_hops):
            hops.append(torch.sparse.mm(adj, hops[-1]))
    return torch.stack(hops, dim=1).contiguous()


class SIGN(MultiTaskHeadMixin, nn.Module):
    """SIGN (Frasca et al., 2020) with one logit per task.

    Dropout on the input hop features (``input_dropout``), then one branch per hop
    (``RMSNorm -> Linear -> PReLU -> Dropout``) applied to ``X_k``, the branches concatenated,
    then a shared ``Linear -> PReLU -> Dropout`` and the multi-task head ``Linear(hidden, T)``.
    The per-node RMSNorm of every hop puts the shrinking higher hops (``Â^k`` damps all but the
    leading eigen-directions) on one scale without removing any direction (LayerNorm would drop
    a node's mean feature); the evidence for it and for the input dropout is in
    ``experiments/README.md`` ("Training defaults").

    Nodes are independent given their hop features, so any row subset can be evaluated alone.
    No in-place operations or data-dependent control flow in ``forward``: it runs under
    :mod:`torch.func` (``functional_call``, ``jvp``, ``vmap``).

    Args:
        in_channels: Feature width ``F``.
        hidden_channels: Width of every branch and of the shared layer.
        num_tasks: Number of outputs ``T``.
        num_hops: ``K``; ``forward`` expects ``K + 1`` hops.
        dropout: Dropout probability after every hidden activation.
        input_dropout: Dropout probability of the input hop features (training only; the
            evidence for the default of :class:`~graphtag.training.TrainConfig` is in
            ``experiments/README.md``, "Training defaults").

    Shapes:
        - input ``xs``: ``[n, K + 1, F]``
        - output: ``[n, T]`` logits

    Example:
        >>> model = SIGN(4, 8, num_tasks=3, num_hops=2)
        >>> model(torch.randn(5, 3, 4)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_tasks: int,
        num_hops: int = 3,
        dropout: float = 0.5,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.hidden_channels = int(hidden_channels)
        self.num_tasks = int(num_tasks)
        self.num_hops = int(num_hops)
        self.dropout = float(dropout)
        self.input_dropout = nn.Dropout(float(input_dropout))
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.RMSNorm(in_channels),
                nn.Linear(in_channels, hidden_channels),
                nn.PReLU(),
                nn.Dropout(dropout),
            )
            for _ in range(num_hops + 1)
        )
        self.shared = nn.Sequential(
            nn.Linear((num_hops + 1) * hidden_channels, hidden_channels),
            nn.PReLU(),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(hidden_channels, num_tasks)

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (from the global RNG)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, xs: Tensor) -> Tensor:
        """Logits ``[n, T]`` from hop features ``xs`` ``[n, K + 1, F]``."""
        if xs.dim() != 3 or xs.size(1) != self.num_hops + 1 or xs.size(2) != self.in_channels:
            raise GraphtagError(
                f"SIGN expects hop features [n, {self.num_hops + 1}, {self.in_channels}], "
                f"got {tuple(xs.shape)}; build them with sign_features(x, edge_index, "
                f"num_hops={self.num_hops})"
            )
        xs = self.input_dropout(xs)
        parts = [branch(xs[:, k]) for k, branch in enumerate(self.branches)]
        return self.head(self.shared(torch.cat(parts, dim=-1)))
