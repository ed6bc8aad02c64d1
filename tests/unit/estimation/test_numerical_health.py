"""Divergence never reaches an affinity matrix: missing losses, failed surrogates, bad features."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

import graphtag.estimation._grad_tag as grad_tag_module
import graphtag.estimation._surrogate as surrogate_module
from graphtag.data import build_multilabel_graph
from graphtag.errors import GraphtagError, NumericalError
from graphtag.estimation import (
    GradTAG,
    RealContext,
    estimate_losses,
    fit_surrogates,
    make_synthetic_features,
    pairwise_affinity,
    real_subset_losses,
    sample_task_subsets,
    subset_affinity,
)
from graphtag.executor import JobsFailedError
from graphtag.gradients import GradientProjector, extract_gradient_features
from graphtag.models import build_model, prepare_inputs
from graphtag.training import TrainConfig, fit_model

NAN = float("nan")

# Small subset samples leave some pairs apart on purpose; that warning is tested elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore:.*task pairs never co-occur:UserWarning")


def _reference_affinity(subsets, losses, num_tasks, exclude=()):
    """Brute force over the definition, with missing scores (NaN/inf or excluded) left out."""
    scores = {i: {} for i in range(num_tasks)}  # task -> {subset index: score}
    for k, s in enumerate(subsets):
        for i in s:
            if k not in exclude and math.isfinite(losses[k][i]):
                scores[i][k] = -losses[k][i]
    z = {}
    for i, sc in scores.items():
        vals = list(sc.values())
        mean = sum(vals) / len(vals) if vals else 0.0
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)) if vals else 0.0
        ok = std > 1e-10 * max(1.0, abs(mean))
        z[i] = {k: (v - mean) / std if ok else 0.0 for k, v in sc.items()}
    a = np.zeros((num_tasks, num_tasks))
    for i in range(num_tasks):
        for j in range(num_tasks):
            terms = [z[i][k] for k, s in enumerate(subsets) if j in s and k in z[i]]
            if i != j and terms:
                a[i, j] = sum(terms) / len(terms)
    return a


def _table(subsets, num_tasks, seed):
    rng = np.random.default_rng(seed)
    losses = np.full((len(subsets), num_tasks), np.nan)
    for k, s in enumerate(subsets):
        losses[k, list(s)] = rng.uniform(0.2, 1.0, len(s))
    return losses


# ---------------------------------------------------------------------------------- affinity


@pytest.mark.parametrize("k", [0, 7, 39])
def test_a_nan_subset_gives_the_affinity_without_that_subset(k):
    subsets = sample_task_subsets(8, 3, 40, seed=1, min_pair_count=2)
    losses = _table(subsets, 8, seed=k)
    dropped = subset_affinity(subsets[:k] + subsets[k + 1 :], np.delete(losses, k, 0), 8)
    poisoned = losses.copy()
    poisoned[k, list(subsets[k])] = [NAN, np.inf, NAN][: len(subsets[k])]
    with pytest.warns(UserWarning, match=r"^3 losses of tasks in their subsets are NaN/inf"):
        got = subset_affinity(subsets, poisoned, 8)
    np.testing.assert_allclose(got, dropped, rtol=0, atol=1e-12)
    flags = np.zeros(len(subsets), dtype=bool)
    flags[k] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # excluded subsets are the caller's to report
        excluded = subset_affinity(subsets, losses, 8, exclude=flags)
    np.testing.assert_allclose(excluded, dropped, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_missing_entries_match_a_brute_force_reference_and_never_give_nan(seed):
    rng = np.random.default_rng(seed)
    subsets = sample_task_subsets(7, 3, 30, seed=seed, min_pair_count=3)
    losses = _table(subsets, 7, seed)
    entries = [(k, t) for k, s in enumerate(subsets) for t in s]
    for idx in rng.choice(len(entries), size=6, replace=False):
        k, t = entries[idx]
        losses[k, t] = rng.choice([NAN, np.inf])
    exclude = np.zeros(len(subsets), dtype=bool)
    exclude[rng.choice(len(subsets), 2, replace=False)] = True
    with pytest.warns(UserWarning, match=r"NaN/inf and were left out of the affinity"):
        got = subset_affinity(subsets, losses, 7, exclude=exclude)
    ref = _reference_affinity(subsets, losses.tolist(), 7, set(np.flatnonzero(exclude)))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_missing_loss_warning_names_the_entries():
    subsets = [(0, 1), (0, 2), (1, 2), (0, 1, 2)]
    losses = [[1.0, 2.0, NAN], [3.0, NAN, 1.0], [NAN, 1.0, 2.0], [0.5, np.inf, 0.7]]
    with pytest.warns(UserWarning) as rec:
        a = subset_affinity(subsets, losses, 3)
    assert str(rec[0].message) == (
        "1 losses of tasks in their subsets are NaN/inf and were left out of the affinity as "
        "missing: subset 3 (0, 1, 2) task 1: inf"
    )
    assert np.isfinite(a).all()


def test_a_task_left_without_any_loss_is_an_error():
    subsets = [(0, 1), (1, 2), (0, 2), (0, 1, 2)]
    losses = [[1.0, 2.0, NAN], [NAN, 1.0, np.inf], [3.0, NAN, NAN], [0.5, 0.7, NAN]]
    with pytest.raises(NumericalError) as info:
        subset_affinity(subsets, losses, 3)
    assert str(info.value).startswith(
        "tasks [2] have no usable (finite, not excluded) loss in any of their subsets "
        "(loss of task 2 in subset 1 (1, 2) is inf); their affinity cannot be estimated"
    )
    assert info.value.tasks == [2]
    with pytest.raises(NumericalError, match=re.escape("every subset holding task 2 was excl")):
        subset_affinity(subsets, _table(subsets, 3, 0), 3, exclude=np.array([0, 1, 1, 1], bool))


def test_a_pair_left_without_a_common_score_is_an_error():
    subsets = [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3), (0, 1, 2)]
    losses = _table(subsets, 4, seed=3)
    losses[4, 0] = NAN  # the only subset holding 0 and 3 loses task 0's score
    with pytest.raises(NumericalError) as info:
        subset_affinity(subsets, losses, 4)
    assert str(info.value).startswith(
        "1 task pairs (i, j) co-occur only in subsets where task i's loss is missing "
        "(NaN/inf or excluded): (0, 3); A[i, j] cannot be estimated"
    )


def test_bad_exclude_flags():
    with pytest.raises(GraphtagError, match=re.escape("exclude must be a bool")):
        subset_affinity([(0, 1)], [[1.0, 2.0]], 2, exclude=[0])


def test_pairwise_affinity_refuses_a_diverged_single_loss():
    with pytest.raises(NumericalError, match=re.escape("single_losses[1] = nan")):
        pairwise_affinity([1.0, NAN], {(0, 1): 0.5})


# ---------------------------------------------------------------------------------- surrogates


def _planted(seed=0):
    return make_synthetic_features(
        num_tasks=8, num_groups=2, train_rows=40, val_rows=40, dim=6, seed=seed
    )


def _est(**kw):
    return GradTAG(subset_size=3, num_subsets=30, min_pair_count=1, seed=2, **kw)


def test_a_non_converged_surrogate_is_left_out_and_reported(monkeypatch):
    feats = _planted()
    clean = _est().fit(feats)
    assert not clean.excluded_.any()
    real_fit = grad_tag_module.fit_surrogates

    def one_fails(*args, **kw):
        fit = real_fit(*args, **kw)
        fit.converged[4] = False
        return fit

    monkeypatch.setattr(grad_tag_module, "fit_surrogates", one_fails)
    with pytest.warns(UserWarning) as rec:
        est = _est().fit(feats)
    s4 = clean.subsets_[4]
    assert str(rec[0].message) == (
        f"1 of 30 surrogates did not converge within max_iter=50 (tol=1e-05); their losses are "
        f"left out of the affinity: subsets 4 {s4} (tasks [{', '.join(map(str, s4))}]); raise "
        "max_iter or l2 (see converged_ and excluded_)"
    )
    assert est.excluded_.tolist() == [k == 4 for k in range(30)]
    np.testing.assert_array_equal(est.losses_, clean.losses_)  # kept for inspection
    keep = [k for k in range(30) if k != 4]
    ref = subset_affinity([clean.subsets_[k] for k in keep], clean.losses_[keep], 8, symmetric=True)
    np.testing.assert_allclose(est.affinity_, ref, rtol=0, atol=1e-12)


def test_nan_losses_of_one_subset_are_left_out(monkeypatch):
    feats = _planted(1)
    clean = _est().fit(feats)
    real_losses = grad_tag_module.estimate_losses

    def poisoned(*args, **kw):
        out = real_losses(*args, **kw)
        out[11] = NAN
        return out

    monkeypatch.setattr(grad_tag_module, "estimate_losses", poisoned)
    with pytest.warns(UserWarning, match=r"^1 of 30 subsets have NaN/inf estimated losses; "):
        est = _est().fit(feats)
    keep = [k for k in range(30) if k != 11]
    ref = subset_affinity([clean.subsets_[k] for k in keep], clean.losses_[keep], 8, symmetric=True)
    np.testing.assert_allclose(est.affinity_, ref, rtol=0, atol=1e-12)
    assert np.isfinite(est.affinity_).all() and est.excluded_.sum() == 1


def test_network_losses_with_nan_exclude_their_subset_instead_of_failing():
    feats = _planted(2)
    linear = _est().fit(feats)

    def network(subsets, weights):  # the linear estimate, diverged for subset 5
        out = estimate_losses(feats, subsets, weights)
        out[5, list(subsets[5])] = torch.tensor([NAN, np.inf, NAN], dtype=torch.float64)
        return out

    with pytest.warns(UserWarning, match=r"^1 of 30 subsets have NaN/inf estimated losses"):
        est = _est(loss="network").fit(feats, network_loss_fn=network)
    assert est.excluded_.tolist() == [k == 5 for k in range(30)]
    assert np.isnan(est.losses_[5]).all()
    keep = [k for k in range(30) if k != 5]
    ref = subset_affinity(
        [linear.subsets_[k] for k in keep], linear.losses_[keep], 8, symmetric=True
    )
    np.testing.assert_allclose(est.affinity_, ref, rtol=0, atol=1e-12)


def test_all_surrogates_failing_is_an_error_not_a_matrix():
    est = GradTAG(subset_size=3, num_subsets=10, min_pair_count=0, max_iter=1, tol=1e-12)
    with (
        pytest.warns(UserWarning, match=r"^10 of 10 surrogates did not converge"),
        pytest.raises(NumericalError) as info,
    ):
        est.fit(_planted())
    msg = str(info.value)
    assert msg.startswith("Grad-TAG: 10 of 10 surrogates did not converge within max_iter=1 ")
    assert "have no usable (finite, not excluded) loss" in msg
    assert info.value.stage == "affinity"


def test_nan_trial_points_are_rejected_not_raised(monkeypatch):
    feats = _planted()
    subsets = [(0, 1), (2, 3), (4, 5)]
    real_sums = surrogate_module._loss_and_grad_sums

    def poisoned(blocks, mem, weights):  # subset (2, 3) evaluates to NaN away from w = 0
        loss, grad = real_sums(blocks, mem, weights)
        hit = (mem[:, 0] == 2) & (mem[:, 1] == 3)
        return torch.where(hit, NAN, loss), torch.where(hit[:, None], NAN, grad)

    monkeypatch.setattr(surrogate_module, "_loss_and_grad_sums", poisoned)
    fit = fit_surrogates(feats, subsets, max_iter=10)
    assert fit.converged.tolist() == [True, False, True]
    assert torch.isfinite(fit.weights).all() and torch.isfinite(fit.objective).all()
    assert (fit.weights[1] == 0).all()  # never left w = 0


def test_nan_features_of_one_task_are_named():
    feats = _planted()
    rows = torch.nonzero(feats.task == 3).flatten()[:2]
    feats.features[rows[0], 1] = NAN
    feats.features[rows[1], 0] = np.inf
    with pytest.raises(NumericalError) as info:
        _est().fit(feats)
    assert str(info.value).startswith(
        "GradientFeatures.features hold NaN or inf in 2 rows of tasks [3 (2 rows)]; "
    )
    assert info.value.tasks == [3]
    feats = _planted()
    feats.offsets[torch.nonzero(feats.task == 6).flatten()[5]] = NAN
    with pytest.raises(NumericalError, match=re.escape("offsets (base logits) hold NaN or inf")):
        _est().fit(feats)


# ---------------------------------------------------------------------------- features, real


@pytest.fixture(scope="module")
def graph():
    g = torch.Generator().manual_seed(0)
    n = 60
    ei = torch.randint(0, n, (2, 240), generator=g)
    y = (torch.rand(n, 3, generator=g) < 0.5).float()
    return build_multilabel_graph(ei, y, name="toy", feature_dim=8)


CONFIG = TrainConfig(hidden_channels=8, num_hops=2, epochs=3, device="cpu")


def _model(graph, task=None, value=NAN):
    inputs = prepare_inputs(graph, CONFIG.model_config, "cpu")
    torch.manual_seed(0)
    model = build_model(CONFIG.model_config, inputs.in_channels, 3).eval()
    if task is not None:
        with torch.no_grad():
            model.head.weight[task] = value
    return model, inputs


def test_gradient_features_of_a_diverged_task_are_refused(graph):
    model, inputs = _model(graph, task=1)
    proj = GradientProjector(dim=4, seed=0)
    rows = int(graph.train_mask[:, 1].sum() + graph.val_mask[:, 1].sum())
    with pytest.raises(NumericalError) as info:
        extract_gradient_features(model, inputs, graph, proj)
    assert str(info.value).startswith(
        f"stage 'gradient features': NaN/inf projected gradients or base logits for {rows} "
        f"(node, task) rows of tasks [1 ({rows} nodes)] in node chunk 1 of 1; "
    )
    assert info.value.tasks == [1] and info.value.stage == "gradient features"


def test_exploding_gradient_features_are_refused(graph):
    model, inputs = _model(graph, task=2, value=1e12)
    proj = GradientProjector(dim=4, seed=0)
    with pytest.raises(NumericalError) as info:
        extract_gradient_features(model, inputs, graph, proj, node_batch_size=25)
    msg = str(info.value)
    assert re.match(
        r"stage 'gradient features': exploding projected gradients \(norm above max_norm=1e\+08, "
        r"largest \d(\.\d+)?e\+1\d\) for \d+ \(node, task\) rows",
        msg,
    )
    chunks = math.ceil(int((graph.train_mask | graph.val_mask).any(1).sum()) / 25)
    assert re.search(rf"rows of tasks \[2 \(\d+ nodes\)\] in node chunk 1 of {chunks}; ", msg)
    feats = extract_gradient_features(model, inputs, graph, proj, max_norm=None)
    assert torch.isfinite(feats.features).all() and feats.features.norm(dim=1).max() > 1e8


def test_a_diverging_real_finetune_names_its_subset(graph):
    inputs = prepare_inputs(graph, CONFIG.model_config, "cpu")
    base = fit_model(graph, inputs, None, CONFIG, select="loss").model
    with torch.no_grad():
        base.head.bias[2] = float("inf")
    ctx = RealContext(base, graph, inputs, CONFIG)
    with pytest.raises(JobsFailedError) as info:
        real_subset_losses(ctx, [(0, 1), (1, 2)], max_retries=0)
    msg = str(info.value)
    assert "NumericalError: fine-tuning task subset (1, 2) from the base model diverged: " in msg
    assert "training diverged at epoch 1: the loss is non-finite for tasks [2 ('task_2')]" in msg
    assert [f.key["subset"] for f in info.value.failures] == [[1, 2]]
    cause = info.value.__cause__
    assert isinstance(cause, NumericalError) and cause.subsets == [(1, 2)]
    assert info.value.results[0] is not None  # the healthy subset finished
