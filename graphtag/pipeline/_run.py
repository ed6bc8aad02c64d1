"""Pipeline stages over one run directory, each reused when its manifest matches.

Stages and their outputs (all in the run directory):

=============  =====================================================  ==========================
stage          outputs                                                 key (besides the dataset)
=============  =====================================================  ==========================
``base``       ``base_model.pt``, ``base.json``                       train config, seed
``features``   ``features.npz``                                        + estimator projection
``affinity``   ``affinity.npy``, ``subsets.json``,                    + estimator config, method
               ``subset_losses.csv``
``groups``     ``groups.json``                                         + num_groups, grouping
evaluation     ``models/<hash>.npy`` (logits of each finished model)   per model
=============  =====================================================  ==========================
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .._utils import derive_seed, resolve_device, versions
from ..artifacts import (
    StageStore,
    atomic_write,
    file_sha256,
    hash_object,
    load_json,
    load_npz,
    load_state_dict,
    save_json,
    save_npy,
    save_npz,
    save_state_dict,
)
from ..data import embedded_path, load_dataset, parse_spec, task_warnings
from ..errors import GraphtagError
from ..memory import release_memory
from ..models import build_model, prepare_inputs
from ..training import TrainConfig, fit_model, predict
from ._config import RunConfig

__all__ = ["Run", "dataset_key"]

log = logging.getLogger("graphtag")


def dataset_key(spec: str, split_seed: int) -> dict[str, Any]:
    """What a loaded dataset depends on: the spec, content hashes of its files, the split seed."""
    parsed = parse_spec(spec)
    files: dict[str, str] = {}
    if parsed.name == "blogcatalog":
        files["blogcatalog.mat"] = file_sha256(embedded_path("blogcatalog.mat"))
    elif parsed.name == "wikipedia-pos":
        for f in ("wikipedia-pos.edges", "wikipedia-pos.cmty"):
            files[f] = file_sha256(embedded_path(f))
    else:
        for arg in parsed.args:
            p = Path(arg)
            if p.is_file():
                files[arg] = file_sha256(p)
    return {"spec": parsed.text, "files": files, "split_seed": split_seed}


#: ``num_groups="auto"`` takes the smallest ``k`` whose validation macro ROC-AUC is within this
#: much of the best candidate's.
AUTO_K_TOLERANCE = 1e-3


class Run:
    """One pipeline run in ``out`` (created), reusing finished stages.

    Args:
        out: Run directory.
        config: The resolved configuration.
        progress: Show progress bars.
        restart: Forget every finished stage first.
    """

    def __init__(
        self,
        out: str | Path,
        config: RunConfig,
        *,
        progress: bool = True,
        restart: bool = False,
        max_memory: int | str = "auto",
    ) -> None:
        self.out = Path(out)
        if restart and self.out.exists():
            for p in list(self.out.glob("*.manifest.json")):
                p.unlink()
            shutil.rmtree(self.out / "models", ignore_errors=True)
            shutil.rmtree(self.out / "finetune", ignore_errors=True)
        self.store = StageStore(self.out)
        self.config = config
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []
        self._data: Data | None = None
        self._inputs: Any = None
        self._base: nn.Module | None = None
        self._affinity: np.ndarray | None = None
        self.device = resolve_device(config.train.device)
        #: Where real-training jobs run ("local" or "ray"); results do not depend on it.
        self.executor = "local"
        self.ray_address: str | None = None
        #: TAG network selections (``grouping="tag-selection"``) by budget ``k``.
        self._selections: dict[int, Any] = {}
        #: Memory budget of :meth:`check_memory`: "auto", "off" or bytes for the whole process.
        self.max_memory = max_memory
        self.memory_estimate: Any = None

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
            release_memory()  # hand the stage's freed temporaries back to the OS

    def check_memory(self, stages: Sequence[str] | None = None) -> Any:
        """Estimate the memory of the stages still to run; stop early when they cannot fit.

        Call it after the data is loaded, before the first expensive stage. ``stages`` defaults
        to every stage after loading (``graphtag.memory.STAGES[1:]``); the budget is
        :attr:`max_memory`. The estimate is kept in :attr:`memory_estimate` and ``memory.json``.

        Raises:
            GraphtagError: When the estimate exceeds the budget (what, where, how to fix).
        """
        from ..memory import STAGES, check_run_memory

        est = check_run_memory(
            self.data,
            self.config.train,
            self.config.estimator,
            self.max_memory,
            stages=STAGES[1:] if stages is None else stages,
            device=self.device,
        )
        self.memory_estimate = est
        save_json(self.out / "memory.json", est.to_dict())
        return est

    def _train_dict(self) -> dict[str, Any]:
        cfg = asdict(self.config.train)
        cfg.pop("device", None)  # results must not depend on where they were computed
        return cfg

    # ------------------------------------------------------------------ stages
    @property
    def data(self) -> Data:
        """The dataset (loaded once)."""
        if self._data is None:
            with self._timed("load_data"):
                self._data = load_dataset(self.config.dataset, seed=self.config.seed)
        return self._data

    @property
    def data_key(self) -> dict[str, Any]:
        """Key of the dataset."""
        return dataset_key(self.config.dataset, self.config.seed)

    @property
    def inputs(self) -> Any:
        """Model inputs for the base architecture (hops precomputed once)."""
        if self._inputs is None:
            with self._timed("prepare_inputs"):
                self._inputs = prepare_inputs(
                    self.data, self.config.train.model_config, self.device
                )
        return self._inputs

    def base_key(self) -> dict[str, Any]:
        """Key of the base model stage."""
        return {"data": self.data_key, "train": self._train_dict(), "seed": self.config.seed}

    def base_model(self) -> nn.Module:
        """The base model theta0 trained on all tasks (stage ``base``)."""
        if self._base is not None:
            return self._base
        key = self.base_key()
        data, inputs = self.data, self.inputs
        num_tasks = data.y.size(1)
        if self.store.is_done("base", key):
            self.reused.append("base")
            model = build_model(self.config.train.model_config, inputs.in_channels, num_tasks)
            model.load_state_dict(load_state_dict(self.out / "base_model.pt"))
            model.to(self.device).eval()
            self.timings["base_model"] = load_json(self.out / "base.json")["seconds"]
        else:
            with self._timed("base_model"):
                res = fit_model(
                    data,
                    inputs,
                    None,
                    self.config.train,
                    seed=self.config.seed,
                    progress=self.progress,
                    stage="base",
                )
            model = res.model
            save_state_dict(self.out / "base_model.pt", model.state_dict())
            save_json(
                self.out / "base.json",
                {
                    "best_epoch": res.best_epoch,
                    "best_val": res.best_val,
                    "seconds": res.seconds,
                    "history": res.history,
                },
            )
            self.store.mark_done("base", key, ["base_model.pt", "base.json"])
        self._base = model
        return model

    def base_logits(self) -> Tensor:
        """Exact logits ``[N, T]`` of the base model."""
        return predict(self.base_model(), self.inputs, batch_size=self.config.train.eval_batch_size)

    def features_key(self) -> dict[str, Any]:
        """Key of the gradient-feature stage."""
        est = self.config.estimator
        return {
            "base": self.base_key(),
            "projection_dim": est.projection_dim,
            "block": est.block,
            "val_fraction": est.val_fraction,
            "max_task_rows": est.max_task_rows,
            "seed": derive_seed(self.config.seed, "projection"),
        }

    def features(self) -> Any:
        """Projected gradient features of the base model (stage ``features``)."""
        from ..gradients import GradientFeatures, GradientProjector, extract_gradient_features

        key = self.features_key()
        path = self.out / "features.npz"
        if self.store.is_done("features", key):
            self.reused.append("features")
            z = load_npz(path)
            meta = json.loads(str(z["meta"]))
            self.timings["features"] = float(meta.get("seconds", 0.0))
            return GradientFeatures(
                torch.from_numpy(z["features"]),
                torch.from_numpy(z["offsets"]),
                torch.from_numpy(z["labels"]),
                torch.from_numpy(z["task"]),
                torch.from_numpy(z["node"]),
                torch.from_numpy(z["split"]),
                int(z["num_tasks"]),
                meta,
            )
        model = self.base_model()
        est = self.config.estimator
        start = time.perf_counter()
        projector = GradientProjector(
            dim=est.projection_dim, block=est.block, seed=key["seed"]
        ).fit(model)
        feats = extract_gradient_features(
            model,
            self.inputs,
            self.data,
            projector,
            val_fraction=est.val_fraction,
            max_task_rows=est.max_task_rows,
            seed=key["seed"],
            progress=self.progress,
        )
        seconds = time.perf_counter() - start
        self.timings["features"] = seconds
        meta = dict(feats.meta)
        meta["seconds"] = seconds
        feats.meta = meta
        save_npz(
            path,
            {
                "features": feats.features.float(),
                "offsets": feats.offsets,
                "labels": feats.labels,
                "task": feats.task,
                "node": feats.node,
                "split": feats.split,
                "num_tasks": np.array(feats.num_tasks),
                "meta": np.array(json.dumps(meta, default=str)),
            },
        )
        self.store.mark_done("features", key, ["features.npz"])
        release_memory()
        return feats

    # ------------------------------------------------------------------ affinity
    def affinity_key(self) -> dict[str, Any]:
        """Key of the affinity stage."""
        cfg = self.config
        key: dict[str, Any] = {"method": cfg.method, "seed": cfg.seed}
        num_tasks = int(self.data.y.size(1))
        if cfg.method in ("grad-tag", "higher-order") and num_tasks >= 2:
            key["subset_plan"] = list(self._subset_plan(num_tasks))
        if cfg.method == "grad-tag":
            key["features"] = self.features_key()
            key["estimator"] = asdict(cfg.estimator)
            if cfg.estimator.l2 is None:
                key["l2_rule"] = "matched_ridge(FINETUNE_LR, FINETUNE_STEPS)"
        else:
            key["base"] = self.base_key()
            if cfg.method in ("higher-order", "pairwise"):
                from ..estimation._finetune import FINETUNE_RECIPES

                key["finetune"] = FINETUNE_RECIPES[cfg.finetune_recipe]
            if cfg.method == "higher-order":
                est = asdict(cfg.estimator)
                key["estimator"] = {
                    k: est[k] for k in ("num_subsets", "subset_size", "min_pair_count")
                }
        return key

    def affinity(self) -> np.ndarray:
        """The ``[T, T]`` task affinity of the configured method (stage ``affinity``)."""
        if self._affinity is not None:
            return self._affinity
        key = self.affinity_key()
        if self.store.is_done("affinity", key):
            self.reused.append("affinity")
            info = load_json(self.out / "affinity.json")
            self.timings["affinity"] = info.get("seconds", 0.0)
            self._affinity = np.load(self.out / "affinity.npy", allow_pickle=False)
            return self._affinity
        method = self.config.method
        if method in ("higher-order", "pairwise"):
            affinity, subsets, losses, seconds, extra = self._real_affinity(method)
        elif method == "grad-tag":
            affinity, subsets, losses, seconds, extra = self._grad_tag_affinity()
        elif method == "tag":
            affinity, subsets, losses, seconds, extra = self._tag_affinity()
        else:
            raise GraphtagError(
                f"method {method!r} is not available in `graphtag run` yet; use grad-tag, tag, "
                "higher-order or pairwise"
            )
        self.timings["affinity"] = seconds
        if not np.isfinite(affinity).all():
            raise GraphtagError("the affinity matrix has NaN/inf entries; see subset_losses.csv")
        save_npy(self.out / "affinity.npy", affinity)
        save_json(self.out / "subsets.json", [list(map(int, s)) for s in subsets])
        self._write_losses_csv(subsets, losses)
        save_json(
            self.out / "affinity.json",
            {"method": method, "seconds": seconds, "num_subsets": len(subsets), **extra},
        )
        self.store.mark_done(
            "affinity",
            key,
            ["affinity.npy", "subsets.json", "subset_losses.csv", "affinity.json"],
        )
        self._affinity = affinity
        release_memory()
        return affinity

    def _grad_tag_affinity(self) -> tuple[np.ndarray, list, Any, float, dict]:
        feats = self.features()
        from ..estimation import GradTAG

        est = self.config.estimator
        num_tasks = feats.num_tasks
        start = time.perf_counter()
        kwargs: dict[str, Any] = {}
        if est.l2 is not None:
            kwargs["l2"] = est.l2
        else:  # the ridge matched to the real fine-tune's budget (check-estimator, issue 3)
            from ..estimation._finetune import matched_ridge

            kwargs.update(l2=matched_ridge(), l2_relative=False)
        subset_size, num_subsets, min_pair_count = self._subset_plan(num_tasks)
        gt = GradTAG(
            subset_size=subset_size,
            num_subsets=num_subsets,
            min_pair_count=min_pair_count,
            loss=est.loss,
            seed=derive_seed(self.config.seed, "subsets"),
            device=self.device,
            **kwargs,
        ).fit(feats)
        seconds = time.perf_counter() - start
        affinity = np.asarray(gt.affinity_, dtype=np.float64)
        extra = {
            "converged": int(np.asarray(gt.converged_).sum()),
            "excluded": int(np.asarray(gt.excluded_).sum()),
        }
        return affinity, list(gt.subsets_), gt.losses_, seconds, extra

    def _tag_affinity(self) -> tuple[np.ndarray, list, Any, float, dict]:
        """TAG's lookahead affinity, measured while a model trains on all tasks (base recipe).

        Every 10th optimiser step, each task's SGD lookahead step on the shared parameters (at the
        current learning rate, eval-mode forwards) is scored by every task's loss change on the
        same batch; ``Z[j][i]`` is averaged over measured steps and symmetrised for clustering.
        Pairs never measured together get 0 (and a note).
        """
        from ..baselines import TAGAffinity

        num_tasks = int(self.data.y.size(1))
        recorder = TAGAffinity(every=10, seed=self.config.seed)
        start = time.perf_counter()
        fit_model(
            self.data,
            self.inputs,
            None,
            self.config.train,
            seed=self.config.seed,
            progress=self.progress,
            step_callback=recorder.step,
            stage="tag",
        )
        z = np.asarray(recorder.affinity_, dtype=np.float64)
        missing = int(np.isnan(z).sum()) - int(np.isnan(np.diag(z)).sum())
        if missing:
            self.store.notes.append(
                f"tag: {missing} (recipient, source) pairs never measured; set 0"
            )
        z = np.nan_to_num(z, nan=0.0)
        affinity = (z + z.T) / 2
        np.fill_diagonal(affinity, 0.0)
        losses = np.zeros((0, num_tasks))
        extra = {"measured_steps": int(np.asarray(recorder.counts_).max(initial=0))}
        return affinity, [], losses, time.perf_counter() - start, extra

    def _subset_plan(self, num_tasks: int) -> tuple[int, int, int]:
        """``(subset_size, num_subsets, min_pair_count)`` capped to what ``T`` tasks allow.

        Shared by every subset-based affinity (Grad-TAG, higher-order by real training) and
        part of their stage keys; each adjustment adds a note to the run (once).
        """

        def note(text: str) -> None:
            if text not in self.store.notes:
                self.store.notes.append(text)

        est = self.config.estimator
        subset_size = est.resolved_subset_size(num_tasks)
        if subset_size != est.subset_size:
            note(
                f"affinity: --subset-size {est.subset_size} capped to {subset_size}: subsets of "
                f"{num_tasks} tasks hold at most max(2, T // 2) = {subset_size} tasks"
            )
        num_subsets = min(est.num_subsets, math.comb(num_tasks, subset_size))
        if num_subsets < est.num_subsets:
            note(
                f"affinity: only {num_subsets} distinct subsets of size {subset_size} exist; "
                f"using all of them instead of {est.num_subsets}"
            )
        min_pair_count = min(est.min_pair_count, math.comb(num_tasks - 2, subset_size - 2))
        # Coverage the subset budget can pay for with slack 1.5 (the sampler's repair then
        # succeeds): M s(s-1)/2 pair slots over T(T-1)/2 pairs (ALGORITHMS.md §5: every pair
        # must co-occur). When the budget cannot pay at this size, subsets grow (up to
        # max(2, T // 2)) until it can; only then is the guarantee lowered (0: pairs may never
        # meet and get affinity 0, with a warning) rather than multiplying the subsets.
        num_pairs = num_tasks * (num_tasks - 1) // 2

        def affordable(size: int) -> int:
            return int(num_subsets * (size * (size - 1) // 2) / (1.5 * num_pairs))

        if affordable(subset_size) < min_pair_count:
            size, top = subset_size, max(2, num_tasks // 2)
            while size < top and affordable(size) < min_pair_count:
                size += 1
            if size != subset_size:
                note(
                    f"affinity: subsets of {subset_size} tasks are too small for {num_subsets} "
                    f"subsets to make every pair of {num_tasks} tasks co-occur {min_pair_count} "
                    f"times; using subsets of {size} tasks (raise --num-subsets to keep the size)"
                )
                subset_size = size
                min_pair_count = min(min_pair_count, math.comb(num_tasks - 2, size - 2))
        if affordable(subset_size) < min_pair_count:
            note(
                f"affinity: {num_subsets} subsets of size {subset_size} cannot make every pair of "
                f"{num_tasks} tasks co-occur {min_pair_count} times; guaranteeing "
                f"{affordable(subset_size)} instead (raise --num-subsets for more)"
            )
            min_pair_count = affordable(subset_size)
        return subset_size, num_subsets, min_pair_count

    def _real_affinity(self, method: str) -> tuple[np.ndarray, list, Any, float, dict]:
        """Affinity by real fine-tuning (higher-order subsets or all pairs), checkpointed."""
        from ..estimation import (
            RealContext,
            higher_order_affinity,
            pairwise_real_affinity,
            pairwise_subset_losses,
            pairwise_subsets,
        )

        ctx = RealContext(self.base_model(), self.data, self.inputs, self.config.train)
        num_tasks = int(self.data.y.size(1))
        common: dict[str, Any] = {
            "seed": derive_seed(self.config.seed, "real-affinity"),
            "executor": self.executor,
            "checkpoint_dir": self.out / "finetune",
            "progress": self.progress,
            "ray_address": self.ray_address,
            "recipe": self.config.finetune_recipe,
        }
        start = time.perf_counter()
        if method == "higher-order":
            subset_size, num_subsets, min_pair_count = self._subset_plan(num_tasks)
            affinity, subsets, losses = higher_order_affinity(
                ctx,
                num_subsets,
                subset_size,
                min_pair_count=min_pair_count,
                **common,
            )
        else:
            affinity, single, pair = pairwise_real_affinity(ctx, **common)
            subsets = list(pairwise_subsets(num_tasks))
            losses = pairwise_subset_losses(subsets, single, pair)
        affinity = np.asarray(affinity, dtype=np.float64)
        affinity = (affinity + affinity.T) / 2
        return affinity, [tuple(s) for s in subsets], losses, time.perf_counter() - start, {}

    def _write_losses_csv(self, subsets: Sequence[Sequence[int]], losses: Any) -> None:
        losses = np.asarray(losses.cpu() if isinstance(losses, Tensor) else losses)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["subset", "task", "loss"])
        for k, s in enumerate(subsets):
            for t in s:
                w.writerow([k, int(t), f"{float(losses[k, int(t)]):.8g}"])
        with atomic_write(self.out / "subset_losses.csv", "w") as fh:
            fh.write(buf.getvalue())

    # ------------------------------------------------------------------ groups
    def groups_key(self) -> dict[str, Any]:
        """Key of the grouping stage."""
        cfg = self.config
        key: dict[str, Any] = {
            "affinity": self.affinity_key(),
            "num_groups": cfg.num_groups,
            "grouping": cfg.grouping,
        }
        if cfg.num_groups == "auto":
            # The number of groups is chosen with validation models trained with this recipe.
            key["max_groups"] = cfg.max_groups
            key["data"] = self.data_key
            key["train"] = self._train_dict()
        return key

    def partition(self, affinity: np.ndarray | None, num_groups: int) -> list[list[int]]:
        """The configured grouping of ``T`` tasks into exactly ``num_groups`` groups.

        SDP clustering (or spectral clustering) of ``affinity``; with ``method="random"``, a
        seeded random partition into groups whose sizes differ by at most one (``affinity`` is
        ignored and may be ``None``). With ``grouping="tag-selection"``, TAG's network
        selection of at most ``num_groups`` (possibly overlapping) groups
        (:meth:`selection`), each task put in its best selected group by the affinity: at
        most ``num_groups`` groups.
        """
        from ..clustering import SDPClustering, SpectralTaskClustering
        from ..grouping import canonical_groups, check_partition, random_groups_like

        cfg = self.config
        num_tasks = int(self.data.y.size(1))
        k = int(num_groups)
        if k > num_tasks:
            raise GraphtagError(
                f"--num-groups {k} is larger than the number of tasks ({num_tasks}); "
                f"use at most {num_tasks} or 'auto'"
            )
        if cfg.method == "random" or affinity is None:
            template = [list(range(g, num_tasks, k)) for g in range(k)]
            groups = random_groups_like(
                template, num_tasks, seed=derive_seed(cfg.seed, "random-method", k)
            )
        elif cfg.grouping == "tag-selection":
            sel = self.selection(affinity, k)
            groups = [[t for t, a in enumerate(sel.assignment) if a == g] for g in range(k)]
            groups = [g for g in groups if g]
        elif cfg.grouping == "spectral":
            groups = SpectralTaskClustering(num_groups=k, seed=cfg.seed).fit(affinity).groups_
        else:
            groups = SDPClustering(num_groups=k, solver="auto", seed=cfg.seed).fit(affinity).groups_
        groups = canonical_groups(groups)
        check_partition(groups, num_tasks)
        return groups

    def selection(self, affinity: np.ndarray, num_groups: int) -> Any:
        """TAG's network selection of at most ``num_groups`` (possibly overlapping) groups.

        Maximises the mean over tasks of each task's best group score
        (:func:`graphtag.baselines.select_groups`: exact for ``T <= 12``, greedy above) on the
        run's affinity. Memoised per ``num_groups``.
        """
        from ..baselines import select_groups

        k = int(num_groups)
        if k not in self._selections:
            self._selections[k] = select_groups(affinity, max_groups=k)
        return self._selections[k]

    def validation_auc(
        self,
        groups: Sequence[Sequence[int]],
        selected: Sequence[Sequence[int]] | None = None,
    ) -> float:
        """Validation macro ROC-AUC of one model per group (seed ``config.seed``, cached).

        The models are the ``grouped`` models of the first evaluation seed, so choosing the
        number of groups this way costs no extra training for the chosen ``k``. With
        ``selected`` (TAG's overlapping groups), one model per selected group is trained and
        each task is scored by its best selected group on validation
        (:func:`graphtag.grouping.fit_selected_groups`); ``groups`` is then ignored.
        """
        from ..grouping import fit_groups, fit_selected_groups
        from ..metrics import Evaluator

        data = self.data
        cache = self.model_cache("select_k", self.config.seed)
        if selected is not None:
            logits = fit_selected_groups(
                data, self.inputs, selected, self.config.train, seed=self.config.seed, cache=cache
            ).logits
        else:
            logits = fit_groups(
                data, self.inputs, groups, self.config.train, seed=self.config.seed, cache=cache
            )
        auc = Evaluator().evaluate(data.y, logits, data.val_mask)["macro_auc"]
        return float(auc)

    def groups(self) -> list[list[int]]:
        """Task groups (a partition) from the affinity (stage ``groups``).

        ``num_groups="auto"`` compares ``k = 2..min(max_groups, T - 1)``: for each ``k`` the
        affinity is clustered into ``k`` groups, one model per group is trained (the recipe and
        seed of the evaluated grouped models) and scored by validation macro ROC-AUC; the
        smallest ``k`` within :data:`AUTO_K_TOLERANCE` of the best score wins (parsimony: a
        finer split must earn its extra models). Test labels are never read. The scores are saved in
        ``groups.json`` (``auto_scores``).

        ``grouping="tag-selection"``: TAG's network selection with budget ``k``
        (:meth:`selection`); ``groups.json`` also holds ``selected_groups`` (the chosen,
        possibly overlapping groups, see :meth:`selected_groups`) and ``selection`` (objective
        ``score``, search ``method``, affinity-based ``assignment``). The returned partition
        puts each task in its best selected group by the affinity; ``auto`` scores each ``k``
        by the selected groups' models, each task served by its best group on validation.
        """
        key = self.groups_key()
        if self.store.is_done("groups", key):
            self.reused.append("groups")
            info = load_json(self.out / "groups.json")
            self.timings["groups"] = info.get("seconds", 0.0)
            return [list(g) for g in info["groups"]]
        cfg = self.config
        affinity = None if cfg.method == "random" else self.affinity()
        num_tasks = int(self.data.y.size(1))
        start = time.perf_counter()
        scores: dict[int, float] | None = None
        if cfg.num_groups == "auto":
            from tqdm.auto import tqdm

            top = max(2, min(cfg.max_groups, num_tasks - 1))
            candidates = list(range(2, top + 1)) if num_tasks > 2 else [num_tasks]
            scores, parts = {}, {}
            for k in tqdm(candidates, desc="choose k on validation", disable=not self.progress):
                parts[k] = self.partition(affinity, k)
                sel = (
                    self.selection(affinity, k).groups
                    if cfg.grouping == "tag-selection" and affinity is not None
                    else None
                )
                scores[k] = self.validation_auc(parts[k], selected=sel)
            finite = {k: v for k, v in scores.items() if np.isfinite(v)}
            if not finite:
                raise GraphtagError(
                    "cannot choose the number of groups: validation ROC-AUC is undefined for "
                    "every candidate (no task has both classes among its validation nodes); "
                    "pass --num-groups K"
                )
            best = max(finite.values())
            k = min(c for c, v in finite.items() if v >= best - AUTO_K_TOLERANCE)
            groups = parts[k]
        else:
            k = int(cfg.num_groups)
            groups = self.partition(affinity, k)
        selection: dict[str, Any] = {}
        if cfg.grouping == "tag-selection" and affinity is not None:
            sel = self.selection(affinity, k)
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
        self.timings["groups"] = seconds
        save_json(
            self.out / "groups.json",
            {
                "groups": groups,
                "num_groups": k,
                "grouping": cfg.grouping,
                "method": cfg.method,
                "auto_scores": None if scores is None else {str(c): v for c, v in scores.items()},
                "auto_criterion": None if scores is None else "validation macro ROC-AUC",
                **selection,
                "seconds": seconds,
            },
        )
        self.store.mark_done("groups", key, ["groups.json"])
        release_memory()
        return groups

    def selected_groups(self) -> list[list[int]] | None:
        """TAG's selected (possibly overlapping) groups of the groups stage.

        ``None`` unless ``grouping="tag-selection"`` (and the method has an affinity).
        """
        if not self.store.is_done("groups", self.groups_key()):
            self.groups()
        selected = load_json(self.out / "groups.json").get("selected_groups")
        return None if selected is None else [list(g) for g in selected]

    # ------------------------------------------------------------------ evaluation
    def model_cache(
        self, block: str, seed: int
    ) -> Callable[[Sequence[int], Callable[[], Tensor]], Tensor]:
        """A per-model checkpoint: logits of a finished (block, seed, tasks) model are reused."""
        folder = self.out / "models"

        def cache(tasks: Sequence[int], compute: Callable[[], Tensor]) -> Tensor:
            key = {
                "data": self.data_key,
                "train": self._train_dict(),
                "tasks": [int(t) for t in tasks],
                "seed": seed,
            }
            name = f"{hash_object(key)[:24]}.npz"
            path = folder / name
            if path.exists():
                try:
                    z = load_npz(path)
                    if z["key"].item() == hash_object(key):
                        return torch.from_numpy(z["logits"])
                except GraphtagError:
                    log.warning("model checkpoint %s is corrupt; retraining", path)
            start = time.perf_counter()
            logits = compute()
            self.timings[f"train_{block}"] = (
                self.timings.get(f"train_{block}", 0.0) + time.perf_counter() - start
            )
            save_npz(path, {"logits": logits, "key": np.array(hash_object(key))})
            return logits

        return cache

    def evaluate_partition(self, groups: Sequence[Sequence[int]], block: str, seed: int) -> dict:
        """Train one model per group with ``seed``; test metrics of the assembled logits."""
        from ..grouping import evaluate_logits, fit_groups

        logits = fit_groups(
            self.data,
            self.inputs,
            groups,
            self.config.train,
            seed=seed,
            cache=self.model_cache(block, seed),
        )
        return evaluate_logits(self.data, logits)

    def evaluate_selection(
        self, selected: Sequence[Sequence[int]], block: str, seed: int
    ) -> tuple[dict, Any]:
        """Train one model per selected (overlapping) group; test metrics of the served logits.

        Each task is served by its best selected group on validation
        (:func:`graphtag.grouping.fit_selected_groups`). Returns the metrics and the
        :class:`graphtag.grouping.SelectedGroupsResult`.
        """
        from ..grouping import evaluate_logits, fit_selected_groups

        res = fit_selected_groups(
            self.data,
            self.inputs,
            selected,
            self.config.train,
            seed=seed,
            cache=self.model_cache(block, seed),
        )
        return evaluate_logits(self.data, res.logits), res

    # ------------------------------------------------------------------ misc
    def dataset_summary(self) -> dict[str, Any]:
        """``{name, spec, num_nodes, num_edges, num_tasks, ...}`` of the dataset."""
        data = self.data
        out = {
            "name": data.name,
            "spec": self.config.dataset,
            "num_nodes": int(data.num_nodes),
            "num_edges": int(data.edge_index.size(1) // 2),
            "num_tasks": int(data.y.size(1)),
            "num_features": int(data.x.size(1)),
        }
        meta = getattr(data, "meta", {}) or {}
        for k in ("self_loops_removed", "duplicate_edges_removed", "features", "split"):
            if k in meta:
                out[k] = meta[k]
        planted = getattr(data, "planted_groups", None)
        if planted is not None:
            out["planted_groups"] = [sorted(int(t) for t in g) for g in planted]
        return out

    def warnings(self) -> list[str]:
        """Dataset warnings (tasks with few training positives) and stage notes."""
        return task_warnings(self.data) + list(self.store.notes)

    def header(self) -> dict[str, Any]:
        """Fields common to every report."""
        return {
            "dataset": self.dataset_summary(),
            "tasks": list(self.data.task_names),
            "seed": self.config.seed,
            "config": _jsonable(self.config.to_dict()),
            "versions": versions(),
            "device": str(self.device),
        }


def _jsonable(obj: Any) -> Any:
    return json.loads(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def train_config_with(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``config`` with ``changes`` (``None`` values ignored)."""
    from dataclasses import replace

    return replace(config, **{k: v for k, v in changes.items() if v is not None})
