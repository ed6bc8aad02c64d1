"""Task subset sampling: distinctness, sizes, pair coverage, determinism, errors."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphtag.errors import GraphtagError
from graphtag.estimation import check_subsets, pair_counts, pairwise_subsets, sample_task_subsets


def _min_offdiag(subsets, num_tasks):
    counts = pair_counts(subsets, num_tasks)
    return counts[~np.eye(num_tasks, dtype=bool)].min()


@st.composite
def _requests(draw):
    num_tasks = draw(st.integers(1, 12))
    size = draw(st.integers(1, num_tasks))
    total = math.comb(num_tasks, size)
    num = draw(st.integers(1, min(total, 80)))
    min_count = draw(st.integers(0, 3))
    seed = draw(st.integers(0, 2**31))
    return num_tasks, size, num, min_count, seed


@settings(max_examples=120, deadline=None)
@given(_requests())
def test_sampler_properties(req):
    num_tasks, size, num, min_count, seed = req
    try:
        subsets = sample_task_subsets(num_tasks, size, num, seed=seed, min_pair_count=min_count)
    except GraphtagError as exc:
        # Only coverage can make a valid size request fail, and the message says what to do.
        assert "min_pair_count" in str(exc)
        assert size >= 2 and min_count > 0
        return
    assert len(subsets) == num
    assert len(set(subsets)) == num  # no duplicates
    for s in subsets:
        assert len(s) == size
        assert list(s) == sorted(s) and len(set(s)) == size
        assert all(0 <= t < num_tasks for t in s)
    if size >= 2 and num_tasks >= 2:
        assert _min_offdiag(subsets, num_tasks) >= min_count
    again = sample_task_subsets(num_tasks, size, num, seed=seed, min_pair_count=min_count)
    assert again == subsets


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9), st.data())
def test_all_subsets_always_satisfy_feasible_coverage(num_tasks, data):
    # Requesting every subset gives each pair exactly C(T-2, s-2) co-occurrences: any target up
    # to that must succeed (no spurious failure of the repair).
    size = data.draw(st.integers(2, num_tasks))
    total = math.comb(num_tasks, size)
    per_pair = math.comb(num_tasks - 2, size - 2)
    subsets = sample_task_subsets(num_tasks, size, total, seed=1, min_pair_count=per_pair)
    assert sorted(subsets) == list(itertools.combinations(range(num_tasks), size))


def test_repair_reaches_coverage_where_uniform_sampling_does_not():
    num_tasks, size, num, target = 30, 4, 300, 3
    plain = sample_task_subsets(num_tasks, size, num, seed=3, min_pair_count=0)
    assert _min_offdiag(plain, num_tasks) < target  # uniform draw leaves deficient pairs
    fixed = sample_task_subsets(num_tasks, size, num, seed=3, min_pair_count=target)
    assert len(set(fixed)) == num
    assert _min_offdiag(fixed, num_tasks) >= target
    # The repair swaps members of some subsets and leaves most of the uniform draw untouched.
    assert len(set(fixed) & set(plain)) > num // 2


def test_no_repair_needed_returns_the_uniform_draw():
    plain = sample_task_subsets(20, 8, 400, seed=5, min_pair_count=0)
    assert _min_offdiag(plain, 20) >= 5
    assert sample_task_subsets(20, 8, 400, seed=5, min_pair_count=5) == plain


def test_seed_changes_the_draw():
    a = sample_task_subsets(15, 5, 50, seed=0, min_pair_count=0)
    b = sample_task_subsets(15, 5, 50, seed=1, min_pair_count=0)
    assert a != b


def test_uniform_marginals():
    # Every task should appear in about M s / T subsets.
    subsets = sample_task_subsets(10, 3, 100, seed=2, min_pair_count=0)
    counts = np.bincount(np.concatenate(subsets), minlength=10)
    assert counts.sum() == 300
    assert counts.min() >= 15 and counts.max() <= 45  # mean 30, sd ~4.6


def test_enumeration_branch_distinct_and_complete():
    subsets = sample_task_subsets(6, 3, 20, seed=0, min_pair_count=0)  # all C(6, 3) = 20
    assert sorted(subsets) == list(itertools.combinations(range(6), 3))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4, 5, 1), "subset_size=5 is larger than the number of tasks (4); use subset_size <= 4"),
        ((4, 0, 1), "subset_size must be >= 1, got 0"),
        ((4, 2, 7), "num_subsets=7 exceeds the 6 distinct subsets of size 2 of 4 tasks"),
        ((4, 2, 0), "num_subsets must be >= 1, got 0"),
        ((4, 2.0, 1), "subset_size must be an integer, got 2.0"),
    ],
)
def test_size_errors(args, message):
    with pytest.raises(GraphtagError, match=re.escape(message)):
        sample_task_subsets(*args, min_pair_count=0)


def test_coverage_lower_bound_error_names_minimum():
    # 100 tasks, pairs 4950, 45 pairs per subset, 5 each: at least 550 subsets.
    with pytest.raises(GraphtagError, match=r"at least 550 subsets are needed"):
        sample_task_subsets(100, 10, 400, seed=0, min_pair_count=5)


def test_coverage_impossible_per_pair_error():
    # A pair of 6 tasks lies in only C(4, 1) = 4 subsets of size 3.
    with pytest.raises(GraphtagError, match=r"min_pair_count=5 is impossible: only 4 distinct"):
        sample_task_subsets(6, 3, 20, min_pair_count=5)


def test_repair_failure_is_reported():
    # 190 subsets is exactly the lower bound (every pair exactly 3 times): the repair gives up.
    with pytest.raises(GraphtagError, match=r"could not make every pair of 20 tasks co-occur 3"):
        sample_task_subsets(20, 3, 190, seed=0, min_pair_count=3)


def test_max_draws_error():
    with pytest.raises(GraphtagError, match=r"max_draws=3"):
        sample_task_subsets(30, 3, 50, seed=0, min_pair_count=0, max_draws=3)


def test_check_subsets_normalises_and_rejects():
    assert check_subsets([[2, 0], (1,)], 3) == [(0, 2), (1,)]
    for bad, msg in [
        ([[0, 0]], "subset 0 repeats a task: (0, 0)"),
        ([[]], "subset 0 is empty"),
        ([[0], [3]], "subset 1 holds task 3, outside 0..2 (3 tasks)"),
        ([[0.5]], "subset 0 holds a non-integer task index 0.5"),
        ([], "no task subsets given"),
        ([3], "subset 0 is not a collection of task indices: 3"),
    ]:
        with pytest.raises(GraphtagError, match=re.escape(msg)):
            check_subsets(bad, 3)


def test_pair_counts_and_pairwise_subsets():
    counts = pair_counts([(0, 1), (0, 1, 2), (2,)], 3)
    assert counts.tolist() == [[2, 2, 1], [2, 2, 1], [1, 1, 2]]
    assert pairwise_subsets(3) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
