"""The subset plan: one rule for every subset-based affinity, the memory estimate and benches."""

import math

import numpy as np
import pytest

from graphtag.errors import GraphtagError
from graphtag.estimation import plan_subsets, sample_task_subsets
from graphtag.estimation._subsets import pair_counts


@pytest.mark.parametrize(
    ("num_tasks", "num_subsets", "want"),
    [
        (39, 1000, (10, 1000, 5)),  # BlogCatalog: the defaults cover every pair 5 times
        (500, 2000, (32, 2000, 5)),  # the scale target: 10 is too small for 2,000 subsets
        (500, 1000, (44, 1000, 5)),
        (12, 1000, (6, 924, 5)),  # capped at T // 2; all 924 subsets of 6
        (1000, 10, (500, 10, 1)),  # even T // 2 cannot pay for 5: the guarantee is lowered
    ],
)
def test_subset_plan_grows_subsets_to_cover_every_pair(num_tasks, num_subsets, want):
    plan = plan_subsets(num_tasks, 10, num_subsets, 5)
    size, num, min_pair = plan.as_key()
    assert (size, num, min_pair) == want
    pairs = num_tasks * (num_tasks - 1) / 2
    assert num * size * (size - 1) / 2 >= 1.5 * min_pair * pairs  # the sampler can pay for it
    if size > 10 and size < num_tasks // 2:  # the smallest size that pays
        smaller = num * (size - 1) * (size - 2) / 2
        assert smaller < 1.5 * min_pair * pairs
    assert math.comb(num_tasks - 2, size - 2) >= min_pair


def test_plan_notes_name_each_adjustment():
    assert plan_subsets(39, 10, 1000, 5).notes == ()
    notes = plan_subsets(12, 10, 1000, 5).notes
    assert any("capped to 6" in n for n in notes) and any("only 924 distinct" in n for n in notes)
    grown = plan_subsets(500, 10, 2000, 5).notes
    assert len(grown) == 1 and "using subsets of 32 tasks" in grown[0]
    lowered = plan_subsets(1000, 10, 10, 5).notes
    assert any("guaranteeing 1 instead" in n for n in lowered)


@pytest.mark.parametrize("num_tasks", [6, 13, 40])
def test_planned_subsets_can_be_drawn_with_their_guarantee(num_tasks):
    plan = plan_subsets(num_tasks, 10, 200, 5)
    subsets = sample_task_subsets(
        num_tasks, plan.subset_size, plan.num_subsets, seed=0, min_pair_count=plan.min_pair_count
    )
    counts = pair_counts(subsets, num_tasks)
    off = ~np.eye(num_tasks, dtype=bool)
    assert counts[off].min() >= plan.min_pair_count


def test_plan_needs_two_tasks():
    with pytest.raises(GraphtagError, match="at least 2 tasks"):
        plan_subsets(1, 10, 100, 5)
