"""fit_selected_groups: overlapping group models, each task served by its best validation group."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from graphtag.data import make_multilabel_graph
from graphtag.errors import GraphtagError
from graphtag.grouping import assign_by_validation, fit_groups, fit_selected_groups
from graphtag.models import prepare_inputs
from graphtag.training import TrainConfig

T = 5
GROUPS = [[0, 1, 2], [2, 3], [1, 3, 4], [0, 4]]  # overlapping, every task in two groups


@pytest.fixture(scope="module")
def setup():
    data = make_multilabel_graph(num_nodes=240, num_tasks=T, num_groups=2, seed=0)
    config = TrainConfig(hidden_channels=8, epochs=4, device="cpu")
    inputs = prepare_inputs(data, config.model_config, "cpu")
    return data, inputs, config


def _recording_cache(store):
    def cache(tasks, compute):
        out = compute()
        store.append((list(tasks), out.clone()))
        return out

    return cache


@pytest.fixture(scope="module")
def fitted(setup):
    data, inputs, config = setup
    store = []
    res = fit_selected_groups(data, inputs, GROUPS, config, seed=3, cache=_recording_cache(store))
    return res, store


def _brute_force(data, group_logits):
    """Per (group, task) validation AUC (sklearn) and BCE, then the rule, by plain loops."""
    y, vm = data.y.numpy(), data.val_mask.numpy()
    choice = []
    for t in range(T):
        cands = []
        for g, (tasks, out) in enumerate(group_logits):
            if t not in tasks:
                continue
            s = out[:, tasks.index(t)].double()
            rows = vm[:, t]
            yt = y[rows, t]
            auc = roc_auc_score(yt, s.numpy()[rows]) if 0 < yt.sum() < len(yt) else np.nan
            bce = float(F.binary_cross_entropy_with_logits(s[rows], torch.from_numpy(yt).double()))
            cands.append((g, auc, bce))
        defined = [c for c in cands if not np.isnan(c[1])]
        if defined:
            top = max(c[1] for c in defined)
            cands = [c for c in defined if c[1] >= top - 1e-12]
        low = min(c[2] for c in cands)
        choice.append(min(c[0] for c in cands if c[2] <= low))
    return choice


def test_assignment_is_the_best_validation_group(setup, fitted):
    data, _, _ = setup
    res, store = fitted
    assert [tasks for tasks, _ in store] == GROUPS  # one model per group, in order
    assert res.assignment == _brute_force(data, store)
    # Per-(group, task) scores agree with sklearn / torch, NaN outside membership.
    vm, y = data.val_mask.numpy(), data.y.numpy()
    for g, (tasks, out) in enumerate(store):
        for j, t in enumerate(tasks):
            rows = vm[:, t]
            want = roc_auc_score(y[rows, t], out[rows.nonzero()[0], j].numpy())
            assert res.group_val_auc[g, t] == pytest.approx(want, abs=1e-9)
        others = [t for t in range(T) if t not in tasks]
        assert np.isnan(res.group_val_auc[g, others]).all()
    assert np.array_equal(res.val_auc, res.group_val_auc[res.assignment, np.arange(T)])
    assert np.array_equal(res.val_loss, res.group_val_loss[res.assignment, np.arange(T)])


def test_overlapping_groups_serve_every_task_from_a_containing_group(fitted):
    res, _ = fitted
    assert res.groups == GROUPS and res.added_singletons == []
    for t, g in enumerate(res.assignment):
        assert t in res.groups[g]
    part = res.partition()
    assert sorted(t for b in part for t in b) == list(range(T))
    assert all(res.assignment[b[0]] == res.assignment[t] for b in part for t in b)


def test_logits_are_the_assigned_models_logits(setup, fitted):
    data, inputs, config = setup
    res, store = fitted
    assert res.logits.shape == (data.num_nodes, T) and res.logits.dtype == torch.float32
    assert torch.isfinite(res.logits).all()
    for t, g in enumerate(res.assignment):
        tasks, out = store[g]
        assert torch.equal(res.logits[:, t], out[:, tasks.index(t)])
    # The same recipe as fit_groups: a served task's column equals fit_groups' model of its group.
    t = 2
    g = res.assignment[t]
    ref = fit_groups(data, inputs, [res.groups[g]], config, seed=3)
    assert torch.equal(res.logits[:, t], ref[:, t])


def test_planted_logits_decide_the_assignment(setup):
    """A cache serving hand-made logits: a perfect score for a task wins, whatever the order."""
    data, inputs, config = setup
    y = data.y
    g = torch.Generator().manual_seed(0)

    def cache(tasks, compute):
        out = torch.randn(data.num_nodes, len(tasks), generator=g)
        if tasks == [2, 3]:
            out[:, 1] = 4.0 * (2 * y[:, 3] - 1)  # perfect for task 3
        if tasks == [1, 3, 4]:
            out[:, 2] = 4.0 * (2 * y[:, 4] - 1)  # perfect for task 4
        return out

    res = fit_selected_groups(data, inputs, GROUPS, config, seed=0, cache=cache)
    assert res.assignment[3] == 1 and res.assignment[4] == 2
    assert res.val_auc[3] == res.val_auc[4] == 1.0
    assert torch.equal(res.logits[:, 3], 4.0 * (2 * y[:, 3] - 1))


def test_uncovered_tasks_get_their_own_model_and_duplicates_train_once(setup):
    data, inputs, config = setup
    calls = []

    def cache(tasks, compute):
        calls.append(list(tasks))
        return torch.zeros(data.num_nodes, len(tasks))

    res = fit_selected_groups(data, inputs, [[3, 1], [3, 1]], config, cache=cache)
    assert calls == [[3, 1], [0], [2], [4]]
    assert res.groups == [[3, 1], [3, 1], [0], [2], [4]]
    assert res.added_singletons == [0, 2, 4]
    # All-zero logits tie everywhere: the lowest group index serves.
    assert res.assignment == [2, 0, 3, 0, 4]
    assert res.partition() == [[0], [1, 3], [2], [4]]


def test_assign_by_validation_tie_rules():
    members = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [0, 1, 1, 1]], dtype=bool)
    nan = np.nan
    auc = np.array(
        [
            [0.70, 0.80, nan, 0.6],
            [0.90, 0.80, nan, nan],
            [nan, 0.80 + 1e-14, nan, 0.6],
        ]
    )
    loss = np.array([[0.3, 0.5, 0.9, nan], [0.9, 0.4, 0.2, nan], [nan, 0.6, 0.2, nan]])
    # task 0: best AUC (group 1) although its loss is worst; task 1: AUC tie -> lowest loss;
    # task 2: AUC undefined -> lowest loss, tie -> lowest index; task 3: no validation loss.
    assert assign_by_validation(members, auc, loss).tolist() == [1, 1, 1, 0]
    with pytest.raises(GraphtagError, match="a task is in no group"):
        assign_by_validation(members[:, :1] & False, auc[:, :1], loss[:, :1])


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([[0, 1], [2, 5]], r"task 5 in group 1 is out of range: the dataset has 5 tasks \(0..4\)"),
        ([[0, -1]], r"task -1 in group 0 is out of range"),
        ([[0, 1], []], "group 1 is empty; every group needs at least one task"),
        ([[0, 1, 1]], r"group 0 lists a task twice: \[0, 1, 1\]"),
        ([[0, 1.5]], "group 0 has a non-integer task index 1.5"),
        ("01", "groups must be a list of task-index lists, got str"),
    ],
)
def test_bad_groups_are_clear_errors(setup, groups, message):
    data, inputs, config = setup

    def cache(tasks, compute):  # pragma: no cover - must not be reached
        raise AssertionError("trained before validating the groups")

    with pytest.raises(GraphtagError, match=message):
        fit_selected_groups(data, inputs, groups, config, cache=cache)
