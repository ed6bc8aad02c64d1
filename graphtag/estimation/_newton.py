"""The batched surrogate solver: a statistics Newton step, then preconditioned L-BFGS steps.

Every subset of a batch is solved at once (``[B, ...]`` tensors). The initial inverse Hessian
of the L-BFGS recursion is the inverse of the last factorised Hessian (the statistics Hessian at
``w = 0`` at first), so the first direction is the exact Newton step and later ones are chord
steps corrected by the last ``memory`` curvature pairs. Each step has a backtracking (Armijo)
line search per subset; slow subsets get an exact Hessian refresh (see :meth:`_Solver.refresh`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ._surrogate import TaskStats, _Blocks

__all__ = ["solve_batch"]

_ARMIJO = 1e-4
_ROUNDING = 1e-12  # relative objective change treated as rounding
_MAX_HALVINGS = 30


def _spd_inverse(a: Tensor) -> Tensor:
    """Inverse of a batch of SPD matrices (Cholesky, then ``cholesky_inverse``).

    Newton directions then cost one batched matrix-vector product per iteration, which is far
    cheaper than batched triangular solves.
    """
    from ._surrogate import _cholesky

    return torch.cholesky_inverse(_cholesky(a))


def _two_loop(grad: Tensor, inv: Tensor, s_mem: Tensor, y_mem: Tensor, rho: Tensor) -> Tensor:
    """L-BFGS two-loop recursion ``H grad`` with the initial inverse Hessian ``inv``.

    Shapes: ``grad [B, d]``, ``inv [B, d, d]``, ``s_mem``/``y_mem [B, m, d]`` (oldest first),
    ``rho [B, m]`` (``0`` marks an empty slot, which then has no effect).
    """
    q = grad.clone()
    num_pairs = s_mem.size(1)
    alphas = []
    for i in reversed(range(num_pairs)):
        a = rho[:, i] * (s_mem[:, i] * q).sum(1)
        q -= a.unsqueeze(1) * y_mem[:, i]
        alphas.append(a)
    r = torch.bmm(inv, q.unsqueeze(2)).squeeze(2)
    for i, a in zip(range(num_pairs), reversed(alphas)):
        b = rho[:, i] * (y_mem[:, i] * r).sum(1)
        r += (a - b).unsqueeze(1) * s_mem[:, i]
    return r


class _Solver:
    """The state of one batch of subsets (weights, gradients, L-BFGS memory, flags)."""

    def __init__(
        self, blocks: _Blocks, stats: TaskStats, mem: Tensor, lam: float, memory: int
    ) -> None:
        from ._surrogate import _ridge_system

        num, d = mem.size(0), blocks.dim
        dev, dt = blocks.g.device, blocks.g.dtype
        self.blocks, self.mem, self.lam, self.d = blocks, mem, lam, d
        a0, rhs, ns, f0 = _ridge_system(stats, mem, lam)
        self.inv = _spd_inverse(a0)
        del a0
        self.nf = ns.clamp_min(1).to(dt)
        self.w = torch.zeros(num, d, dtype=dt, device=dev)
        self.fval = f0.clone()
        self.grad = -rhs  # gradient of F_S at w = 0
        self.gnorm = self.grad.norm(dim=1)
        self.ns = ns
        self.stalled = torch.zeros(num, dtype=torch.bool, device=dev)
        self.exact_here = torch.ones(num, dtype=torch.bool, device=dev)  # inv: Hessian at w
        self.iters = torch.zeros(num, dtype=torch.long, device=dev)
        self.s_mem = torch.zeros(num, memory, d, dtype=dt, device=dev)
        self.y_mem = torch.zeros_like(self.s_mem)
        self.rho = torch.zeros(num, memory, dtype=dt, device=dev)
        self.eye = torch.eye(d, dtype=dt, device=dev)

    def evaluate(self, idx: Tensor, wv: Tensor) -> tuple[Tensor, Tensor]:
        """Objective and gradient of subsets ``idx`` at ``wv``."""
        from ._surrogate import _loss_and_grad_sums

        loss, gsum = _loss_and_grad_sums(self.blocks, self.mem[idx], wv)
        n_i = self.nf[idx]
        fv = loss / n_i + 0.5 * self.lam * (wv * wv).sum(1)
        return fv, gsum / n_i[:, None] + self.lam * wv

    def direction(self, active: Tensor) -> tuple[Tensor, Tensor]:
        """Quasi-Newton directions of the ``active`` subsets and their slopes."""
        if active.numel() == self.w.size(0):
            direction = -_two_loop(self.grad, self.inv, self.s_mem, self.y_mem, self.rho)
        else:
            direction = -_two_loop(
                self.grad[active],
                self.inv[active],
                self.s_mem[active],
                self.y_mem[active],
                self.rho[active],
            )
        slope = (self.grad[active] * direction).sum(1)
        bad = slope >= 0  # cannot happen with PD updates; fall back to steepest descent
        if bool(bad.any()):
            direction[bad] = -self.grad[active[bad]]
            slope[bad] = -(self.grad[active[bad]] ** 2).sum(1)
        return direction, slope

    def line_search(self, active: Tensor, direction: Tensor, slope: Tensor) -> Tensor:
        """Backtracking (Armijo) steps; updates ``w``, ``fval``, ``grad``; accepted ``[A]``."""
        dt, dev = self.w.dtype, self.w.device
        alpha = torch.ones(active.numel(), dtype=dt, device=dev)
        accepted = torch.zeros(active.numel(), dtype=torch.bool, device=dev)
        trying = torch.arange(active.numel(), device=dev)
        for _ in range(_MAX_HALVINGS):
            idx = active[trying]
            w_try = self.w[idx] + alpha[trying, None] * direction[trying]
            f_try, g_try = self.evaluate(idx, w_try)
            gn_try = g_try.norm(dim=1)
            f_old = self.fval[idx]
            ok = f_try <= f_old + _ARMIJO * alpha[trying] * slope[trying]
            ok |= (f_try <= f_old + _ROUNDING * f_old.abs()) & (gn_try < self.gnorm[idx])
            # A NaN/inf trial point is never accepted: the step is halved like any other
            # rejected one, and a subset that finds no finite point stalls (not converged).
            ok &= torch.isfinite(f_try) & torch.isfinite(gn_try)
            good = trying[ok]
            gi = active[good]
            self.w[gi], self.fval[gi] = w_try[ok], f_try[ok]
            self.grad[gi], self.gnorm[gi] = g_try[ok], gn_try[ok]
            accepted[good] = True
            trying = trying[~ok]
            if trying.numel() == 0:
                break
            alpha[trying] *= 0.5
        return accepted

    def remember(self, done: Tensor, old_w: Tensor, old_grad: Tensor) -> None:
        """Push the new curvature pair ``(s, y)`` of the subsets that moved."""
        # The objective is lam-strongly convex, so s.y > 0.
        step = self.w[done] - old_w
        change = self.grad[done] - old_grad
        sy = (step * change).sum(1)
        keep = sy > 1e-300
        self.s_mem[done] = torch.cat([self.s_mem[done, 1:], step.unsqueeze(1)], 1)
        self.y_mem[done] = torch.cat([self.y_mem[done, 1:], change.unsqueeze(1)], 1)
        ratio = torch.where(keep, 1 / sy, 0).unsqueeze(1)
        self.rho[done] = torch.cat([self.rho[done, 1:], ratio], 1)

    def refresh(self, refresh: Tensor) -> None:
        """Exact Hessians of the subsets ``refresh`` at their ``w`` (L-BFGS memory cleared)."""
        from ._surrogate import _exact_hessian_sums

        hs = _exact_hessian_sums(self.blocks, self.mem[refresh], self.w[refresh])
        self.inv[refresh] = _spd_inverse(hs / self.nf[refresh, None, None] + self.lam * self.eye)
        self.exact_here[refresh] = True
        self.s_mem[refresh] = 0.0
        self.y_mem[refresh] = 0.0
        self.rho[refresh] = 0.0


def solve_batch(
    blocks: _Blocks,
    stats: TaskStats,
    mem: Tensor,
    lam: float,
    max_iter: int,
    tol: float,
    memory: int = 5,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Solve the surrogates of a batch of subsets (membership ``mem [B, s]``).

    Returns:
        ``(w [B, d], converged [B], iterations [B], grad_norm [B], objective [B])``.
    """
    st = _Solver(blocks, stats, mem, lam, memory)
    target = tol * st.gnorm
    converged = (st.gnorm <= target) | (st.ns == 0)
    for it in range(max_iter):
        active = torch.nonzero(~converged & ~st.stalled).flatten()
        if active.numel() == 0:
            break
        direction, slope = st.direction(active)
        old_w, old_grad = st.w[active].clone(), st.grad[active].clone()
        old_gnorm = st.gnorm[active].clone()
        accepted = st.line_search(active, direction, slope)
        done = active[accepted]
        st.iters[done] += 1
        converged = converged | (st.gnorm <= target)
        st.remember(done, old_w[accepted], old_grad[accepted])
        # Refresh the Hessian where convergence is slow or the line search failed. With rate
        # r = |g_new| / |g_old|, reaching the target takes about log(target / |g|) / log(r) more
        # passes; an exact Hessian costs about d / 2 passes (2 n_S d^2 versus 4 n_S d flops), so
        # refresh when more passes than that (or than the iterations left) would be needed. A
        # failed line search with the exact Hessian at this point means rounding: stop there.
        failed = active[~accepted]
        st.stalled[failed[st.exact_here[failed]]] = True
        rate = (st.gnorm[active] / old_gnorm.clamp_min(1e-300)).clamp(1e-300, 1.0)
        ratio = (target[active] / st.gnorm[active].clamp_min(1e-300)).clamp(max=1.0)
        need = torch.log(ratio) / torch.log(rate).clamp(max=-1e-12)
        slow = accepted & (need > min(0.5 * st.d, max_iter - it - 1))
        st.exact_here[done] = False
        refresh = torch.cat([active[slow], failed[~st.exact_here[failed]]])
        refresh = refresh[~converged[refresh] & ~st.stalled[refresh]]
        if refresh.numel():
            st.refresh(refresh)
    return st.w, converged, st.iters, st.gnorm, st.fval
