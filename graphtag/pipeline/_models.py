"""Trained models of a run: a per-model cache, candidate models, and the evaluation over seeds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._utils import derive_seed
from ..artifacts import hash_object, load_npz, load_state_dict, save_npz, save_state_dict
from ..errors import GraphtagError

__all__ = ["ModelCache", "evaluate_seeds", "fit_candidate", "fit_partition", "one_model"]

log = logging.getLogger("graphtag")


class ModelCache:
    """Logits of finished models in ``DIR/models/``, keyed by data, recipe, tasks and seed.

    ``cache(tasks, compute)`` returns the saved logits of a model trained on ``tasks`` or runs
    ``compute()`` and saves its logits (a killed run loses only the model in training). The
    seconds of computed models are added to ``run.timings["train_<block>"]``. ``init`` names the
    warm start of the models (``None``: from scratch).
    """

    def __init__(self, run: Any, block: str, seed: int, init: str | None = None) -> None:
        self.run = run
        self.block = block
        self.seed = seed
        self.init = init

    def key(self, tasks: Sequence[int]) -> dict[str, Any]:
        """What the model of ``tasks`` depends on."""
        key = {
            "data": self.run.stage_key("data"),
            "train": self.run.train_key(),
            "tasks": [int(t) for t in tasks],
            "seed": self.seed,
        }
        if self.init is not None:
            key["init"] = self.init
        holdout = self.run.config.recommend.holdout
        if holdout > 0:  # checkpoints chosen on the rest of the validation labels
            key["holdout"] = holdout
        return key

    def __call__(self, tasks: Sequence[int], compute: Callable[[], Tensor]) -> Tensor:
        """The logits ``[N, len(tasks)]`` of the model of ``tasks``."""
        run = self.run
        digest = hash_object(self.key(tasks))
        path = run.out / "models" / f"{digest[:24]}.npz"
        if path.exists():
            try:
                z = load_npz(path)
                if z["key"].item() == digest:
                    return torch.from_numpy(z["logits"])
            except GraphtagError:
                log.warning("model checkpoint %s is corrupt; retraining", path)
        with run.timed(f"train_{self.block}"):
            logits = compute()
        save_npz(path, {"logits": logits, "key": np.array(digest)})
        return logits


def one_model(run: Any, seed: int) -> nn.Module:
    """The base recipe's model for all tasks trained with ``seed`` (the run's base model).

    Other seeds' models are saved under ``DIR/models/`` (weights), since warm-started group
    models of that seed start from them.
    """
    if seed == run.config.seed:
        return run.base_model()
    from ..training import fit_model

    digest = hash_object({**ModelCache(run, "mtl_all", seed).key(range(run.num_tasks)), "w": 1})
    path = run.out / "models" / f"{digest[:24]}.pt"
    model = run.new_model()
    if path.exists():
        try:
            model.load_state_dict(load_state_dict(path))
            return model.to(run.device).eval()
        except (GraphtagError, RuntimeError):
            log.warning("model checkpoint %s is corrupt; retraining", path)
    with run.timed("train_mtl_all"):
        model = fit_model(run.data, run.inputs, None, run.config.train, seed=seed).model
    save_state_dict(path, model.state_dict())
    return model


def _init(run: Any, seed: int) -> tuple[nn.Module | None, str | None]:
    """The warm start of group models of ``seed`` and its cache name."""
    if run.config.recommend.group_init == "scratch":
        return None, None
    return one_model(run, seed), f"base model of seed {seed}"


def fit_partition(run: Any, groups: Sequence[Sequence[int]], block: str, seed: int) -> Tensor:
    """Logits ``[N, T]`` of one model per group trained with ``seed`` (cached).

    Every group model is trained with the run's group recipe; from scratch, one model for all
    tasks is the base model of that seed itself.
    """
    from ..grouping import fit_groups

    everything = len(groups) == 1 and len(groups[0]) == run.num_tasks
    if everything and run.config.recommend.group_init == "scratch":
        if seed == run.config.seed:
            return run.base_logits()
        from ..training import predict

        batch = run.config.train.eval_batch_size
        compute = lambda: predict(one_model(run, seed), run.inputs, batch_size=batch)  # noqa: E731
        return ModelCache(run, "mtl_all", seed)(list(range(run.num_tasks)), compute)
    return _fit(run, fit_groups, groups, block, seed)


def fit_selection(run: Any, selected: Sequence[Sequence[int]], block: str, seed: int) -> Any:
    """One model per selected (overlapping) group; each task served by its best on validation."""
    from ..grouping import fit_selected_groups

    return _fit(run, fit_selected_groups, selected, block, seed)


def _fit(run: Any, fn: Callable[..., Any], groups: Any, block: str, seed: int) -> Any:
    """``fn`` (``fit_groups`` or ``fit_selected_groups``) with the run's recipe and cache."""
    init, name = _init(run, seed)
    cache = ModelCache(run, block, seed, name)
    data, inputs, config = run.recommend_split()[0], run.inputs, run.config.train
    return fn(data, inputs, groups, config, seed=seed, init=init, cache=cache, progress=False)


def fit_candidate(run: Any, candidate: Any, block: str, seed: int) -> tuple[Tensor, Any]:
    """Logits ``[N, T]`` of a :class:`~graphtag.recommend.Candidate` trained with ``seed``.

    Returns the logits and, for a selection, its
    :class:`~graphtag.grouping.SelectedGroupsResult` (else ``None``).
    """
    if candidate.selected is not None:
        res = fit_selection(run, candidate.selected, block, seed)
        return res.logits, res
    return fit_partition(run, candidate.groups, block, seed), None


def _evaluate_one_seed(
    run: Any, seed: int, rec: Any, control: list[list[int]], singles: bool
) -> tuple[dict[str, dict], list[int] | None]:
    """Test metrics of every evaluated configuration for one seed (+ a selection's assignment)."""
    from ..grouping import evaluate_logits, random_groups_like

    num_tasks = run.num_tasks
    everything = [list(range(num_tasks))]
    out = {"mtl_all": evaluate_logits(run.data, fit_partition(run, everything, "mtl_all", seed))}
    assignment = None
    if rec.kind != "one":
        logits, sel = fit_candidate(run, rec, "recommended", seed)
        out["recommended"] = evaluate_logits(run.data, logits)
        assignment = None if sel is None else sel.assignment
    else:
        out["recommended"] = out["mtl_all"]
    rand = random_groups_like(control, num_tasks, seed=derive_seed(seed, "random_groups"))
    out["random_groups"] = evaluate_logits(run.data, fit_partition(run, rand, "random", seed))
    if singles:
        one_each = [[t] for t in range(num_tasks)]
        out["single_task"] = evaluate_logits(run.data, fit_partition(run, one_each, "single", seed))
    return out, assignment


def evaluate_seeds(run: Any) -> dict[str, Any]:
    """The recommended configuration next to one model, random groups and single tasks.

    Over the evaluation seeds: one model for all tasks, the recommendation, random groups with
    the group sizes of the recommendation (or of the best trained grouping when one model or one
    model per task is recommended), and one model per task when that candidate was trained.

    Returns:
        ``{"blocks": {name: [metrics per seed]}, "per_task_auc": {name: [[auc per task]]},
        "recommendation": the chosen candidate, "control": the random groups' sizes}``.
    """
    from tqdm.auto import tqdm

    config = run.config
    rec = run.groups_stage().recommendation()
    control = run.groups_stage().control_partition()
    singles = any(c.kind == "single" and c.validation is not None for c in run.candidates())
    blocks: dict[str, list[dict[str, Any]]] = {}
    per_task: dict[str, list[list[float | None]]] = {}
    assignments: dict[str, list[int]] = {}
    seeds = [config.seed + r for r in range(config.num_seeds)]
    desc = "evaluate seeds (recommended, one model, random groups)"
    for s in tqdm(seeds, desc=desc, disable=not run.progress):
        with run.timed("evaluate"):
            evals, assignment = _evaluate_one_seed(run, s, rec, control, singles)
        if assignment is not None:
            assignments[str(s)] = assignment
        for name, ev in evals.items():
            blocks.setdefault(name, []).append(ev["metrics"])
            per_task.setdefault(name, []).append([p["auc"] for p in ev["per_task"]])
    return {
        "blocks": blocks,
        "per_task_auc": per_task,
        "recommendation": rec,
        "control": control,
        "assignments": assignments,
    }
