"""Benchmark: the clustering SDP with cvxpy's SCS versus graphtag's ADMM solver.

For each T in ``--sizes`` (default 50, 100, 200, 500) a planted affinity with ``--groups`` blocks
(within-block mean 1, between 0, symmetric Gaussian noise of std ``--noise``, zero diagonal;
``--kind gaussian`` gives a structureless N(0, 1) matrix instead) is solved by
``solve_sdp(..., solver="SCS")`` and by the ADMM solver (what ``solve_sdp(..., solver="admm")``
runs, keeping its certificate), both end to end (build, scale, solve), and rounded by
``round_to_groups`` with the same seed. cvxpy is skipped above ``--cvxpy-max-tasks`` (default 500:
on the shared 2-core development machine SCS took 1.5-6 s at T = 200, 15 s at T = 300 and 30-35 s
at T = 500, so T = 1000 would take minutes). Both solvers are warmed up on a T = 12 instance
first; each time is the median of ``--repeats`` runs. The ADMM solver runs single-threaded on CPU
(its default up to T = 1000).

Columns: seconds of each solver, objective relative gap ``|f_admm - f_scs| / |f_scs|``, the ADMM
solver's own certified gap and iteration count, adjusted Rand index between the two rounded
partitions and of each against the planted one. The last line is the headline: the speed-up
(cvxpy seconds / ADMM seconds) at T = 200. Config, seeds, versions and git SHA are printed first
(one JSON line) and saved with ``--out``.

Commands:
    PYTHONPATH=. python experiments/bench_sdp.py                 # a few minutes on 2 cores
    PYTHONPATH=. python experiments/bench_sdp.py --sizes 1000,2000 --device cuda
    PYTHONPATH=. python experiments/bench_sdp.py --smoke --out runs/bench_sdp.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from graphtag._utils import experiment_header, numpy_generator
from graphtag.artifacts import save_json
from graphtag.clustering import round_to_groups, solve_sdp
from graphtag.clustering._lowrank import solve_sdp_admm


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="50,100,200,500", help="comma-separated numbers of tasks")
    p.add_argument("--groups", type=int, default=5, help="planted groups k (also the SDP's k)")
    p.add_argument("--noise", type=float, default=0.5, help="noise std of the planted affinity")
    p.add_argument("--kind", choices=["planted", "gaussian"], default="planted")
    p.add_argument("--cvxpy-max-tasks", type=int, default=500, help="skip SCS above this T")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per solver (median)")
    p.add_argument("--tol", type=float, default=1e-4, help="ADMM certified relative gap")
    p.add_argument("--device", default="cpu", help="device of the ADMM solver")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (12, 20), seconds")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes = "12,20"
        args.groups = 3
    return args


def make_affinity(num_tasks: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    rng = numpy_generator(args.seed, "bench_sdp", num_tasks)
    labels = rng.permutation(np.arange(num_tasks) % args.groups)
    if args.kind == "planted":
        A = (labels[:, None] == labels[None, :]).astype(float)
        A = A + args.noise * rng.standard_normal((num_tasks, num_tasks))
    else:
        A = rng.standard_normal((num_tasks, num_tasks))
    A = 0.5 * (A + A.T)
    np.fill_diagonal(A, 0.0)
    return A, labels


def timed(fn, repeats: int):
    seconds, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), out


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index (Hubert and Arabie, 1985) of two labelings of the same items."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1.0)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    total = len(a) * (len(a) - 1) / 2
    if total == 0:
        return 1.0
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / total
    maximum = 0.5 * (rows + cols)
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)


def run_admm(A: np.ndarray, k: int, args: argparse.Namespace):
    """What ``solve_sdp(A, k, solver="admm")`` does, keeping the solver's certificate."""
    scale = float(np.abs(A).max())
    res = solve_sdp_admm(torch.as_tensor(A / scale, device=args.device), k, tol=args.tol)
    return res.X, res.status, float((A * res.X).sum()), res


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    meta = experiment_header(args)
    print(json.dumps(meta))
    warm, _ = make_affinity(12, args)
    if any(t <= args.cvxpy_max_tasks for t in sizes):
        solve_sdp(warm, 3, solver="SCS")
    solve_sdp(warm, 3, solver="admm", device=args.device)
    print(
        f"{'T':>5} {'k':>3} {'scs s':>8} {'admm s':>8} {'speed-up':>8} {'obj gap':>9} "
        f"{'cert gap':>9} {'iters':>6} {'ARI s/a':>8} {'ARI a/pl':>8} {'ARI s/pl':>8}"
    )
    rows = []
    for num_tasks in sizes:
        A, planted = make_affinity(num_tasks, args)
        k = args.groups
        row: dict = {"num_tasks": num_tasks, "num_groups": k}
        t_admm, (X_a, status_a, f_a, cert) = timed(
            lambda A=A, k=k: run_admm(A, k, args), args.repeats
        )
        labels_a = round_to_groups(X_a, k, seed=args.seed)
        row |= {
            "admm_seconds": t_admm,
            "admm_status": status_a,
            "admm_objective": f_a,
            "admm_certified_gap": cert.gap,
            "admm_iterations": cert.iterations,
            "ari_admm_planted": float(adjusted_rand_index(planted, labels_a)),
        }
        if num_tasks <= args.cvxpy_max_tasks:
            t_scs, (X_s, status_s, f_s) = timed(
                lambda A=A, k=k: solve_sdp(A, k, solver="SCS"), args.repeats
            )
            labels_s = round_to_groups(X_s, k, seed=args.seed)
            row |= {
                "scs_seconds": t_scs,
                "scs_status": status_s,
                "scs_objective": f_s,
                "speedup": t_scs / t_admm,
                "objective_relative_gap": abs(f_a - f_s) / abs(f_s),
                "ari_scs_admm": float(adjusted_rand_index(labels_s, labels_a)),
                "ari_scs_planted": float(adjusted_rand_index(planted, labels_s)),
            }
        rows.append(row)

        def fmt(key: str, spec: str, row: dict = row) -> str:
            return format(row[key], spec) if key in row else "skipped"

        print(
            f"{num_tasks:>5} {k:>3} {fmt('scs_seconds', '8.2f'):>8} {t_admm:>8.2f} "
            f"{fmt('speedup', '8.1f'):>8} {fmt('objective_relative_gap', '9.1e'):>9} "
            f"{cert.gap:>9.1e} {cert.iterations:>6} {fmt('ari_scs_admm', '8.3f'):>8} "
            f"{row['ari_admm_planted']:>8.3f} {fmt('ari_scs_planted', '8.3f'):>8}",
            flush=True,
        )
    result = {**meta, "rows": rows}
    if args.out is not None:
        save_json(args.out, result)
    at = next((r for r in rows if r["num_tasks"] == 200 and "speedup" in r), None)
    if at is None:
        print("headline: n/a (T=200 was not run with both solvers; run without --smoke)")
    else:
        print(
            f"headline: at T=200 (k={at['num_groups']}) cvxpy SCS took {at['scs_seconds']:.2f} s "
            f"and the ADMM solver {at['admm_seconds']:.2f} s: {at['speedup']:.1f}x faster "
            f"(objective gap {at['objective_relative_gap']:.1e}, ARI {at['ari_scs_admm']:.3f})"
        )
    return result


if __name__ == "__main__":
    main()
