"""SpectralTaskClustering: the baseline, including signed affinities."""

from __future__ import annotations

import numpy as np
import pytest

from graphtag.clustering import SpectralTaskClustering, partition_objective, spectral_embedding
from graphtag.errors import GraphtagError


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("negative", ["clip", "shift"])
def test_planted_blocks_recovered(seed, negative, planted, canon, check_partition):
    A, labels = planted(24, 4, 0.3, seed)
    est = SpectralTaskClustering(4, seed=seed, negative=negative).fit(A)
    assert est.labels_.tolist() == canon(labels)
    check_partition(est.groups_, 24, 4)
    assert est.status_ == "ok"
    assert est.objective_ == pytest.approx(partition_objective(A, labels))


def test_signed_affinity_is_handled():
    # Standardised scores: within-group pairs positive, between-group pairs strongly negative.
    # Fed as-is, D^-1/2 W D^-1/2 has negative degrees (NaN square roots); clipping must give the
    # planted groups.
    labels = np.array([0, 1, 0, 1, 2, 2, 0, 1, 2])
    A = np.where(labels[:, None] == labels[None, :], 1.0, -2.0)
    np.fill_diagonal(A, 0.0)
    assert (A.sum(1) < 0).all()
    est = SpectralTaskClustering(3).fit(A)
    assert est.groups_ == [[0, 2, 6], [1, 3, 7], [4, 5, 8]]
    assert np.isfinite(spectral_embedding(A, 3)).all()


def test_task_with_only_negative_affinities_is_still_assigned(check_partition):
    A = np.kron(np.eye(2), np.ones((3, 3)))
    A = np.pad(A, ((0, 1), (0, 1)), constant_values=-1.0)
    est = SpectralTaskClustering(3).fit(A)
    check_partition(est.groups_, 7, 3)
    assert est.groups_ == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize(
    "A, k",
    [(np.ones((5, 5)), 3), (np.zeros((4, 4)), 4), (np.array([[1.0]]), 1), (-np.ones((6, 6)), 2)],
)
def test_degenerate_inputs_still_partition(A, k, check_partition):
    check_partition(SpectralTaskClustering(k).fit(A).groups_, A.shape[0], k)


def test_deterministic_given_seed():
    A = np.random.default_rng(0).standard_normal((15, 15))
    a = SpectralTaskClustering(4, seed=3).fit(A).labels_
    b = SpectralTaskClustering(4, seed=3).fit(A).labels_
    assert np.array_equal(a, b)


def test_errors_and_repr():
    with pytest.raises(GraphtagError, match=r"negative must be one of \('clip', 'shift'\)"):
        SpectralTaskClustering(2, negative="abs").fit(np.eye(3))
    with pytest.raises(GraphtagError, match="num_groups=4 exceeds the number of tasks T=3"):
        SpectralTaskClustering(4).fit(np.eye(3))
    with pytest.raises(GraphtagError, match="non-finite"):
        SpectralTaskClustering(1).fit(np.full((2, 2), np.nan))
    est = SpectralTaskClustering(3, seed=1)
    assert repr(est) == "SpectralTaskClustering(num_groups=3, seed=1)"
