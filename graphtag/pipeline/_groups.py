"""The groups stage: partitions of the tasks, with the number of groups chosen on validation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifacts import load_json, save_json
from ..errors import GraphtagError
from ._stage import Stage

__all__ = ["AUTO_K_TOLERANCE", "GroupsStage"]

#: ``num_groups="auto"`` takes the smallest ``k`` whose validation macro ROC-AUC is within this
#: much of the best candidate's.
AUTO_K_TOLERANCE = 1e-3


class GroupsStage(Stage):
    """Task groups (a partition) from the method's affinity (stage ``groups``).

    ``num_groups="auto"`` compares ``k = 2..min(max_groups, T - 1)``: for each ``k`` the
    method's partition into ``k`` groups gets one model per group (the recipe and seed of the
    evaluated grouped models), scored by validation macro ROC-AUC; the smallest ``k`` within
    :data:`AUTO_K_TOLERANCE` of the best wins (a finer split must earn its extra models). Test
    labels are never read. The scores are saved in ``groups.json`` (``auto_scores``).

    Overlapping groupings (``tag-selection``): TAG's network selection with budget ``k``;
    ``groups.json`` also holds ``selected_groups`` and ``selection`` (objective ``score``,
    search ``method``, affinity-based ``assignment``). The partition puts each task in its best
    selected group by the affinity; ``auto`` scores each ``k`` by the selected groups' models,
    each task served by its best group on validation.
    """

    name = "groups"
    outputs = ("groups.json",)
    memory_stages = ("clustering",)

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self._selections: dict[int, Any] = {}

    @property
    def grouping(self) -> Any:
        """The configured :class:`~graphtag.grouping.Grouping`."""
        from ..grouping import get_grouping

        return get_grouping(self.run.config.grouping)

    @property
    def overlapping(self) -> bool:
        """Whether this run's groups are an overlapping selection."""
        return self.grouping.overlapping and self.run.method.has_affinity

    def key(self) -> dict[str, Any]:
        """The affinity's key, the number of groups and the grouping (+ the recipe if auto)."""
        run, cfg = self.run, self.run.config
        key: dict[str, Any] = {
            "affinity": run.stage_key("affinity"),
            "num_groups": cfg.num_groups,
            "grouping": cfg.grouping,
        }
        if cfg.num_groups == "auto":  # k is chosen with models trained with this recipe
            key.update(max_groups=cfg.max_groups, data=run.stage_key("data"))
            key["train"] = run.train_key()
        return key

    def partition(self, num_groups: int) -> list[list[int]]:
        """The method's partition of the tasks into ``num_groups`` groups (canonical order)."""
        from ..grouping import canonical_groups, check_partition

        run = self.run
        num_tasks = run.num_tasks
        k = int(num_groups)
        if k > num_tasks:
            raise GraphtagError(
                f"--num-groups {k} is larger than the number of tasks ({num_tasks}); "
                f"use at most {num_tasks} or 'auto'"
            )
        run.affinity()
        grouping, seed = self.grouping, run.config.seed

        def cluster(affinity: np.ndarray, n: int) -> list[list[int]]:
            if grouping.overlapping:
                sel = self.selection(n)
                groups = [[t for t, a in enumerate(sel.assignment) if a == g] for g in range(n)]
                return [g for g in groups if g]
            return grouping.cluster(affinity, n, seed)

        groups = canonical_groups(run.method.partition(k, cluster, num_tasks))
        check_partition(groups, num_tasks)
        return groups

    def selection(self, num_groups: int) -> Any:
        """The overlapping grouping's selection of at most ``num_groups`` groups (memoised)."""
        k = int(num_groups)
        if k not in self._selections:
            self._selections[k] = self.grouping.select(self.run.affinity(), k)
        return self._selections[k]

    def validation_auc(
        self, groups: Sequence[Sequence[int]], selected: Sequence[Sequence[int]] | None = None
    ) -> float:
        """Validation macro ROC-AUC of one model per group (seed ``config.seed``, cached).

        The models are the ``grouped`` models of the first evaluation seed, so choosing the
        number of groups this way costs no extra training for the chosen ``k``. With
        ``selected`` (overlapping groups), one model per selected group is trained and each
        task is scored by its best selected group on validation.
        """
        from ..metrics import Evaluator
        from ._models import fit_partition, fit_selection

        run = self.run
        if selected is not None:
            logits = fit_selection(run, selected, "select_k", run.config.seed).logits
        else:
            logits = fit_partition(run, groups, "select_k", run.config.seed)
        return float(Evaluator().evaluate(run.data.y, logits, run.data.val_mask)["macro_auc"])

    def _choose_k(self) -> tuple[int, list[list[int]], dict[int, float]]:
        """The auto choice: ``(k, groups, validation score of every candidate k)``."""
        from tqdm.auto import tqdm

        run, cfg = self.run, self.run.config
        num_tasks = run.num_tasks
        top = max(2, min(cfg.max_groups, num_tasks - 1))
        candidates = list(range(2, top + 1)) if num_tasks > 2 else [num_tasks]
        scores: dict[int, float] = {}
        parts: dict[int, list[list[int]]] = {}
        for k in tqdm(candidates, desc="choose k on validation", disable=not run.progress):
            parts[k] = self.partition(k)
            selected = self.selection(k).groups if self.overlapping else None
            scores[k] = self.validation_auc(parts[k], selected=selected)
        finite = {k: v for k, v in scores.items() if np.isfinite(v)}
        if not finite:
            raise GraphtagError(
                "cannot choose the number of groups: validation ROC-AUC is undefined for "
                "every candidate (no task has both classes among its validation nodes); "
                "pass --num-groups K"
            )
        best = max(finite.values())
        k = min(c for c, v in finite.items() if v >= best - AUTO_K_TOLERANCE)
        return k, parts[k], scores

    def compute(self) -> list[list[int]]:
        """Choose (or take) ``k``, partition, save ``groups.json``."""
        run, cfg = self.run, self.run.config
        start = time.perf_counter()
        scores: dict[int, float] | None = None
        if cfg.num_groups == "auto":
            k, groups, scores = self._choose_k()
        else:
            k = int(cfg.num_groups)
            groups = self.partition(k)
        selection: dict[str, Any] = {}
        if self.overlapping:
            sel = self.selection(k)
            selection = {
                "selected_groups": sel.groups,
                "selection": {
                    "score": sel.score,
                    "method": sel.method,
                    "max_groups": k,
                    "assignment": sel.assignment,
                },
            }
        seconds = time.perf_counter() - start
        info = {
            "groups": groups,
            "num_groups": k,
            "grouping": cfg.grouping,
            "method": cfg.method,
            "auto_scores": None if scores is None else {str(c): v for c, v in scores.items()},
            "auto_criterion": None if scores is None else "validation macro ROC-AUC",
            **selection,
            "seconds": seconds,
        }
        save_json(run.out / "groups.json", info)
        return groups

    def load(self) -> list[list[int]]:
        """Read the saved partition."""
        info = load_json(self.run.out / "groups.json")
        self.run.timings["groups"] = info.get("seconds", 0.0)
        return [list(g) for g in info["groups"]]

    def selected_groups(self) -> list[list[int]] | None:
        """The chosen overlapping groups (``None`` unless the grouping overlaps)."""
        selected = load_json(self.run.out / "groups.json").get("selected_groups")
        return None if selected is None else [list(g) for g in selected]
