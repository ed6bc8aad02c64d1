"""Evidence for the recommendation's cheap score: do cheap scores rank trained candidates?

For one dataset, the candidates of ``graphtag run`` (one model for all tasks, the Grad-TAG + SDP
partitions into k = 2..K groups, one model per task) are scored cheaply:

* by surrogates (``graphtag.recommend.SurrogateScorer``) at several absolute ridges (the
  matched ridge of the 30-step reference fine-tune, and smaller ones: longer fine-tunes), and
* by probes (``graphtag.recommend.ProbeScorer``): short warm-started fine-tunes per group,

and then trained for real with seed ``--seed`` (the base recipe; from scratch, and warm-started
from the base model with the start kept as epoch 0). As in ``graphtag run``, half of each
task's validation labels choose checkpoints and probe epochs and the other half is what every
score is measured on (``RecommendConfig.holdout``). Every score is a validation macro ROC-AUC
(surrogates also give the mean validation BCE; ridges are relative to the curvature scale,
``graphtag.estimation.l2_scale``); the table reports the Spearman correlation of
each cheap score with each trained one over the candidates, and the seconds each took. Nothing
here reads test labels.

Usage::

    python experiments/rank_candidates.py --dataset synthetic --hidden-channels 8
    python experiments/rank_candidates.py --dataset blogcatalog --out runs/rank/blogcatalog
    python experiments/rank_candidates.py --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from graphtag._utils import git_revision, versions  # noqa: E402
from graphtag.artifacts import save_json  # noqa: E402
from graphtag.estimation import matched_ridge  # noqa: E402

SMOKE = ["--dataset", "synthetic:num_nodes=400,num_tasks=6,num_groups=2,seed=0"]
SMOKE += ["--epochs", "20", "--hidden-channels", "8", "--max-groups", "3", "--probe-epochs", "2"]
SMOKE += ["--ridges", "matched,0.1", "--num-subsets", "40", "--projection-dim", "32"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--hidden-channels", type=int, default=None)
    p.add_argument("--max-groups", type=int, default=6)
    p.add_argument("--num-subsets", type=int, default=None)
    p.add_argument("--projection-dim", type=int, default=None)
    p.add_argument(
        "--ridges",
        default="matched,1,0.3,0.1,0.03,0.01",
        help="surrogate ridges relative to the curvature scale; 'matched': the absolute ridge "
        "of the 30-step reference fine-tune",
    )
    p.add_argument("--probe-epochs", default="2,5")
    p.add_argument("--no-single", action="store_true", help="leave out one model per task")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args = p.parse_args([*SMOKE, *(["--out", str(args.out)] if args.out else [])])
        args.smoke = True
    return args


def make_run(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from graphtag.pipeline import EstimatorConfig, Run, RunConfig, RunOptions
    from graphtag.training import TrainConfig

    train = TrainConfig(device="cpu")
    changes = {"epochs": args.epochs, "hidden_channels": args.hidden_channels}
    train = replace(train, **{k: v for k, v in changes.items() if v is not None})
    est = {"num_subsets": args.num_subsets, "projection_dim": args.projection_dim}
    estimator = EstimatorConfig(**{k: v for k, v in est.items() if v is not None})
    config = RunConfig(dataset=args.dataset, seed=args.seed, train=train, estimator=estimator)
    return Run(config, RunOptions(args.out / "run", progress=False))


def candidates(run: Any, args: argparse.Namespace) -> dict[str, list[list[int]]]:
    num_tasks = run.num_tasks
    out = {"1": [list(range(num_tasks))]}
    for k in range(2, min(args.max_groups, num_tasks - 1) + 1):
        out[str(k)] = run.stage("groups").partition(k)
    if not args.no_single:
        out["T"] = [[t] for t in range(num_tasks)]
    return out


def trained_auc(run: Any, groups: list[list[int]], warm: bool, seed: int) -> float:
    """Held-out validation macro ROC-AUC of one model per group (seed ``seed``).

    Checkpoints are chosen on the rest of the validation labels, as in ``graphtag run``.
    """
    import torch

    from graphtag.grouping import group_model_logits
    from graphtag.metrics import Evaluator
    from graphtag.training import predict

    (data, held), inputs, cfg = run.recommend_split(), run.inputs, run.config.train
    logits = torch.full(tuple(data.y.shape), float("nan"))
    no_holdout = run.config.recommend.holdout <= 0  # else the base chose on the held-out labels
    for g in groups:
        if len(groups) == 1 and not warm and seed == run.config.seed and no_holdout:
            base = run.base_model()  # no held-out labels: the base model is that model
            logits[:, g] = predict(base, inputs, batch_size=cfg.eval_batch_size)
        else:
            init = run.base_model() if warm else None
            logits[:, g] = group_model_logits(data, inputs, g, cfg, seed, init)
    return float(Evaluator().evaluate(data.y, logits, held)["macro_auc"])


def spearman(a: list[float], b: list[float]) -> float | None:
    from scipy.stats import spearmanr

    x, y = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return round(float(spearmanr(x[ok], y[ok]).statistic), 3)


def main(argv: list[str] | None = None) -> dict:
    from graphtag.recommend import ProbeScorer, SurrogateScorer

    args = parse_args(argv)
    args.out = args.out or REPO / "runs" / "rank_candidates" / args.dataset.split(":")[0]
    run = make_run(args)
    start = time.perf_counter()
    feats = run.features()
    run.affinity()
    cands = candidates(run, args)
    setup = time.perf_counter() - start
    scores: dict[str, dict[str, float]] = {name: {} for name in cands}
    seconds: dict[str, float] = {"setup (base, features, affinity)": round(setup, 2)}
    for ridge in args.ridges.split(","):
        t0 = time.perf_counter()
        if ridge == "matched":
            sur = SurrogateScorer(feats, matched_ridge(), relative=False)
        else:
            sur = SurrogateScorer(feats, float(ridge))
        for name, groups in cands.items():
            loss, auc = sur.per_task(groups)
            scores[name][f"surrogate auc l2={ridge}"] = float(np.nanmean(auc))
            scores[name][f"surrogate -loss l2={ridge}"] = -float(np.nanmean(loss))
        seconds[f"surrogate l2={ridge}"] = round(time.perf_counter() - t0, 2)
    base = run.base_model()
    for epochs in [int(e) for e in args.probe_epochs.split(",")]:
        t0 = time.perf_counter()
        data, held = run.recommend_split()
        probe = ProbeScorer(
            data, run.inputs, base, run.config.train, epochs, args.seed, score_mask=held
        )
        for name, groups in cands.items():
            scores[name][f"probe {epochs} epochs"] = probe.score(groups)
        seconds[f"probe {epochs} epochs"] = round(time.perf_counter() - t0, 2)
    partial = args.out / "trained.json"  # resume: trained candidates of an earlier invocation
    done = json.loads(partial.read_text()) if partial.exists() else {}
    for warm in (False, True):
        label = "trained warm" if warm else "trained scratch"
        t0 = time.perf_counter()
        for name, groups in cands.items():
            key = f"{label} {name}"
            if key not in done:
                done[key] = trained_auc(run, groups, warm, args.seed)
                save_json(partial, done)
            scores[name][label] = done[key]
        seconds[label] = round(time.perf_counter() - t0, 2)
    names = list(cands)
    cheap = [k for k in scores[names[0]] if not k.startswith("trained")]
    table = {
        c: {t: spearman([scores[n][c] for n in names], [scores[n][t] for n in names])
            for t in ("trained scratch", "trained warm")}
        for c in cheap
    }  # fmt: skip
    out = {
        "config": {k: str(v) for k, v in vars(args).items()},
        "versions": versions(),
        "git_sha": git_revision(),
        "candidates": {n: [len(g) for g in cands[n]] for n in names},
        "scores": scores,
        "spearman": table,
        "seconds": seconds,
    }
    save_json(args.out / "rank_candidates.json", out)
    for c, row in table.items():
        print(f"{c:>28}: spearman vs scratch {row['trained scratch']}, warm {row['trained warm']}")
    best = {t: max(names, key=lambda n: scores[n][t]) for t in ("trained scratch", "trained warm")}
    print(f"best trained candidate: {json.dumps(best)}")
    return out


if __name__ == "__main__":
    main()
