"""select_groups: exact equals exhaustive search; greedy is valid and close; errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from graphtag.baselines import SelectionResult, select_groups
from graphtag.errors import GraphtagError


def _group_table(a, min_size=2):
    """All groups and their per-task scores, written out literally (-inf for non-members)."""
    num_tasks = a.shape[0]
    groups = [
        g
        for k in range(min_size, num_tasks + 1)
        for g in itertools.combinations(range(num_tasks), k)
    ]
    table = np.full((len(groups), num_tasks), -np.inf)
    for c, g in enumerate(groups):
        for t in g:
            others = [a[t, u] for u in g if u != t]
            table[c, t] = np.mean(others) if others else 0.0
    return groups, table


def _best_over_combos(table, size, start=0, prefix=None):
    """Max over all ``size``-subsets of rows (from ``start``) of sum_t max(prefix, rows)."""
    num_rows, num_tasks = table.shape
    if prefix is None:
        prefix = np.full(num_tasks, -np.inf)
    if size == 1:
        if start >= num_rows:
            return -np.inf
        return np.maximum(table[start:], prefix).sum(1).max()
    if size == 2:
        j, k = np.triu_indices(num_rows - start, 1)
        if j.size == 0:
            return -np.inf
        rows = np.maximum(table[start + j], table[start + k])
        return np.maximum(rows, prefix).sum(1).max()
    best = -np.inf
    for c in range(start, num_rows - size + 1):
        best = max(best, _best_over_combos(table, size - 1, c + 1, np.maximum(prefix, table[c])))
    return best


def _exhaustive(a, max_groups, min_size=2):
    _, table = _group_table(a, min_size)
    best = max(_best_over_combos(table, b) for b in range(1, max_groups + 1))
    return best / a.shape[0]


def _check_valid(res, a, max_groups, min_size=2):
    num_tasks = a.shape[0]
    assert isinstance(res, SelectionResult)
    assert 1 <= len(res.groups) <= max_groups
    assert res.groups == sorted(res.groups)
    assert all(g == sorted(set(g)) and len(g) >= min_size for g in res.groups)
    assert len(res.assignment) == num_tasks
    scores = []
    for t in range(num_tasks):
        own = [
            np.mean([a[t, u] for u in g if u != t]) if len(g) > 1 else 0.0
            for g in res.groups
            if t in g
        ]
        assert own, f"task {t} is not covered"
        g = res.groups[res.assignment[t]]
        assert t in g
        mine = np.mean([a[t, u] for u in g if u != t]) if len(g) > 1 else 0.0
        assert mine == pytest.approx(max(own), abs=1e-12)
        scores.append(mine)
    assert res.score == pytest.approx(np.mean(scores), abs=1e-12)
    # every returned group is some task's best group (unused ones are dropped)
    assert sorted(set(res.assignment)) == list(range(len(res.groups)))


CASES = [
    (t, b, s)
    for t in (5, 6, 7, 8)
    for b in (2, 3, 4)
    for s in range(3)
    if (t, b) != (8, 4)  # ~1.5e8 candidate sets: see the slow test below
]


@pytest.mark.parametrize(("num_tasks", "max_groups", "seed"), CASES)
def test_exact_equals_exhaustive(num_tasks, max_groups, seed):
    rng = np.random.default_rng([num_tasks, max_groups, seed])
    a = rng.normal(size=(num_tasks, num_tasks))
    res = select_groups(a, max_groups, method="exact")
    _check_valid(res, a, max_groups)
    assert res.method == "exact"
    assert res.score == pytest.approx(_exhaustive(a, max_groups), abs=1e-12)


@pytest.mark.slow
def test_exact_equals_exhaustive_8_tasks_4_groups():
    a = np.random.default_rng(84).normal(size=(8, 8))
    res = select_groups(a, 4, method="exact")
    assert res.score == pytest.approx(_exhaustive(a, 4), abs=1e-12)


@pytest.mark.parametrize("min_size", [1, 3])
def test_exact_equals_exhaustive_other_min_size(min_size):
    a = np.random.default_rng(min_size).normal(size=(6, 6)) - 0.3
    res = select_groups(a, 3, min_size=min_size)
    _check_valid(res, a, 3, min_size)
    assert res.score == pytest.approx(_exhaustive(a, 3, min_size), abs=1e-12)


def test_singletons_win_when_every_affinity_is_negative():
    a = -np.random.default_rng(0).uniform(0.1, 1.0, size=(5, 5))
    res = select_groups(a, 5, min_size=1)
    assert res.groups == [[0], [1], [2], [3], [4]] and res.score == 0.0
    assert select_groups(a, 5).score < 0  # pairs are forced without singletons


def test_unlimited_budget_gives_each_task_its_best_partner():
    a = np.random.default_rng(3).normal(size=(7, 7))
    res = select_groups(a, 7)
    off = a + np.diag(np.full(7, -np.inf))
    assert res.score == pytest.approx(off.max(1).mean(), abs=1e-12)


@pytest.mark.parametrize("method", ["exact", "greedy"])
def test_planted_blocks_recovered(method):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [3, 4, 3])
    a = (labels[:, None] == labels[None, :]) + 0.2 * rng.normal(size=(10, 10))
    res = select_groups(torch.tensor(a), 3, method=method)
    assert res.groups == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert res.assignment == labels.tolist()


def test_greedy_large_planted_blocks_and_auto_switch():
    rng = np.random.default_rng(1)
    labels = rng.permutation(np.repeat(np.arange(4), 10))
    a = 2.0 * (labels[:, None] == labels[None, :]) + 0.3 * rng.normal(size=(40, 40))
    res = select_groups(a, 4)
    assert res.method == "greedy"
    _check_valid(res, a, 4)
    truth = sorted(np.nonzero(labels == k)[0].tolist() for k in range(4))
    assert res.groups == truth


def test_greedy_close_to_exact():
    gaps = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        num_tasks, max_groups = 9 + seed % 2, 2 + seed % 3
        a = rng.normal(size=(num_tasks, num_tasks))
        exact = select_groups(a, max_groups, method="exact")
        greedy = select_groups(a, max_groups, method="greedy")
        _check_valid(greedy, a, max_groups)
        assert greedy.score <= exact.score + 1e-12
        gaps.append((exact.score - greedy.score) / abs(exact.score))
    assert max(gaps) < 0.05, gaps
    assert np.mean(gaps) < 0.01, gaps


def test_permuting_tasks_permutes_the_solution():
    a = np.random.default_rng(7).normal(size=(8, 8))
    perm = np.random.default_rng(8).permutation(8)
    res = select_groups(a, 3)
    res_p = select_groups(a[np.ix_(perm, perm)], 3)
    assert res_p.score == pytest.approx(res.score, abs=1e-12)
    mapped = sorted(sorted(int(perm[t]) for t in g) for g in res_p.groups)
    assert select_groups(a, 3).groups == res.groups  # deterministic
    _check_valid(SelectionResult(mapped, _assign(a, mapped), res.score, "exact"), a, 3)


def _assign(a, groups):
    out = []
    for t in range(a.shape[0]):
        vals = [np.mean([a[t, u] for u in g if u != t]) if t in g else -np.inf for g in groups]
        out.append(int(np.argmax(vals)))
    return out


def test_diagonal_is_ignored():
    a = np.random.default_rng(9).normal(size=(6, 6))
    b = a.copy()
    np.fill_diagonal(b, np.nan)
    assert select_groups(a, 2) == select_groups(b, 2)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((3, 3)), 0), {}, r"max_groups=0 must be >= 1"),
        ((np.zeros((3, 3)), 1.5), {}, r"max_groups=1.5 must be an integer >= 1"),
        ((np.zeros((1, 1)), 1), {}, r"need at least 2 tasks to form groups, got T = 1"),
        ((np.zeros((3, 4)), 1), {}, r"must be a square \[T, T\] matrix, got shape \(3, 4\)"),
        ((np.zeros(3), 1), {}, r"must be a square \[T, T\] matrix, got shape \(3,\)"),
        (
            (np.array([[0, np.nan], [1, 0]]), 1),
            {},
            r"affinity\[0\]\[1\] = nan is not finite \(1 such off-diagonal entries\)",
        ),
        ((np.array([[0, 1], [np.inf, 0]]), 1), {}, r"affinity\[1\]\[0\] = inf is not finite"),
        ((np.zeros((3, 3)), 1), {"method": "ilp"}, r"method='ilp' is unknown"),
        ((np.zeros((3, 3)), 1), {"min_size": 4}, r"min_size=4 must be between 1 and .* \(3\)"),
        ((np.zeros((15, 15)), 2), {"method": "exact"}, r"supports at most 14 tasks, got 15"),
        (([["a", "b"], ["c", "d"]], 1), {}, r"affinity is not a numeric matrix"),
    ],
)
def test_errors(args, kwargs, match):
    with pytest.raises(GraphtagError, match=match):
        select_groups(*args, **kwargs)


@pytest.mark.parametrize("method", ["exact", "greedy"])
def test_scale_invariance_and_smallest_inputs(method):
    a = np.random.default_rng(11).normal(size=(7, 7))
    ref = select_groups(a, 3, method=method)
    for scale in (1e-6, 1e6):
        res = select_groups(a * scale, 3, method=method)
        assert res.groups == ref.groups
        assert res.score == pytest.approx(ref.score * scale, rel=1e-9)
    two = select_groups(np.array([[0.0, 1.0], [-2.0, 0.0]]), 3, method=method)
    assert two == SelectionResult([[0, 1]], [0, 0], -0.5, method)
    whole = select_groups(a, 3, method=method, min_size=7)
    assert whole.groups == [list(range(7))]
