"""choose_num_groups: the eigengap heuristic finds the planted number of groups.

Experiment behind the chosen variant (numbers in the docstring of choose_num_groups): planted
block affinities, k = 2..5, T in {12, 16, 20, 25, 30}, 10 seeds, noise std 0.3 and 0.5,
between-group mean -0.5, 0 and 0.5, balanced and random group sizes; variants: clip at 0,
centre-then-clip (chosen), median-centre-then-clip, shift by the minimum, and scores of the SDP's
rounded partitions (summed centred density: 19/48 wrong at noise 0.3; within-minus-between mean:
39/48 wrong at noise 0.5).
"""

from __future__ import annotations

import numpy as np
import pytest

from graphtag.clustering import choose_num_groups
from graphtag.errors import GraphtagError


@pytest.mark.parametrize("k_true", [2, 3, 4, 5])
@pytest.mark.parametrize("num_tasks", [12, 18, 24, 30])
@pytest.mark.parametrize("seed", range(3))
def test_planted_number_of_groups_is_found(k_true, num_tasks, seed, planted):
    A, _ = planted(num_tasks, k_true, 0.3, seed)
    k, scores = choose_num_groups(A, range(2, 9))
    assert k == k_true, scores
    assert set(scores) == set(range(2, 9))


@pytest.mark.parametrize("seed", range(4))
def test_unequal_group_sizes(seed):
    rng = np.random.default_rng(seed)
    sizes = [3, 5, 8, 4]
    labels = rng.permutation(np.repeat(np.arange(4), sizes))
    A = (labels[:, None] == labels[None, :]) + 0.3 * rng.standard_normal((20, 20))
    A = 0.5 * (A + A.T)
    assert choose_num_groups(A)[0] == 4


def test_invariant_to_shift_and_positive_scale(planted):
    A, _ = planted(20, 3, 0.4, 1)
    k, scores = choose_num_groups(A)
    k2, scores2 = choose_num_groups(1e3 * A + 7.0)
    assert k == k2 == 3
    for c in scores:
        assert scores2[c] == pytest.approx(scores[c], abs=1e-9)


def test_signed_affinity_with_strongly_negative_between_pairs(planted):
    A, _ = planted(24, 4, 0.3, 2, between=-1.0)
    assert choose_num_groups(A)[0] == 4


def test_default_candidates_and_structureless_input():
    k, scores = choose_num_groups(np.ones((6, 6)))
    assert list(scores) == [2, 3, 4, 5] and k == 2  # no structure: all gaps 0, smallest wins
    _, scores = choose_num_groups(np.eye(40), max_groups=4)
    assert list(scores) == [2, 3, 4]


@pytest.mark.parametrize(
    "A, candidates, message",
    [
        (np.eye(2), None, "at least 3 tasks, got T=2"),
        (np.eye(5), [], "candidates is empty"),
        (np.eye(5), [2, 5], r"candidate number of groups 5 is invalid.*\[1, 4\]"),
        (np.eye(5), [0], "candidate number of groups 0 is invalid"),
        (np.eye(5), [2.5], "candidate number of groups 2.5 is invalid"),
        (np.full((4, 4), np.nan), None, "non-finite"),
    ],
)
def test_errors(A, candidates, message):
    with pytest.raises(GraphtagError, match=message):
        choose_num_groups(A, candidates)


def test_deterministic_and_seed_independent(planted):
    A, _ = planted(18, 3, 0.4, 4)
    assert choose_num_groups(A, seed=0) == choose_num_groups(A, seed=123)
