"""The scalable ADMM solver (solver="admm") against cvxpy's SCS, and solver="auto"."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import graphtag.clustering._sdp as sdp_module
from graphtag.clustering import SDPClustering, solve_sdp
from graphtag.clustering._lowrank import solve_sdp_admm
from graphtag.errors import GraphtagError

try:
    import cvxpy  # noqa: F401
except ImportError:  # the GPU image has no cvxpy: the comparisons skip, the rest runs
    HAS_CVXPY = False
else:
    HAS_CVXPY = True

needs_cvxpy = pytest.mark.skipif(not HAS_CVXPY, reason="needs cvxpy (reference solver)")


def _instance(kind: str, num_tasks: int, k: int, seed: int, planted) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "planted":
        return planted(num_tasks, k, 0.5, seed)[0]
    if kind == "uniform":
        return rng.random((num_tasks, num_tasks))
    return rng.standard_normal((num_tasks, num_tasks))


def _assert_feasible(X: np.ndarray, k: int, tol: float = 1e-8) -> None:
    np.testing.assert_allclose(X, X.T, atol=0)
    assert X.min() >= 0.0
    np.testing.assert_allclose(X.sum(1), 1.0, atol=tol)
    assert np.trace(X) == pytest.approx(k, abs=tol * X.shape[0])
    assert np.linalg.eigvalsh(X).min() >= -tol


@needs_cvxpy
@pytest.mark.parametrize(
    "kind, num_tasks, k, seed",
    [
        ("planted", 20, 3, 0),
        ("planted", 40, 4, 1),
        ("gaussian", 20, 3, 2),
        ("gaussian", 40, 5, 3),
        ("uniform", 40, 2, 4),
    ],
)
def test_admm_matches_scs(kind, num_tasks, k, seed, planted):
    A = _instance(kind, num_tasks, k, seed, planted)
    X_ref, _, f_ref = solve_sdp(A, k, solver="SCS", eps=1e-7)
    X, status, f = solve_sdp(A, k, solver="admm", device="cpu")
    assert status == "optimal"
    assert abs(f - f_ref) <= 1e-3 * abs(f_ref)
    _assert_feasible(X, k)
    if kind == "planted":
        ref = SDPClustering(k, solver="SCS").fit(A)
        ours = SDPClustering(k, solver="admm").fit(A)
        assert ours.groups_ == ref.groups_
        assert np.abs(X - X_ref).max() < 1e-2


@needs_cvxpy
@pytest.mark.parametrize("partial", [True, False])
def test_certificate_brackets_the_scs_optimum(partial, planted):
    A = planted(30, 3, 0.4, 7)[0]
    A = A / np.abs(A).max()
    _, _, f_ref = solve_sdp(A, 3, solver="SCS", eps=1e-8)
    res = solve_sdp_admm(torch.as_tensor(A), 3, tol=1e-6, partial=partial)
    assert res.status == "optimal"
    assert res.lower <= f_ref + 1e-6 <= res.upper + 2e-6
    assert res.gap <= 1e-6
    assert res.lower == pytest.approx(float((A * res.X).sum()), rel=1e-12)
    _assert_feasible(res.X, 3)


def test_partial_and_full_eigendecompositions_agree(planted):
    A = torch.as_tensor(planted(60, 3, 0.3, 3)[0])
    A = A / A.abs().max()
    full = solve_sdp_admm(A, 3, partial=False)
    part = solve_sdp_admm(A, 3, partial=True)
    assert full.status == part.status == "optimal"
    assert part.lower == pytest.approx(full.lower, rel=2e-4)


def test_max_iter_reached_raises_and_inaccurate_is_logged(planted, caplog):
    A = planted(20, 3, 0.5, 0)[0]
    with pytest.raises(
        GraphtagError,
        match=r"SDP solver admm returned status 'max_iter_reached'.*"
        r"certified relative gap .* after 3 iterations; raise max_iter",
    ):
        solve_sdp(A, 3, solver="admm", max_iter=3, inaccurate_tol=1e-9)
    with caplog.at_level(logging.WARNING, logger="graphtag"):
        X, status, _ = solve_sdp(A, 3, solver="lowrank", max_iter=3, inaccurate_tol=10.0)
    assert status == "optimal_inaccurate"
    assert any("optimal_inaccurate" in r.getMessage() for r in caplog.records)
    _assert_feasible(X, 3)  # the returned point is feasible even when not converged


def test_admm_scaled_affinities_behave_the_same(planted):
    A = planted(16, 2, 0.3, 5)[0]
    X1, _, f1 = solve_sdp(A, 2, solver="admm")
    X2, _, f2 = solve_sdp(1e-6 * A, 2, solver="admm")
    X3, _, f3 = solve_sdp(1e6 * A, 2, solver="admm")
    np.testing.assert_allclose(X2, X1, atol=1e-9)
    np.testing.assert_allclose(X3, X1, atol=1e-9)
    assert f2 == pytest.approx(1e-6 * f1, rel=1e-9) and f3 == pytest.approx(1e6 * f1, rel=1e-9)


@needs_cvxpy
def test_auto_uses_scs_up_to_the_threshold_then_admm(monkeypatch, planted):
    calls = []
    real_cvxpy, real_admm = sdp_module._solve_cvxpy, sdp_module._solve_admm
    monkeypatch.setattr(
        sdp_module, "_solve_cvxpy", lambda *a: calls.append("cvxpy") or real_cvxpy(*a)
    )
    monkeypatch.setattr(sdp_module, "_solve_admm", lambda *a: calls.append("admm") or real_admm(*a))
    monkeypatch.setattr(sdp_module, "SDP_AUTO_MAX_TASKS", 12)
    solve_sdp(planted(12, 3, 0.2, 0)[0], 3, solver="auto")
    solve_sdp(planted(13, 3, 0.2, 0)[0], 3, solver="auto")
    assert calls == ["cvxpy", "admm"]


@pytest.mark.gpu
def test_admm_on_gpu_matches_cpu(planted):
    A = planted(80, 4, 0.4, 2)[0]
    _X_cpu, _, f_cpu = solve_sdp(A, 4, solver="admm", device="cpu")
    X_gpu, status, f_gpu = solve_sdp(A, 4, solver="admm", device="cuda")
    assert status == "optimal"
    assert f_gpu == pytest.approx(f_cpu, rel=2e-4)
    _assert_feasible(X_gpu, 4)


def test_invalid_admm_options():
    with pytest.raises(GraphtagError, match=r"need max_iter >= 1, 1 <= relax < 2"):
        solve_sdp(np.random.default_rng(0).random((6, 6)), 2, "admm", max_iter=0, relax=2.5)


def test_admm_is_deterministic_and_restores_threads(planted):
    A = planted(30, 3, 0.5, 9)[0]
    before = torch.get_num_threads()
    X1, _, f1 = solve_sdp(A, 3, solver="admm", device="cpu")
    X2, _, f2 = solve_sdp(A, 3, solver="admm", device="cpu")
    assert np.array_equal(X1, X2) and f1 == f2
    assert torch.get_num_threads() == before
