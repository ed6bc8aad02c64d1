"""Argument parsing and dispatch for the ``graphtag`` console script."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import GraphtagError

__all__ = ["build_parser", "main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _num_groups(text: str) -> int | str:
    if text == "auto":
        return text
    return _positive_int(text)


def _add_common(p: argparse.ArgumentParser, *, out_required: bool = True) -> None:
    p.add_argument(
        "--dataset",
        default="blogcatalog",
        help="dataset spec NAME[:ARG,...] (default: blogcatalog; see `graphtag datasets`)",
    )
    p.add_argument("--out", required=out_required, help="output directory (created)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="master seed (default: 0)")
    p.add_argument(
        "--model",
        default="sign",
        choices=["sign", "sage", "gcn", "gat"],
        help="base GNN (default: sign)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--epochs", type=_positive_int, default=None, help="override training epochs")
    p.add_argument(
        "--hidden-channels", type=_positive_int, default=None, help="override the hidden width"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--executor",
        default="local",
        choices=["local", "ray"],
        help="where many-model jobs run: in-process (local, default) or on Ray",
    )
    p.add_argument("--ray-address", default=None, help="Ray cluster: auto or HOST:PORT")
    p.add_argument(
        "--restart", action="store_true", help="ignore finished stages in --out and start afresh"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``graphtag`` argument parser (sub-commands ``datasets``, ``train``, ``run``, ...)."""
    parser = argparse.ArgumentParser(
        prog="graphtag",
        description="Find which label tasks of a graph should be learned together.",
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"graphtag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("datasets", help="list the built-in datasets and their sizes")

    p = sub.add_parser("train", help="train one multi-task model and write DIR/report.json")
    _add_common(p)
    p.add_argument("--tasks", default="all", help="all, or comma-separated task indices")

    p = sub.add_parser("run", help="the whole pipeline: affinity, groups, grouped models, report")
    _add_common(p)
    p.add_argument(
        "--num-groups",
        type=_num_groups,
        default="auto",
        help="number of task groups, or auto (chosen on validation; default)",
    )
    p.add_argument(
        "--method",
        default="grad-tag",
        choices=["grad-tag", "tag", "higher-order", "pairwise", "random"],
        help="how task affinity is computed (default: grad-tag)",
    )
    p.add_argument(
        "--grouping",
        default="sdp",
        choices=["sdp", "spectral", "tag-selection"],
        help="how groups are formed from the affinity (default: sdp)",
    )
    p.add_argument("--num-seeds", type=_positive_int, default=3, help="evaluation seeds (3)")
    p.add_argument("--num-subsets", type=_positive_int, default=None, help="sampled task subsets")
    p.add_argument("--subset-size", type=_positive_int, default=None, help="tasks per subset")
    p.add_argument("--projection-dim", type=_positive_int, default=None, help="gradient dim d")

    p = sub.add_parser(
        "check-estimator", help="compare Grad-TAG loss estimates with real fine-tuning"
    )
    _add_common(p)
    p.add_argument("--num-subsets", type=_positive_int, required=True, help="subsets to check")
    p.add_argument("--subset-size", type=_positive_int, default=10, help="tasks per subset (10)")
    p.add_argument("--projection-dim", type=_positive_int, default=None, help="gradient dim d")
    return parser


def _cmd_datasets(args: argparse.Namespace) -> int:
    from ..data import BUILTIN_DATASETS

    rows = [("name", "nodes", "edges", "tasks", "example spec", "description")]
    for info in BUILTIN_DATASETS.values():
        rows.append(
            (
                info.name,
                f"{info.num_nodes:,}" if info.num_nodes else "-",
                f"{info.num_edges:,}" if info.num_edges else "-",
                str(info.num_tasks) if info.num_tasks else "-",
                info.spec,
                info.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="graphtag: %(levelname)s: %(message)s")
    try:
        if args.command == "datasets":
            return _cmd_datasets(args)
        from .. import pipeline

        if args.command == "train":
            pipeline.train_command(args)
        elif args.command == "run":
            pipeline.run_command(args)
        elif args.command == "check-estimator":
            pipeline.check_estimator_command(args)
        return 0
    except GraphtagError as exc:
        print(f"graphtag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphtag: interrupted; finished stages are kept in --out", file=sys.stderr)
        return 130
