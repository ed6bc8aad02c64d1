"""Compare task-grouping methods on one dataset: one table of test metrics, seconds and agreement.

For every method in ``--methods`` the script runs ``graphtag run --method METHOD`` (through
``graphtag.cli.main``, in-process) into ``OUT/METHOD/``, so an interrupted or repeated comparison
reuses every finished stage and model. All methods get the same dataset, master seed, evaluation
seeds, training recipe and ``--num-groups``. The base model (the pipeline's ``base`` stage, which
depends only on the dataset, recipe and seed) is trained once, in the first method's directory, and
its files and manifest are copied into the others, where the pipeline's own manifest check reuses
them. ``pairwise`` runs only when the dataset has at most ``--max-pairwise-tasks`` tasks (it
fine-tunes T (T + 1) / 2 models); ``higher-order`` fine-tunes ``--ho-num-subsets`` subsets for
real.

Rows of the table (``OUT/compare.csv``, ``OUT/compare.md``, ``OUT/compare.png``):

* ``all-in-one``: one model for all tasks (the ``mtl_all`` block of the reference report: the
  grad-tag run, else the first method that ran);
* one row per method: the ``grouped`` block of its report (one model per group);
* ``random groups``: random partitions with the reference method's group sizes (the reference
  report's ``random_groups`` block).

Columns: test macro ROC-AUC / AP / F1 (threshold 0 on the logit), mean and population std over
``--seeds`` evaluation seeds (``seed .. seed + seeds - 1``, from the reports); seconds spent on the
affinity (gradient features + affinity stage for grad-tag; the affinity stage otherwise) and total
seconds of the row's own models (data + inputs + base model + features + affinity + groups + all
seeds' group models for a method; data + inputs + base model + the other seeds' all-in-one models
for ``all-in-one``; data + inputs + random-group models for ``random groups``), from the reports'
stage timings (a reused stage counts the seconds recorded when it was computed); Spearman
correlation of the upper triangle of each method's ``affinity.npy`` with the higher-order one (when
higher-order ran); adjusted Rand index of the groups with the planted groups (synthetic graphs); and
the validation macro ROC-AUC of the same models (mean over seeds), recomputed from the models the
pipeline saved. Nothing is chosen on test: the number of groups is chosen inside each run (on
validation or from the affinity), and the "best" line at the end picks the highest *validation*
macro AUC. The validation AUC is optimistic for every row alike (each model was early-stopped on
it), so it ranks rows rather than estimating their test AUC.

Commands (from the repository root; the full-size runs take hours on 2 CPU cores):
    PYTHONPATH=. python experiments/compare_methods.py --smoke                  # about a minute
    PYTHONPATH=. python experiments/compare_methods.py                          # default synthetic
    PYTHONPATH=. python experiments/compare_methods.py --dataset blogcatalog
    PYTHONPATH=. python experiments/compare_methods.py --dataset wikipedia-pos
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import math
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from graphtag._utils import derive_seed, git_revision, versions
from graphtag.artifacts import atomic_write, load_json, save_json
from graphtag.cli import main as graphtag_main
from graphtag.errors import GraphtagError
from graphtag.methods import get_method

METHODS = ("grad-tag", "tag", "higher-order", "pairwise", "random")
DEFAULT_METHODS = "grad-tag,tag,higher-order,random"
SMOKE_DATASET = "synthetic:num_nodes=400,num_tasks=6,num_groups=2,seed=0"
METRICS = ("macro_auc", "macro_ap", "macro_f1")
COLUMNS = [
    "method",
    "num_groups",
    "macro_auc",
    "macro_auc_std",
    "macro_ap",
    "macro_ap_std",
    "macro_f1",
    "macro_f1_std",
    "affinity_seconds",
    "total_seconds",
    "spearman_higher_order",
    "ari_planted",
    "val_macro_auc",
    "macro_f1_tuned",
    "macro_f1_tuned_std",
    "num_seeds",
    "run_seconds",
    "groups",
]
BASE_FILES = ("base_model.pt", "base.json", "base.manifest.json")  # manifest last


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default=None, help="dataset spec (default: synthetic)")
    p.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated, from {', '.join(METHODS)} (default: {DEFAULT_METHODS})",
    )
    p.add_argument("--seeds", type=_positive_int, default=None, help="evaluation seeds (3)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    p.add_argument(
        "--out", type=Path, default=None, help="default: experiments/results/compare/<dataset>"
    )
    p.add_argument("--num-groups", default="auto", help="number of groups or auto (default)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="override training epochs")
    p.add_argument("--hidden-channels", type=_positive_int, default=None, help="hidden width")
    p.add_argument("--num-subsets", type=_positive_int, default=None, help="grad-tag subsets")
    p.add_argument("--subset-size", type=_positive_int, default=None, help="tasks per subset")
    p.add_argument("--projection-dim", type=_positive_int, default=None, help="grad-tag d")
    p.add_argument(
        "--ho-num-subsets",
        type=_positive_int,
        default=200,
        help="subsets fine-tuned for real by higher-order (default: 200)",
    )
    p.add_argument(
        "--max-pairwise-tasks",
        type=_positive_int,
        default=16,
        help="run pairwise only up to this many tasks (default: 16)",
    )
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--smoke", action="store_true", help="tiny graph and settings (a minute)")
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        p.error(f"--methods: unknown {bad or 'empty list'}; choose from {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        p.error(f"--methods lists a method twice: {args.methods}")
    args.methods = methods
    if args.num_groups != "auto":
        try:
            if int(args.num_groups) < 1:
                raise ValueError
        except ValueError:
            p.error(f"--num-groups: expected a positive integer or auto, got {args.num_groups!r}")
    if args.smoke:
        args.dataset = args.dataset or SMOKE_DATASET
        args.seeds = args.seeds or 2
        args.epochs = args.epochs or 5
        args.hidden_channels = args.hidden_channels or 16
        args.num_subsets = args.num_subsets or 20
        args.projection_dim = args.projection_dim or 16
        args.ho_num_subsets = min(args.ho_num_subsets, 20)
    args.dataset = args.dataset or "synthetic"
    args.seeds = args.seeds or 3
    return args


def default_out(spec: str, name: str) -> Path:
    """``experiments/results/compare/<name>``, plus a spec hash when the spec has arguments."""
    folder = name if spec.strip().lower() == name else f"{name}-{_short_hash(spec)}"
    return Path(__file__).resolve().parent / "results" / "compare" / folder


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_argv(method: str, args: argparse.Namespace, out: Path) -> list[str]:
    """The ``graphtag`` arguments of one method's run."""
    argv = ["run", "--dataset", args.dataset, "--out", str(out), "--method", method]
    argv += ["--seed", str(args.seed), "--num-seeds", str(args.seeds)]
    argv += ["--num-groups", str(args.num_groups)]
    optional = {"--epochs": args.epochs, "--hidden-channels": args.hidden_channels}
    # Subset and projection flags go to the methods that have those parameters (registry).
    params = get_method(method)().get_params()
    if "projection_dim" in params:
        optional |= {"--num-subsets": args.num_subsets, "--projection-dim": args.projection_dim}
    elif "num_subsets" in params:  # real training: its own (smaller) subset budget
        optional["--num-subsets"] = args.ho_num_subsets
    if "subset_size" in params:
        optional["--subset-size"] = args.subset_size
    optional["--device"] = args.device
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, str(value)]
    if args.quiet:
        argv.append("--quiet")
    return argv


def share_base(src: Path, dst: Path) -> bool:
    """Copy a finished ``base`` stage from ``src`` into ``dst`` (the pipeline re-checks it)."""
    man = src / "base.manifest.json"
    if not all((src / f).exists() for f in BASE_FILES):
        return False
    dst_man = dst / "base.manifest.json"
    if dst_man.exists():
        with contextlib.suppress(GraphtagError):
            if load_json(dst_man).get("key_hash") == load_json(man).get("key_hash"):
                return False  # already there (the pipeline still checks the file hashes)
    dst.mkdir(parents=True, exist_ok=True)
    dst_man.unlink(missing_ok=True)
    for name in BASE_FILES:
        with atomic_write(dst / name, "wb") as fh, open(src / name, "rb") as fin:
            shutil.copyfileobj(fin, fh)
    return True


class _ErrorTee:
    """Passes writes through to ``stream`` and keeps graphtag's one-line error messages."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.messages: list[str] = []

    def write(self, text: str) -> int:
        self.stream.write(text)
        if "graphtag: error:" in text:
            self.messages.append(text.strip())
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding, ... of the stream
        return getattr(self.stream, name)


def run_method(argv: list[str]) -> tuple[int, str | None, float]:
    """Run ``graphtag`` with ``argv``: ``(exit status, error line or None, wall seconds)``."""
    tee = _ErrorTee(sys.stderr)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(tee):
            status = graphtag_main(argv)
    except Exception as exc:  # a bug in one method must not lose the others' results
        traceback.print_exc()
        return 1, f"crashed: {type(exc).__name__}: {exc}", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if status == 130:
        raise KeyboardInterrupt
    error = tee.messages[-1] if tee.messages else (f"exit status {status}" if status else None)
    return status, error, seconds


# ---------------------------------------------------------------------------------- table
def spearman_upper(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman correlation of the strict upper triangles of two ``[T, T]`` matrices."""
    from scipy.stats import spearmanr

    iu = np.triu_indices(a.shape[0], k=1)
    x, y = a[iu], b[iu]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    value = float(spearmanr(x, y).statistic)
    return None if math.isnan(value) else value


def ari(groups: list[list[int]], planted: list[list[int]], num_tasks: int) -> float:
    """Adjusted Rand index of two partitions of ``0..num_tasks-1``."""
    from sklearn.metrics import adjusted_rand_score

    def labels(parts: list[list[int]]) -> np.ndarray:
        out = np.full(num_tasks, -1)
        for k, g in enumerate(parts):
            out[np.asarray(g, dtype=np.int64)] = k
        return out

    return float(adjusted_rand_score(labels(planted), labels(groups)))


def _seconds(timings: dict[str, float], *keys: str) -> float | None:
    """Sum of the stage seconds ``keys`` (``None`` when none of them ran)."""
    if not any(k in timings for k in keys):
        return None
    return round(sum(float(timings.get(k, 0.0)) for k in keys), 3)


class _NotCached(Exception):
    pass


def _not_cached() -> Any:
    raise _NotCached


def run_from_report(out: Path, report: dict[str, Any]) -> Any:
    """A :class:`graphtag.pipeline.Run` over ``out`` with the configuration ``report`` saved."""
    from graphtag.pipeline import EstimatorConfig, Run, RunConfig, RunOptions
    from graphtag.training import TrainConfig

    cfg = dict(report["config"])
    cfg["train"] = TrainConfig(**cfg["train"])
    cfg["estimator"] = EstimatorConfig(**cfg["estimator"])
    return Run(RunConfig(**cfg), RunOptions(out, progress=False))


class ValidationScorer:
    """Validation macro ROC-AUC of the models a run saved (never trains: a missing model -> None).

    Args:
        ref_dir: Directory of the reference run (its base model is the seed-``seed`` all-in-one
            model, as in the pipeline).
        ref_report: Its ``report.json``.
    """

    def __init__(self, ref_dir: Path, ref_report: dict[str, Any]) -> None:
        self.ref = run_from_report(ref_dir, ref_report)
        if not self.ref.store.is_done("base", self.ref.stage_key("base")):
            raise GraphtagError(f"{ref_dir}: the saved base model does not match its report")
        self.data = self.ref.data
        self._base_val: float | None = None

    def _val_auc(self, logits: Any) -> float | None:
        from graphtag.metrics import Evaluator

        value = float(Evaluator().evaluate(self.data.y, logits, self.data.val_mask)["macro_auc"])
        return None if math.isnan(value) else value

    def partition_auc(
        self, run: Any, partitions: list[list[list[int]]], block: str
    ) -> float | None:
        """Mean validation macro AUC over the evaluation seeds (``partitions[r]``: seed r)."""
        from graphtag.grouping import fit_groups
        from graphtag.pipeline import ModelCache

        cfg = run.config
        values = []
        for r, groups in enumerate(partitions):
            seed = cfg.seed + r
            if block == "mtl_all" and seed == cfg.seed:
                if self._base_val is None:
                    self._base_val = self._val_auc(self.ref.base_logits())
                values.append(self._base_val)
                continue
            cache = ModelCache(run, block, seed)
            try:
                logits = fit_groups(
                    self.data,
                    self.ref.inputs,
                    groups,
                    cfg.train,
                    seed=seed,
                    cache=lambda tasks, compute, cache=cache: cache(tasks, _not_cached),
                )
            except _NotCached:
                return None
            values.append(self._val_auc(logits))
        if any(v is None for v in values):
            return None
        return round(float(np.mean(values)), 12)


def build_rows(
    results: dict[str, dict[str, Any]], notes: list[str]
) -> tuple[list[dict[str, Any]], str]:
    """Table rows from the finished runs (``results[method]``: report, dir, run seconds)."""
    from graphtag.grouping import random_groups_like

    ref_name = "grad-tag" if "grad-tag" in results else next(iter(results))
    ref = results[ref_name]["report"]
    num_tasks = int(ref["dataset"]["num_tasks"])
    planted = ref["dataset"].get("planted_groups")
    seeds = [int(ref["seed"]) + r for r in range(int(ref["metrics"]["mtl_all"]["num_seeds"]))]
    for name, res in results.items():
        other = res["report"]["metrics"]["mtl_all"]
        if any(other.get(k) != ref["metrics"]["mtl_all"].get(k) for k in METRICS):
            notes.append(
                f"the all-in-one metrics of {name}'s run differ from {ref_name}'s "
                "(same seeds and recipe: nondeterministic training?)"
            )
    ho = None
    if "higher-order" in results:
        ho = np.load(results["higher-order"]["dir"] / "affinity.npy", allow_pickle=False)
    try:
        scorer: ValidationScorer | None = ValidationScorer(results[ref_name]["dir"], ref)
    except (GraphtagError, TypeError, KeyError) as exc:
        scorer = None
        notes.append(f"validation AUC not computed: {exc}")

    def row(label: str, report: dict, block: str, groups: list[list[int]] | None) -> dict:
        m = report["metrics"][block]
        out_row: dict[str, Any] = {"method": label}
        for key in (*METRICS, "macro_f1_tuned"):
            out_row[key], out_row[f"{key}_std"] = m.get(key), m.get(f"{key}_std")
        out_row["num_seeds"] = m.get("num_seeds")
        out_row["num_groups"] = len(groups) if groups is not None else None
        out_row["groups"] = json.dumps(groups) if groups is not None else None
        return out_row

    def val(res: dict, partitions: list[list[list[int]]], block: str) -> float | None:
        if scorer is None:
            return None
        try:
            run = run_from_report(res["dir"], res["report"])
            return scorer.partition_auc(run, partitions, block)
        except (GraphtagError, TypeError, KeyError) as exc:
            notes.append(f"validation AUC of {res['dir'].name}/{block}: {exc}")
            return None

    rows = []
    timings = ref["timings"]
    r = row("all-in-one", ref, "mtl_all", [list(range(num_tasks))])
    r["total_seconds"] = _seconds(
        timings, "load_data", "prepare_inputs", "base_model", "train_mtl_all"
    )
    r["val_macro_auc"] = val(results[ref_name], [[list(range(num_tasks))]] * len(seeds), "mtl_all")
    rows.append(r)
    for name, res in results.items():
        report = res["report"]
        groups = [list(g) for g in report["groups"]]
        r = row(name, report, "grouped", groups)
        t = report["timings"]
        r["affinity_seconds"] = _seconds(t, "features", "affinity")
        r["total_seconds"] = _seconds(
            t,
            "load_data",
            "prepare_inputs",
            "base_model",
            "features",
            "affinity",
            "groups",
            "train_grouped",
        )
        r["run_seconds"] = round(res["seconds"], 3)
        if res.get("models_before"):
            notes.append(
                f"{name}: {res['models_before']} saved models in {name}/models/ predate this "
                "invocation; those it reused count 0 s in total s (use a fresh --out for timings)"
            )
        path = res["dir"] / "affinity.npy"
        if ho is not None and name != "higher-order" and path.exists():
            r["spearman_higher_order"] = spearman_upper(np.load(path, allow_pickle=False), ho)
        r["val_macro_auc"] = val(res, [groups] * len(seeds), "grouped")
        rows.append(r)
    ref_groups = [list(g) for g in ref["groups"]]
    rand = [
        random_groups_like(ref_groups, num_tasks, seed=derive_seed(s, "random_groups"))
        for s in seeds
    ]
    r = row(f"random groups ({ref_name} sizes)", ref, "random_groups", ref_groups)
    r["groups"] = None  # a different random partition per seed
    r["total_seconds"] = _seconds(timings, "load_data", "prepare_inputs", "train_random_groups")
    r["val_macro_auc"] = val(results[ref_name], rand, "random_groups")
    if planted:
        r["ari_planted"] = round(float(np.mean([ari(g, planted, num_tasks) for g in rand])), 12)
    rows.append(r)
    if planted:
        for r in rows:
            if r.get("groups") is not None:
                r["ari_planted"] = ari(json.loads(r["groups"]), planted, num_tasks)
    for r in rows:
        for c in COLUMNS:
            r.setdefault(c, None)
    return rows, ref_name


# ---------------------------------------------------------------------------------- output
def _f(v: Any, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    head = (
        "| method | groups | test macro AUC | test macro AP | test macro F1 | affinity s "
        "| total s | Spearman vs higher-order | ARI vs planted | val macro AUC |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        cells = [r["method"], _f(r["num_groups"], "d")]
        cells += [f"{_f(r[k])} ± {_f(r[k + '_std'])}" for k in METRICS]
        cells += [_f(r["affinity_seconds"], ".1f"), _f(r["total_seconds"], ".1f")]
        cells += [_f(r["spearman_higher_order"], ".3f"), _f(r["ari_planted"], ".3f")]
        cells.append(_f(r["val_macro_auc"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def best_line(rows: list[dict[str, Any]]) -> str:
    """The row with the highest validation macro AUC (first on ties); test shown, not used."""
    scored = [r for r in rows if r["val_macro_auc"] is not None]
    if not scored:
        return "best by validation macro AUC: n/a (no validation scores)"
    best = max(scored, key=lambda r: r["val_macro_auc"])
    return (
        f"best by validation macro AUC: {best['method']} (val {best['val_macro_auc']:.4f}; "
        f"its test macro AUC {_f(best['macro_auc'])} ± {_f(best['macro_auc_std'])})"
    )


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: "" if r[c] is None else r[c] for c in COLUMNS})
    with atomic_write(path, "w") as fh:
        fh.write(buf.getvalue())


def plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Bars of each row's test macro AUC / AP / F1 (one panel each) with std error bars."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    labels = [r["method"] for r in rows]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.0 * len(METRICS), 4.2))
    colors = plt.get_cmap("tab10").colors
    for ax, key in zip(axes, METRICS, strict=True):
        mean = np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=float)
        std = np.array([0.0 if r[f"{key}_std"] is None else r[f"{key}_std"] for r in rows])
        x = np.arange(len(rows))
        ax.bar(x, np.nan_to_num(mean), yerr=std, capsize=3, color=colors[: len(rows)])
        ok = ~np.isnan(mean)
        if ok.any():
            lo, hi = float((mean - std)[ok].min()), float((mean + std)[ok].max())
            pad = max(0.1 * (hi - lo), 0.005)
            ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
        name = {"macro_auc": "ROC-AUC", "macro_ap": "AP", "macro_f1": "F1"}[key]
        ax.set_title(f"test macro {name} (axis zoomed)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def render_md(
    rows: list[dict[str, Any]], meta: dict[str, Any], results: dict[str, dict[str, Any]]
) -> str:
    ds = meta["dataset"]
    lines = [
        f"# Method comparison: {ds['name']} ({ds['num_nodes']} nodes, {ds['num_edges']} edges, "
        f"{ds['num_tasks']} tasks)",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"- dataset spec `{meta['config']['dataset']}`, master seed {meta['config']['seed']}, "
        f"evaluation seeds {meta['seeds']} (mean ± population std over them)",
        f"- methods: {', '.join(meta['config']['methods'])}; reference run for the all-in-one "
        f"and random-groups rows: {meta['reference']}",
        f"- git {meta['git_sha']}; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if k != "platform"),
        f"- {meta['versions'].get('platform', '')}, torch threads {meta['torch_threads']}",
        "",
        "Test metrics; nothing below was chosen on them (the best line uses validation).",
        "",
        *markdown_table(rows),
        "",
        meta["best"],
        "",
        "## Groups",
        "",
    ]
    for name, res in results.items():
        lines.append(f"- {name}: {res['report']['groups']}")
    if ds.get("planted_groups"):
        lines.append(f"- planted: {ds['planted_groups']}")
    if meta["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in meta["notes"]]
    lines += [
        "",
        "## Columns",
        "",
        "- affinity s: gradient features + affinity stage (grad-tag), affinity stage otherwise.",
        "- total s: what the row's own models cost: data, inputs, base model, features, affinity, "
        "groups (with --num-groups auto: the validation models of every candidate k) and every "
        "seed's group models (a method); data, inputs, base model and the other "
        "seeds' all-in-one models (all-in-one); data, inputs and random-group models (random "
        "groups). The base model is trained once and shared, but counted in every row that uses "
        "it. Stage seconds depend on the machine's load.",
        "- val macro AUC: the same models on the validation masks (mean over seeds); optimistic "
        "for every row alike, since each model was early-stopped on it.",
        "- ARI of random groups: mean over the seeds' random partitions.",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    command_args = sys.argv[1:] if argv is None else list(argv)
    command = "PYTHONPATH=. python experiments/compare_methods.py " + shlex.join(command_args)
    from graphtag.data import load_dataset

    try:
        data = load_dataset(args.dataset, seed=args.seed)
    except GraphtagError as exc:
        print(f"compare_methods: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    num_tasks = int(data.y.size(1))
    out = args.out or default_out(args.dataset, str(data.name))
    out.mkdir(parents=True, exist_ok=True)
    del data
    import torch

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["out"] = str(out)
    meta: dict[str, Any] = {
        "command": command,
        "config": config,
        "versions": versions(),
        "git_sha": git_revision(),
        "torch_threads": torch.get_num_threads(),
        "seeds": [args.seed + r for r in range(args.seeds)],
    }
    print(json.dumps(meta))
    notes: list[str] = []
    failed: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    base_dir: Path | None = None
    for method in args.methods:
        if method == "pairwise" and num_tasks > args.max_pairwise_tasks:
            notes.append(
                f"pairwise skipped: {num_tasks} tasks > --max-pairwise-tasks "
                f"{args.max_pairwise_tasks} (it fine-tunes {num_tasks * (num_tasks + 1) // 2} "
                "models)"
            )
            continue
        run_dir = out / method
        if base_dir is not None and share_base(base_dir, run_dir):
            notes.append(f"{method}: base model copied from {base_dir.name}/ (trained once)")
        argv_m = run_argv(method, args, run_dir)
        print(f"== {method}: graphtag {shlex.join(argv_m)}", flush=True)
        models_before = len(list((run_dir / "models").glob("*"))) if run_dir.exists() else 0
        status, error, seconds = run_method(argv_m)
        if status != 0:
            failed.append(method)
            notes.append(f"{method} failed (no row): {error}")
            print(f"compare_methods: {method} failed: {error}", file=sys.stderr)
            continue
        results[method] = {
            "report": load_json(run_dir / "report.json"),
            "dir": run_dir,
            "seconds": seconds,
            "models_before": models_before,
        }
        base_dir = base_dir or run_dir
    if not results:
        print(f"compare_methods: error: no method finished ({'; '.join(notes)})", file=sys.stderr)
        raise SystemExit(1)
    rows, ref_name = build_rows(results, notes)
    meta |= {
        "dataset": results[ref_name]["report"]["dataset"],
        "reference": ref_name,
        "notes": notes,
        "best": best_line(rows),
    }
    write_csv(out / "compare.csv", rows)
    with atomic_write(out / "compare.md", "w") as fh:
        fh.write(render_md(rows, meta, results))
    plot(
        out / "compare.png",
        rows,
        f"{meta['dataset']['name']}: test metrics, mean ± std over seeds {meta['seeds']}",
    )
    save_json(out / "compare.json", {**meta, "rows": rows})
    print("\n".join(markdown_table(rows)))
    for n in notes:
        print(f"note: {n}")
    print(f"files: {out}/compare.csv, compare.md, compare.png")
    print(meta["best"])
    return {**meta, "rows": rows, "failed": failed, "out": str(out)}


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result["failed"] else 0)
