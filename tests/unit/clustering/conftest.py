"""Shared input families and contract checks for the clustering tests."""

from __future__ import annotations

import numpy as np
import pytest


def planted_affinity(
    num_tasks: int,
    num_groups: int,
    noise: float,
    seed: int,
    *,
    within: float = 1.0,
    between: float = 0.0,
    balanced: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Block affinity ``[T, T]`` (zero diagonal) plus symmetric Gaussian noise, and its labels."""
    rng = np.random.default_rng(seed)
    if balanced:
        labels = rng.permutation(np.arange(num_tasks) % num_groups)
    else:
        labels = np.r_[np.arange(num_groups), rng.integers(0, num_groups, num_tasks - num_groups)]
    A = np.where(labels[:, None] == labels[None, :], within, between)
    A = A + noise * rng.standard_normal((num_tasks, num_tasks))
    A = 0.5 * (A + A.T)
    np.fill_diagonal(A, 0.0)
    return A, labels


def canonical(labels) -> list[int]:
    """Relabel by order of first appearance (independent of the implementation under test)."""
    seen: dict[int, int] = {}
    return [seen.setdefault(int(x), len(seen)) for x in labels]


def assert_partition(groups, num_tasks: int, num_groups: int) -> None:
    """Every task in exactly one group, exactly ``num_groups`` non-empty sorted groups."""
    assert len(groups) == num_groups
    assert all(len(g) > 0 for g in groups)
    assert all(list(g) == sorted(g) for g in groups)
    flat = [t for g in groups for t in g]
    assert sorted(flat) == list(range(num_tasks))
    assert [g[0] for g in groups] == sorted(g[0] for g in groups)


@pytest.fixture
def planted():
    return planted_affinity


@pytest.fixture
def check_partition():
    return assert_partition


@pytest.fixture
def canon():
    return canonical
