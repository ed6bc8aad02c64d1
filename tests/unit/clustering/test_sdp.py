"""The cvxpy statement of the clustering SDP, solve_sdp's status handling and SDPClustering."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys

import numpy as np
import pytest

from graphtag.clustering import (
    SDPClustering,
    build_sdp,
    partition_objective,
    solve_sdp,
)
from graphtag.errors import GraphtagError

cp = pytest.importorskip("cvxpy")


def _best_partition(A: np.ndarray, k: int) -> tuple[float, list[int]]:
    """Brute force over all labelings with exactly k groups."""
    best = (-np.inf, [])
    for labels in itertools.product(range(k), repeat=A.shape[0]):
        if len(set(labels)) == k:
            best = max(best, (partition_objective(A, np.array(labels)), list(labels)))
    return best


def test_problem_is_dcp_with_four_vectorised_constraints():
    A = np.random.default_rng(0).standard_normal((7, 7))
    problem, X = build_sdp(A, 3)
    assert problem.is_dcp()
    assert X.shape == (7, 7) and X.is_symmetric()
    assert len(problem.constraints) == 4
    psd, nonneg, rows, trace = problem.constraints
    assert isinstance(psd, cp.constraints.PSD) and psd.shape == (7, 7)
    assert isinstance(nonneg, cp.constraints.Inequality) and nonneg.shape == (7, 7)
    assert isinstance(rows, cp.constraints.Equality) and rows.shape == (7,)
    assert isinstance(trace, cp.constraints.Equality) and trace.shape == ()
    # No dense index matrices anywhere in the constraints: only scalar constants (0, 1, k).
    for c in problem.constraints:
        assert all(const.size == 1 for const in c.constants())
    assert float(trace.constants()[0].value) == 3.0
    # The objective holds the symmetric part of A.
    (const,) = problem.objective.constants()
    np.testing.assert_allclose(const.value, 0.5 * (A + A.T))


def test_build_sdp_does_not_solve():
    problem, X = build_sdp(np.eye(5), 2)
    assert problem.status is None and X.value is None


def test_four_task_block_diagonal_gives_the_two_obvious_groups():
    A = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=float)
    est = SDPClustering(num_groups=2, solver="SCS").fit(A[[0, 2, 1, 3]][:, [0, 2, 1, 3]])
    assert est.groups_ == [[0, 2], [1, 3]]
    assert est.status_ == "optimal"


@pytest.mark.parametrize("seed", range(3))
def test_planted_blocks_recovered_with_scs(seed, planted, canon, check_partition):
    A, labels = planted(20, 4, 0.3, seed)
    est = SDPClustering(num_groups=4, solver="SCS", seed=seed).fit(A)
    assert est.labels_.tolist() == canon(labels)
    check_partition(est.groups_, 20, 4)
    X = est.X_
    assert X.shape == (20, 20) and X.dtype == np.float64
    np.testing.assert_allclose(X, X.T, atol=0)
    assert X.min() >= 0.0
    assert np.trace(X) == pytest.approx(4.0, abs=1e-3)
    np.testing.assert_allclose(X.sum(1), 1.0, atol=1e-3)
    assert np.linalg.eigvalsh(X).min() >= -1e-4
    assert est.objective_ == pytest.approx(float((A * X).sum()), rel=1e-12)
    # The planted partition is optimal here, and the relaxation is tight.
    assert est.objective_ == pytest.approx(partition_objective(A, labels), rel=1e-3)


@pytest.mark.parametrize("k", [2, 3])
def test_sdp_bounds_the_best_partition(k):
    A = np.random.default_rng(k).standard_normal((7, 7))
    best, _ = _best_partition(0.5 * (A + A.T), k)
    _, status, objective = solve_sdp(A, k, solver="SCS", eps=1e-7)
    assert status == "optimal"
    assert objective >= best - 1e-4


def test_sdp_is_tight_on_exact_blocks_against_bruteforce(canon):
    A = np.kron(np.eye(3), np.ones((2, 2))) + 0.05 * np.random.default_rng(0).random((6, 6))
    best, labels = _best_partition(0.5 * (A + A.T), 3)
    est = SDPClustering(3, solver="SCS").fit(A)
    assert est.objective_ == pytest.approx(best, rel=1e-4)
    assert est.labels_.tolist() == canon(labels) == [0, 0, 1, 1, 2, 2]


def test_scaled_affinities_behave_the_same():
    A, _ = planted_affinity_local()
    X1, _, f1 = solve_sdp(A, 3, solver="SCS")
    X2, _, f2 = solve_sdp(1e-6 * A, 3, solver="SCS")
    X3, _, f3 = solve_sdp(1e6 * A, 3, solver="SCS")
    np.testing.assert_allclose(X2, X1, atol=1e-9)
    np.testing.assert_allclose(X3, X1, atol=1e-9)
    assert f2 == pytest.approx(1e-6 * f1, rel=1e-9)
    assert f3 == pytest.approx(1e6 * f1, rel=1e-9)


def planted_affinity_local():
    rng = np.random.default_rng(11)
    labels = np.arange(9) % 3
    A = (labels[:, None] == labels[None]).astype(float) + 0.2 * rng.standard_normal((9, 9))
    return A, labels


def test_nonsymmetric_input_is_symmetrised():
    A = np.random.default_rng(4).standard_normal((6, 6))
    X1, _, f1 = solve_sdp(A, 2, solver="SCS")
    X2, _, f2 = solve_sdp(0.5 * (A + A.T), 2, solver="SCS")
    np.testing.assert_allclose(X1, X2, atol=1e-9)
    assert f1 == pytest.approx(f2)


def test_trivial_cases_have_a_single_feasible_point():
    A = np.random.default_rng(5).standard_normal((5, 5))
    X, status, objective = solve_sdp(A, 1, solver="SCS")
    np.testing.assert_allclose(X, np.full((5, 5), 0.2))
    assert status == "optimal" and objective == pytest.approx(A.sum() / 5)
    X, _, objective = solve_sdp(A, 5, solver="SCS")
    np.testing.assert_allclose(X, np.eye(5))
    assert objective == pytest.approx(np.trace(A))
    est = SDPClustering(1).fit([[2.0]])
    assert est.groups_ == [[0]] and est.X_.tolist() == [[1.0]]


def test_other_status_raises_with_the_status(monkeypatch):
    monkeypatch.setattr(cp.Problem, "status", property(lambda self: "infeasible"))
    with pytest.raises(GraphtagError, match=r"SDP solver SCS returned status 'infeasible' \(T=6"):
        solve_sdp(np.eye(6), 2, solver="SCS")


def test_optimal_inaccurate_is_accepted_and_logged(monkeypatch, caplog):
    monkeypatch.setattr(cp.Problem, "status", property(lambda self: "optimal_inaccurate"))
    with caplog.at_level(logging.WARNING, logger="graphtag"):
        X, status, _ = solve_sdp(np.eye(6), 2, solver="SCS")
    assert status == "optimal_inaccurate"
    assert X.shape == (6, 6)
    (record,) = [r for r in caplog.records if r.name == "graphtag"]
    assert "'optimal_inaccurate'" in record.getMessage() and "SCS" in record.getMessage()


def test_solver_errors_become_graphtag_errors():
    with pytest.raises(GraphtagError, match=r"SDP solver OSQP failed on T=6, num_groups=2"):
        solve_sdp(np.eye(6), 2, solver="OSQP")  # a QP solver: cannot handle the PSD cone
    with pytest.raises(GraphtagError, match=r"SDP solver SCS failed .*check the solver options"):
        solve_sdp(np.eye(6), 2, solver="SCS", max_iters="many")


def test_other_cvxpy_solver_by_name():
    A, _labels = planted_affinity_local()
    est = SDPClustering(3, solver="clarabel").fit(A)
    assert est.status_ == "optimal"
    est_scs = SDPClustering(3, solver="SCS").fit(A)
    assert est.objective_ == pytest.approx(est_scs.objective_, rel=1e-4)
    assert est.groups_ == est_scs.groups_


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"solver": "gurobi-ish"}, r"unknown or unavailable SDP solver 'gurobi-ish'.*'admm'"),
        ({"solver": 3}, "solver must be a string"),
        ({"num_groups": 7}, "num_groups=7 exceeds the number of tasks T=6"),
        ({"num_groups": 0}, "num_groups must be at least 1"),
        ({"solver": "admm", "bogus": 1}, r"unknown option\(s\) \['bogus'\] for solver='admm'"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"num_groups": 2, "solver": "SCS"} | kwargs
    with pytest.raises(GraphtagError, match=message):
        solve_sdp(np.eye(6), args.pop("num_groups"), args.pop("solver"), **args)


@pytest.mark.parametrize(
    "A, message",
    [
        (np.ones((2, 3)), r"affinity must be a square \[T, T\] matrix"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), "non-finite entries"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), "non-finite entries"),
    ],
)
def test_bad_affinity(A, message):
    with pytest.raises(GraphtagError, match=message):
        build_sdp(A, 1)
    with pytest.raises(GraphtagError, match=message):
        SDPClustering(1).fit(A)


def test_missing_cvxpy_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(GraphtagError, match=r"needs cvxpy.*solver='admm'"):
        solve_sdp(np.eye(6) + 0.1, 2, solver="SCS")
    # "auto" falls back to the torch solver.
    A, _labels = planted_affinity_local()
    assert SDPClustering(3, solver="auto").fit(A).groups_ == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_importing_clustering_does_not_import_cvxpy():
    code = "import sys, graphtag.clustering; assert 'cvxpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_repr():
    assert repr(SDPClustering(3)) == "SDPClustering(num_groups=3)"
    assert SDPClustering(3).solver == "auto"  # graphtag.defaults.SDP_SOLVER, as in `graphtag run`
    est = SDPClustering(2, solver="admm", seed=4, solver_options={"tol": 1e-5})
    assert repr(est) == (
        "SDPClustering(num_groups=2, seed=4, solver='admm', solver_options={'tol': 1e-05})"
    )
    assert str(est) == repr(est)
