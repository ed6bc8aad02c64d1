"""Registered affinity methods built from a RunConfig take every setting it holds."""

from __future__ import annotations

from dataclasses import asdict

from graphtag.methods._grad_tag import GradTAGMethod
from graphtag.pipeline import EstimatorConfig, RunConfig


def test_grad_tag_method_takes_every_estimator_setting_and_the_seed():
    est = EstimatorConfig(
        projection_dim=17, block="body", num_subsets=33, subset_size=4, min_pair_count=2,
        l2=0.7, loss="network", val_fraction=0.5, max_task_rows=99,
    )  # fmt: skip
    method = GradTAGMethod.from_config(RunConfig(dataset="synthetic", seed=5, estimator=est))
    assert method.get_params() == {**asdict(est), "seed": 5}
