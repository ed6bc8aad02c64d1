"""Dataset registry and :func:`load_dataset`, the single entry point for every data source."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from torch_geometric.data import Data

from ..errors import GraphtagError
from ._spec import DatasetSpec, parse_spec

__all__ = ["BUILTIN_DATASETS", "DatasetInfo", "cache_dir", "embedded_path", "load_dataset"]


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


def load_dataset(spec: str, *, seed: int = 0, root: str | os.PathLike | None = None) -> Data:
    """Load any supported dataset as a multi-label graph.

    Args:
        spec: ``NAME[:ARG,...]`` (see :func:`graphtag.data.parse_spec`): ``blogcatalog``,
            ``wikipedia-pos``, ``mat:PATH``, ``snap:EDGES,COMMUNITIES[,num_tasks=100]``,
            ``ogbn-proteins[:root=DIR]``, ``synthetic[:num_nodes=..,num_tasks=..,...]``.
        seed: Seed of the per-task split (and of structural features).
        root: Directory for downloaded raw files (``ogbn-proteins``); defaults to the cache.

    Returns:
        A multi-label graph (see :mod:`graphtag.data` for the contract).

    Raises:
        GraphtagError: For an unknown name, a missing or malformed file, or bad options.

    Example:
        >>> data = load_dataset("synthetic:num_nodes=300,num_tasks=6,num_groups=2")
        >>> data.y.shape
        torch.Size([300, 6])
    """
    parsed = parse_spec(spec)
    name = parsed.name
    if name == "blogcatalog":
        _need_args(parsed, 0, "no arguments for the embedded 'blogcatalog'")
        parsed.check_options(set())
        from ._mat import load_mat

        return load_mat(embedded_path("blogcatalog.mat"), name="blogcatalog", seed=seed)
    if name == "wikipedia-pos":
        _need_args(parsed, 0, "no arguments for the embedded 'wikipedia-pos'")
        parsed.check_options(set())
        from ._snap import load_snap

        return load_snap(
            embedded_path("wikipedia-pos.edges"),
            embedded_path("wikipedia-pos.cmty"),
            num_tasks=None,
            name="wikipedia-pos",
            seed=seed,
        )
    if name == "mat":
        _need_args(parsed, 1, "mat:PATH")
        parsed.check_options(set())
        from ._mat import load_mat

        return load_mat(Path(parsed.args[0]), name=Path(parsed.args[0]).stem, seed=seed)
    if name == "snap":
        _need_args(parsed, 2, "snap:EDGES,COMMUNITIES[,num_tasks=100]")
        parsed.check_options({"num_tasks"})
        num_tasks: int | None
        if parsed.options.get("num_tasks", "").lower() == "all":
            num_tasks = None
        else:
            value = parsed.option("num_tasks", 100, int)
            assert isinstance(value, int)
            if value < 1:
                raise GraphtagError(f"dataset spec {spec!r}: num_tasks must be >= 1 or 'all'")
            num_tasks = value
        from ._snap import load_snap

        edges, cmty = (Path(a) for a in parsed.args)
        name = edges.name.split(".")[0] or edges.name
        return load_snap(edges, cmty, num_tasks=num_tasks, name=name, seed=seed)
    if name == "ogbn-proteins":
        _need_args(parsed, 0, "ogbn-proteins[:root=DIR]")
        parsed.check_options({"root"})
        if "root" in parsed.options and not parsed.options["root"]:
            raise GraphtagError(
                f"dataset spec {spec!r}: root= is empty; give the folder holding ogbn_proteins/ "
                "or drop the option (default: the cache folder)"
            )
        from ._ogb import load_ogbn_proteins

        base = parsed.options.get("root") or root or cache_dir() / "ogb"
        return load_ogbn_proteins(Path(base), seed=seed)
    if name == "synthetic":
        _need_args(parsed, 0, "synthetic[:key=value,...]")
        from ._synthetic import SYNTHETIC_OPTIONS, synthetic_from_spec

        parsed.check_options(set(SYNTHETIC_OPTIONS))
        return synthetic_from_spec(parsed, split_seed=seed)
    known = ", ".join(sorted(BUILTIN_DATASETS))
    raise GraphtagError(f"unknown dataset {name!r} in spec {spec!r}; known: {known}")
