"""Where many-model jobs run: the executor settings, passed once from the command line."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GraphtagError

__all__ = ["EXECUTORS", "ExecutorConfig"]

#: The back-ends of :func:`graphtag.executor.run_jobs`.
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorConfig:
    """The back-end of real-training jobs (results never depend on it).

    Args:
        kind: ``"local"`` (in-process) or ``"ray"`` (the ``graphtag[ray]`` extra).
        address: Ray cluster address (``"auto"``, ``"HOST:PORT"``; ``None``: start a local
            instance). Only with ``kind="ray"``.

    Example:
        >>> ExecutorConfig("ray", "auto").kind
        'ray'
    """

    kind: str = "local"
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise GraphtagError(
                f"unknown executor {self.kind!r}; choose from {', '.join(EXECUTORS)}"
            )
        if self.address is not None and self.kind != "ray":
            raise GraphtagError(
                f"--ray-address {self.address} is only used with --executor ray; add "
                "--executor ray or drop --ray-address"
            )
