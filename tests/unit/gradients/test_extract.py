"""extract_gradient_features: kept rows, order, offsets, validation subsample, metadata."""

from __future__ import annotations

import math

import pytest
import torch

from graphtag._utils import torch_generator
from graphtag.errors import GraphtagError
from graphtag.gradients import (
    ROW_CAP_RULE,
    TRAIN,
    VAL,
    VAL_SUBSAMPLE_RULE,
    GradientProjector,
    cap_task_rows,
    compute_projected_gradients,
    extract_gradient_features,
    subsample_val_mask,
)

ATOL = 1e-10


def _reference_rows(setup, proj, tasks, val_mask):
    """Brute force: g and logits of every node, then a loop over (task, split, node)."""
    data = setup.data
    nodes = torch.arange(data.num_nodes)
    batches = list(setup.inputs.batches(nodes, 100, train=False))
    g = compute_projected_gradients(setup.model, batches, proj, tasks=tasks)
    setup.model.eval()
    with torch.no_grad():
        logits = torch.cat([setup.model(*b.args)[b.out] for b in batches])[:, tasks]
    setup.model.train()
    rows = []
    for j, t in enumerate(tasks):
        for split, mask in ((TRAIN, data.train_mask[:, t]), (VAL, val_mask[:, j])):
            for i in range(data.num_nodes):
                if mask[i]:
                    rows.append((j, split, i, g[i, j], logits[i, j], data.y[i, t]))
    return rows


@pytest.mark.parametrize("tasks", [None, [2, 0]])
def test_rows_equal_brute_force_selection(setup, tasks) -> None:
    proj = GradientProjector(dim=7, seed=2).fit(setup.model)
    feats = extract_gradient_features(
        setup.model,
        setup.inputs,
        setup.data,
        proj,
        tasks=tasks,
        node_batch_size=5,
        chunk_size=3,
        dtype=torch.float64,
    )
    task_list = [0, 1, 2] if tasks is None else tasks
    rows = _reference_rows(setup, proj, task_list, setup.data.val_mask[:, task_list])
    assert feats.features.shape == (len(rows), 7)
    assert feats.num_tasks == len(task_list)
    assert feats.task.tolist() == [r[0] for r in rows]
    assert feats.split.tolist() == [r[1] for r in rows]
    assert feats.node.tolist() == [r[2] for r in rows]
    torch.testing.assert_close(feats.features, torch.stack([r[3] for r in rows]), atol=ATOL, rtol=0)
    torch.testing.assert_close(
        feats.offsets, torch.stack([r[4] for r in rows]).float(), atol=1e-6, rtol=0
    )
    assert torch.equal(feats.labels, torch.stack([r[5] for r in rows]).float())
    assert feats.split.dtype == torch.int8 and feats.offsets.dtype == torch.float32
    # Every task keeps its training and validation rows.
    for j, t in enumerate(task_list):
        assert feats.rows(j, TRAIN).numel() == int(setup.data.train_mask[:, t].sum())
        assert feats.rows(j, VAL).numel() == int(setup.data.val_mask[:, t].sum())
    assert feats.meta["tasks"] == task_list
    assert setup.model.training


def test_batch_size_does_not_change_features(sign_setup) -> None:
    s = sign_setup
    proj = GradientProjector(dim=5).fit(s.model)
    a = extract_gradient_features(s.model, s.inputs, s.data, proj, node_batch_size=1)
    b = extract_gradient_features(s.model, s.inputs, s.data, proj, node_batch_size=1000)
    torch.testing.assert_close(a.features, b.features, atol=1e-6, rtol=0)
    assert torch.equal(a.node, b.node) and torch.equal(a.task, b.task)


def test_callable_inputs_and_unfitted_projector(sign_setup) -> None:
    s = sign_setup
    proj = GradientProjector(dim=4, block="body")

    def batches_fn(nodes, batch_size):
        return s.inputs.batches(nodes, batch_size, train=False)

    feats = extract_gradient_features(s.model, batches_fn, s.data, proj)
    assert proj.param_names_ and "head.weight" not in proj.param_names_  # fitted here
    meta = feats.meta
    assert meta["projector"] == {
        "dim": 4,
        "kind": "rademacher",
        "block": "body",
        "seed": 0,
        "num_params": proj.num_params_,
    }
    assert (
        meta["num_rows"] == feats.features.size(0) == meta["num_train_rows"] + meta["num_val_rows"]
    )
    assert meta["num_train_rows"] == int(s.data.train_mask.sum())
    assert meta["num_val_rows"] == int(s.data.val_mask.sum())
    assert meta["num_nodes"] == int((s.data.train_mask | s.data.val_mask).any(1).sum())
    assert meta["val_subsample"] == "none"


def test_validation_subsample_rule(sign_setup) -> None:
    s = sign_setup
    data = s.data
    tasks = torch.arange(3)
    sub = subsample_val_mask(data.val_mask, data.y, tasks, 0.5, seed=0)
    assert not (sub & ~data.val_mask).any()
    for t in range(3):
        for cls in (0.0, 1.0):
            n = int((data.val_mask[:, t] & (data.y[:, t] == cls)).sum())
            kept = int((sub[:, t] & (data.y[:, t] == cls)).sum())
            assert kept == math.ceil(0.5 * n)
    # Seeded; a task's subsample does not depend on the other tasks.
    assert torch.equal(sub, subsample_val_mask(data.val_mask, data.y, tasks, 0.5, seed=0))
    alone = subsample_val_mask(data.val_mask[:, [2]], data.y[:, [2]], tasks[[2]], 0.5, seed=0)
    assert torch.equal(alone[:, 0], sub[:, 2])
    others = [subsample_val_mask(data.val_mask, data.y, tasks, 0.5, seed=k) for k in range(1, 6)]
    assert any(not torch.equal(o, sub) for o in others)
    with pytest.raises(GraphtagError, match=r"val_fraction must lie in \(0, 1\], got 0"):
        subsample_val_mask(data.val_mask, data.y, tasks, 0, seed=0)

    proj = GradientProjector(dim=3).fit(s.model)
    feats = extract_gradient_features(
        s.model, s.inputs, data, proj, val_fraction=0.5, seed=0, dtype=torch.float64
    )
    rows = _reference_rows(s, proj, [0, 1, 2], sub)
    assert feats.node.tolist() == [r[2] for r in rows]
    assert feats.meta["val_subsample"] == VAL_SUBSAMPLE_RULE
    assert feats.meta["num_val_rows"] == int(sub.sum())


def test_row_cap_keeps_a_seeded_class_proportional_subsample(sign_setup) -> None:
    s = sign_setup
    data = s.data
    counts = data.train_mask.sum(0)
    cap = int(counts.min()) - 1  # every task is capped
    sub = cap_task_rows(data.train_mask, data.y, cap, seed=0)
    assert not (sub & ~data.train_mask).any()
    assert sub.sum(0).tolist() == [cap] * 3
    for t in range(3):
        n = int(counts[t])
        n_pos = int((data.train_mask[:, t] & (data.y[:, t] == 1)).sum())
        kept_pos = int((sub[:, t] & (data.y[:, t] == 1)).sum())
        assert kept_pos == min(n_pos, math.ceil(cap * n_pos / n))
    # Seeded; a task's rows do not depend on the other tasks; no-op where the cap does not bind.
    assert torch.equal(sub, cap_task_rows(data.train_mask, data.y, cap, seed=0))
    alone = cap_task_rows(data.train_mask[:, [1]], data.y[:, [1]], cap, seed=0)
    assert torch.equal(alone[:, 0], sub[:, 1])
    assert not torch.equal(sub, cap_task_rows(data.train_mask, data.y, cap, seed=1))
    assert torch.equal(cap_task_rows(data.train_mask, data.y, 10**6, seed=0), data.train_mask)
    assert torch.equal(cap_task_rows(data.train_mask, data.y, None, seed=0), data.train_mask)
    with pytest.raises(GraphtagError, match="max_task_rows must be a positive integer or None"):
        cap_task_rows(data.train_mask, data.y, 0, seed=0)


def test_row_cap_shares_nodes_across_tasks() -> None:
    # Shared node keys: tasks with the same rows keep the same nodes, and the kept nodes of
    # many tasks concentrate on the low-key nodes (independent keys would spread them).
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(2000, 30, generator=g) < 0.5
    y = (torch.rand(2000, 30, generator=g) < 0.3).float()
    y[:, 1], mask[:, 1] = y[:, 0], mask[:, 0]
    kept = cap_task_rows(mask, y, 100, seed=0, task_chunk=7)  # chunks give the same answer
    assert torch.equal(kept, cap_task_rows(mask, y, 100, seed=0))
    assert torch.equal(kept[:, 0], kept[:, 1])
    union = int(kept.any(1).sum())
    assert union < 0.5 * int(kept.sum())  # most kept nodes serve several tasks
    # Brute force for one task: smallest keys per class.
    keys = torch.rand(2000, generator=torch_generator(0, "row_cap"))
    for cls, k in (
        (1, math.ceil(100 * int((mask[:, 5] & (y[:, 5] == 1)).sum()) / int(mask[:, 5].sum()))),
    ):
        rows = torch.nonzero(mask[:, 5] & (y[:, 5] == cls)).flatten()
        want = rows[torch.argsort(keys[rows])[:k]].sort().values
        got = torch.nonzero(kept[:, 5] & (y[:, 5] == cls)).flatten()
        assert torch.equal(got, want)


def test_features_keep_the_capped_rows(sign_setup) -> None:
    s = sign_setup
    data = s.data
    cap = int(data.train_mask.sum(0).min()) - 1
    sub = cap_task_rows(data.train_mask, data.y, cap, seed=0)
    val_cap = cap_task_rows(data.val_mask, data.y, cap, seed=0)
    proj = GradientProjector(dim=3).fit(s.model)
    feats = extract_gradient_features(
        s.model, s.inputs, data, proj, max_task_rows=cap, seed=0, dtype=torch.float64
    )
    assert feats.meta["num_train_rows"] == int(sub.sum())
    assert feats.meta["num_val_rows"] == int(val_cap.sum())
    assert feats.meta["max_task_rows"] == cap and feats.meta["row_cap"] == ROW_CAP_RULE
    full = extract_gradient_features(s.model, s.inputs, data, proj, seed=0, dtype=torch.float64)
    for split, mask in ((TRAIN, sub), (VAL, val_cap)):
        for t in range(3):
            rows = (feats.task == t) & (feats.split == split)
            assert feats.node[rows].tolist() == torch.nonzero(mask[:, t]).flatten().tolist()
            keep = (full.task == t) & (full.split == split) & mask[full.node, t]
            torch.testing.assert_close(feats.features[rows], full.features[keep])


def test_bfloat16_storage(sign_setup) -> None:
    s = sign_setup
    proj = GradientProjector(dim=3).fit(s.model)
    a = extract_gradient_features(s.model, s.inputs, s.data, proj, dtype=torch.bfloat16)
    b = extract_gradient_features(s.model, s.inputs, s.data, proj)
    assert a.features.dtype == torch.bfloat16 and a.meta["dtype"] == "bfloat16"
    torch.testing.assert_close(a.features.float(), b.features, atol=0.05, rtol=0.02)


def test_errors(sign_setup) -> None:
    s = sign_setup
    proj = GradientProjector(dim=3).fit(s.model)
    with pytest.raises(GraphtagError, match=r"would keep 30 rows \(> max_rows=10\)"):
        extract_gradient_features(s.model, s.inputs, s.data, proj, max_rows=10)
    with pytest.raises(GraphtagError, match=r"out of range: there are 3 tasks"):
        extract_gradient_features(s.model, s.inputs, s.data, proj, tasks=[3])
    with pytest.raises(GraphtagError, match="node_batch_size must be a positive int"):
        extract_gradient_features(s.model, s.inputs, s.data, proj, node_batch_size=0)

    def drops_last(nodes, batch_size):
        return s.inputs.batches(nodes[:-1], batch_size, train=False)

    with pytest.raises(GraphtagError, match="rows were not produced"):
        extract_gradient_features(s.model, drops_last, s.data, proj)
    with pytest.raises(GraphtagError, match="inputs must be a PyG Data, a PyG NeighborLoader"):
        extract_gradient_features(s.model, 3, s.data, proj)
