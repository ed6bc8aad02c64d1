"""The stage runner: one pipeline run in a directory, each finished stage reused by its key.

=============  =====================================================  ==========================
stage          outputs (in the run directory)                         key (besides upstream)
=============  =====================================================  ==========================
``data``       (in memory) the multi-label graph                      spec, file hashes, seed
``inputs``     (in memory) SIGN hops or the message-passing graph     model config
``base``       ``base_model.pt``, ``base.json``                       train config, seed
``features``   ``features.npz``                                       projection settings
``affinity``   ``affinity.npy``, ``subsets.json``,                    the method's cache key
               ``subset_losses.csv``, ``affinity.json``
``groups``     ``groups.json``                                        num_groups, grouping
models         ``models/<hash>.npz`` (logits of each finished model)  per model
report         ``report.json``, ``report.md``, ``affinity.png``        (always written)
=============  =====================================================  ==========================

Each stage is a :class:`~graphtag.pipeline.Stage` (``_stages.py``, ``_groups.py``) with its key,
its outputs and the memory-estimate stages it accounts for.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from torch_geometric.data import Data

from .._utils import resolve_device, versions
from ..artifacts import StageStore, save_json
from ..memory import release_memory
from ._config import RunConfig, RunOptions
from ._groups import GroupsStage
from ._stage import Stage
from ._stages import AffinityStage, BaseStage, DataStage, FeaturesStage, InputsStage

#: The stages of a run, in order.
STAGES: tuple[type[Stage], ...] = (
    DataStage,
    InputsStage,
    BaseStage,
    FeaturesStage,
    AffinityStage,
    GroupsStage,
)

__all__ = ["Run"]


class Run:
    """One pipeline run in ``options.out`` (created), reusing finished stages.

    Args:
        config: What the results depend on.
        options: Where and how the run is carried out.

    Attributes:
        method: The configured :class:`~graphtag.methods.AffinityMethod`.
        estimator: The Grad-TAG settings as a :class:`~graphtag.methods.GradTAGMethod` (the
            gradient features are computed with them whatever the method).
        timings: Seconds per stage (reused stages report the seconds they took).
        reused: Names of the stages reused from earlier runs.
        notes: Sentences for the report (plan adjustments, recomputed stages).
    """

    def __init__(self, config: RunConfig, options: RunOptions) -> None:
        from ..methods import GradTAGMethod

        out = options.out
        if options.restart and out.exists():
            for p in list(out.glob("*.manifest.json")):
                p.unlink()
            shutil.rmtree(out / "models", ignore_errors=True)
            shutil.rmtree(out / "finetune", ignore_errors=True)
        self.config = config
        self.options = options
        self.store = StageStore(out)
        self.method = config.build_method()
        self.estimator = GradTAGMethod.from_config(config)
        self.device = resolve_device(config.train.device)
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []
        self.memory_estimate: Any = None
        self._values: dict[str, Any] = {}
        self._computed: set[str] = set()
        self._inner: list[float] = []  # seconds of nested timed blocks, per open block
        self._recommend_split: tuple[Data, Any] | None = None
        self._stages: dict[str, Stage] = {cls.name: cls(self) for cls in STAGES}

    # ------------------------------------------------------------------ runner
    @property
    def out(self) -> Any:
        """The run directory."""
        return self.options.out

    @property
    def progress(self) -> bool:
        """Whether progress bars are shown."""
        return self.options.progress

    @property
    def notes(self) -> list[str]:
        """Stage notes (shared with the stage store)."""
        return self.store.notes

    def note(self, text: str) -> None:
        """Add ``text`` to :attr:`notes` once."""
        if text not in self.notes:
            self.notes.append(text)

    def stage(self, name: str) -> Stage:
        """The :class:`Stage` called ``name``."""
        return self._stages[name]

    def stage_key(self, name: str) -> dict[str, Any]:
        """The key of stage ``name``."""
        return self._stages[name].key()

    def get(self, name: str) -> Any:
        """The value of stage ``name``: memoised, reused from disk, or computed and saved."""
        if name in self._values:
            return self._values[name]
        stage = self._stages[name]
        if not stage.outputs:
            with self.timed(name):
                value = stage.compute()
        else:
            key = stage.key()
            if self.store.is_done(name, key):
                if name not in self._computed and name not in self.reused:
                    self.reused.append(name)  # finished by an earlier run
                value = stage.load()
            else:
                with self.timed(name):
                    value = stage.compute()
                self.store.mark_done(name, key, list(stage.outputs))
                self._computed.add(name)
                release_memory()
        if stage.keep:
            self._values[name] = value
        return value

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the block's own wall-clock seconds to ``timings[name]``; release freed memory.

        Blocks nest (a stage computes the stages it needs): time spent in an inner block counts
        for the inner one only, so the timings add up to the run's wall time.
        """
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            own = elapsed - self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed
            self.timings[name] = self.timings.get(name, 0.0) + own
            release_memory()  # hand the stage's freed temporaries back to the OS

    # ------------------------------------------------------------------ stage values
    @property
    def data(self) -> Data:
        """The dataset (loaded once)."""
        return self.get("data")

    @property
    def inputs(self) -> Any:
        """Model inputs for the base architecture (hops precomputed once)."""
        return self.get("inputs")

    @property
    def num_tasks(self) -> int:
        """``T``."""
        return int(self.data.y.size(1))

    def base_model(self) -> Any:
        """The base model theta0 trained on all tasks."""
        return self.get("base")

    def new_model(self) -> Any:
        """An untrained all-task model of the run's architecture, to load saved weights into.

        Built as ``fit_model`` builds it: input dropout resolved for the data.
        """
        from ..models import build_model

        config = self.config.train.for_data(self.data).model_config
        return build_model(config, self.inputs.in_channels, self.num_tasks)

    def base_logits(self) -> Any:
        """Exact logits ``[N, T]`` of the base model."""
        from ..training import predict

        return predict(self.base_model(), self.inputs, batch_size=self.config.train.eval_batch_size)

    def features(self) -> Any:
        """Projected gradient features of the base model."""
        return self.get("features")

    def affinity(self) -> Any:
        """The method's ``[T, T]`` affinity (``None`` for methods without one)."""
        return self.get("affinity")

    def groups(self) -> list[list[int]]:
        """The chosen partition of the tasks."""
        return self.get("groups")

    def groups_stage(self) -> GroupsStage:
        """The groups stage (candidates, scores, recommendation)."""
        return self._stages["groups"]  # type: ignore[return-value]

    def recommendation(self) -> Any:
        """The recommended :class:`~graphtag.recommend.Candidate`."""
        return self.groups_stage().recommendation()

    def candidates(self) -> list[Any]:
        """Every candidate of the groups stage, with its scores."""
        return self.groups_stage().all_candidates()

    def selected_groups(self) -> list[list[int]] | None:
        """The recommendation's overlapping groups (``None`` unless it is a selection)."""
        return self.recommendation().selected

    def recommend_split(self) -> tuple[Data, Any]:
        """``(data for training, comparison mask)`` of the recommendation's models.

        With ``recommend.holdout > 0`` the data's validation mask keeps only the labels that
        choose checkpoints and the mask ``[N, T]`` holds the others (candidates are compared
        on them); otherwise ``(data, data.val_mask)``.
        """
        if self._recommend_split is None:
            from ..recommend import holdout_split

            fraction = self.config.recommend.holdout
            self._recommend_split = holdout_split(self.data, fraction, seed=self.config.seed)
        return self._recommend_split

    def train_key(self) -> dict[str, Any]:
        """The training recipe as a key (the device is left out: results must not depend on it)."""
        cfg = asdict(self.config.train)
        cfg.pop("device", None)
        return cfg

    # ------------------------------------------------------------------ memory and reports
    def check_memory(self, stages: Sequence[str] | None = None) -> Any:
        """Estimate the memory of the stages still to run; stop early when they cannot fit.

        ``stages`` are pipeline stage names (default: every stage after ``data`` that this
        run's method uses); each accounts for its :attr:`Stage.memory_stages`. The estimate is
        kept in :attr:`memory_estimate` and ``memory.json``.

        Raises:
            GraphtagError: When the estimate exceeds the budget (what, where, how to fix).
        """
        from ..memory import check_run_memory

        if stages is None:
            stages = ["inputs", "base", "affinity", "groups"]
            if self.method.uses_features or self.config.recommend.uses_features:
                stages.insert(2, "features")
        names: list[str] = []
        for s in stages:
            names += self._stages[s].memory_stages
        needs_features = "features" in names and not self.method.uses_features
        est = check_run_memory(
            self.data,
            self.config.train,
            self.estimator if needs_features else self.method,
            self.options.max_memory,
            stages=names,
            device=self.device,
        )
        self.memory_estimate = est
        save_json(self.out / "memory.json", est.to_dict())
        return est

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
        from ..data import task_warnings

        return task_warnings(self.data) + list(self.notes)

    def header(self) -> dict[str, Any]:
        """Fields common to every report."""
        from ..reporting import jsonable

        return {
            "dataset": self.dataset_summary(),
            "tasks": list(self.data.task_names),
            "seed": self.config.seed,
            "config": jsonable(self.config.to_dict()),
            "versions": versions(),
            "device": str(self.device),
        }
