"""The groups stage: candidate configurations, cheap scores, confirmation, the recommendation.

Candidates (docs/algorithms.md §8): one model for all tasks, the method's partitions into
``k = 2..max_groups`` groups (or the given ``k``), each refined by single-task moves on the
surrogate score (``recommend.search``), TAG's selections (``--grouping tag-selection``) and one
model per task (``recommend.single_task``). With ``select="predicted"`` every candidate gets a
cheap predicted validation macro ROC-AUC, and the best ``confirm`` of them are trained with the
run's seed next to one model for all tasks (the base model, already trained); with
``select="validation"`` every candidate is trained. The cheapest trained candidate within
``recommend.tolerance`` of the best validation score is recommended. Test labels are never read.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np

from ..artifacts import load_json, save_json
from ..errors import GraphtagError
from ._stage import Stage

__all__ = ["GroupsStage"]


class GroupsStage(Stage):
    """Candidates, their scores and the recommended configuration (``groups.json``)."""

    name = "groups"
    outputs = ("groups.json",)
    memory_stages = ("clustering",)

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self._selections: dict[int, Any] = {}
        self._candidates: list[Any] | None = None
        self._chosen: Any = None
        self._surrogate_scorer: Any = None

    # ------------------------------------------------------------------ configuration
    @property
    def grouping(self) -> Any:
        """The configured :class:`~graphtag.grouping.Grouping`."""
        from ..grouping import get_grouping

        return get_grouping(self.run.config.grouping)

    @property
    def overlapping(self) -> bool:
        """Whether this run's grouped candidates are overlapping selections."""
        return self.grouping.overlapping and self.run.method.has_affinity

    def key(self) -> dict[str, Any]:
        """Affinity, candidates' settings, the training recipe of confirmed models."""
        run, cfg = self.run, self.run.config
        key: dict[str, Any] = {
            "affinity": run.stage_key("affinity"),
            "num_groups": cfg.num_groups,
            "max_groups": cfg.max_groups if cfg.num_groups == "auto" else None,
            "grouping": cfg.grouping,
            "recommend": asdict(cfg.recommend),
            "data": run.stage_key("data"),
            "train": run.train_key(),
        }
        if cfg.recommend.uses_features:
            key["features"] = run.stage_key("features")
        return key

    def ks(self) -> list[int]:
        """The numbers of groups of the grouped candidates."""
        cfg, num_tasks = self.run.config, self.run.num_tasks
        if cfg.num_groups != "auto":
            k = int(cfg.num_groups)
            if k > num_tasks:
                raise GraphtagError(
                    f"--num-groups {k} is larger than the number of tasks ({num_tasks}); "
                    f"use at most {num_tasks} or 'auto'"
                )
            return [k]
        return list(range(2, min(cfg.max_groups, num_tasks - 1) + 1))

    # ------------------------------------------------------------------ candidates
    def partition(self, num_groups: int) -> list[list[int]]:
        """The method's partition of the tasks into ``num_groups`` groups (canonical order)."""
        from ..grouping import canonical_groups, check_partition

        run, k = self.run, int(num_groups)
        run.affinity()
        grouping, seed = self.grouping, run.config.seed

        def cluster(affinity: np.ndarray, n: int) -> list[list[int]]:
            if grouping.overlapping:
                sel = self.selection(n)
                groups = [[t for t, a in enumerate(sel.assignment) if a == g] for g in range(n)]
                return [g for g in groups if g]
            return grouping.cluster(affinity, n, seed)

        groups = canonical_groups(run.method.partition(k, cluster, run.num_tasks))
        check_partition(groups, run.num_tasks)
        return groups

    def selection(self, num_groups: int) -> Any:
        """The overlapping grouping's selection of at most ``num_groups`` groups (memoised)."""
        k = int(num_groups)
        if k not in self._selections:
            self._selections[k] = self.grouping.select(self.run.affinity(), k)
        return self._selections[k]

    def candidates(self) -> list[Any]:
        """Every candidate configuration (unscored)."""
        from ..recommend import Candidate, single_task_default

        run, num_tasks = self.run, self.run.num_tasks
        source = "all tasks" + (
            ", fine-tuned from the base model" if run.config.recommend.group_init == "base" else ""
        )
        out = [Candidate("one model", "one", [list(range(num_tasks))], source=source)]
        for k in self.ks():
            if k in (1, num_tasks):
                continue
            groups = self.partition(k)
            if self.overlapping:
                selected = self.selection(k).groups
                name = f"TAG selection of {len(selected)} groups"
                out.append(Candidate(name, "selection", groups, selected, source=f"k={k}"))
            else:
                source = f"{run.config.method} + {run.config.grouping}, k={k}"
                out.append(Candidate(f"{len(groups)} groups", "groups", groups, source=source))
        if single_task_default(run.config.recommend.single_task, num_tasks) or (
            run.config.num_groups == num_tasks
        ):
            singles = [[t] for t in range(num_tasks)]
            out.append(Candidate("one model per task", "single", singles, source="each task"))
        return out

    def _refine(self, candidates: list[Any], scorer: Any) -> list[Any]:
        """Single-task moves from the best-predicted k-group partition (a new candidate).

        The moves are proposed by the surrogates and decided by ``scorer`` (at most
        ``recommend.search_moves`` moves scored per round, ``recommend.search_rounds`` rounds).
        """
        from ..recommend import Candidate, improve_partition, partition_key

        grouped = [c for c in candidates if c.kind == "groups" and c.predicted is not None]
        if not grouped or not self.run.method.has_affinity:
            return []
        rc = self.run.config.recommend
        start = max(grouped, key=lambda c: c.predicted)
        proposer = self._surrogate() if scorer is not self._surrogate_scorer else None
        groups, moves = improve_partition(
            scorer,
            start.groups,
            proposer=proposer,
            moves_per_round=rc.search_moves,
            max_rounds=rc.search_rounds,
            metric="auc",
        )
        if not moves or partition_key(groups) in {partition_key(c.groups) for c in candidates}:
            return []
        source = f"{moves} single-task moves from {start.name}"
        return [Candidate(f"{len(groups)} groups, refined", "groups", groups, source=source)]

    # ------------------------------------------------------------------ scores
    def _surrogate(self) -> Any:
        """The surrogate scorer on the run's gradient features (built once)."""
        from ..recommend import SurrogateScorer

        if self._surrogate_scorer is None:
            l2 = self.run.config.recommend.l2
            self._surrogate_scorer = SurrogateScorer(self.run.features(), l2, self.run.device)
        return self._surrogate_scorer

    def _predict(self, candidates: list[Any], scorer: Any, base_auc: float) -> None:
        """Predicted validation macro ROC-AUC: the base's plus the scorer's predicted change.

        A selection serves each task by its best selected group (by the scorer; tasks no group
        holds by a model of their own, as :func:`graphtag.grouping.fit_selected_groups` does).
        """
        ref = scorer.base()[1]
        num_tasks = scorer.num_tasks
        for c in candidates:
            if c.selected is None:
                auc = scorer.per_task(c.groups)[1]
            else:
                auc = np.full(num_tasks, -np.inf)
                covered = np.zeros(num_tasks, dtype=bool)
                for g in c.selected:
                    idx = sorted(int(t) for t in g)
                    auc[idx] = np.fmax(auc[idx], scorer.group(idx)[1])
                    covered[idx] = True
                for t in np.nonzero(~covered)[0].tolist():
                    auc[t] = scorer.group([t])[1][0]
                auc[~np.isfinite(auc)] = np.nan
            c.predicted = float(base_auc + np.nanmean(auc - ref))

    def _validate(self, candidate: Any) -> None:
        """Train the candidate with the run's seed; set its validation ROC-AUC (macro, per task)."""
        from ..metrics import Evaluator
        from ._models import fit_candidate

        run = self.run
        logits, _ = fit_candidate(run, candidate, "select", run.config.seed)
        out = Evaluator().evaluate(run.data.y, logits, run.recommend_split()[1])
        candidate.validation = float(out["macro_auc"])
        candidate.validation_tasks = [None if np.isnan(v) else float(v) for v in out["auc"]]

    def _scorer(self) -> Any:
        """The cheap scorer of the configuration: probes or surrogates."""
        from ..recommend import ProbeScorer

        run, rc = self.run, self.run.config.recommend
        if rc.score == "probe":
            data, held = run.recommend_split()
            base, config = run.base_model(), run.config.train
            return ProbeScorer(data, run.inputs, base, config, rc.probe_epochs, score_mask=held)
        return self._surrogate()

    def compute(self) -> Any:
        """Build and score the candidates, train the ones to confirm; save ``groups.json``.

        Every candidate gets a predicted score in both modes, so the exhaustive sweep also
        reports how well the cheap score ranks the trained candidates.
        """
        from ..recommend import choose_candidate

        rc = self.run.config.recommend
        start = time.perf_counter()
        candidates = self.candidates()
        one = candidates[0]
        self._validate(one)
        scorer = self._scorer()
        with self.run.timed("predict"):
            self._predict(candidates, scorer, one.validation)
        if rc.search:
            with self.run.timed("search"):
                refined = self._refine(candidates, scorer)
                self._predict(refined, scorer, one.validation)
            candidates += refined
        to_train = candidates
        if rc.select == "predicted":
            ranked = sorted(candidates[1:], key=lambda c: -c.predicted)
            to_train = [one, *ranked[: rc.confirm]]
        for c in to_train:
            if c.validation is None:
                self._validate(c)
        chosen = choose_candidate(candidates, rc.tolerance)
        self._candidates, self._chosen = candidates, chosen
        self._save(candidates, chosen, time.perf_counter() - start)
        return chosen.groups

    def _save(self, candidates: list[Any], chosen: Any, seconds: float) -> None:
        from ._report import spearman

        cfg = self.run.config
        trained = [c for c in candidates if c.validation is not None and c.predicted is not None]
        rho = spearman([c.predicted for c in trained], [c.validation for c in trained])
        info = {
            "recommended": chosen.to_dict(),
            "groups": chosen.groups,
            "num_groups": len(chosen.groups),
            "grouping": cfg.grouping,
            "method": cfg.method,
            "select": cfg.recommend.select,
            "criterion": "validation macro ROC-AUC: the cheapest candidate within "
            f"{cfg.recommend.tolerance:g} plus one standard error (paired over tasks) of the best"
            + (
                f", on the {cfg.recommend.holdout:g} of each task's validation labels that chose "
                "no checkpoint"
                if cfg.recommend.holdout > 0
                else ""
            ),
            "holdout": cfg.recommend.holdout,
            "candidates": [c.to_dict() for c in candidates],
            "spearman_predicted_vs_validation": rho,
            "seconds": seconds,
        }
        if chosen.selected is not None:
            info["selected_groups"] = chosen.selected
        save_json(self.run.out / "groups.json", info)

    def load(self) -> list[list[int]]:
        """Read the saved recommendation and candidates."""
        from ..recommend import Candidate

        info = load_json(self.run.out / "groups.json")
        self.run.timings["groups"] = info.get("seconds", 0.0)
        keys = ("name", "kind", "groups", "predicted", "validation", "source")
        self._candidates = [
            Candidate(
                **{k: c[k] for k in keys},
                selected=c.get("selected_groups"),
                validation_tasks=c.get("validation_tasks"),
            )
            for c in info["candidates"]
        ]
        rec = info["recommended"]
        self._chosen = next(
            c for c in self._candidates if c.name == rec["name"] and c.groups == rec["groups"]
        )
        return [list(g) for g in info["groups"]]

    # ------------------------------------------------------------------ results
    def recommendation(self) -> Any:
        """The recommended :class:`~graphtag.recommend.Candidate`."""
        self.run.groups()
        if self._chosen is None:
            self.load()
        return self._chosen

    def all_candidates(self) -> list[Any]:
        """Every candidate with its scores."""
        self.recommendation()
        assert self._candidates is not None
        return self._candidates

    def control_partition(self) -> list[list[int]]:
        """Group sizes of the random-groups control: the recommendation's, or the best grouping's.

        When one model (or one model per task) is recommended, the trained grouped candidate
        with the best validation score gives the sizes; failing that, the best predicted one.
        """
        rec = self.recommendation()
        if rec.kind in ("groups", "selection"):
            return rec.groups
        grouped = [c for c in self.all_candidates() if c.kind in ("groups", "selection")]
        if not grouped:
            return rec.groups
        trained = [c for c in grouped if c.validation is not None]
        pool = trained or grouped

        def key(c: Any) -> float:
            value = c.validation if trained else c.predicted
            return -np.inf if value is None else value

        return max(pool, key=key).groups
