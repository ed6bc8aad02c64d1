"""Textbook baselines on graphtag's own splits, beside graphtag's all-in-one model, in one run.

For each seed ``s`` in ``--seeds`` the dataset is loaded once, ``load_dataset(SPEC, seed=s)``
(per-task 20/20/60 split of ``s``), and every row is trained and scored on those splits:

* ``graphtag all-in-one``: ``fit_model(data, inputs, None, TrainConfig(...), seed=s)`` on the
  dataset's default features (``data.meta["features"]``), the base model of ``graphtag run``;
* ``single-task GNN``: one graphtag model per task, ``fit_model(data, inputs, [t], ...)``, with
  the same recipe and inputs (``select="auto"``: validation loss for a task without both classes
  in validation) (``--single-task auto``: when ``T`` times the all-in-one model's
  training time of the first seed fits ``--single-task-budget`` seconds);
* ``LR: <embedding>``: one logistic regression per task on a node embedding of the graph alone
  (``--embedding``, default ProNE at the textbook width ``--embedding-dim 128``, seed ``s``);
* ``LR: graphtag x``: the same on the all-in-one model's input features (left out when they
  are the embedding of the row above, as on graphs without attributes by default);
* ``LR: node attributes``: the same on the source's attributes (graphs that have them).

Logistic regression: L2-regularised, one model per task (bias unpenalised, columns
standardised), fitted on the task's training nodes for every ``C`` of ``--cs`` at once (batched
Newton steps with a backtracking line search, float64, all tasks vectorised); each task keeps
the ``C`` with the best validation ROC-AUC (ties: the smaller ``C``). Every row's logits are
scored by ``graphtag.grouping.evaluate_logits``: test macro ROC-AUC, macro AP and macro F1 with
per-task thresholds tuned on validation; validation macro AUC is reported too. Nothing is chosen
on test labels. Rows print mean ± std over seeds; the last line is the headline (all-in-one
against the best baseline of the run).

Commands (from the repository root, ``PYTHONPATH=.`` when graphtag is not installed):
    python experiments/baselines.py --dataset blogcatalog --seeds 0,1,2
    python experiments/baselines.py --dataset humango --seeds 0,1,2 --out runs/baselines.json
    python experiments/baselines.py --smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphtag._utils import experiment_header
from graphtag.artifacts import save_json
from graphtag.data import EMBEDDINGS, load_dataset, node_features, parse_spec
from graphtag.grouping import evaluate_logits
from graphtag.metrics import roc_auc_scores
from graphtag.models import prepare_inputs
from graphtag.training import TrainConfig, fit_model, predict

SMOKE = {
    "dataset": "synthetic:num_nodes=300,num_tasks=4,num_groups=2,seed=0",
    "seeds": "0,1",
    "epochs": 5,
    "hidden_channels": 16,
    "embedding_dim": 8,
    "single_task": "on",
}
CS = "0.001,0.01,0.1,1,10,100"
METRICS = ("macro_auc", "macro_ap", "macro_f1_tuned", "val_macro_auc")
_CHUNK = 1 << 25  # (task, training node, feature) doubles per batch of the LR solver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="blogcatalog", help="dataset spec")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated split and model seeds")
    p.add_argument("--cs", default=CS, help="inverse L2 strengths C tried per task")
    p.add_argument("--embedding", default="prone", choices=sorted(EMBEDDINGS))
    p.add_argument("--embedding-dim", type=int, default=128, help="width of the LR embedding")
    p.add_argument("--single-task", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--single-task-budget", type=float, default=900.0, help="seconds per seed")
    p.add_argument("--epochs", type=int, default=None, help="override TrainConfig.epochs")
    p.add_argument("--hidden-channels", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic preset, seconds")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    args.cs = [float(c) for c in str(args.cs).split(",") if c.strip()]
    return args


def _train_config(args: argparse.Namespace) -> TrainConfig:
    overrides = {
        k: getattr(args, k) for k in ("epochs", "hidden_channels") if getattr(args, k) is not None
    }
    return TrainConfig(device="cpu", **overrides)


def _standardized(x: Tensor) -> Tensor:
    """float64 ``[N, F + 1]``: standardised columns (near-constant ones zeroed) and a bias."""
    x = x.double()
    std = x.std(0)
    keep = std > 1e-6 * std.max().clamp(min=1e-300)
    z = torch.where(keep, (x - x.mean(0)) / torch.where(keep, std, 1.0), 0.0)
    return torch.cat([z, torch.ones(x.size(0), 1, dtype=torch.float64)], 1)


def _newton(z: Tensor, y: Tensor, weight: Tensor, lam: Tensor, iters: int = 50) -> Tensor:
    """Weights ``[C, t, F]`` minimising ``Σ_n weight·BCE + lam/2 ||w||²`` (bias unpenalised).

    ``z`` ``[t, n, F]`` training rows per task (padded), ``y`` and ``weight`` ``[t, n]``
    (``weight`` is ``1 / n_t`` on real rows, 0 on padding), ``lam`` ``[C, t]``.
    """
    num_c, (t, _, f) = lam.size(0), z.shape
    reg = torch.ones(f, dtype=torch.float64)
    reg[-1] = 0.0
    ridge = torch.diag(reg) + 1e-8 * torch.eye(f, dtype=torch.float64)
    w = torch.zeros(num_c, t, f, dtype=torch.float64)
    steps = torch.tensor([1.0, 0.5, 0.25, 0.125, 1 / 16, 0.0], dtype=torch.float64)

    def objective(cand: Tensor) -> Tensor:  # [..., C, t, F] -> [..., C, t]
        logits = torch.einsum("tnf,...ctf->...ctn", z, cand)
        nll = ((torch.nn.functional.softplus(logits) - y * logits) * weight).sum(-1)
        return nll + 0.5 * lam * (cand * cand * reg).sum(-1)

    for _ in range(iters):
        p = torch.sigmoid(torch.einsum("tnf,ctf->ctn", z, w))
        grad = torch.einsum("ctn,tnf->ctf", (p - y) * weight, z) + lam[..., None] * reg * w
        hess = torch.einsum("ctn,tnf,tng->ctfg", p * (1 - p) * weight, z, z)
        chol, info = torch.linalg.cholesky_ex(hess + lam[..., None, None] * ridge)
        step = torch.cholesky_solve(grad.unsqueeze(-1), chol).squeeze(-1)
        step = torch.where((info == 0)[..., None], step, grad)  # gradient step if not PD
        cand = w[None] - steps[:, None, None, None] * step[None]
        best = objective(cand).argmin(0)  # backtracking: the best of the step sizes
        w = cand.gather(0, best[None, ..., None].expand(1, *w.shape)).squeeze(0)
        if float((steps[best][..., None] * step).abs().max()) < 1e-7:
            break
    return w


def logistic_regression_logits(x: Tensor, data: Any, cs: list[float]) -> tuple[Tensor, Tensor]:
    """Per-task L2 logistic regression logits ``[N, T]`` (C chosen on validation) and the Cs."""
    z = _standardized(x)
    num_nodes, f = z.shape
    train = data.train_mask.T  # [T, N]
    counts = train.sum(1)
    lam_scale = 1.0 / (torch.tensor(cs, dtype=torch.float64)[:, None] * counts.double()[None])
    chunk = max(1, _CHUNK // max(1, int(counts.max()) * f))
    logits = torch.empty(len(cs), num_nodes, data.y.size(1), dtype=torch.float64)
    for lo in range(0, data.y.size(1), chunk):  # bounded memory: chunks of tasks
        hi = min(lo + chunk, data.y.size(1))
        n_max = int(counts[lo:hi].max())
        order = torch.argsort(train[lo:hi].to(torch.int8), dim=1, descending=True, stable=True)
        rows = order[:, :n_max]
        valid = torch.arange(n_max)[None] < counts[lo:hi, None]
        y = data.y.T[lo:hi].double().gather(1, rows) * valid
        weight = valid.double() / counts[lo:hi, None].double()
        w = _newton(z[rows], y, weight, lam_scale[:, lo:hi])
        logits[:, :, lo:hi] = torch.einsum("nf,ctf->cnt", z, w)
    val_auc = torch.stack([roc_auc_scores(data.y, lg, data.val_mask) for lg in logits])
    undefined = torch.isnan(val_auc).all(0)
    val_auc = torch.nan_to_num(val_auc, nan=-1.0)
    default = min(range(len(cs)), key=lambda i: abs(math.log10(cs[i])))  # C nearest 1
    best = torch.where(undefined, default, val_auc.argmax(0))  # argmax: first (smaller C)
    chosen = logits[best, :, torch.arange(data.y.size(1))].T
    return chosen.float(), torch.tensor(cs, dtype=torch.float64)[best]


def _score(data: Any, logits: Tensor) -> dict[str, float]:
    metrics = dict(evaluate_logits(data, logits)["metrics"])
    val = roc_auc_scores(data.y, logits, data.val_mask)
    metrics["val_macro_auc"] = float(torch.nanmean(val))
    return metrics


def _graphtag_rows(data: Any, config: TrainConfig, seed: int, single: bool) -> dict[str, Any]:
    inputs = prepare_inputs(data, config.model_config, "cpu")
    start = time.perf_counter()
    res = fit_model(data, inputs, None, config, seed=seed)
    out = {"graphtag all-in-one": (predict(res.model, inputs), time.perf_counter() - start)}
    if single:
        start = time.perf_counter()
        logits = torch.empty_like(data.y)
        for t in range(data.y.size(1)):  # one model per task: the baseline itself
            model = fit_model(data, inputs, [t], config, seed=seed, select="auto").model
            logits[:, t] = predict(model, inputs).squeeze(1)
        out["single-task GNN"] = (logits, time.perf_counter() - start)
    return out


def run_seed(spec: str, seed: int, args: argparse.Namespace, single: bool) -> dict[str, Any]:
    """Every row's test and validation metrics and seconds for one seed."""
    data = load_dataset(spec, seed=seed)
    config = _train_config(args)
    rows = _graphtag_rows(data, config, seed, single)
    start = time.perf_counter()
    emb, record = node_features(
        data.edge_index,
        data.num_nodes,
        features=args.embedding,
        dim=args.embedding_dim,
        seed=seed,
    )
    embed_seconds = time.perf_counter() - start
    feats = {f"LR: {args.embedding}-{record['dim']} embedding": emb}
    record_x = data.meta["features"]
    same_as_embedding = record_x["recipe"] == args.embedding and record_x["dim"] == record["dim"]
    if record_x["recipe"] != "given" and not same_as_embedding:  # else a row above or below
        feats["LR: graphtag x"] = data.x
    if "given_dim" in data.meta["features"]:
        feats["LR: node attributes"] = load_dataset(_given_spec(spec), seed=seed).x
    chosen_cs = {}
    for name, x in feats.items():
        start = time.perf_counter()
        logits, cs = logistic_regression_logits(x, data, args.cs)
        seconds = time.perf_counter() - start + (embed_seconds if "embedding" in name else 0)
        rows[name] = (logits, seconds)
        chosen_cs[name] = cs.tolist()
    result = {name: {**_score(data, lg), "seconds": s} for name, (lg, s) in rows.items()}
    return {
        "rows": result,
        "chosen_c": chosen_cs,
        "features": data.meta["features"],
        "num_tasks": int(data.y.size(1)),
        "num_nodes": int(data.num_nodes),
    }


def _given_spec(spec: str) -> str:
    """``spec`` with ``features=given`` (its node attributes as ``x``)."""
    parsed = parse_spec(spec)
    options = [f"{k}={v}" for k, v in parsed.options.items() if k != "features"]
    return f"{parsed.name}:{','.join([*parsed.args, *options, 'features=given'])}"


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and std over seeds of every metric of every row."""
    out: dict[str, dict[str, float]] = {}
    for name in per_seed[0]["rows"]:
        row: dict[str, float] = {}
        for key in (*METRICS, "seconds"):
            values = [s["rows"][name][key] for s in per_seed]
            row[key] = statistics.fmean(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out[name] = row
    return out


def table(summary: dict[str, dict[str, float]]) -> str:
    """Markdown table: one row per model, mean ± std over seeds."""
    head = "| model | test macro AUC | test macro AP | tuned macro F1 | val macro AUC | s / seed |"
    lines = [head, "|---|---|---|---|---|---|"]
    for name, r in summary.items():
        cells = [f"{r[k]:.4f} ± {r[k + '_std']:.4f}" for k in METRICS]
        lines.append(f"| {name} | {' | '.join(cells)} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = _train_config(args)
    meta = experiment_header(args, train_config=dataclasses.asdict(config))
    print(json.dumps(meta), flush=True)
    per_seed: list[dict[str, Any]] = []
    single = args.single_task == "on"
    for i, seed in enumerate(args.seeds):
        if i == 0 and args.single_task == "auto":
            probe = run_seed(args.dataset, seed, args, single=False)
            cost = probe["rows"]["graphtag all-in-one"]["seconds"] * probe["num_tasks"]
            single = cost <= args.single_task_budget
            meta["single_task"] = {"estimated_seconds": cost, "run": single}
            if single:  # the first seed again, with every row
                probe = run_seed(args.dataset, seed, args, single=True)
        else:
            probe = run_seed(args.dataset, seed, args, single=single)
        per_seed.append(probe)
        print(json.dumps({"seed": seed, **probe}), flush=True)
    summary = summarize(per_seed)
    print(table(summary))
    ours = summary["graphtag all-in-one"]
    others = {k: v for k, v in summary.items() if k != "graphtag all-in-one"}
    best_auc = max(others, key=lambda k: others[k]["macro_auc"])
    best_f1 = max(others, key=lambda k: others[k]["macro_f1_tuned"])
    headline = (
        f"headline: {args.dataset} ({len(args.seeds)} seeds): graphtag all-in-one test macro AUC "
        f"{ours['macro_auc']:.4f} vs best baseline {others[best_auc]['macro_auc']:.4f} "
        f"({best_auc}); tuned macro F1 {ours['macro_f1_tuned']:.4f} vs "
        f"{others[best_f1]['macro_f1_tuned']:.4f} ({best_f1})"
    )
    result = {**meta, "per_seed": per_seed, "summary": summary, "headline": headline}
    if args.out is not None:
        save_json(args.out, result)
    print(headline)
    return result


if __name__ == "__main__":
    main()
