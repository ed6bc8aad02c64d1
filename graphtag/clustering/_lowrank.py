"""Scalable first-order solver for the clustering SDP (ADMM with eigendecomposition projections).

The problem (docs/algorithms.md §7), for a symmetric affinity ``A`` (``[T, T]``) and ``k`` groups::

    maximise <A, X>  s.t.  X PSD,  X >= 0 entrywise,  X 1 = 1,  trace(X) = k.

Reformulation. If ``X`` is PSD and ``X 1 = 1`` then ``1 / sqrt(T)`` is an eigenvector of ``X`` with
eigenvalue 1, so ``X = J / T + Q W Q^T`` where ``J`` is the all-ones matrix, ``Q`` (``[T, T - 1]``)
is an orthonormal basis of the complement of ``1`` and ``W`` is PSD with ``trace(W) = k - 1``.
Conversely every such ``W`` gives a PSD ``X`` with unit row sums and trace ``k``. Call that set
``C1``: the Frobenius projection onto it is one symmetric eigendecomposition of ``Q^T G Q`` followed
by a projection of the eigenvalues onto the simplex ``{lambda >= 0, sum(lambda) = k - 1}``. ``Q`` is
never formed: a Householder reflection ``H`` (``H e_1 = 1 / sqrt(T)``) gives ``Q = H[:, 1:]`` and
``H G H`` costs ``O(T^2)``.

Splitting. Two-block ADMM on ``X in C1`` and ``Z >= 0`` with ``X = Z`` (scaled dual ``U``)::

    X <- proj_C1(Z - U + A / rho)      (one eigh of a [T-1, T-1] matrix)
    Z <- max(X + U, 0)
    U <- U + X - Z

with over-relaxation. Two-block ADMM on closed convex sets converges (Boyd et al., 2011, §3.2).
The cost per iteration is one ``eigh`` (``O(T^3)``), or ``O(T^2 p)`` when the projection has low
rank ``p`` and its top eigenpairs are tracked by Rayleigh-Ritz steps; all of it is torch, so it
runs on a GPU as well.

Certificate. ``Lambda = -rho U >= 0`` after every ``Z`` step (exactly, by construction), and for any
``Lambda >= 0`` the bound ``<A, X> <= <A + Lambda, X> <= max_{Y in C1} <A + Lambda, Y>`` holds for
every feasible ``X``. The right-hand side is ``(H C H)[0, 0] + (k - 1) lambda_max((H C H)[1:, 1:])``
with ``C = A + Lambda``: an upper bound on the optimum. A feasible point is obtained by mixing the
current ``X`` (in ``C1``) with the strictly positive feasible point ``X0 = a I + b J``
(``a = (k - 1) / (T - 1)``, ``b = (T - k) / (T (T - 1))``) just enough to remove negative entries:
a lower bound. The solver stops when the certified relative gap
``(upper - lower) / max(|lower|, 1)`` is below ``tol`` and returns the *exactly feasible* mixed
point, so its output satisfies every constraint up to floating-point rounding, whatever the gap.

Penalty. ``rho`` starts at ``T / k`` and is doubled or halved every ``check_every`` iterations when
one half of the gap (the loss from repairing ``X``'s negative entries, or the dual gap) is more
than 5 times the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import GraphtagError

__all__ = ["ADMMResult", "solve_sdp_admm"]


@dataclass(frozen=True)
class ADMMResult:
    """Outcome of :func:`solve_sdp_admm`.

    Attributes:
        X: Feasible solution, ``[T, T]`` float64 numpy array.
        status: ``"optimal"`` (certified relative gap <= ``tol``), ``"optimal_inaccurate"``
            (gap <= ``inaccurate_tol`` when ``max_iter`` ran out) or ``"max_iter_reached"``.
        lower: Objective ``<A, X>`` of the returned ``X`` (units of the ``A`` given).
        upper: Certified upper bound on the optimum (units of the ``A`` given).
        gap: ``(upper - lower) / max(|lower|, 1)`` (scale-free when ``max|A| = 1``).
        iterations: ADMM iterations run.
    """

    X: np.ndarray
    status: str
    lower: float
    upper: float
    gap: float
    iterations: int


def _householder(num_tasks: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, float]:
    """Vector ``v`` and scalar ``beta`` with ``H = I - beta v v^T`` and ``H e_1 = 1 / sqrt(T)``."""
    v = torch.full((num_tasks,), -1.0 / math.sqrt(num_tasks), dtype=dtype, device=device)
    v[0] += 1.0
    return v, 2.0 / float(v @ v)


def _reflect(G: Tensor, v: Tensor, beta: float) -> Tensor:
    """``H G H`` for symmetric ``G`` (``[T, T]``) in ``O(T^2)``."""
    Gv = G @ v
    w = beta * Gv - (0.5 * beta * beta * float(v @ Gv)) * v
    return G - torch.outer(v, w) - torch.outer(w, v)


def _simplex_shift(values: Tensor, total: float) -> Tensor:
    """Threshold ``tau`` with ``sum(max(values - tau, 0)) == total`` (``total > 0``)."""
    mu = torch.sort(values, descending=True).values
    cums = torch.cumsum(mu, 0) - total
    idx = torch.arange(1, mu.numel() + 1, dtype=mu.dtype, device=mu.device)
    cond = mu - cums / idx > 0
    last = int(torch.nonzero(cond).max())  # cond[0] holds: mu_0 - (mu_0 - total) = total > 0
    return cums[last] / (last + 1)


class _Projector:
    """Projection onto ``C1``, by a full ``eigh`` or by tracking the top eigenpairs.

    With ``partial=True`` it keeps ``p`` approximate top eigenvectors of the reflected matrix
    between calls and refines them with one Rayleigh-Ritz step on ``[V, M V]`` (cost ``O(T^2 p)``
    instead of the ``O(T^3)`` of ``eigh``). It falls back to a full ``eigh`` (and resizes ``p``)
    whenever fewer than ``margin`` tracked eigenvalues fall below the simplex threshold or a kept
    Ritz pair has a relative residual above ``1e-6``. Partial tracking only pays off when the
    projection has low rank (``3 p < T``), which is the case for clusterable affinities.
    """

    def __init__(self, like: Tensor, k: int, partial: bool) -> None:
        self.v, self.beta = _householder(like.shape[0], like.dtype, like.device)
        self.k = k
        self.partial = partial
        self.V: Tensor | None = None
        self.p = 0
        self.margin = 6
        self.num_full = 0
        self.num_partial = 0

    def _ritz(self, M: Tensor, V: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Top ``p`` Ritz values (descending), vectors and residual norms on ``span[V, M V]``."""
        basis, _ = torch.linalg.qr(torch.cat([V, M @ V], 1))
        MQ = M @ basis
        small = basis.T @ MQ
        evals, evecs = torch.linalg.eigh(0.5 * (small + small.T))
        evals, evecs = evals.flip(0)[: self.p], evecs.flip(1)[:, : self.p]
        vecs = basis @ evecs
        res = torch.linalg.vector_norm(MQ @ evecs - vecs * evals, dim=0)
        return evals, vecs, res

    def __call__(self, G: Tensor) -> Tensor:
        """``proj_C1(G)`` for symmetric ``G`` (``[T, T]``)."""
        M = _reflect(G, self.v, self.beta)[1:, 1:]
        M = 0.5 * (M + M.T)
        total = float(self.k - 1)
        evals: Tensor | None = None
        evecs: Tensor | None = None
        if self.V is not None:
            theta, vecs, res = self._ritz(M, self.V)
            kept = theta > _simplex_shift(theta, total)
            scale = float(theta.abs().max()) + 1e-300
            if int(kept.sum()) <= self.p - self.margin and float(res[kept].max()) <= 1e-6 * scale:
                self.num_partial += 1
                evals, evecs, self.V = theta, vecs, vecs
        if evals is None or evecs is None:
            self.num_full += 1
            evals, evecs = torch.linalg.eigh(M)
            evals, evecs = evals.flip(0), evecs.flip(1)
            num_kept = int((evals > _simplex_shift(evals, total)).sum())
            n = M.shape[0]
            self.p = min(n, max(2 * num_kept, num_kept + 2 * self.margin))
            self.V = evecs[:, : self.p].contiguous() if self.partial and 3 * self.p < n else None
        lam = (evals - _simplex_shift(evals, total)).clamp_min(0.0)
        keep = lam > 0
        half = evecs[:, keep] * lam[keep].sqrt()
        out = torch.zeros_like(G)
        out[0, 0] = 1.0
        out[1:, 1:] = half @ half.T
        return _reflect(out, self.v, self.beta)


def _upper_bound(C: Tensor, v: Tensor, beta: float, k: int) -> float:
    """``max <C, Y>`` over ``Y in C1`` (see the module docstring), by a full ``eigvalsh``."""
    M = _reflect(C, v, beta)
    top = torch.linalg.eigvalsh(0.5 * (M[1:, 1:] + M[1:, 1:].T))[-1]
    return float(M[0, 0] + (k - 1) * top)


def _make_feasible(X: Tensor, k: int) -> Tensor:
    """Mix ``X`` (in ``C1``) with ``a I + b J`` just enough to make every entry non-negative."""
    T = X.shape[0]
    a = (k - 1) / (T - 1)
    b = (T - k) / (T * (T - 1))
    neg = X < 0
    if not bool(neg.any()):
        return X
    X0 = torch.full_like(X, b)
    X0.diagonal().add_(a)
    # (1 - t) X_ij + t X0_ij >= 0  <=>  t >= -X_ij / (X0_ij - X_ij) for every negative X_ij.
    t = float((-X[neg] / (X0[neg] - X[neg])).max())
    return ((1.0 - t) * X + t * X0).clamp_min(0.0)


def solve_sdp_admm(
    affinity: Tensor,
    num_groups: int,
    *,
    tol: float = 1e-4,
    inaccurate_tol: float = 1e-2,
    max_iter: int = 5000,
    rho: float | None = None,
    relax: float = 1.6,
    check_every: int = 10,
    partial: bool = True,
    num_threads: int | None = None,
) -> ADMMResult:
    """Solve the clustering SDP by ADMM (see the module docstring for the algorithm).

    Inputs are not validated here (``solve_sdp`` does that). The device and dtype of
    ``affinity`` are used throughout: pass a CUDA tensor to solve on the GPU; float64 is
    recommended (the certificate sums ``T^2`` products).

    Args:
        affinity: Symmetric affinity, ``[T, T]``, ideally scaled to ``max|A| = 1`` (the relative
            gap uses ``max(|objective|, 1)`` as its denominator).
        num_groups: ``k`` with ``2 <= k < T`` (for ``k = 1`` and ``k = T`` the feasible set is a
            single point, handled by ``solve_sdp``).
        tol: Certified relative gap at which to stop (status ``"optimal"``).
        inaccurate_tol: Largest certified gap reported as ``"optimal_inaccurate"`` when
            ``max_iter`` runs out (above it: ``"max_iter_reached"``).
        max_iter: Maximum number of ADMM iterations.
        rho: Initial penalty; default ``T / k``, the typical size of ``1 / X_ij``. It is then
            adapted every ``check_every`` iterations so that neither half of the gap dominates.
        relax: Over-relaxation factor in ``[1, 2)`` (Boyd et al., 2011, §3.4.3).
        check_every: Iterations between certificates (each costs one extra ``eigvalsh``).
        partial: Track the top eigenpairs instead of a full ``eigh`` when the projection has
            low rank (see :class:`_Projector`).
        num_threads: CPU only: torch intra-op threads while solving (restored afterwards).
            Default: 1 for ``T <= 1000``, else torch's current setting. Each iteration is a few
            dozen operations on ``[T, T]`` matrices; on a shared, busy 2-core machine two threads
            made the solver 10-20 times slower than one at T = 50..500 (thread contention).

    Returns:
        An :class:`ADMMResult`; its ``X`` is a float64 numpy array ``[T, T]`` that satisfies every
        constraint up to rounding.

    Raises:
        GraphtagError: If an option is out of range.
    """
    checks = {
        "tol > 0": tol > 0,
        "inaccurate_tol >= 0": inaccurate_tol >= 0,
        "max_iter >= 1": max_iter >= 1,
        "check_every >= 1": check_every >= 1,
        "1 <= relax < 2": 1 <= relax < 2,
        "rho > 0": rho is None or rho > 0,
        "num_threads >= 1": num_threads is None or num_threads >= 1,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise GraphtagError(f"invalid ADMM solver option(s): need {', '.join(bad)}")
    T = affinity.shape[0]
    if affinity.device.type != "cpu":
        num_threads = None
    elif num_threads is None and T <= 1000:
        num_threads = 1
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _admm(
            affinity,
            int(num_groups),
            tol,
            inaccurate_tol,
            max_iter,
            rho,
            relax,
            check_every,
            partial,
        )
    finally:
        if num_threads is not None:
            torch.set_num_threads(previous)


def _admm(
    affinity: Tensor,
    k: int,
    tol: float,
    inaccurate_tol: float,
    max_iter: int,
    rho: float | None,
    relax: float,
    check_every: int,
    partial: bool,
) -> ADMMResult:
    B = 0.5 * (affinity + affinity.T)
    T = B.shape[0]
    proj = _Projector(B, k, partial)
    rho = float(T) / k if rho is None else float(rho)
    Z = torch.full_like(B, 1.0 / T)
    U = torch.zeros_like(B)
    best_lower, best_X = -math.inf, Z
    upper = math.inf
    status = "max_iter_reached"
    wait = next_change = check_every
    it = 0
    for it in range(1, max_iter + 1):
        X = proj(Z - U + B / rho)
        X_hat = relax * X + (1.0 - relax) * Z
        Z = (X_hat + U).clamp_min(0.0)
        U = U + X_hat - Z  # = min(X_hat + U, 0) <= 0, so -rho U is a valid multiplier
        if it % check_every and it != max_iter:
            continue
        X_feas = _make_feasible(X, k)
        lower = float((B * X_feas).sum())
        upper = min(upper, _upper_bound(B - rho * U, proj.v, proj.beta, k))
        if lower > best_lower:
            best_lower, best_X = lower, X_feas
        if (upper - best_lower) / max(abs(best_lower), 1.0) <= tol:
            status = "optimal"
            break
        # Balance the two halves of the gap (a variant of residual balancing, Boyd et al., 2011,
        # §3.4.1): a large loss from repairing X's negative entries asks for a larger rho, a large
        # dual gap for a smaller one. The wait between changes doubles after each change, so
        # rho settles and ADMM's convergence guarantee applies to the tail.
        if it < next_change:
            continue
        obj_x = float((B * X).sum())
        primal_part = max(obj_x - lower, 0.0)
        dual_part = max(upper - obj_x, 0.0)
        if primal_part > 5.0 * dual_part:
            rho, U = 2.0 * rho, U / 2.0
        elif dual_part > 5.0 * primal_part:
            rho, U = rho / 2.0, U * 2.0
        else:
            continue
        wait *= 2
        next_change = it + wait
    gap = (upper - best_lower) / max(abs(best_lower), 1.0)
    if status != "optimal" and gap <= inaccurate_tol:
        status = "optimal_inaccurate"
    X_np = best_X.detach().to("cpu", torch.float64).numpy()
    return ADMMResult(0.5 * (X_np + X_np.T), status, best_lower, upper, gap, it)
