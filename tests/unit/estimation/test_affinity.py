"""Subset and pairwise affinity: hand-computed golden values, invariances, edge cases."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

from graphtag.errors import GraphtagError
from graphtag.estimation import (
    pairwise_affinity,
    pairwise_loss_tables,
    pairwise_subset_losses,
    pairwise_subsets,
    subset_affinity,
)

NAN = float("nan")

# 4 tasks, 5 subsets; losses of tasks outside a subset are NaN.
GOLDEN_SUBSETS = [(0, 1), (0, 2), (0, 1, 3), (1, 2, 3), (2, 3)]
GOLDEN_LOSSES = [
    [1.0, 0.5, NAN, NAN],
    [2.0, NAN, 3.0, NAN],
    [4.0, 0.5, NAN, 1.0],
    [NAN, 2.0, 3.0, 3.0],
    [NAN, NAN, 3.0, 2.0],
]


def _golden_by_hand():
    a = np.zeros((4, 4))
    # Task 0 in S0, S1, S2 with losses 1, 2, 4: scores -1, -2, -4, mean -7/3, deviations
    # 4/3, 1/3, -5/3, population variance (16 + 1 + 25) / 27 = 14/9, std sqrt(14)/3,
    # z = 4/sqrt(14), 1/sqrt(14), -5/sqrt(14).
    r14 = math.sqrt(14)
    a[0, 1] = (4 / r14 + -5 / r14) / 2  # S0, S2
    a[0, 2] = 1 / r14  # S1
    a[0, 3] = -5 / r14  # S2
    # Task 1 in S0, S2, S3 with losses 0.5, 0.5, 2: scores -0.5, -0.5, -2, mean -1, deviations
    # 0.5, 0.5, -1, variance 1.5 / 3 = 0.5, std 1/sqrt(2), z = 1/sqrt(2), 1/sqrt(2), -sqrt(2).
    r2 = math.sqrt(2)
    a[1, 0] = (1 / r2 + 1 / r2) / 2  # S0, S2
    a[1, 2] = -r2  # S3
    a[1, 3] = (1 / r2 - r2) / 2  # S2, S3
    # Task 2 in S1, S3, S4 with losses 3, 3, 3: zero variance, zero row.
    # Task 3 in S2, S3, S4 with losses 1, 3, 2: scores -1, -3, -2, mean -2, deviations 1, -1, 0,
    # variance 2/3, z = sqrt(3/2), -sqrt(3/2), 0.
    r15 = math.sqrt(1.5)
    a[3, 0] = r15  # S2
    a[3, 1] = (r15 - r15) / 2  # S2, S3
    a[3, 2] = (-r15 + 0.0) / 2  # S3, S4
    return a


def test_golden_subset_affinity():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every pair co-occurs: no warning
        got = subset_affinity(GOLDEN_SUBSETS, GOLDEN_LOSSES, 4)
    np.testing.assert_allclose(got, _golden_by_hand(), rtol=0, atol=1e-12)
    sym = subset_affinity(GOLDEN_SUBSETS, torch.tensor(GOLDEN_LOSSES), 4, symmetric=True)
    np.testing.assert_allclose(sym, (got + got.T) / 2, rtol=0, atol=1e-15)
    assert got.dtype == np.float64


@pytest.mark.parametrize("seed", range(3))
def test_affinity_is_permutation_equivariant(seed):
    rng = np.random.default_rng(seed)
    num_tasks = 7
    subsets = [tuple(sorted(rng.choice(num_tasks, 3, replace=False))) for _ in range(40)]
    losses = np.full((40, num_tasks), np.nan)
    for k, s in enumerate(subsets):
        losses[k, list(s)] = rng.random(3) + 0.1
    affinity = subset_affinity(subsets, losses, num_tasks)
    perm = rng.permutation(num_tasks)  # new index of old task t is perm[t]
    p_subsets = [tuple(sorted(int(perm[t]) for t in s)) for s in subsets]
    p_losses = np.full_like(losses, np.nan)
    p_losses[:, perm] = losses
    p_affinity = subset_affinity(p_subsets, p_losses, num_tasks)
    np.testing.assert_allclose(p_affinity[np.ix_(perm, perm)], affinity, atol=1e-12)
    # Reordering the subsets does not matter either.
    order = rng.permutation(40)
    shuffled = subset_affinity([subsets[k] for k in order], losses[order], num_tasks)
    np.testing.assert_allclose(shuffled, affinity, atol=1e-12)


def test_lower_loss_with_partner_means_positive_affinity():
    # Task 0 does better whenever task 1 is present, worse with task 2.
    subsets = [(0, 1), (0, 2), (0, 1, 3), (0, 2, 3), (1, 2)]
    losses = [
        [0.1, 1, NAN, NAN],
        [0.9, NAN, 1, NAN],
        [0.2, 1, NAN, 1],
        [0.8, NAN, 1, 1],
        [NAN, 1, 1, NAN],
    ]
    a = subset_affinity(subsets, losses, 4)
    assert a[0, 1] > 0 > a[0, 2]
    assert a[0, 3] == pytest.approx(0.0, abs=1e-12)


def test_never_cooccurring_pairs_are_zero_and_reported():
    subsets = [(0, 1), (0, 1), (2, 3), (2, 3)]
    losses = [[1, 2, NAN, NAN], [2, 1, NAN, NAN], [NAN, NAN, 1, 2], [NAN, NAN, 2, 1]]
    losses = [[*row, NAN] for row in losses]
    # (0, 2), (0, 3), (1, 2), (1, 3) and the four pairs with task 4.
    with pytest.warns(UserWarning, match=r"8 task pairs never co-occur in a subset") as rec:
        a = subset_affinity(subsets, losses, 5)  # task 4 never sampled at all
    assert "(0, 2)" in str(rec[0].message)
    assert np.isfinite(a).all()
    assert a[0, 2] == a[4, 0] == a[0, 4] == 0.0
    assert a[0, 1] == pytest.approx(0.0)  # z-scores +1 and -1 average to 0


def test_zero_variance_within_tolerance():
    subsets = [(0, 1), (0, 1)]
    losses = [[0.5, 1.0], [0.5 + 1e-14, 2.0]]  # task 0 changes only by rounding noise
    a = subset_affinity(subsets, losses, 2)
    assert a[0, 1] == 0.0


def test_subset_affinity_errors():
    with pytest.raises(GraphtagError, match=re.escape("losses must have shape [2, 3]")):
        subset_affinity([(0, 1), (1, 2)], np.zeros((2, 4)), 3)
    with pytest.raises(GraphtagError, match=re.escape("loss of task 1 in subset 0 (0, 1) is nan")):
        subset_affinity([(0, 1)], [[1.0, NAN]], 2)


def test_pairwise_affinity_by_hand():
    single = [2.0, 1.0, 4.0]
    pair = np.array([[NAN, 1.0, 3.0], [1.5, NAN, 0.5], [2.0, 4.0, NAN]])
    a = pairwise_affinity(single, pair)
    expected = [[0.0, 0.5, -0.5], [-0.5, 0.0, 0.5], [0.5, 0.0, 0.0]]
    np.testing.assert_allclose(a, expected, atol=1e-15)
    np.testing.assert_allclose(
        pairwise_affinity(single, pair, symmetric=True), (a + a.T) / 2, atol=1e-15
    )
    as_dict = {(i, j): pair[i, j] for i in range(3) for j in range(3) if i != j}
    np.testing.assert_allclose(pairwise_affinity(single, as_dict), a, atol=1e-15)


def test_pairwise_tables_roundtrip():
    subsets = pairwise_subsets(3)
    losses = np.full((6, 3), np.nan)
    losses[0, 0], losses[1, 1], losses[2, 2] = 2.0, 1.0, 4.0
    losses[3, [0, 1]] = [1.0, 1.5]  # (0, 1)
    losses[4, [0, 2]] = [3.0, 2.0]  # (0, 2)
    losses[5, [1, 2]] = [0.5, 4.0]  # (1, 2)
    single, pair = pairwise_loss_tables(subsets, losses, 3)
    assert single.tolist() == [2.0, 1.0, 4.0]
    assert pair[0, 1] == 1.0 and pair[1, 0] == 1.5 and pair[2, 1] == 4.0
    assert np.isnan(np.diag(pair)).all()
    # ... and back: the inverse rebuilds the table exactly (NaN outside each subset).
    np.testing.assert_array_equal(pairwise_subset_losses(subsets, single, pair), losses)
    with pytest.raises(GraphtagError, match=re.escape("subset 0 (0, 1, 2) has more than two")):
        pairwise_subset_losses([(0, 1, 2)], single, pair)
    with pytest.raises(GraphtagError, match=re.escape("single must have shape [T] and pair")):
        pairwise_subset_losses(subsets, single, pair[:2])


def test_pairwise_missing_and_errors():
    with pytest.warns(UserWarning, match="2 task pairs have no pair loss"):
        a = pairwise_affinity([1.0, 1.0, 1.0], {(0, 1): 0.5, (1, 0): 0.5, (0, 2): 0.5})
    assert a[0, 2] == 0.5 and a[2, 0] == 0.0 and a[1, 2] == 0.0
    with pytest.raises(GraphtagError, match=re.escape("single_losses[1] = 0.0")):
        pairwise_affinity([1.0, 0.0], np.ones((2, 2)))
    with pytest.raises(GraphtagError, match=re.escape("pair_losses key (0, 0)")):
        pairwise_affinity([1.0, 1.0], {(0, 0): 1.0})
    with pytest.raises(GraphtagError, match=re.escape("pair_losses must have shape [2, 2]")):
        pairwise_affinity([1.0, 1.0], np.ones((3, 3)))
