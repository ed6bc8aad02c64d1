"""Small shared helpers: seeded generators, device resolution, environment versions."""

from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import GraphtagError

__all__ = ["derive_seed", "numpy_generator", "resolve_device", "torch_generator", "versions"]


def derive_seed(seed: int, *keys: object) -> int:
    """Derive an independent 63-bit seed from ``seed`` and any number of keys.

    Used to give every stochastic component (split of task 3, projection block 7, subset sampler,
    ...) its own stream without touching global RNG state.
    """
    h = hashlib.blake2b(repr((int(seed), *keys)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def torch_generator(
    seed: int, *keys: object, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A private :class:`torch.Generator` seeded from ``derive_seed(seed, *keys)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g


def numpy_generator(seed: int, *keys: object) -> np.random.Generator:
    """A private :class:`numpy.random.Generator` seeded from ``derive_seed(seed, *keys)``."""
    return np.random.default_rng(derive_seed(seed, *keys))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into CUDA when available (else CPU) and validate explicit devices."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise GraphtagError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GraphtagError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    return dev


def git_revision(path: str | Path | None = None) -> str:
    """Commit SHA of the git checkout holding ``path`` (default: this package), for reports.

    Returns ``"unknown"`` when git or the checkout is missing (an installed wheel).
    """
    import subprocess

    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=where if where.is_dir() else where.parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def experiment_header(flags: Any, **extra: Any) -> dict[str, Any]:
    """Provenance of an experiment run, printed and saved with its results.

    ``{"config": flags (an ``argparse.Namespace``; paths as strings), "versions":
    :func:`versions`, "git_sha": :func:`git_revision`, "torch_threads": ..., **extra}``.
    """
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(flags).items()}
    return {
        "config": config,
        "versions": versions(),
        "git_sha": git_revision(),
        "torch_threads": torch.get_num_threads(),
        **extra,
    }


def versions() -> dict[str, str]:
    """Versions of Python, graphtag and the main libraries, for reports."""
    from ._version import __version__

    out = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "graphtag": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    # Installed distributions' metadata, not imports: importing cvxpy and scikit-learn only to
    # read their versions costed 64 MiB and seconds per run.
    from importlib import metadata

    for mod, dist in (
        ("torch_geometric", "torch_geometric"),
        ("scipy", "scipy"),
        ("sklearn", "scikit-learn"),
        ("cvxpy", "cvxpy"),
    ):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, "__version__"):
            out[mod] = str(m.__version__)
            continue
        try:
            out[mod] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
