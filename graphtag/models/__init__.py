"""Multi-task GNNs (SIGN, GraphSAGE/GCN/GAT) and their node-batch inputs."""

from ._batch import NodeBatch, call_model
from ._config import MODEL_NAMES, ModelConfig, build_model, check_tasks
from ._gnn import ENCODERS, MultiTaskGNN, gcn_edge_weights
from ._inputs import GraphInputs, prepare_inputs
from ._sign import SIGN, sign_features

__all__ = [
    "ENCODERS",
    "MODEL_NAMES",
    "SIGN",
    "GraphInputs",
    "ModelConfig",
    "MultiTaskGNN",
    "NodeBatch",
    "build_model",
    "call_model",
    "check_tasks",
    "gcn_edge_weights",
    "prepare_inputs",
    "sign_features",
]
