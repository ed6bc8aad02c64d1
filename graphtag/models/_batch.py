"""The one batch type every model-facing stage consumes."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["NodeBatch"]


@dataclass
class NodeBatch:
    """Inputs for computing model outputs at a set of seed nodes.

    ``model(*batch.args)[batch.out]`` are the logits ``[B, T]`` of ``batch.nodes``, in order.

    Attributes:
        nodes: int64 ``[B]`` global ids of the seed nodes.
        args: Positional arguments of ``model.forward`` (for SIGN: ``(xs,)`` with
            ``xs`` ``[B, K+1, F]``; for message passing: ``(x_sub, edge_index_sub)``), already on
            the target device.
        out: int64 ``[B]`` rows of the model output that belong to ``nodes`` (for SIGN simply
            ``arange(B)``; for a subgraph, the positions of the seeds in it).
        exact: ``True`` when the outputs equal full-graph inference (full k-hop neighbourhood or
            precomputed hops), ``False`` for neighbour-sampled training batches.
    """

    nodes: Tensor
    args: tuple[Tensor, ...]
    out: Tensor
    exact: bool = True
