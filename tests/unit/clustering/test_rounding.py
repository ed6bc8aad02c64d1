"""round_to_groups, labels/groups bookkeeping, partition_objective and input checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphtag.clustering import (
    groups_to_labels,
    labels_to_groups,
    partition_objective,
    round_to_groups,
)
from graphtag.errors import GraphtagError


def _matrix(kind: str, num_tasks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "constant":
        return np.full((num_tasks, num_tasks), 0.3)
    if kind == "zeros":
        return np.zeros((num_tasks, num_tasks))
    if kind == "negative":
        return -rng.random((num_tasks, num_tasks))
    M = rng.standard_normal((num_tasks, num_tasks))
    if kind == "tiny":
        return 1e-6 * M
    if kind == "huge":
        return 1e6 * M
    if kind == "psd":
        return M @ M.T
    return M  # "random", not even symmetric


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    num_tasks=st.integers(1, 12),
    data=st.data(),
    kind=st.sampled_from(["random", "constant", "zeros", "negative", "tiny", "huge", "psd"]),
    seed=st.integers(0, 2**16),
)
def test_rounding_always_returns_exactly_k_nonempty_groups(num_tasks, data, kind, seed):
    k = data.draw(st.integers(1, num_tasks), label="k")
    X = _matrix(kind, num_tasks, seed)
    labels = round_to_groups(X, k, seed=seed)
    assert labels.shape == (num_tasks,) and labels.dtype == np.int64
    assert sorted(set(labels.tolist())) == list(range(k))
    # canonical: group ids appear in increasing order of their first task
    firsts = [int(np.flatnonzero(labels == g)[0]) for g in range(k)]
    assert firsts == sorted(firsts)
    groups = labels_to_groups(labels)
    assert len(groups) == k and sorted(t for g in groups for t in g) == list(range(num_tasks))


@pytest.mark.parametrize("kind", ["constant", "random", "tiny", "huge"])
@pytest.mark.parametrize("num_tasks, k", [(1, 1), (5, 5), (7, 1), (9, 4)])
def test_named_families(kind, num_tasks, k, check_partition):
    groups = labels_to_groups(round_to_groups(_matrix(kind, num_tasks, 3), k))
    check_partition(groups, num_tasks, k)


def test_partition_matrix_is_recovered_exactly(canon):
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.arange(15) % 4)
    onehot = np.eye(4)[labels]
    X = onehot @ np.diag(1.0 / onehot.sum(0)) @ onehot.T
    assert round_to_groups(X, 4).tolist() == canon(labels)


def test_scaling_does_not_change_rounding():
    rng = np.random.default_rng(1)
    M = rng.random((10, 10))
    X = M @ M.T
    ref = round_to_groups(X, 3, seed=5)
    assert np.array_equal(round_to_groups(1e-6 * X, 3, seed=5), ref)
    assert np.array_equal(round_to_groups(1e6 * X, 3, seed=5), ref)


def test_same_seed_same_result():
    X = np.random.default_rng(2).standard_normal((14, 14))
    assert np.array_equal(round_to_groups(X, 5, seed=7), round_to_groups(X, 5, seed=7))


def test_labels_to_groups_is_canonical():
    assert labels_to_groups(np.array([2, 0, 2, 1])) == [[0, 2], [1], [3]]
    assert labels_to_groups([5, 5, 9, 7, 9]) == [[0, 1], [2, 4], [3]]
    assert groups_to_labels([[3], [0, 2], [1]], 4).tolist() == [0, 1, 0, 2]
    labels = np.array([4, 1, 1, 0, 4, 2])
    assert labels_to_groups(groups_to_labels(labels_to_groups(labels), 6)) == labels_to_groups(
        labels
    )


@pytest.mark.parametrize(
    "groups, message",
    [
        ([[0, 1], []], "group 1 is empty"),
        ([[0, 1], [1, 2]], "group 1 repeats a task"),
        ([[0, 5], [1, 2]], "outside 0..2"),
        ([[0], [2]], r"tasks \[1\] belong to no group"),
    ],
)
def test_groups_to_labels_rejects_non_partitions(groups, message):
    with pytest.raises(GraphtagError, match=message):
        groups_to_labels(groups, 3)


def test_labels_to_groups_rejects_floats():
    with pytest.raises(GraphtagError, match="integer group ids"):
        labels_to_groups(np.array([0.0, 1.0]))


def test_partition_objective_matches_bruteforce():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 6))
    labels = np.array([1, 0, 1, 2, 0, 1])
    expected = 0.0
    for g in set(labels.tolist()):
        members = np.flatnonzero(labels == g)
        pairs = itertools.product(members, members)
        expected += sum(0.5 * (A[i, j] + A[j, i]) for i, j in pairs) / len(members)
    assert partition_objective(A, labels) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "X, k, message",
    [
        (np.zeros((3, 4)), 2, r"X must be a square \[T, T\] matrix .* got shape \(3, 4\)"),
        (np.zeros(3), 1, r"got shape \(3,\)"),
        (np.zeros((0, 0)), 1, "empty"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), 1, r"2 non-finite entries .* first at \[0, 1\]"),
        (np.array([[np.inf]]), 1, "non-finite"),
        (np.eye(3), 4, "num_groups=4 exceeds the number of tasks T=3"),
        (np.eye(3), 0, "at least 1"),
        (np.eye(3), 1.5, "must be an integer"),
        (np.eye(3), True, "must be an integer"),
        ([["a", "b"], ["c", "d"]], 1, "could not convert"),
    ],
)
def test_bad_inputs_raise(X, k, message):
    with pytest.raises(GraphtagError, match=message):
        round_to_groups(X, k)
