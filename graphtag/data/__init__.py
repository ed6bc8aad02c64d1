"""Data layer: dataset specs, loaders, per-task splits and the multi-label graph contract."""

from ._features import normalized_adjacency, structural_features
from ._graph import build_multilabel_graph, check_multilabel_graph, clean_edges, task_warnings
from ._registry import BUILTIN_DATASETS, DatasetInfo, cache_dir, embedded_path, load_dataset
from ._spec import DatasetSpec, parse_spec
from ._splits import per_task_split
from ._synthetic import SYNTHETIC_OPTIONS, make_multilabel_graph
from ._validate import SPLIT_MASKS, as_multilabel, check_labels

__all__ = [
    "BUILTIN_DATASETS",
    "SPLIT_MASKS",
    "SYNTHETIC_OPTIONS",
    "DatasetInfo",
    "DatasetSpec",
    "as_multilabel",
    "build_multilabel_graph",
    "cache_dir",
    "check_labels",
    "check_multilabel_graph",
    "clean_edges",
    "embedded_path",
    "load_dataset",
    "make_multilabel_graph",
    "normalized_adjacency",
    "parse_spec",
    "per_task_split",
    "structural_features",
    "task_warnings",
]
