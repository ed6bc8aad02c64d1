"""Trained models of a run: a per-model logits cache and the evaluation over seeds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._utils import derive_seed
from ..artifacts import hash_object, load_npz, save_npz
from ..errors import GraphtagError

__all__ = ["ModelCache", "evaluate_seeds", "fit_partition", "fit_selection"]

log = logging.getLogger("graphtag")


class ModelCache:
    """Logits of finished models in ``DIR/models/``, keyed by data, recipe, tasks and seed.

    ``cache(tasks, compute)`` returns the saved logits of a model trained on ``tasks`` or runs
    ``compute()`` and saves its logits (a killed run loses only the model in training). The
    seconds of computed models are added to ``run.timings["train_<block>"]``.
    """

    def __init__(self, run: Any, block: str, seed: int) -> None:
        self.run = run
        self.block = block
        self.seed = seed

    def __call__(self, tasks: Sequence[int], compute: Callable[[], Tensor]) -> Tensor:
        """The logits ``[N, len(tasks)]`` of the model of ``tasks``."""
        run = self.run
        key = {
            "data": run.stage_key("data"),
            "train": run.train_key(),
            "tasks": [int(t) for t in tasks],
            "seed": self.seed,
        }
        digest = hash_object(key)
        path = run.out / "models" / f"{digest[:24]}.npz"
        if path.exists():
            try:
                z = load_npz(path)
                if z["key"].item() == digest:
                    return torch.from_numpy(z["logits"])
            except GraphtagError:
                log.warning("model checkpoint %s is corrupt; retraining", path)
        start = time.perf_counter()
        logits = compute()
        name = f"train_{self.block}"
        run.timings[name] = run.timings.get(name, 0.0) + time.perf_counter() - start
        save_npz(path, {"logits": logits, "key": np.array(digest)})
        return logits


def fit_partition(run: Any, groups: Sequence[Sequence[int]], block: str, seed: int) -> Tensor:
    """Logits ``[N, T]`` of one model per group trained with ``seed`` (cached)."""
    from ..grouping import fit_groups

    return fit_groups(
        run.data,
        run.inputs,
        groups,
        run.config.train,
        seed=seed,
        cache=ModelCache(run, block, seed),
    )


def fit_selection(run: Any, selected: Sequence[Sequence[int]], block: str, seed: int) -> Any:
    """One model per selected (overlapping) group; each task served by its best on validation."""
    from ..grouping import fit_selected_groups

    return fit_selected_groups(
        run.data,
        run.inputs,
        selected,
        run.config.train,
        seed=seed,
        cache=ModelCache(run, block, seed),
    )


def _evaluate_one_seed(
    run: Any, seed: int, groups: list[list[int]], selected: list[list[int]] | None
) -> tuple[dict[str, dict], list[list[int]], Any]:
    """Test metrics of all-in-one, grouped and random groups for one seed."""
    from ..grouping import evaluate_logits, random_groups_like

    num_tasks = run.num_tasks
    if seed == run.config.seed:
        ev_all = evaluate_logits(run.data, run.base_logits())
    else:
        ev_all = evaluate_logits(
            run.data, fit_partition(run, [list(range(num_tasks))], "mtl_all", seed)
        )
    sel = None
    if selected is None:
        ev_grp = evaluate_logits(run.data, fit_partition(run, groups, "grouped", seed))
    else:
        sel = fit_selection(run, selected, "grouped", seed)
        ev_grp = evaluate_logits(run.data, sel.logits)
        if seed == run.config.seed:
            # Report each task in the selected group that serves it (validation choice of the
            # first seed); random groups copy these sizes.
            groups = sel.partition()
    rand = random_groups_like(groups, num_tasks, seed=derive_seed(seed, "random_groups"))
    ev_rnd = evaluate_logits(run.data, fit_partition(run, rand, "random_groups", seed))
    return {"mtl_all": ev_all, "grouped": ev_grp, "random_groups": ev_rnd}, groups, sel


def evaluate_seeds(run: Any) -> dict[str, Any]:
    """All-in-one, grouped and random-group models over the evaluation seeds.

    Returns:
        ``{"blocks": {name: [metrics per seed]}, "per_task_auc": {name: [[auc per task]]},
        "groups": the reported partition, "assignments": {seed: assignment},
        "serving": {group: selected group}}``.
    """
    from tqdm.auto import tqdm

    config = run.config
    groups = run.groups()
    selected = run.selected_groups()
    names = ("mtl_all", "grouped", "random_groups")
    blocks: dict[str, list[dict[str, Any]]] = {b: [] for b in names}
    per_task_auc: dict[str, list[list[float | None]]] = {b: [] for b in names}
    assignments: dict[str, list[int]] = {}
    serving: dict[tuple[int, ...], list[int]] = {}
    seeds = [config.seed + r for r in range(config.num_seeds)]
    desc = "evaluate seeds (all-in-one, grouped, random)"
    for s in tqdm(seeds, desc=desc, disable=not run.progress):
        with run.timed("evaluate"):
            evals, groups, sel = _evaluate_one_seed(run, s, groups, selected)
        if sel is not None:
            assignments[str(s)] = sel.assignment
            if s == config.seed:
                serving = {tuple(b): sel.groups[sel.assignment[b[0]]] for b in groups}
        for name, ev in evals.items():
            blocks[name].append(ev["metrics"])
            per_task_auc[name].append([p["auc"] for p in ev["per_task"]])
    return {
        "blocks": blocks,
        "per_task_auc": per_task_auc,
        "groups": groups,
        "selected": selected,
        "assignments": assignments,
        "serving": serving,
    }
