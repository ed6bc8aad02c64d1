"""Data layer: dataset specs, loaders, node features, per-task splits and the graph contract."""

from ._attributed import NPZ_KEYS, from_pyg, load_csv, load_npz, save_graph
from ._embedding import prone_embedding
from ._features import (
    DEFAULT_EMBEDDING,
    EMBEDDINGS,
    EmbeddingMethod,
    node_features,
    normalized_adjacency,
    structural_features,
)
from ._graph import build_multilabel_graph, check_multilabel_graph, clean_edges, task_warnings
from ._registry import (
    BUILTIN_DATASETS,
    FEATURE_OPTIONS,
    DatasetInfo,
    cache_dir,
    dataset_files,
    embedded_path,
    load_dataset,
)
from ._spec import DatasetSpec, parse_spec
from ._splits import per_task_split
from ._synthetic import SYNTHETIC_OPTIONS, make_multilabel_graph
from ._validate import SPLIT_MASKS, as_multilabel, check_labels

__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_EMBEDDING",
    "EMBEDDINGS",
    "FEATURE_OPTIONS",
    "NPZ_KEYS",
    "SPLIT_MASKS",
    "SYNTHETIC_OPTIONS",
    "DatasetInfo",
    "DatasetSpec",
    "EmbeddingMethod",
    "as_multilabel",
    "build_multilabel_graph",
    "cache_dir",
    "check_labels",
    "check_multilabel_graph",
    "clean_edges",
    "dataset_files",
    "embedded_path",
    "from_pyg",
    "load_csv",
    "load_dataset",
    "load_npz",
    "make_multilabel_graph",
    "node_features",
    "normalized_adjacency",
    "parse_spec",
    "per_task_split",
    "prone_embedding",
    "save_graph",
    "structural_features",
    "task_warnings",
]
