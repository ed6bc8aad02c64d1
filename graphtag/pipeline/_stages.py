"""The stages before grouping: data, inputs, base model, gradient features, affinity."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import (
    atomic_write,
    file_sha256,
    load_json,
    load_npz,
    load_state_dict,
    save_json,
    save_npy,
    save_npz,
    save_state_dict,
)
from ._stage import Stage

__all__ = [
    "AffinityStage",
    "BaseStage",
    "DataStage",
    "FeaturesStage",
    "InputsStage",
    "dataset_key",
]


def dataset_key(spec: str, split_seed: int) -> dict[str, Any]:
    """What a loaded dataset depends on: spec, file hashes, feature recipes, split seed."""
    from ..data import DEFAULT_EMBEDDING, EMBEDDINGS, dataset_files, parse_spec

    files = {
        name: file_sha256(path) for name, path in dataset_files(spec).items() if path.is_file()
    }
    recipes = {
        name: {"version": m.version, "dim": m.dim, "params": m.params}
        for name, m in EMBEDDINGS.items()
    }
    return {
        "spec": parse_spec(spec).text,
        "files": files,
        "features": {"default": DEFAULT_EMBEDDING, "recipes": recipes},
        "split_seed": split_seed,
    }


class DataStage(Stage):
    """The multi-label graph of ``config.dataset`` (split with ``config.seed``)."""

    name = "data"
    memory_stages = ("data",)

    def key(self) -> dict[str, Any]:
        """Spec, content hashes of the files read, split seed."""
        return dataset_key(self.run.config.dataset, self.run.config.seed)

    def compute(self) -> Any:
        """Load the dataset."""
        from ..data import load_dataset

        return load_dataset(self.run.config.dataset, seed=self.run.config.seed)


class InputsStage(Stage):
    """The base architecture's inputs on the run's device (SIGN hops precomputed once)."""

    name = "inputs"
    memory_stages = ("inputs",)

    def key(self) -> dict[str, Any]:
        """The data key and the model configuration."""
        return {"data": self.run.stage_key("data"), "model": repr(self.run.config.train)}

    def compute(self) -> Any:
        """Prepare the inputs."""
        from ..models import prepare_inputs

        run = self.run
        return prepare_inputs(run.data, run.config.train.model_config, run.device)


class BaseStage(Stage):
    """The base model theta0, trained on all tasks with the run's recipe."""

    name = "base"
    outputs = ("base_model.pt", "base.json")
    memory_stages = ("base_training",)

    def key(self) -> dict[str, Any]:
        """Data, training recipe and seed."""
        run = self.run
        return {"data": run.stage_key("data"), "train": run.train_key(), "seed": run.config.seed}

    def compute(self) -> Any:
        """Train with :func:`graphtag.training.fit_model` and save the best checkpoint."""
        from ..training import fit_model

        run = self.run
        res = fit_model(
            run.data,
            run.inputs,
            None,
            run.config.train,
            seed=run.config.seed,
            progress=run.progress,
            stage="base",
        )
        save_state_dict(run.out / "base_model.pt", res.model.state_dict())
        info = {
            "best_epoch": res.best_epoch,
            "best_val": res.best_val,
            "seconds": res.seconds,
            "history": res.history,
        }
        save_json(run.out / "base.json", info)
        return res.model

    def load(self) -> Any:
        """Rebuild the model and load its weights."""
        run = self.run
        model = run.new_model()
        model.load_state_dict(load_state_dict(run.out / "base_model.pt"))
        model.to(run.device).eval()
        run.timings["base"] = load_json(run.out / "base.json")["seconds"]
        return model


class FeaturesStage(Stage):
    """Projected gradient features of the base model (the run's Grad-TAG settings)."""

    name = "features"
    outputs = ("features.npz",)
    memory_stages = ("features",)
    keep = False  # gigabytes at scale: released after use, reloaded when asked again

    def key(self) -> dict[str, Any]:
        """The base model's key and the projection settings."""
        return {"base": self.run.stage_key("base"), **self.run.estimator.feature_settings()}

    def compute(self) -> Any:
        """Extract the features (:func:`graphtag.gradients.extract_gradient_features`)."""
        from ..methods import AffinityContext

        run = self.run
        start = time.perf_counter()
        context = AffinityContext(run.base_model(), run.data, run.inputs, progress=run.progress)
        feats = run.estimator.extract_features(context)
        feats.meta = {**feats.meta, "seconds": time.perf_counter() - start}
        arrays = {
            "features": feats.features.float(),
            "offsets": feats.offsets,
            "labels": feats.labels,
            "task": feats.task,
            "node": feats.node,
            "split": feats.split,
            "num_tasks": np.array(feats.num_tasks),
            "meta": np.array(json.dumps(feats.meta, default=str)),
        }
        save_npz(self.run.out / "features.npz", arrays)
        return feats

    def load(self) -> Any:
        """Read the saved features."""
        from ..gradients import GradientFeatures

        z = load_npz(self.run.out / "features.npz")
        meta = json.loads(str(z["meta"]))
        self.run.timings["features"] = float(meta.get("seconds", 0.0))
        tensors = [torch.from_numpy(z[k]) for k in ("features", "offsets", "labels", "task")]
        tensors += [torch.from_numpy(z[k]) for k in ("node", "split")]
        return GradientFeatures(*tensors, int(z["num_tasks"]), meta)


class AffinityStage(Stage):
    """The configured method fitted on the base model (its affinity, subsets and losses)."""

    name = "affinity"

    @property
    def outputs(self) -> tuple[str, ...]:  # type: ignore[override]
        """The saved affinity, subsets and losses (none for methods without an affinity)."""
        if not self.run.method.has_affinity:
            return ()
        return ("affinity.npy", "subsets.json", "subset_losses.csv", "affinity.json")

    @property
    def memory_stages(self) -> tuple[str, ...]:  # type: ignore[override]
        """The method's own memory stages, the gradient features left out (their stage's)."""
        skip = FeaturesStage.memory_stages
        return tuple(n for n in self.run.method.memory_stages if n not in skip)

    def key(self) -> dict[str, Any]:
        """The method's cache key and what it is fitted on (features or base model)."""
        run = self.run
        upstream = "features" if run.method.uses_features else "base"
        return {
            "method": run.method.cache_key(),
            upstream: run.stage_key(upstream),
            "num_tasks": run.num_tasks,
        }

    def compute(self) -> Any:
        """Fit the method on an :class:`~graphtag.methods.AffinityContext` of the run."""
        from ..methods import AffinityContext

        run = self.run
        method = run.method
        if not method.has_affinity:
            return method.fit(None).affinity_
        context = AffinityContext(
            run.base_model(),
            run.data,
            run.inputs,
            train_config=run.config.train,
            seed=run.config.seed,
            executor=run.options.executor,
            workdir=run.out,
            progress=run.progress,
            features=run.features() if method.uses_features else None,
        )
        start = time.perf_counter()
        method.fit(context)
        seconds = time.perf_counter() - start
        for text in context.notes:
            run.note(text)
        self._save(method, seconds)
        return method.affinity_

    def _save(self, method: Any, seconds: float) -> None:
        out = self.run.out
        save_npy(out / "affinity.npy", method.affinity_)
        save_json(out / "subsets.json", [list(map(int, s)) for s in method.subsets_])
        _write_losses_csv(out / "subset_losses.csv", method.subsets_, method.losses_)
        info = {"method": method.name, "seconds": seconds, "num_subsets": len(method.subsets_)}
        save_json(out / "affinity.json", {**info, **method.info_})

    def load(self) -> Any:
        """Read the saved affinity into the (unfitted) method."""
        run = self.run
        if not run.method.has_affinity:
            return run.method.fit(None).affinity_
        info = load_json(run.out / "affinity.json")
        run.timings["affinity"] = info.get("seconds", 0.0)
        affinity = np.load(run.out / "affinity.npy", allow_pickle=False)
        subsets = load_json(run.out / "subsets.json")
        run.method._set_fitted(affinity, subsets, None)
        return affinity


def _write_losses_csv(path: Path, subsets: list[tuple[int, ...]], losses: Any) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["subset", "task", "loss"])
    for k, s in enumerate(subsets):
        for t in s:
            w.writerow([k, int(t), f"{float(losses[k, int(t)]):.8g}"])
    with atomic_write(path, "w") as fh:
        fh.write(buf.getvalue())
