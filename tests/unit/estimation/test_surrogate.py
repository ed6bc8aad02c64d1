"""Surrogate statistics and batched Newton against brute force, scipy and scikit-learn."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from graphtag.errors import GraphtagError
from graphtag.estimation import (
    fit_surrogates,
    l2_scale,
    make_synthetic_features,
    one_step_surrogates,
    task_statistics,
)
from graphtag.gradients import TRAIN, VAL, GradientFeatures


def _rows(feats, subset, split=TRAIN):
    sel = (feats.split == split) & torch.isin(feats.task, torch.tensor(subset))
    g = feats.features[sel].double().numpy()
    o = feats.offsets[sel].double().numpy()
    y = feats.labels[sel].double().numpy()
    return g, o, y


def _objective(g, o, y, lam):
    n = len(y)

    def f(w):
        z = o + g @ w
        p = 1 / (1 + np.exp(-z))
        value = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * lam * w @ w
        return value, g.T @ (p - y) / n + lam * w

    return f


def _scipy_solution(feats, subset, lam):
    g, o, y = _rows(feats, subset)
    res = minimize(
        _objective(g, o, y, lam),
        np.zeros(g.shape[1]),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 20000, "maxcor": 30},
    )
    return res.x


def _features(seed=0, **kw):
    args = {"num_tasks": 5, "num_groups": 2, "train_rows": 30, "val_rows": 20, "dim": 6}
    args.update(kw)
    return make_synthetic_features(seed=seed, **args)


SUBSETS = [(0, 1), (2, 3, 4), (1,), (0, 1, 2, 3, 4), (0, 4)]


@pytest.mark.parametrize("lam", [1e-3, 1e-1])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_scipy_lbfgs(lam, seed):
    feats = _features(seed=seed, signal=3.0)
    fit = fit_surrogates(feats, SUBSETS, lam, l2_relative=False, tol=1e-11, max_iter=100)
    assert bool(fit.converged.all())
    assert fit.l2 == lam
    for k, subset in enumerate(SUBSETS):
        ref = _scipy_solution(feats, subset, lam)
        np.testing.assert_allclose(
            fit.weights[k].numpy(), ref, rtol=0, atol=1e-5 * np.abs(ref).max()
        )
        g, o, y = _rows(feats, subset)
        value, grad = _objective(g, o, y, lam)(fit.weights[k].numpy())
        assert abs(value - fit.objective[k].item()) < 1e-12
        assert np.linalg.norm(grad) == pytest.approx(fit.grad_norm[k].item(), abs=1e-12)


def test_exact_hessian_refresh_path_matches_scipy(monkeypatch):
    # A strong signal and a tiny ridge move w far from 0: the statistics Hessian is a poor chord
    # matrix there, so exact Hessians get computed. The answer must still be the optimum.
    import graphtag.estimation._surrogate as surrogate

    calls = []
    original = surrogate._exact_hessian_sums

    def counting(blocks, mem, weights):
        calls.append(mem.size(0))
        out = original(blocks, mem, weights)
        # Same as the brute-force Hessian of the gathered rows.
        for k in range(mem.size(0)):
            subset = tuple(t for t in mem[k].tolist() if t < blocks.num_tasks)
            g, o, _ = _rows(feats, subset)
            p = 1 / (1 + np.exp(-(o + g @ weights[k].numpy())))
            ref = (g * (p * (1 - p))[:, None]).T @ g
            np.testing.assert_allclose(out[k].numpy(), ref, rtol=1e-10, atol=1e-12)
        return out

    monkeypatch.setattr(surrogate, "_exact_hessian_sums", counting)
    feats = _features(seed=3, signal=8.0, train_rows=25)
    lam = 1e-4
    fit = fit_surrogates(feats, SUBSETS[:3], lam, l2_relative=False, tol=1e-10, max_iter=100)
    assert bool(fit.converged.all())
    assert sum(calls) > 0
    for k, subset in enumerate(SUBSETS[:3]):
        ref = _scipy_solution(feats, subset, lam)
        np.testing.assert_allclose(
            fit.weights[k].numpy(), ref, rtol=0, atol=1e-5 * np.abs(ref).max()
        )


def test_offset_free_problem_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    feats = _features(seed=2)
    feats.offsets = torch.zeros_like(feats.offsets)
    lam = 0.05
    subset = (1, 2, 3)
    fit = fit_surrogates(feats, [subset], lam, l2_relative=False, tol=1e-11)
    g, _, y = _rows(feats, subset)
    clf = LogisticRegression(C=1 / (lam * len(y)), fit_intercept=False, tol=1e-12, max_iter=10000)
    clf.fit(g, y)
    np.testing.assert_allclose(fit.weights[0].numpy(), clf.coef_[0], rtol=1e-5, atol=1e-7)


def test_statistics_equal_bruteforce():
    feats = _features(seed=4)
    stats = task_statistics(feats)
    for t in range(feats.num_tasks):
        g, o, y = _rows(feats, (t,))
        p = 1 / (1 + np.exp(-o))
        np.testing.assert_allclose(
            stats.H[t].numpy(), (g * (p * (1 - p))[:, None]).T @ g, rtol=1e-12
        )
        np.testing.assert_allclose(stats.b[t].numpy(), g.T @ (y - p), rtol=1e-12, atol=1e-12)
        assert stats.n[t].item() == len(y)
        assert stats.loss[t].item() == pytest.approx(np.sum(np.logaddexp(0, o) - y * o), rel=1e-12)
    assert stats.H.dtype == torch.float64


def test_one_step_equals_direct_newton_step():
    feats = _features(seed=5)
    lam = 0.02
    stats = task_statistics(feats)
    steps = one_step_surrogates(stats, SUBSETS, lam, l2_relative=False)
    for k, subset in enumerate(SUBSETS):
        g, o, y = _rows(feats, subset)
        p = 1 / (1 + np.exp(-o))
        n, d = g.shape
        hess = (g * (p * (1 - p))[:, None]).T @ g / n + lam * np.eye(d)
        grad = g.T @ (p - y) / n
        np.testing.assert_allclose(steps[k].numpy(), -np.linalg.solve(hess, grad), rtol=1e-10)
    # fit_surrogates takes the same first step (accepted in full on this mild problem).
    first = fit_surrogates(feats, SUBSETS, lam, l2_relative=False, max_iter=1)
    np.testing.assert_allclose(first.weights.numpy(), steps.numpy(), rtol=1e-10, atol=1e-14)
    assert first.iterations.tolist() == [1] * len(SUBSETS)


def test_non_convergence_is_reported():
    feats = _features(seed=6, signal=4.0)
    fit = fit_surrogates(feats, SUBSETS, 1e-4, l2_relative=False, max_iter=1, tol=1e-12)
    assert fit.num_failed == len(SUBSETS)
    assert not bool(fit.converged.any())
    assert bool((fit.grad_norm > 0).all())


def test_relative_l2_is_scale_invariant():
    feats = _features(seed=7)
    scaled = GradientFeatures(
        feats.features * 4.0,
        *(getattr(feats, n) for n in ("offsets", "labels", "task", "node")),
        feats.split,
        feats.num_tasks,
        {},
    )
    a = fit_surrogates(feats, SUBSETS, 0.01, tol=1e-10)
    b = fit_surrogates(scaled, SUBSETS, 0.01, tol=1e-10)
    np.testing.assert_allclose(b.weights.numpy() * 4.0, a.weights.numpy(), rtol=1e-6, atol=1e-9)
    assert b.l2 == pytest.approx(16.0 * a.l2, rel=1e-12)
    assert a.l2 == pytest.approx(0.01 * l2_scale(task_statistics(feats)), rel=1e-12)


def test_batch_size_does_not_change_results():
    feats = _features(seed=8)
    a = fit_surrogates(feats, SUBSETS, batch_size=1, tol=1e-10)
    b = fit_surrogates(feats, SUBSETS, batch_size=100, tol=1e-10)
    np.testing.assert_allclose(a.weights.numpy(), b.weights.numpy(), rtol=1e-9, atol=1e-12)


def test_task_without_training_rows_gets_zero_weights():
    feats = _features(seed=9)
    keep = ~((feats.task == 2) & (feats.split == TRAIN))
    reduced = GradientFeatures(
        *(getattr(feats, n)[keep] for n in ("features", "offsets", "labels", "task", "node")),
        feats.split[keep],
        feats.num_tasks,
        {},
    )
    fit = fit_surrogates(reduced, [(2,), (1, 2)])
    assert fit.weights[0].abs().max().item() == 0.0
    assert bool(fit.converged[0])
    ref = fit_surrogates(reduced, [(1,)])
    np.testing.assert_allclose(fit.weights[1].numpy(), ref.weights[0].numpy(), rtol=1e-12)
    assert task_statistics(reduced).n[2].item() == 0


def test_val_rows_do_not_affect_the_fit():
    feats = _features(seed=10)
    val = feats.split == VAL
    feats2 = GradientFeatures(
        torch.where(val[:, None], torch.randn_like(feats.features), feats.features),
        *(getattr(feats, n) for n in ("offsets", "labels", "task", "node")),
        feats.split,
        feats.num_tasks,
        {},
    )
    a = fit_surrogates(feats, SUBSETS).weights
    b = fit_surrogates(feats2, SUBSETS).weights
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"l2": 0.0}, "l2 must be a positive number, got 0.0"),
        ({"l2": -1.0, "l2_relative": False}, "l2 must be a positive number, got -1.0"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
        ({"tol": 0.0}, "tol must be positive, got 0.0"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(GraphtagError, match=re.escape(message)):
        fit_surrogates(_features(), [(0, 1)], **kwargs)


def test_input_errors():
    with pytest.raises(
        GraphtagError, match=re.escape("expected graphtag.gradients.GradientFeatures")
    ):
        fit_surrogates(torch.zeros(3, 2), [(0,)])
    with pytest.raises(GraphtagError, match=re.escape("subset 0 holds task 9, outside 0..4")):
        fit_surrogates(_features(), [(9,)])
    feats = _features()
    feats.labels = feats.labels * 2
    with pytest.raises(GraphtagError, match="labels must be 0 or 1"):
        task_statistics(feats)


def test_one_step_with_many_tasks_and_small_subsets():
    # T = 60 > 24 s: the subset Hessians are summed by gathering instead of a matrix product.
    feats = make_synthetic_features(num_tasks=60, num_groups=3, train_rows=8, val_rows=4, dim=4)
    lam = 0.1
    subsets = [(0, 59), (3,), (10, 20)]
    steps = one_step_surrogates(task_statistics(feats), subsets, lam, l2_relative=False)
    for k, subset in enumerate(subsets):
        g, o, y = _rows(feats, subset)
        p = 1 / (1 + np.exp(-o))
        hess = (g * (p * (1 - p))[:, None]).T @ g / len(y) + lam * np.eye(4)
        grad = g.T @ (p - y) / len(y)
        np.testing.assert_allclose(steps[k].numpy(), -np.linalg.solve(hess, grad), rtol=1e-10)
