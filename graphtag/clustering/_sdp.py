"""The task-clustering SDP (docs/algorithms.md §7): cvxpy statement, solvers and the estimator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from .._utils import resolve_device
from ..base import Estimator
from ..defaults import SDP_SOLVER
from ..errors import GraphtagError
from ._rounding import check_affinity, check_num_groups, labels_to_groups, round_to_groups

if TYPE_CHECKING:
    import cvxpy

__all__ = ["SDP_AUTO_MAX_TASKS", "SDPClustering", "build_sdp", "solve_sdp"]

logger = logging.getLogger("graphtag")

#: ``solver="auto"`` uses cvxpy's SCS up to this many tasks and the ADMM solver above it (or
#: whenever cvxpy is not installed). SCS is the general-purpose reference; its time grows about
#: as ``T^2`` beyond this size, where the ADMM solver, whose optimality gap is certified, is
#: faster (``experiments/bench_sdp.py``).
SDP_AUTO_MAX_TASKS = 150

_ADMM_NAMES = ("admm", "lowrank")


def build_sdp(affinity: Any, num_groups: int) -> tuple[cvxpy.Problem, cvxpy.Variable]:
    """State the clustering SDP in cvxpy, without solving it.

    ``maximise <A, X>  s.t.  X PSD,  X >= 0,  X 1 = 1,  trace(X) = k`` for the symmetric part
    ``A = (affinity + affinity^T) / 2``. Every constraint is one vectorised cvxpy expression (four
    constraints in total), never ``T`` dense ``T x T`` index matrices.

    Args:
        affinity: Task affinity, ``[T, T]`` (larger = better learned together).
        num_groups: ``k`` with ``1 <= k <= T``.

    Returns:
        ``(problem, X)``: the DCP problem and its symmetric ``[T, T]`` variable.

    Raises:
        GraphtagError: On a non-square or non-finite affinity, or ``k`` outside ``[1, T]``.

    Example:
        >>> problem, X = build_sdp(np.eye(4), 2)
        >>> problem.is_dcp(), len(problem.constraints), X.shape
        (True, 4, (4, 4))
    """
    A = check_affinity(affinity)
    k = check_num_groups(num_groups, A.shape[0])
    import cvxpy as cp

    num_tasks = A.shape[0]
    X = cp.Variable((num_tasks, num_tasks), symmetric=True, name="X")
    constraints = [
        X >> 0,
        X >= 0,
        cp.sum(X, axis=1) == 1,
        cp.trace(X) == k,
    ]
    return cp.Problem(cp.Maximize(cp.sum(cp.multiply(A, X))), constraints), X


def _trivial_solution(num_tasks: int, k: int) -> np.ndarray | None:
    """The only feasible point when ``k = 1`` (``J / T``) or ``k = T`` (``I``), else ``None``."""
    if k == 1:
        return np.full((num_tasks, num_tasks), 1.0 / num_tasks)
    if k == num_tasks:
        return np.eye(num_tasks)
    return None


def _check_status(status: str, solver: str, num_tasks: int, k: int, hint: str) -> None:
    if status == "optimal":
        return
    if status == "optimal_inaccurate":
        logger.warning(
            "SDP solver %s returned 'optimal_inaccurate' (T=%d, num_groups=%d); the relaxation "
            "is less precise than requested",
            solver,
            num_tasks,
            k,
        )
        return
    raise GraphtagError(
        f"SDP solver {solver} returned status {status!r} (T={num_tasks}, num_groups={k}); {hint}"
    )


def _solve_cvxpy(
    A: np.ndarray, k: int, solver: str, verbose: bool, options: dict[str, Any]
) -> tuple[np.ndarray, str]:
    try:
        import cvxpy as cp
    except ImportError as exc:
        raise GraphtagError(
            f"solver {solver!r} needs cvxpy, which is not installed; `pip install cvxpy` or use "
            "solver='admm' (or 'auto')"
        ) from exc
    name = solver.upper()
    installed = cp.installed_solvers()
    if name not in installed:
        raise GraphtagError(
            f"unknown or unavailable SDP solver {solver!r}; use 'auto', 'admm' or one of the "
            f"installed cvxpy solvers {sorted(installed)}"
        )
    problem, X = build_sdp(A, k)
    try:
        problem.solve(solver=name, verbose=verbose, **options)
    except (cp.error.SolverError, TypeError) as exc:
        raise GraphtagError(
            f"SDP solver {name} failed on T={A.shape[0]}, num_groups={k} ({exc}); check the "
            "solver options, or try solver='admm' or another cvxpy solver"
        ) from exc
    status = str(problem.status)
    _check_status(
        status,
        name,
        A.shape[0],
        k,
        "try solver='admm', or another cvxpy solver, or check the affinity for extreme values",
    )
    if X.value is None:
        raise GraphtagError(f"SDP solver {name} returned no solution (status {status!r})")
    return np.asarray(X.value, dtype=np.float64), status


def _solve_admm(
    A: np.ndarray, k: int, device: str, options: dict[str, Any]
) -> tuple[np.ndarray, str]:
    import torch

    from ._lowrank import solve_sdp_admm

    unknown = set(options) - {
        "tol",
        "inaccurate_tol",
        "max_iter",
        "rho",
        "relax",
        "check_every",
        "partial",
        "num_threads",
    }
    if unknown:
        raise GraphtagError(
            f"unknown option(s) {sorted(unknown)} for solver='admm'; valid: tol, inaccurate_tol, "
            "max_iter, rho, relax, check_every, partial, num_threads"
        )
    dev = resolve_device(device)
    result = solve_sdp_admm(torch.as_tensor(A, dtype=torch.float64, device=dev), k, **options)
    _check_status(
        result.status,
        "admm",
        A.shape[0],
        k,
        f"certified relative gap {result.gap:.2e} after {result.iterations} iterations; raise "
        "max_iter or loosen inaccurate_tol",
    )
    return np.asarray(result.X), result.status


def solve_sdp(
    affinity: Any,
    num_groups: int,
    solver: str = "SCS",
    *,
    device: str = "auto",
    verbose: bool = False,
    **options: Any,
) -> tuple[np.ndarray, str, float]:
    """Solve the clustering SDP with a named solver.

    The affinity is symmetrised and divided by ``max|A|`` before solving, so affinities scaled by
    ``1e-6`` or ``1e6`` give the same ``X``; the objective is reported in the original units.
    For ``k = 1`` and ``k = T`` the feasible set is one point (``J / T`` and ``I``), returned
    without calling a solver.

    Args:
        affinity: Task affinity, ``[T, T]``.
        num_groups: ``k`` with ``1 <= k <= T``.
        solver: A cvxpy solver name (``"SCS"``, the default and reference; ``"CLARABEL"``, ...),
            ``"admm"`` (alias ``"lowrank"``: the scalable torch solver of ``_lowrank.py``, with a
            certified optimality gap), or ``"auto"`` (SCS for ``T <= SDP_AUTO_MAX_TASKS`` when
            cvxpy is installed, else ADMM).
        device: Device of the ADMM solver (``"auto"``: CUDA when available); ignored by cvxpy.
        verbose: Passed to cvxpy's ``solve``.
        **options: Solver options: keyword arguments of cvxpy's ``solve`` (e.g. ``eps=1e-6``,
            ``max_iters``) or of the ADMM solver (``tol``, ``max_iter``, ...).

    Returns:
        ``(X, status, objective)``: ``X`` float64 ``[T, T]``, symmetric, negative round-off
        clipped to 0 (row sums 1 and trace ``k`` to solver tolerance); ``status`` is
        ``"optimal"`` or ``"optimal_inaccurate"`` (the latter logged as a warning on the
        ``"graphtag"`` logger); ``objective`` is ``<A, X>`` in the units of ``affinity``.

    Raises:
        GraphtagError: On bad input, an unknown solver, or any other solver status.

    Example:
        >>> A = np.kron(np.eye(2), np.ones((2, 2)))
        >>> X, status, objective = solve_sdp(A, 2, solver="SCS")
        >>> status, round(objective, 3)
        ('optimal', 4.0)
    """
    A = check_affinity(affinity)
    num_tasks = A.shape[0]
    k = check_num_groups(num_groups, num_tasks)
    if not isinstance(solver, str):
        raise GraphtagError(f"solver must be a string such as 'SCS' or 'admm', got {solver!r}")
    X = _trivial_solution(num_tasks, k)
    status = "optimal"
    if X is None:
        scale = float(np.abs(A).max())
        A_scaled = A / scale if scale > 0 else A
        name = solver.lower()
        if name == "auto":
            name = "admm" if num_tasks > SDP_AUTO_MAX_TASKS or not _has_cvxpy() else "scs"
        if name in _ADMM_NAMES:
            X, status = _solve_admm(A_scaled, k, device, options)
        else:
            cvx_name = "SCS" if name == "scs" else solver
            X, status = _solve_cvxpy(A_scaled, k, cvx_name, verbose, options)
        X = np.clip(0.5 * (X + X.T), 0.0, None)
    return X, status, float((A * X).sum())


def _has_cvxpy() -> bool:
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return False
    return True


class SDPClustering(Estimator):
    r"""Group tasks by the clustering SDP and rounding (scikit-learn estimator contract).

    Solves the relaxation of maximising the summed average within-group affinity of ``k``
    groups (docs/algorithms.md §7), for the symmetric part ``A`` of the affinity,

    .. math:: \max_X \langle A, X \rangle \quad \text{s.t.} \quad X \succeq 0,\;
        X \ge 0,\; X \mathbf{1} = \mathbf{1},\; \operatorname{tr} X = k,

    and rounds ``X`` to exactly ``k`` non-empty groups (:func:`round_to_groups`).

    Args:
        num_groups: Number of groups ``k`` (``1 <= k <= T``).
        solver: Solver name for :func:`solve_sdp` (``"auto"``, the default of ``graphtag run``:
            SCS for small ``T``, ADMM above; ``"SCS"``, ``"admm"``, ...).
        seed: Seed of the rounding's k-means restarts.
        solver_options: Extra keyword arguments of :func:`solve_sdp` (solver options, and
            ``device`` for the ADMM solver).

    Attributes:
        X_: Relaxed solution, float64 ``[T, T]``.
        labels_: Group id per task, int64 ``[T]``, canonical (ids ordered by smallest task).
        groups_: ``list[list[int]]``, sorted tasks per group, ordered by smallest task.
        status_: Solver status, ``"optimal"`` or ``"optimal_inaccurate"``.
        objective_: SDP objective ``<A, X_>`` (an upper bound on any partition's
            :func:`partition_objective`), units of the affinity.

    Shapes:
        affinity ``[T, T]`` -> ``labels_`` ``[T]``, ``X_`` ``[T, T]``.

    Example:
        >>> A = np.kron(np.eye(2), np.ones((2, 2)))
        >>> SDPClustering(num_groups=2).fit(A).groups_
        [[0, 1], [2, 3]]
    """

    def __init__(
        self,
        num_groups: int,
        solver: str = SDP_SOLVER,
        seed: int = 0,
        solver_options: dict[str, Any] | None = None,
    ) -> None:
        self.num_groups = num_groups
        self.solver = solver
        self.seed = seed
        self.solver_options = solver_options

    def fit(self, affinity: Any) -> SDPClustering:
        """Solve the SDP on ``affinity`` (``[T, T]``), round it, and return ``self``.

        Raises:
            GraphtagError: On a bad affinity (not square, NaN/inf), ``num_groups`` outside
                ``[1, T]``, a bad solver or options, or a solver failure (with its status).
        """
        options = self.solver_options or {}
        if not isinstance(options, dict):
            raise GraphtagError(
                f"SDPClustering: solver_options must be a dict of solver options or None, got "
                f"{type(options).__name__}"
            )
        X, status, objective = solve_sdp(affinity, self.num_groups, self.solver, **options)
        self.X_ = X
        self.status_ = status
        self.objective_ = objective
        self.labels_ = round_to_groups(X, self.num_groups, seed=self.seed)
        self.groups_ = labels_to_groups(self.labels_)
        return self
