"""Argument parsing and dispatch for the ``graphtag`` console script."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from ..errors import GraphtagError

__all__ = ["build_parser", "main"]

#: Largest accepted count flag (``--epochs``, ``--hidden-channels``, ...): larger values overflow
#: the C integers of torch and tqdm long before they could be useful.
MAX_COUNT = 2**31 - 1
#: Largest accepted ``--seed`` (seeds are hashed, but stay within int64 for numpy and JSON).
MAX_SEED = 2**63 - 1

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
_OOM_PATTERNS = ("out of memory", "can't allocate memory", "unable to allocate")


class _Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors are one ``graphtag: error:`` line.

    The exit status stays 2 (``SystemExit(2)``), as for every other user mistake.
    """

    def error(self, message: str) -> NoReturn:
        """Print one line naming the command and the problem, then exit with status 2."""
        command = self.prog.removeprefix("graphtag").strip()
        where = f"{command}: " if command else ""
        text = " ".join(message.split())
        self.exit(2, f"graphtag: error: {where}{text} (see `{self.prog} --help`)\n")


def _int_flag(text: str, low: int, high: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    if value > high:
        raise argparse.ArgumentTypeError(f"expected {expected} (at most {high}), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_flag(text, 1, MAX_COUNT, "a positive integer")


def _nonneg_int(text: str) -> int:
    return _int_flag(text, 0, MAX_SEED, "an integer >= 0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _at_least_two(text: str) -> int:
    return _int_flag(text, 2, MAX_COUNT, "an integer >= 2")


def _max_task_rows(text: str) -> int | str:
    if text == "all":
        return text
    return _int_flag(text, 1, MAX_COUNT, "a positive integer or 'all'")


def _add_executor_flags(p: argparse.ArgumentParser) -> None:
    """Where the real-training jobs of ``run`` and ``check-estimator`` run."""
    from ..executor import EXECUTORS

    p.add_argument(
        "--executor",
        **_choices(EXECUTORS, "where many-model jobs run: in-process (local) or on Ray", "local"),
    )
    p.add_argument("--ray-address", default=None, help="Ray cluster: auto or HOST:PORT")


def _add_recommend_flags(p: argparse.ArgumentParser) -> None:
    """How ``run`` chooses what to train (defaults: graphtag.pipeline.RecommendConfig)."""
    from ..pipeline._config import GROUP_INITS, SCORES, SELECT_MODES, RecommendConfig

    rc = RecommendConfig()
    p.add_argument(
        "--select",
        **_choices(
            SELECT_MODES,
            "predicted: cheap predicted scores, then the best --confirm candidates and one model "
            "are trained and compared on validation; validation: train every candidate",
            rc.select,
        ),
    )
    p.add_argument(
        "--confirm",
        type=_nonneg_int,
        default=None,
        help=f"candidates trained for confirmation besides one model ({rc.confirm})",
    )
    p.add_argument(
        "--single-task",
        **_choices(
            ("auto", "on", "off"),
            "one model per task as a candidate (auto: when there are at most 40 tasks)",
            rc.single_task,
        ),
    )
    p.add_argument(
        "--group-init",
        **_choices(
            GROUP_INITS,
            "group models from scratch, or warm-started from the base model",
            rc.group_init,
        ),
    )
    p.add_argument(
        "--score",
        **_choices(
            SCORES,
            "cheap score: Grad-TAG surrogates of each group's fine-tune, or short probe fine-tunes",
            rc.score,
        ),
    )
    p.add_argument(
        "--holdout",
        type=_unit_interval,
        default=None,
        help="share of each task's validation labels kept from checkpoint selection to compare "
        f"candidates on, in [0, 1) ({rc.holdout:g}; 0: compare on the selecting labels)",
    )
    p.add_argument(
        "--search",
        action="store_true",
        help="also refine the best predicted k-group partition by single-task moves (proposed "
        "by the surrogates, decided by the cheap score)",
    )


def _add_feature_flags(p: argparse.ArgumentParser) -> None:
    """Gradient-feature flags shared by ``run`` and ``check-estimator``."""
    p.add_argument("--projection-dim", type=_positive_int, default=None, help="gradient dim d")
    p.add_argument(
        "--max-task-rows",
        type=_max_task_rows,
        default=None,
        help="most training and most validation rows per task in the gradient features "
        "(a seeded subsample; default 10000), or all",
    )


def _num_groups(text: str) -> int | str:
    if text == "auto":
        return text
    return _int_flag(text, 1, MAX_COUNT, "a positive integer or 'auto'")


def _choices(names: Sequence[str], help_text: str, default: str) -> dict:
    """``add_argument`` keywords of a flag whose values come from a registry."""
    return {"default": default, "choices": list(names), "help": f"{help_text} (default: {default})"}


def _add_common(p: argparse.ArgumentParser, *, out_required: bool = True) -> None:
    from ..models import MODEL_NAMES

    p.add_argument(
        "--dataset",
        default="blogcatalog",
        help="dataset spec NAME[:ARG,...] (default: blogcatalog; see `graphtag datasets`)",
    )
    p.add_argument("--out", required=out_required, help="output directory (created)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="master seed (default: 0)")
    p.add_argument("--model", **_choices(MODEL_NAMES, "base GNN", "sign"))
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--epochs", type=_positive_int, default=None, help="override training epochs")
    p.add_argument("--lr", type=_positive_float, default=None, help="override Adam's learning rate")
    p.add_argument(
        "--ema-decay",
        type=_unit_interval,
        default=None,
        help="override the per-epoch decay of the weight average (0: no averaging)",
    )
    p.add_argument(
        "--hidden-channels", type=_positive_int, default=None, help="override the hidden width"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--restart", action="store_true", help="ignore finished stages in --out and start afresh"
    )
    p.add_argument(
        "--max-memory",
        default="auto",
        metavar="SIZE",
        help="memory budget: auto (what is free now; default), off, or a size such as 16G for "
        "the whole process; the run stops before its first stage when the estimate exceeds it",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``graphtag`` argument parser (sub-commands ``datasets``, ``train``, ``run``, ...)."""
    from ..estimation import FINETUNE_RECIPES
    from ..grouping import GROUPINGS
    from ..methods import DEFAULT_METHOD, METHODS

    parser = _Parser(
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
        "--max-groups",
        type=_at_least_two,
        default=6,
        help="largest number of groups that --num-groups auto tries (6)",
    )
    p.add_argument("--method", **_choices(METHODS, "how task affinity is computed", DEFAULT_METHOD))
    p.add_argument(
        "--grouping", **_choices(GROUPINGS, "how groups are formed from the affinity", "sdp")
    )
    p.add_argument("--num-seeds", type=_positive_int, default=3, help="evaluation seeds (3)")
    p.add_argument(
        "--finetune-recipe",
        **_choices(
            FINETUNE_RECIPES,
            "real fine-tune of --method higher-order and pairwise: gd (deterministic gradient "
            "descent from the base model) or base (the base model's own recipe)",
            "gd",
        ),
    )
    _add_recommend_flags(p)
    p.add_argument("--num-subsets", type=_positive_int, default=None, help="sampled task subsets")
    p.add_argument(
        "--subset-size",
        type=_positive_int,
        default=None,
        help="tasks per subset (10; grown, with a note, when --num-subsets subsets of this size "
        "cannot make every pair of tasks co-occur 5 times)",
    )
    _add_feature_flags(p)
    _add_executor_flags(p)

    p = sub.add_parser(
        "check-estimator", help="compare Grad-TAG loss estimates with real fine-tuning"
    )
    _add_common(p)
    _add_executor_flags(p)
    p.add_argument("--num-subsets", type=_positive_int, required=True, help="subsets to check")
    p.add_argument("--subset-size", type=_positive_int, default=10, help="tasks per subset (10)")
    _add_feature_flags(p)
    p.add_argument(
        "--reference",
        **_choices(
            FINETUNE_RECIPES,
            "real fine-tune to compare with: gd (deterministic full-batch gradient descent) or "
            "base (the base model's recipe, run with two seeds to report its noise)",
            "gd",
        ),
    )
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


def _check_out(out: str) -> None:
    """Create the ``--out`` directory, or raise :class:`GraphtagError` saying why it cannot be."""
    if not out.strip():
        raise GraphtagError("--out is empty; give an output directory, e.g. --out runs/blogcatalog")
    path = Path(out)
    try:
        if path.exists() and not path.is_dir():
            raise GraphtagError(
                f"--out {out}: exists and is not a directory; choose a directory path"
            )
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK | os.X_OK)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise GraphtagError(
            f"--out {out}: cannot create the output directory ({reason}); choose a writable path"
        ) from None
    if not writable:
        raise GraphtagError(f"--out {out}: the directory is not writable; choose another path")


def _check_args(args: argparse.Namespace) -> None:
    """Checks of flag combinations that argparse cannot express."""
    if getattr(args, "executor", None) is not None:
        from ..executor import ExecutorConfig

        ExecutorConfig(args.executor, args.ray_address)
    if getattr(args, "out", None) is not None:
        _check_out(args.out)
    if getattr(args, "max_memory", None) is not None:
        from ..memory import parse_memory_budget

        args.max_memory = parse_memory_budget(args.max_memory)  # fail before loading any data


def _show_warning(
    previous: Callable[..., None],
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Print graphtag's own warnings as one ``graphtag: warning:`` line; others as before."""
    if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
        previous(message, category, filename, lineno, file, line)
        return
    text = " ".join(str(message).split())
    print(f"graphtag: warning: {text}", file=sys.stderr)


def _out_of_memory(exc: BaseException) -> str | None:
    """A one-line description when ``exc`` is an allocation failure (torch, numpy), else None."""
    if not isinstance(exc, MemoryError | RuntimeError):
        return None
    text = " ".join(str(exc).split())
    if not isinstance(exc, MemoryError) and not any(p in text.lower() for p in _OOM_PATTERNS):
        return None
    size = re.search(r"allocate (\d+) bytes", text)
    if size:
        return f"tried to allocate {int(size.group(1)) / 2**30:.1f} GiB"
    return text[:200] or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Usage errors (unknown flags, bad flag values) exit through ``SystemExit(2)`` after one
    ``graphtag: error:`` line on stderr; every other user mistake (a
    :class:`~graphtag.errors.GraphtagError`, or running out of memory) prints one such line and
    returns 2. Warnings raised by graphtag are printed as one ``graphtag: warning:`` line each.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="graphtag: %(levelname)s: %(message)s")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            if args.command == "datasets":
                return _cmd_datasets(args)
            _check_args(args)
            from ..memory import configure_allocator
            from ._commands import COMMANDS

            configure_allocator()  # large blocks from mmap: freed memory returns to the OS
            COMMANDS[args.command](args)
            return 0
    except GraphtagError as exc:
        print(f"graphtag: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphtag: interrupted; finished stages are kept in --out", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as exc:
        what = _out_of_memory(exc)
        if what is None:
            raise
        print(
            f"graphtag: error: out of memory ({what}); the job is too large for this machine: "
            "use a smaller dataset, --hidden-channels or --projection-dim",
            file=sys.stderr,
        )
        return 2
