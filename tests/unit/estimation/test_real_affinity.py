"""Task affinity by real training: plumbing against hand computations, real fine-tunes on a tiny
graph (pairwise, higher-order), determinism, resume, and the pickled (Ray worker) path."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import graphtag.estimation._real as real
from graphtag.data import build_multilabel_graph
from graphtag.errors import GraphtagError
from graphtag.estimation._affinity import pairwise_affinity, subset_affinity
from graphtag.estimation._finetune import FINETUNE_RECIPE, FinetuneResult
from graphtag.estimation._real import (
    RealContext,
    higher_order_affinity,
    pairwise_real_affinity,
    real_subset_losses,
)
from graphtag.executor import Job
from graphtag.models import build_model, prepare_inputs
from graphtag.training import TrainConfig, fit_model


def tiny_context(num_tasks: int, train: bool) -> RealContext:
    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 60, (2, 240), generator=g)
    y = (torch.rand(60, num_tasks, generator=g) < 0.5).float()
    data = build_multilabel_graph(edge_index, y, name="toy", feature_dim=8, seed=0)
    config = TrainConfig(hidden_channels=8, num_hops=2, epochs=5, patience=5, device="cpu")
    inputs = prepare_inputs(data, config.model_config, "cpu")
    if train:
        base = fit_model(data, inputs, None, config, seed=0, select="loss").model
    else:
        base = build_model(config.model_config, inputs.in_channels, num_tasks)
    return RealContext(base, data, inputs, config)


@pytest.fixture(scope="module")
def context() -> RealContext:
    return tiny_context(3, train=True)


class StubTrainer:
    """Replaces finetune_subset: loss of task t under subset S from a fixed table."""

    def __init__(self, table: dict[tuple[int, ...], list[float]]) -> None:
        self.table, self.calls = table, []

    def __call__(self, base_model, data, inputs, subset, config, *, seed=0, recipe="gd"):
        assert recipe == "gd"
        tasks = [int(t) for t in subset]
        self.calls.append((tuple(tasks), seed))
        losses = torch.tensor(self.table[tuple(tasks)], dtype=torch.float64)
        return FinetuneResult(tasks, losses, 1, 0.0)


# Toy table for 4 tasks and all 6 pairs: loss of task i when trained with j.
PAIR_LOSS = np.array(
    [
        [np.nan, 1.0, 2.0, 3.0],
        [0.5, np.nan, 0.5, 0.8],
        [2.0, 4.0, np.nan, 3.0],
        [1.0, 1.0, 1.3, np.nan],
    ]
)
TOY_TABLE = {(i, j): [PAIR_LOSS[i, j], PAIR_LOSS[j, i]] for i in range(4) for j in range(i + 1, 4)}


def test_real_subset_losses_layout_and_seeds(context, monkeypatch) -> None:
    table = {(0, 2): [0.25, 0.75], (1,): [0.5], (0, 1, 2): [0.1, 0.2, 0.3]}
    stub = StubTrainer(table)
    monkeypatch.setattr(real, "finetune_subset", stub)
    losses = real_subset_losses(context, [(2, 0), [1], (0, 1, 2)], seed=5)
    expected = np.array(
        [[0.25, np.nan, 0.75], [np.nan, 0.5, np.nan], [0.1, 0.2, 0.3]], dtype=np.float64
    )
    np.testing.assert_array_equal(losses, expected)
    assert losses.dtype == np.float64
    # Each fine-tune is seeded from its own key (context fingerprint, subset, seed).
    fp = context.fingerprint()
    for tasks, seed in stub.calls:
        key = {
            "kind": "finetune_subset",
            "context": fp,
            "recipe": FINETUNE_RECIPE,
            "subset": list(tasks),
            "seed": 5,
        }
        assert seed == Job(key).seed(5)
    assert len({s for _, s in stub.calls}) == 3


def hand_affinity_toy() -> np.ndarray:
    # docs/algorithms.md §5 by hand with subsets of size 2: task i is in the 3 subsets {i, j}
    # (j != i) with scores -PAIR_LOSS[i, j]; standardised within i; A[i, j] = that standardised
    # score
    # (the only subset holding both); zero diagonal. Population std (ddof=0).
    # Row 0: losses 1, 2, 3 -> centred scores 1, 0, -1, std sqrt(2/3) -> z = +-sqrt(1.5), 0.
    # Row 1: losses .5, .5, .8 -> centred .1, .1, -.2, std sqrt(.02) -> 1/sqrt2, 1/sqrt2, -sqrt2.
    # Row 2: losses 2, 4, 3 -> centred 1, -1, 0 -> sqrt(1.5), -sqrt(1.5), 0.
    # Row 3: losses 1, 1, 1.3 -> like row 1.
    a, b, c = math.sqrt(1.5), 1 / math.sqrt(2), math.sqrt(2)
    return np.array(
        [
            [0.0, a, 0.0, -a],
            [b, 0.0, b, -c],
            [a, -a, 0.0, 0.0],
            [b, b, -c, 0.0],
        ]
    )


def test_higher_order_affinity_is_subset_affinity_of_real_losses(monkeypatch) -> None:
    stub = StubTrainer(TOY_TABLE)
    monkeypatch.setattr(real, "finetune_subset", stub)
    context = tiny_context(4, train=False)
    affinity, subsets, losses = higher_order_affinity(context, 6, 2, seed=3, min_pair_count=1)
    assert sorted(subsets) == sorted(TOY_TABLE)
    for k, (i, j) in enumerate(subsets):
        assert losses[k, i] == PAIR_LOSS[i, j] and losses[k, j] == PAIR_LOSS[j, i]
        assert np.isnan(np.delete(losses[k], [i, j])).all()
    np.testing.assert_allclose(affinity, hand_affinity_toy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(affinity, subset_affinity(subsets, losses, 4))


def test_higher_order_real_training_on_a_tiny_graph(context, tmp_path: Path) -> None:
    affinity, subsets, losses = higher_order_affinity(
        context, 3, 2, seed=0, min_pair_count=1, checkpoint_dir=tmp_path
    )
    assert sorted(subsets) == [(0, 1), (0, 2), (1, 2)]
    inside = np.zeros((3, 3), dtype=bool)
    for k, s in enumerate(subsets):
        inside[k, list(s)] = True
    assert np.isfinite(losses[inside]).all() and np.isnan(losses[~inside]).all()
    assert affinity.shape == (3, 3) and np.isfinite(affinity).all()
    np.testing.assert_array_equal(affinity, subset_affinity(subsets, losses, 3))
    # The pair subsets are the pairwise method's jobs: same key, so the checkpoints are shared.
    _, _, pair = pairwise_real_affinity(context, seed=0, checkpoint_dir=tmp_path)
    for k, (i, j) in enumerate(subsets):
        assert pair[i, j] == losses[k, i] and pair[j, i] == losses[k, j]
    assert len(list(tmp_path.glob("*.json"))) == 6


def test_pairwise_real_affinity_plumbing(context, monkeypatch) -> None:
    table3 = {k: v for k, v in TOY_TABLE.items() if max(k) < 3}
    table3.update({(0,): [1.5], (1,): [0.6], (2,): [2.5]})
    stub = StubTrainer(table3)
    monkeypatch.setattr(real, "finetune_subset", stub)
    affinity, single, pair = pairwise_real_affinity(context, seed=0)
    np.testing.assert_array_equal(single, [1.5, 0.6, 2.5])
    np.testing.assert_array_equal(pair, PAIR_LOSS[:3, :3])
    assert sorted(t for t, _ in stub.calls) == sorted(table3)
    np.testing.assert_allclose(affinity, pairwise_affinity(single, pair), rtol=0, atol=0)


def test_pairwise_real_training_on_a_tiny_graph(context, tmp_path: Path, monkeypatch) -> None:
    affinity, single, pair = pairwise_real_affinity(context, seed=1, checkpoint_dir=tmp_path)
    assert affinity.shape == (3, 3) and np.isfinite(affinity).all()
    assert single.shape == (3,) and np.isfinite(single).all() and (single > 0).all()
    off = ~np.eye(3, dtype=bool)
    assert pair.shape == (3, 3) and np.isfinite(pair[off]).all() and np.isnan(np.diag(pair)).all()
    assert len(list(tmp_path.glob("*.json"))) == 6  # 3 singles + 3 pairs
    # Deterministic (fresh run, no checkpoints) and seed-free: the real fine-tune is full-batch
    # gradient descent, a function of the subset alone.
    a2, s2, p2 = pairwise_real_affinity(context, seed=1)
    np.testing.assert_array_equal(single, s2)
    np.testing.assert_array_equal(pair, p2)
    np.testing.assert_array_equal(affinity, a2)
    _, s3, _ = pairwise_real_affinity(context, seed=2)
    np.testing.assert_array_equal(single, s3)
    # A subset's loss does not depend on the other jobs: the singles alone give the same losses.
    alone = real_subset_losses(context, [(2,), (0,), (1,)], seed=1)
    np.testing.assert_array_equal(alone[[1, 2, 0], [0, 1, 2]], single)
    # Resume: everything is checkpointed, nothing is trained again.
    calls = []
    monkeypatch.setattr(real, "finetune_subset", lambda *a, **k: calls.append(a))
    a4, _, p4 = pairwise_real_affinity(context, seed=1, checkpoint_dir=tmp_path)
    assert calls == []
    np.testing.assert_array_equal(p4, pair)
    np.testing.assert_array_equal(a4, affinity)


def test_pickled_context_trains_identically(context) -> None:
    # What a Ray worker does: unpickle the context, move it to config.device, fine-tune.
    clone = pickle.loads(pickle.dumps(context))
    assert clone.fingerprint() == context.fingerprint()
    subsets = [(0, 1), (2,)]
    np.testing.assert_array_equal(
        real_subset_losses(clone, subsets, seed=4), real_subset_losses(context, subsets, seed=4)
    )


def test_fingerprint_tracks_the_base_model(context) -> None:
    other = RealContext(
        pickle.loads(pickle.dumps(context.base_model)), context.data, context.inputs, context.config
    )
    assert other.fingerprint() == context.fingerprint()
    with torch.no_grad():
        next(other.base_model.parameters()).add_(1e-3)
    other._fingerprint = None
    assert other.fingerprint() != context.fingerprint()


def test_errors(context) -> None:
    with pytest.raises(GraphtagError, match=r"T\(T\+1\)/2 = 6 fine-tunes for 3 tasks"):
        pairwise_real_affinity(context, max_tasks=2)
    with pytest.raises(GraphtagError, match=r"context must be a graphtag\.estimation\.RealContext"):
        real_subset_losses(object(), [(0,)])  # type: ignore[arg-type]
    with pytest.raises(GraphtagError, match=r"subset 0 holds task 3, outside 0\.\.2"):
        real_subset_losses(context, [(0, 3)])
