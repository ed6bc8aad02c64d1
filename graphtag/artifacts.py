"""Atomic artifacts and manifests: nothing partial is ever read as complete.

Every stage of a run writes its outputs with :func:`atomic_write` (temporary file in the same
directory, ``fsync``, then ``os.replace``) and, LAST, a manifest ``<stage>.manifest.json`` that
records what the outputs were computed from (content hashes of inputs, the resolved
configuration, seeds, versions) and the SHA-256 of every output file. A stage is reused only when
its manifest exists, its ``key`` equals the requested key and every listed output still has the
recorded hash; anything else (a crash mid-write, a changed configuration, a corrupted file) means
the stage runs again.

Tensors are stored with ``numpy.savez`` / ``.npy`` and read with ``allow_pickle=False``; model
weights with ``torch.save(state_dict)`` and read with ``torch.load(weights_only=True)``. Nothing
is ever unpickled.

A killed writer leaves at most a hidden temporary file ``.<name>.<pid>.<random>.tmp`` next to
the target; it is never read, and :class:`StageStore` removes those whose process is gone.

Fault hook (tests only)
-----------------------
``GRAPHTAG_FAULT=<point>[@<n>]`` kills the process with ``SIGKILL`` (``os._exit(137)`` where
there is no ``SIGKILL``) at the ``n``-th time (default 1) it reaches a fault point matching
``<point>``, a shell-style pattern (:func:`fnmatch.fnmatchcase`). Occurrences are counted per
process. The points are:

- ``write:<file name>`` and ``write:<folder name>/<file name>``: inside :func:`atomic_write`,
  after the temporary file is written and flushed, before it is renamed over the target (one
  occurrence per write, whichever form matches), e.g. ``write:report.json``,
  ``write:models/*.npz@2`` (the second model file) or ``write:finetune/*.json@3`` (the third
  job checkpoint, mid-write);
- ``after:<stage>``: right after ``<stage>``'s manifest is written (:meth:`StageStore.mark_done`);
- ``job:<k>``: in :func:`graphtag.executor.run_jobs`, right after the ``k``-th job finished in
  this process was checkpointed (``job:3``; ``job:*@3`` is the same point).

Examples: ``GRAPHTAG_FAULT=after:features``, ``GRAPHTAG_FAULT=write:affinity.npy``,
``GRAPHTAG_FAULT=job:2``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import json
import logging
import os
import re
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import GraphtagError

__all__ = [
    "StageStore",
    "atomic_write",
    "canonical_json",
    "file_sha256",
    "hash_object",
    "load_json",
    "load_npz",
    "load_state_dict",
    "remove_stale_temp_files",
    "save_json",
    "save_npy",
    "save_npz",
    "save_state_dict",
]


log = logging.getLogger("graphtag")

#: Occurrences of the fault points that matched ``GRAPHTAG_FAULT`` in this process, per spec.
_FAULT_HITS: dict[str, int] = {}


def _parse_fault(spec: str) -> tuple[str, int]:
    """``"<point>[@<n>]"`` -> ``(point pattern, n)``; a bad ``n`` raises :class:`GraphtagError`."""
    pattern, sep, count = spec.rpartition("@")
    if not sep:
        return spec, 1
    if not count.isdigit() or int(count) < 1 or not pattern:
        raise GraphtagError(
            f"GRAPHTAG_FAULT={spec!r}: expected <point>[@<n>] with n >= 1, e.g. job:3 or "
            "write:models/*.npz@2 (a test-only hook; unset it for normal runs)"
        )
    return pattern, int(count)


def _kill_self() -> None:
    """Die at once, as an external ``kill -9`` would (no cleanup, no buffered output)."""
    sigkill = getattr(signal, "SIGKILL", None)
    if sigkill is not None:
        os.kill(os.getpid(), sigkill)
    os._exit(137)  # no SIGKILL (Windows), or it was not delivered synchronously


def _fault_point(*names: str) -> None:
    """Test-only fault hook (see the module docstring): maybe kill the process here.

    Args:
        names: Equivalent names of this one point (e.g. ``write:x.npz`` and
            ``write:models/x.npz``); it counts as one occurrence when any of them matches.
    """
    spec = os.environ.get("GRAPHTAG_FAULT")
    if not spec:
        return
    pattern, count = _parse_fault(spec)
    if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
        return
    hits = _FAULT_HITS.get(spec, 0) + 1
    _FAULT_HITS[spec] = hits
    if hits == count:
        _kill_self()


# ``.<name>.<pid>.<mkstemp's 8 random characters>.tmp``
_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]{8}\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":
        return True  # on Windows os.kill(pid, 0) would terminate the process: never probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep its files
    return True


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files that :func:`atomic_write` calls of dead processes left behind.

    Only files named like :func:`atomic_write`'s temporaries (``.<name>.<pid>.<random>.tmp``),
    anywhere under ``folder``, whose writing process no longer exists are removed; a file of a
    live process (or of an unknown one) is kept.

    Returns:
        The removed paths.
    """
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for path in root.rglob(".*.tmp"):
        m = _TEMP_RE.match(path.name)
        if m is None or not path.is_file() or _pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    if removed:
        log.debug("removed %d temporary files of interrupted writes in %s", len(removed), root)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched; a process
    killed meanwhile leaves only the hidden temporary file (see :func:`remove_stale_temp_files`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            _fault_point(f"write:{path.name}", f"write:{path.parent.name}/{path.name}")
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace variation) for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray | torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return sorted(obj) if isinstance(obj, set | frozenset) else list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def hash_object(obj: Any) -> str:
    """SHA-256 hex digest of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    with atomic_write(path, "w") as fh:
        fh.write(text)


def load_json(path: str | os.PathLike) -> Any:
    """Read JSON, raising :class:`GraphtagError` for a missing or corrupt file."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise GraphtagError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GraphtagError(
            f"{path}: corrupt JSON ({exc}); delete it or rerun with --restart"
        ) from None


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically write one array as ``.npy``."""
    with atomic_write(path) as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray | torch.Tensor]) -> None:
    """Atomically write several arrays (tensors are converted) as an uncompressed ``.npz``."""
    conv = {}
    for k, v in arrays.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu()
            if v.dtype == torch.bfloat16:
                v = v.float()
            v = v.numpy()
        conv[k] = np.asarray(v)
    with atomic_write(path) as fh:
        np.savez(fh, **conv)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an ``.npz`` without unpickling; corrupt files raise :class:`GraphtagError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise GraphtagError(f"{path}: file not found") from None
    except Exception as exc:
        raise GraphtagError(f"{path}: corrupt array file ({exc}); rerun with --restart") from None


def save_state_dict(path: str | os.PathLike, state: Mapping[str, torch.Tensor]) -> None:
    """Atomically save a model ``state_dict`` (tensors only)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a ``state_dict`` with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GraphtagError(f"{path}: file not found") from None
    except Exception as exc:
        raise GraphtagError(f"{path}: corrupt checkpoint ({exc}); rerun with --restart") from None


class StageStore:
    """Manifests of finished stages in a run directory.

    Args:
        root: The run directory (created if missing). Temporary files of writes interrupted by
            a killed process are removed from it (:func:`remove_stale_temp_files`).

    Example:
        >>> import tempfile
        >>> store = StageStore(tempfile.mkdtemp())
        >>> key = {"config": {"lr": 0.01}, "seed": 0}
        >>> store.is_done("base", key)
        False
        >>> save_json(store.root / "out.json", {"a": 1})
        >>> store.mark_done("base", key, ["out.json"])
        >>> store.is_done("base", key)
        True
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.notes: list[str] = []
        remove_stale_temp_files(self.root)

    def manifest_path(self, stage: str) -> Path:
        """Path of ``stage``'s manifest."""
        return self.root / f"{stage}.manifest.json"

    def read_manifest(self, stage: str) -> dict | None:
        """The manifest of ``stage`` or ``None`` when missing or unreadable."""
        path = self.manifest_path(stage)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            self.notes.append(f"{stage}: manifest unreadable; recomputing")
            return None

    def is_done(self, stage: str, key: Mapping[str, Any]) -> bool:
        """Whether ``stage`` finished with exactly ``key`` and its outputs are intact."""
        man = self.read_manifest(stage)
        if man is None:
            return False
        if man.get("key_hash") != hash_object(key):
            self.notes.append(f"{stage}: configuration or inputs changed; recomputing")
            return False
        for name, digest in man.get("outputs", {}).items():
            path = self.root / name
            if not path.exists() or file_sha256(path) != digest:
                self.notes.append(f"{stage}: output {name} missing or modified; recomputing")
                return False
        return True

    def mark_done(
        self, stage: str, key: Mapping[str, Any], outputs: list[str], extra: dict | None = None
    ) -> None:
        """Write ``stage``'s manifest after its outputs (relative paths) are in place."""
        from ._utils import versions

        man = {
            "stage": stage,
            "key_hash": hash_object(key),
            "key": json.loads(canonical_json(key)),
            "outputs": {name: file_sha256(self.root / name) for name in outputs},
            "versions": versions(),
        }
        if extra:
            man["extra"] = extra
        save_json(self.manifest_path(stage), man)
        _fault_point(f"after:{stage}")

    def invalidate(self, stage: str) -> None:
        """Remove ``stage``'s manifest (its outputs are then recomputed on the next run)."""
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(stage).unlink()

    def cached(
        self,
        stage: str,
        key: Mapping[str, Any],
        outputs: list[str],
        compute: Callable[[], None],
    ) -> bool:
        """Run ``compute`` (which writes ``outputs``) unless the stage is already done.

        Returns:
            ``True`` when the stage was reused, ``False`` when it ran.
        """
        if self.is_done(stage, key):
            return True
        compute()
        self.mark_done(stage, key, outputs)
        return False
