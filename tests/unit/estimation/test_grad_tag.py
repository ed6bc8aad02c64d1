"""The GradTAG estimator: planted groups, attributes, single-subset estimates, errors, repr."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from graphtag.errors import GraphtagError, NumericalError
from graphtag.estimation import (
    DEFAULT_L2,
    GradTAG,
    estimate_losses,
    fit_surrogates,
    make_synthetic_features,
    subset_affinity,
)
from graphtag.estimation._finetune import matched_ridge
from graphtag.gradients import VAL, GradientFeatures

# Small subset samples leave some pairs apart on purpose; that warning is tested elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore:.*task pairs never co-occur:UserWarning")


def _planted(seed=0, num_tasks=8):
    return make_synthetic_features(
        num_tasks=num_tasks, num_groups=2, train_rows=40, val_rows=40, dim=6, seed=seed
    )


@pytest.mark.parametrize("seed", range(3))
def test_recovers_planted_groups(seed):
    feats = _planted(seed)
    # the relative ridge: these synthetic features are not scaled like a real model's
    est = GradTAG(subset_size=3, num_subsets=50, min_pair_count=2, seed=seed, l2=DEFAULT_L2)
    est.fit(feats)
    group = np.arange(8) * 2 // 8
    same = group[:, None] == group[None, :]
    off = ~np.eye(8, dtype=bool)
    assert feats.meta["planted_groups"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # Every within-group affinity exceeds every between-group affinity.
    assert est.affinity_[same & off].min() > est.affinity_[~same].max()


def test_fitted_attributes_are_consistent():
    feats = _planted(1)
    est = GradTAG(subset_size=4, num_subsets=30, min_pair_count=1, seed=3, symmetric=False)
    assert est.fit(feats) is est
    assert len(est.subsets_) == 30 and len(set(est.subsets_)) == 30
    for name in ("weights_", "converged_", "iterations_", "excluded_", "losses_", "affinity_"):
        assert isinstance(getattr(est, name), np.ndarray), name
    assert est.weights_.shape == (30, 6) and est.weights_.dtype == np.float64
    assert est.converged_.shape == (30,) and bool(est.converged_.all())
    assert est.losses_.shape == (30, 8) and est.base_losses_.shape == (8,)
    assert int(np.isfinite(est.losses_).sum()) == 30 * 4
    assert est.affinity_.shape == (8, 8) and np.isfinite(est.affinity_).all()
    np.testing.assert_array_equal(
        est.affinity_, subset_affinity(est.subsets_, est.losses_, 8, symmetric=False)
    )
    assert not np.allclose(est.affinity_, est.affinity_.T)  # directional when asked
    assert est.l2 is None and est.l2_ == matched_ridge()  # the default ridge of `graphtag run`
    ref = fit_surrogates(feats, est.subsets_, matched_ridge(), l2_relative=False, tol=est.tol)
    np.testing.assert_array_equal(est.weights_, ref.weights.numpy())
    np.testing.assert_array_equal(
        est.losses_, estimate_losses(feats, est.subsets_, ref.weights).numpy()
    )
    assert set(est.timings_) == {"subsets", "statistics", "surrogates", "losses", "affinity"}
    sym = GradTAG(subset_size=4, num_subsets=30, min_pair_count=1, seed=3).fit(feats)
    np.testing.assert_allclose(sym.affinity_, (est.affinity_ + est.affinity_.T) / 2)


def test_same_seed_same_result_different_seed_different_subsets():
    feats = _planted(2)
    a = GradTAG(subset_size=3, num_subsets=20, min_pair_count=0, seed=4).fit(feats)
    b = GradTAG(subset_size=3, num_subsets=20, min_pair_count=0, seed=4).fit(feats)
    c = GradTAG(subset_size=3, num_subsets=20, min_pair_count=0, seed=5).fit(feats)
    assert a.subsets_ == b.subsets_ and np.array_equal(a.affinity_, b.affinity_)
    assert a.subsets_ != c.subsets_


def test_estimate_single_subset_matches_table():
    feats = _planted(3)
    est = GradTAG(subset_size=3, num_subsets=12, min_pair_count=0, seed=0).fit(feats)
    row = est.estimate(list(est.subsets_[5]))
    np.testing.assert_allclose(row, est.losses_[5], rtol=1e-9, atol=1e-12)
    other = est.estimate([0, 7])
    assert np.isfinite(other[[0, 7]]).all() and np.isnan(other[1:7]).all()


def test_network_loss_hook():
    feats = _planted(4)
    calls = []

    def network(subsets, weights):
        calls.append((len(subsets), tuple(weights.shape)))
        # Pretend the network agrees with the linear estimate up to a constant shift.
        return estimate_losses(feats, subsets, weights).nan_to_num(0.0) + 1.0

    est = GradTAG(subset_size=3, num_subsets=10, min_pair_count=0, loss="network").fit(
        feats, network_loss_fn=network
    )
    assert calls == [(10, (10, 6))]
    linear = estimate_losses(feats, est.subsets_, torch.from_numpy(est.weights_))
    np.testing.assert_allclose(est.losses_, linear.numpy() + 1.0)
    pair = fit_surrogates(feats, [(0, 1)], est.l2_, l2_relative=False).weights
    assert est.estimate([0, 1])[0] == pytest.approx(
        float(estimate_losses(feats, [(0, 1)], pair)[0, 0]) + 1.0
    )


@pytest.mark.parametrize(
    ("params", "fit_kwargs", "message"),
    [
        ({"subset_size": 9}, {}, "subset_size=9 is larger than the number of tasks (8)"),
        ({"loss": "exact"}, {}, "loss must be 'linear' or 'network', got 'exact'"),
        ({"loss": "network"}, {}, "loss='network' needs fit(features, network_loss_fn=...)"),
        ({}, {"network_loss_fn": lambda s, w: None}, "only used with loss='network'"),
        ({"num_subsets": 10**6}, {}, "num_subsets=1000000 exceeds the 56 distinct subsets"),
    ],
)
def test_fit_errors(params, fit_kwargs, message):
    args = {"subset_size": 3, "num_subsets": 10, "min_pair_count": 0}
    args.update(params)
    with pytest.raises(GraphtagError, match=re.escape(message)):
        GradTAG(**args).fit(_planted(), **fit_kwargs)


def test_task_without_validation_rows_is_rejected():
    feats = _planted()
    keep = ~((feats.task == 6) & (feats.split == VAL))
    reduced = GradientFeatures(
        *(getattr(feats, n)[keep] for n in ("features", "offsets", "labels", "task", "node")),
        feats.split[keep],
        feats.num_tasks,
        {},
    )
    with pytest.raises(GraphtagError, match=re.escape("tasks [6] have no validation rows")):
        GradTAG(subset_size=3, num_subsets=10, min_pair_count=0).fit(reduced)


def test_single_class_task_is_reported():
    feats = _planted()
    feats.labels = torch.where(feats.task == 2, torch.zeros_like(feats.labels), feats.labels)
    with pytest.warns(UserWarning, match=re.escape("tasks [2] have a single class")):
        GradTAG(subset_size=3, num_subsets=10, min_pair_count=0).fit(feats)


def test_non_converged_surrogates_are_excluded_not_averaged():
    est = GradTAG(subset_size=3, num_subsets=10, min_pair_count=0, max_iter=1, tol=1e-12)
    with (
        pytest.warns(UserWarning, match=r"10 of 10 surrogates did not converge within max_iter=1"),
        pytest.raises(NumericalError, match="have no usable"),
    ):
        est.fit(_planted())


def test_estimate_before_fit():
    with pytest.raises(GraphtagError, match=re.escape("not fitted yet; call GradTAG.fit(...)")):
        GradTAG().estimate([0, 1])


def test_repr():
    assert repr(GradTAG(subset_size=4, num_subsets=100, seed=2)) == (
        "GradTAG(num_subsets=100, seed=2, subset_size=4)"
    )
