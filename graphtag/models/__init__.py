"""Multi-task GNNs (SIGN, GraphSAGE/GCN/GAT) and their node-batch inputs."""

from ._batch import NodeBatch

__all__ = ["NodeBatch"]
