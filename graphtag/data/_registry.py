"""Dataset registry and :func:`load_dataset`, the single entry point for every data source."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from torch_geometric.data import Data

from ..errors import GraphtagError
from ._spec import DatasetSpec, parse_spec

__all__ = [
    "BUILTIN_DATASETS",
    "FEATURE_OPTIONS",
    "DatasetInfo",
    "cache_dir",
    "dataset_files",
    "embedded_path",
    "load_dataset",
]


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a named dataset (also listed in ``datasets/README.md``)."""

    name: str
    description: str
    num_nodes: int | None
    num_edges: int | None  # undirected, after cleaning
    num_tasks: int | None
    spec: str  # example spec
    source: str


BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    "blogcatalog": DatasetInfo(
        "blogcatalog",
        "BlogCatalog social network, user interest groups (embedded)",
        10312,
        333983,
        39,
        "blogcatalog",
        "Tang & Liu, KDD 2009; DeepWalk's copy",
    ),
    "wikipedia-pos": DatasetInfo(
        "wikipedia-pos",
        "Wikipedia word co-occurrence, part-of-speech tags (embedded)",
        4777,
        92295,
        40,
        "wikipedia-pos",
        "node2vec (Grover & Leskovec, KDD 2016); ProNE's copy",
    ),
    "humango": DatasetInfo(
        "humango",
        "human protein interactions, 32 node attributes, subcellular locations (embedded)",
        3106,
        15978,
        14,
        "humango",
        "MLGNC (Zhao et al., TMLR 2023); HumanGoB3106 (Xu et al., 2016)",
    ),
    "synthetic": DatasetInfo(
        "synthetic",
        "generated graph with planted task groups",
        None,
        None,
        None,
        "synthetic:num_nodes=3000,num_tasks=12,num_groups=3,seed=0",
        "graphtag.data.make_multilabel_graph",
    ),
    "mat": DatasetInfo(
        "mat",
        "MATLAB file with 'network' (N x N) and 'group' (N x T) sparse matrices",
        None,
        None,
        None,
        "mat:/path/to/blogcatalog.mat",
        "BlogCatalog/PPI/Flickr/YouTube social-dimension files",
    ),
    "snap": DatasetInfo(
        "snap",
        "SNAP ground-truth communities: top-k communities as tasks on their induced subgraph",
        None,
        None,
        None,
        "snap:com-dblp.ungraph.txt.gz,com-dblp.all.cmty.txt.gz,num_tasks=100",
        "snap.stanford.edu/data (com-*)",
    ),
    "csv": DatasetInfo(
        "csv",
        "comma-separated edge, label and (optional) node attribute files",
        None,
        None,
        None,
        "csv:edges=edge_list.csv,y=labels.csv,x=features.csv",
        "any attributed multi-label graph",
    ),
    "npz": DatasetInfo(
        "npz",
        "NumPy archive with edge_index, y and optional x (graphtag.data.save_graph)",
        None,
        None,
        None,
        "npz:/path/to/graph.npz",
        "any PyG Data (graphtag.data.save_graph)",
    ),
    "ogbn-proteins": DatasetInfo(
        "ogbn-proteins",
        "OGB protein association graph, 112 binary tasks, species split",
        132534,
        39561252,
        112,
        "ogbn-proteins:root=/path/to/ogb",
        "Open Graph Benchmark",
    ),
}


def embedded_path(filename: str) -> Path:
    """Path of a file shipped inside the package (``graphtag/data/_embedded``)."""
    path = Path(str(resources.files("graphtag.data") / "_embedded" / filename))
    if not path.exists():
        raise GraphtagError(
            f"embedded data file {filename!r} is missing from the installed package at {path}; "
            "reinstall graphtag"
        )
    return path


def cache_dir() -> Path:
    """Where processed tensors are cached (``$GRAPHTAG_CACHE`` or ``~/.cache/graphtag``)."""
    root = os.environ.get("GRAPHTAG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "graphtag",
    )
    return Path(root)


def _need_args(spec: DatasetSpec, count: int, usage: str) -> None:
    if len(spec.args) != count:
        raise GraphtagError(f"dataset spec {spec.text!r}: expected {usage}")


#: ``key=value`` options every dataset spec accepts (the feature recipe and embedding width).
FEATURE_OPTIONS = ("features", "embedding_dim")


def _feature_options(spec: DatasetSpec) -> dict[str, Any]:
    """``features`` and ``embedding_dim`` keyword arguments of a loader, from the spec."""
    dim = spec.option("embedding_dim", None, int)
    if dim is not None and int(dim) < 1:  # type: ignore[call-overload]
        raise GraphtagError(f"dataset spec {spec.text!r}: embedding_dim must be >= 1, got {dim}")
    return {"features": spec.options.get("features", "auto"), "embedding_dim": dim}


@dataclass(frozen=True)
class _Source:
    """How one spec name is loaded and which files it reads."""

    usage: str
    num_args: int
    options: tuple[str, ...]
    load: Callable[[DatasetSpec, int, Path | None], Data]
    files: Callable[[DatasetSpec, Path | None], dict[str, Path]]


def _embedded(*names: str) -> Callable[[DatasetSpec, Path | None], dict[str, Path]]:
    return lambda spec, root: {n: embedded_path(n) for n in names}


def _load_blogcatalog(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._mat import load_mat

    path = embedded_path("blogcatalog.mat")
    return load_mat(path, name="blogcatalog", seed=seed, **_feature_options(spec))


def _load_wikipedia(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._snap import load_snap

    edges, cmty = embedded_path("wikipedia-pos.edges"), embedded_path("wikipedia-pos.cmty")
    opts = _feature_options(spec)
    return load_snap(edges, cmty, num_tasks=None, name="wikipedia-pos", seed=seed, **opts)


def _load_humango(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._attributed import load_npz

    data = load_npz(
        embedded_path("humango.npz"), name="humango", seed=seed, **_feature_options(spec)
    )
    data.meta["source"] = "HumanGo (embedded, datasets/humango/prepare.py)"
    return data


def _load_mat(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._mat import load_mat

    path = Path(spec.args[0])
    return load_mat(path, name=path.stem, seed=seed, **_feature_options(spec))


def _snap_num_tasks(spec: DatasetSpec) -> int | None:
    if spec.options.get("num_tasks", "").lower() == "all":
        return None
    value = spec.option("num_tasks", 100, int)
    assert isinstance(value, int)
    if value < 1:
        raise GraphtagError(f"dataset spec {spec.text!r}: num_tasks must be >= 1 or 'all'")
    return value


def _load_snap(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._snap import load_snap

    num_tasks = _snap_num_tasks(spec)
    edges, cmty = (Path(a) for a in spec.args)
    name = edges.name.split(".")[0] or edges.name
    opts = _feature_options(spec)
    return load_snap(edges, cmty, num_tasks=num_tasks, name=name, seed=seed, **opts)


def _csv_paths(spec: DatasetSpec) -> dict[str, Path]:
    for key in ("edges", "y"):
        if not spec.options.get(key):
            raise GraphtagError(
                f"dataset spec {spec.text!r}: {key}= is missing or empty; expected "
                f"{_SOURCES['csv'].usage}"
            )
    return {k: Path(spec.options[k]) for k in ("edges", "y", "x") if spec.options.get(k)}


def _load_csv(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._attributed import load_csv

    paths = _csv_paths(spec)
    name = spec.options.get("name") or paths["edges"].parent.name or "csv"
    return load_csv(
        paths["edges"], paths["y"], paths.get("x"), name=name, seed=seed, **_feature_options(spec)
    )


def _load_npz(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._attributed import load_npz

    path = Path(spec.args[0])
    name = spec.options.get("name") or path.stem
    return load_npz(path, name=name, seed=seed, **_feature_options(spec))


def _ogb_root(spec: DatasetSpec, root: Path | None) -> Path:
    if "root" in spec.options and not spec.options["root"]:
        raise GraphtagError(
            f"dataset spec {spec.text!r}: root= is empty; give the folder holding ogbn_proteins/ "
            "or drop the option (default: the cache folder)"
        )
    return Path(spec.options.get("root") or root or cache_dir() / "ogb")


def _load_ogb(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._ogb import load_ogbn_proteins

    return load_ogbn_proteins(_ogb_root(spec, root), seed=seed, **_feature_options(spec))


def _ogb_files(spec: DatasetSpec, root: Path | None) -> dict[str, Path]:
    from ._ogb import ogbn_proteins_files

    return ogbn_proteins_files(_ogb_root(spec, root))


def _load_synthetic(spec: DatasetSpec, seed: int, root: Path | None) -> Data:
    from ._synthetic import synthetic_from_spec

    return synthetic_from_spec(spec, split_seed=seed)


def _arg_files(spec: DatasetSpec, root: Path | None) -> dict[str, Path]:
    return {a: Path(a) for a in spec.args}


def _no_files(spec: DatasetSpec, root: Path | None) -> dict[str, Path]:
    return {}


def _synthetic_options() -> tuple[str, ...]:
    from ._synthetic import SYNTHETIC_OPTIONS

    return SYNTHETIC_OPTIONS


_SOURCES: dict[str, _Source] = {
    "blogcatalog": _Source(
        "no arguments for the embedded 'blogcatalog'",
        0,
        FEATURE_OPTIONS,
        _load_blogcatalog,
        _embedded("blogcatalog.mat"),
    ),
    "wikipedia-pos": _Source(
        "no arguments for the embedded 'wikipedia-pos'",
        0,
        FEATURE_OPTIONS,
        _load_wikipedia,
        _embedded("wikipedia-pos.edges", "wikipedia-pos.cmty"),
    ),
    "humango": _Source(
        "no arguments for the embedded 'humango'",
        0,
        FEATURE_OPTIONS,
        _load_humango,
        _embedded("humango.npz"),
    ),
    "mat": _Source("mat:PATH", 1, FEATURE_OPTIONS, _load_mat, _arg_files),
    "snap": _Source(
        "snap:EDGES,COMMUNITIES[,num_tasks=100]",
        2,
        ("num_tasks", *FEATURE_OPTIONS),
        _load_snap,
        _arg_files,
    ),
    "csv": _Source(
        "csv:edges=EDGES.csv,y=LABELS.csv[,x=ATTRIBUTES.csv][,name=NAME]",
        0,
        ("edges", "y", "x", "name", *FEATURE_OPTIONS),
        _load_csv,
        lambda spec, root: {str(p): p for p in _csv_paths(spec).values()},
    ),
    "npz": _Source("npz:PATH[,name=NAME]", 1, ("name", *FEATURE_OPTIONS), _load_npz, _arg_files),
    "ogbn-proteins": _Source(
        "ogbn-proteins[:root=DIR]", 0, ("root", *FEATURE_OPTIONS), _load_ogb, _ogb_files
    ),
    "synthetic": _Source("synthetic[:key=value,...]", 0, (), _load_synthetic, _no_files),
}


def _source(spec: str) -> tuple[DatasetSpec, _Source]:
    """The parsed spec and its source, with the argument count and options checked."""
    parsed = parse_spec(spec)
    source = _SOURCES.get(parsed.name)
    if source is None:
        known = ", ".join(sorted(BUILTIN_DATASETS))
        raise GraphtagError(f"unknown dataset {parsed.name!r} in spec {spec!r}; known: {known}")
    _need_args(parsed, source.num_args, source.usage)
    options = source.options if parsed.name != "synthetic" else _synthetic_options()
    parsed.check_options(set(options))
    return parsed, source


def load_dataset(spec: str, *, seed: int = 0, root: str | os.PathLike | None = None) -> Data:
    """Load any supported dataset as a multi-label graph.

    Args:
        spec: ``NAME[:ARG,...]`` (see :func:`graphtag.data.parse_spec`): ``blogcatalog``,
            ``wikipedia-pos``, ``humango``, ``mat:PATH``,
            ``snap:EDGES,COMMUNITIES[,num_tasks=100]``, ``csv:edges=E,y=L[,x=F]``,
            ``npz:PATH``, ``ogbn-proteins[:root=DIR]``, ``synthetic[:num_nodes=..,...]``. Every
            spec also takes ``features=`` (the feature recipe: ``auto``, ``given``, ``prone``,
            ``structural``, ``given+prone``, ...; see :func:`graphtag.data.node_features`) and
            ``embedding_dim=``.
        seed: Seed of the per-task split (and of the embedding).
        root: Directory for downloaded raw files (``ogbn-proteins``); defaults to the cache.

    Returns:
        A multi-label graph (see :mod:`graphtag.data` for the contract); ``data.meta["features"]``
        describes how ``x`` was made.

    Raises:
        GraphtagError: For an unknown name, a missing or malformed file, or bad options.

    Example:
        >>> data = load_dataset("synthetic:num_nodes=300,num_tasks=6,num_groups=2")
        >>> data.y.shape
        torch.Size([300, 6])
    """
    parsed, source = _source(spec)
    return source.load(parsed, seed, None if root is None else Path(root))


def dataset_files(spec: str, *, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """The files :func:`load_dataset` reads for ``spec``, by name (for content hashing).

    Built-in datasets name their embedded files; ``mat:``, ``snap:``, ``csv:`` and ``npz:``
    their arguments; ``ogbn-proteins`` its raw files under the root; ``synthetic`` none. Paths
    are returned whether or not they exist (a missing file fails in :func:`load_dataset`).

    Args:
        spec: A dataset spec.
        root: As in :func:`load_dataset`.

    Raises:
        GraphtagError: For an unknown name or malformed spec.

    Example:
        >>> sorted(dataset_files("wikipedia-pos"))
        ['wikipedia-pos.cmty', 'wikipedia-pos.edges']
        >>> dataset_files("synthetic:num_nodes=100")
        {}
    """
    parsed, source = _source(spec)
    return source.files(parsed, None if root is None else Path(root))
