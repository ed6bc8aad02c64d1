"""Shared file-reading helpers of the real-data loaders.

* :func:`open_binary` opens a file for reading, decompressing gzip when the file starts with the
  gzip magic bytes (``1f 8b``), whatever its name.
* :func:`read_int_tokens` parses whitespace-separated non-negative integers line by line with
  vectorised numpy code on the raw bytes (no Python loop over lines or tokens). Edge lists (a
  fixed number of fields per line) first try one C-speed ``numpy.fromstring`` pass per chunk
  that also checks every line's token count (``experiments/bench_snap.py``: 131 -> 198 MB/s on a
  2M-edge SNAP file). Only when a chunk holds something unexpected does it fall back to a slow
  line-by-line scan, which names the first bad line.
* :func:`file_digest`, :func:`load_cache` and :func:`save_cache` implement the content-addressed
  ``.npz`` cache (never pickle; atomic writes; a corrupt entry is ignored with a warning).
* :func:`require_two_classes` rejects label matrices with a constant task (no positive or no
  negative node), which can be neither trained with model selection nor evaluated.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataFormatError

__all__ = [
    "CACHE_VERSION",
    "CHUNK_BYTES",
    "cache_key",
    "file_digest",
    "is_gzip",
    "load_cache",
    "open_binary",
    "read_int_tokens",
    "require_file",
    "require_two_classes",
    "save_cache",
]

CACHE_VERSION = 1
CHUNK_BYTES = 16 * 2**20  # bytes of text parsed per vectorised step (bounds peak memory)
GZIP_MAGIC = b"\x1f\x8b"

_WHITESPACE = b" \t\n\r\x0b\x0c"  # exactly what bytes.split() splits on
_DIGITS_AND_WHITESPACE = b"0123456789" + _WHITESPACE
_DIGIT, _SPACE, _OTHER = 2, 1, 0
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[np.frombuffer(b"0123456789", dtype=np.uint8)] = _DIGIT
_CLASS[np.frombuffer(_WHITESPACE, dtype=np.uint8)] = _SPACE
_INT64_MAX = 2**63 - 1
_MAX_FAST_DIGITS = len(str(_INT64_MAX))  # 19; 19-digit tokens are checked against int64's max
_INT64_MAX_DIGITS = np.frombuffer(str(_INT64_MAX).encode(), dtype=np.uint8)
_POW10 = 10 ** np.arange(_MAX_FAST_DIGITS, dtype=np.int64)  # 10**0 .. 10**18


def require_file(path: Path, what: str) -> None:
    """Raise :class:`DataFormatError` unless ``path`` is an existing regular file.

    Args:
        path: The file.
        what: What the file should contain (used in the message), e.g. ``"edge list"``.
    """
    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:  # name too long, NUL byte, ...
        reason = getattr(exc, "strerror", None) or str(exc)
        shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "..."
        raise DataFormatError(
            f"cannot access the {what} file ({reason}); check the path", path=repr(shown)
        ) from None
    if not exists:
        raise DataFormatError(f"{what} file not found; check the path", path=path)
    if not is_file:
        raise DataFormatError(f"{what} path is not a regular file", path=path)


def require_two_classes(
    positives: np.ndarray, num_nodes: int, names: Sequence[str], *, path: Path, fix: str
) -> None:
    """Raise :class:`DataFormatError` when a task has no positive or no negative node.

    Args:
        positives: int ``[T]`` number of positive nodes of every task.
        num_nodes: Number of nodes ``N``.
        names: ``T`` task names (used in the message).
        path: The file holding the labels.
        fix: How to fix it, appended to the message (e.g. ``"remove the column"``).
    """
    positives = np.asarray(positives)
    constant = np.flatnonzero((positives == 0) | (positives == num_nodes))
    if constant.size == 0:
        return
    t = int(constant[0])
    kind = "no positive node (every label is 0)"
    if positives[t] != 0:
        kind = "no negative node (every label is 1)"
    more = f"; {constant.size} of {positives.size} tasks are constant" if constant.size > 1 else ""
    raise DataFormatError(
        f"task {t} ({names[t]}) has {kind}{more}: a task needs positive and negative nodes to be "
        f"trained and evaluated; {fix}",
        path=path,
    )


def is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (the file name is not consulted)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_binary(path: Path) -> io.BufferedIOBase:
    """Open ``path`` for binary reading, transparently decompressing gzip (by magic bytes)."""
    if is_gzip(path):
        return gzip.GzipFile(path, "rb")
    return open(path, "rb")


def _line_chunks(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    """Yield the file's (decompressed) bytes in chunks that each end with a newline."""
    try:
        with open_binary(path) as fh:
            carry = b""
            while True:
                block = fh.read(chunk_bytes)
                if not block:
                    break
                buf = carry + block if carry else block
                cut = buf.rfind(b"\n")
                if cut < 0:
                    carry = buf
                    continue
                yield buf[: cut + 1]
                carry = buf[cut + 1 :]
            if carry:
                yield carry + b"\n"
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(
            f"cannot read the file ({type(exc).__name__}: {exc}); if it is gzip-compressed it "
            "may be truncated or corrupt: download it again",
            path=path,
        ) from None


def _fast_chunk(buf: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised parse of one chunk (ending with a newline).

    Returns:
        ``(values int64 [K], counts int64 [L])``: the integers in reading order and the number of
        integers on each of the chunk's ``L`` lines (0 for blank and ``#`` comment lines), or
        ``None`` when the chunk contains a byte that is neither a digit nor whitespace outside
        comment lines, or a token that may not fit in int64 (the caller then scans it slowly).
    """
    b = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(b == 10)  # one per line; the last byte is a newline
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    cls = _CLASS[b]
    comment = b[starts] == ord("#")
    if comment.any():
        mark = np.zeros(b.size + 1, dtype=np.int8)
        mark[starts[comment]] = 1
        mark[ends[comment]] = -1
        in_comment = np.cumsum(mark[:-1], dtype=np.int8).view(bool)
        cls[in_comment] = _SPACE
        blanked = b.copy()
        blanked[in_comment] = ord(" ")
        buf = blanked.tobytes()
    if (cls == _OTHER).any():
        return None
    digit = cls == _DIGIT
    tok_first = np.empty_like(digit)  # first digit of each token
    tok_first[0] = digit[0]
    np.greater(digit[1:], digit[:-1], out=tok_first[1:])
    first_pos = np.flatnonzero(tok_first)
    counts = np.add.reduceat(tok_first, starts, dtype=np.int64)  # every line holds its newline
    if first_pos.size == 0:
        return np.zeros(0, dtype=np.int64), counts
    lengths = np.flatnonzero(digit[:-1] > digit[1:]) + 1 - first_pos  # chunk ends with newline
    if int(lengths.max()) > _MAX_FAST_DIGITS:
        return None
    longest = np.flatnonzero(lengths == _MAX_FAST_DIGITS)
    if longest.size and _exceeds_int64(b, first_pos[longest]):
        return None
    values = _to_int64(buf, b, first_pos, first_pos + lengths)
    return values, counts


def _fields_chunk(buf: bytes, fields: int) -> np.ndarray | None:
    """Values of a chunk whose every line holds ``fields`` integers (or nothing), fast.

    The common case of an edge list: only digits and whitespace after a leading block of
    comment lines (no other comment line, no sign), parsed by one C-speed
    :func:`numpy.fromstring` call with each newline turned into a ``-1`` token, so that the gaps
    between the ``-1`` markers are the lines' token counts. ``None`` when the chunk holds
    anything else, a line with another number of tokens, or a token at or beyond int64's limit:
    the caller then parses it with the general path, which names the first bad line.
    """
    start = 0
    while buf.startswith(b"#", start):  # a leading block of comment lines (SNAP's header)
        start = buf.index(b"\n", start) + 1
    if start:
        buf = buf[start:]
    if buf.translate(None, _DIGITS_AND_WHITESPACE):
        return None  # a comment, sign, letter, ...: the general path handles or reports it
    lines = buf.count(b"\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(buf.replace(b"\n", b" -1 "), dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):  # pragma: no cover - defensive
            return None
    marks = np.flatnonzero(values == -1)
    if marks.size != lines:
        return None
    per_line = np.diff(marks, prepend=-1) - 1
    if ((per_line != 0) & (per_line != fields)).any():
        return None
    out = values[values != -1]
    if out.size and int(out.max()) >= _INT64_MAX:  # strtoll saturates: check exactly
        return None
    return out


def _exceeds_int64(b: np.ndarray, first: np.ndarray) -> bool:
    """Whether any 19-digit token starting at ``first`` is larger than ``2**63 - 1``.

    Same-length digit strings compare like numbers, so this is a vectorised lexicographic test.
    """
    digits = b[first[:, None] + np.arange(_MAX_FAST_DIGITS)]
    differ = digits != _INT64_MAX_DIGITS
    at = differ.argmax(axis=1)
    larger = digits[np.arange(first.size), at] > _INT64_MAX_DIGITS[at]
    return bool((differ.any(axis=1) & larger).any())


def _to_int64(buf: bytes, b: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Integers of validated tokens ``b[first[k]:end[k]]`` (digits only, fitting in int64)."""
    try:
        values = np.fromstring(buf, dtype=np.int64, sep=" ")  # C-speed, whitespace separated
        if values.size == first.size:
            return values
    except (ValueError, DeprecationWarning):  # pragma: no cover - numpy API drift
        pass
    return _digits_to_int64(b, first, end)


def _digits_to_int64(b: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Pure-numpy token values: the sum of ``digit * 10**power`` over each token's digits."""
    lengths = end - first
    pos = np.repeat(first - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    digits = (b[pos] - ord("0")).astype(np.int64)
    offsets = np.cumsum(lengths) - lengths
    power = np.repeat(offsets + lengths - 1, lengths) - np.arange(pos.size)
    return np.add.reduceat(digits * _POW10[power], offsets)


def _slow_chunk(
    buf: bytes, path: Path, first_line: int, fields: int | None, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line parse of one chunk: raise on its first bad line, else return like the fast path.

    Only used when the vectorised parser found something unexpected in the chunk.
    """
    values: list[int] = []
    counts: list[int] = []
    for offset, line in enumerate(buf.split(b"\n")[:-1]):
        lineno = first_line + offset
        if line.startswith(b"#"):
            counts.append(0)
            continue
        tokens = line.split()
        for raw in tokens:
            tok = raw.decode("latin-1")
            if tok.isascii() and tok.isdigit():
                val = int(tok)
                if val > _INT64_MAX:
                    raise DataFormatError(
                        f"node id {tok} does not fit in a 64-bit integer", path=path, line=lineno
                    )
                values.append(val)
                continue
            body = tok[1:]
            if tok.startswith("-") and body.isascii() and body.isdigit():
                raise DataFormatError(
                    f"negative node id {tok}; node ids must be integers >= 0",
                    path=path,
                    line=lineno,
                )
            raise DataFormatError(
                f"non-numeric token {tok[:40]!r} in the {what}; expected integer node ids >= 0 "
                f"separated by whitespace ('#' starts a comment line){_token_hint(raw)}",
                path=path,
                line=lineno,
            )
        _check_fields(len(tokens), fields, path, lineno, what)
        counts.append(len(tokens))
    return np.asarray(values, dtype=np.int64), np.asarray(counts, dtype=np.int64)


def _token_hint(raw: bytes) -> str:
    """A hint for common causes of a bad token (other delimiters, a byte-order mark)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "; the file starts with a UTF-8 byte-order mark: save it without one"
    seps = [c for c in (",", ";", "|", ":") if c.encode() in raw]
    if seps and any(ch.isdigit() for ch in raw.decode("latin-1")):
        return f"; fields must be separated by spaces or tabs, not {seps[0]!r}"
    return ""


def _check_fields(count: int, fields: int | None, path: Path, lineno: int, what: str) -> None:
    if fields is not None and count not in (0, fields):
        raise DataFormatError(
            f"expected {fields} node ids per line in the {what} (u v), found {count}",
            path=path,
            line=lineno,
        )


def read_int_tokens(
    path: Path,
    *,
    fields: int | None = None,
    what: str = "file",
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse a text file of whitespace-separated non-negative integers, vectorised.

    Lines whose first byte is ``#`` are comments; blank lines are ignored; fields are separated by
    any ASCII whitespace; gzip input is detected by its magic bytes.

    Args:
        path: The file (plain text or gzip).
        fields: When given, every non-blank, non-comment line must hold exactly this many
            integers (e.g. 2 for an edge list).
        what: Name of the file's role in error messages (``"edge list"``).
        chunk_bytes: Bytes parsed per vectorised step.

    Returns:
        ``(values, counts)``: ``values`` int64 ``[K]``, all integers in reading order;
        ``counts`` int64 ``[L]``, the number of integers on each line of the file (0 for blank
        and comment lines), or ``None`` when ``fields`` is given.

    Raises:
        DataFormatError: Naming the file and the 1-based line of the first malformed line
            (non-numeric token, negative id, id beyond int64, wrong number of fields), or when the
            file cannot be read or decompressed.
    """
    parts: list[np.ndarray] = []
    line_counts: list[np.ndarray] = []
    first_line = 1
    for buf in _line_chunks(path, chunk_bytes):
        if fields is not None:
            fixed = _fields_chunk(buf, fields)
            if fixed is not None:
                parts.append(fixed)
                first_line += buf.count(b"\n")
                continue
        parsed = _fast_chunk(buf)
        if parsed is None:
            parsed = _slow_chunk(buf, path, first_line, fields, what)
        values, counts = parsed
        if fields is not None:
            bad = np.flatnonzero((counts != 0) & (counts != fields))
            if bad.size:
                i = int(bad[0])
                _check_fields(int(counts[i]), fields, path, first_line + i, what)
        else:
            line_counts.append(counts)
        parts.append(values)
        first_line += counts.size
    values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if fields is not None:
        return values, None
    counts = np.concatenate(line_counts) if line_counts else np.zeros(0, dtype=np.int64)
    return values, counts


def file_digest(path: Path, block: int = 2**20, *, memo_dir: Path | None = None) -> str:
    """Hex BLAKE2b digest of the file's bytes as stored (compressed files are not inflated).

    With ``memo_dir``, the digest is remembered there under the file's identity (resolved path,
    size, modification time in ns, inode and device), so a file that has not changed is not
    read again: a cached load of a 544 MB edge list spent 0.4 of its 0.5 s hashing. The memo
    is trusted like ``make`` trusts timestamps; a file rewritten with the same size within the
    same nanosecond timestamp would keep its old digest. A missing, unreadable or malformed
    memo entry is recomputed; a failure to write one is ignored.
    """
    memo = None
    if memo_dir is not None:
        st = os.stat(path)
        ident = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        name = hashlib.blake2b(repr(ident).encode(), digest_size=16).hexdigest()
        memo = Path(memo_dir) / f"{name}.digest"
        try:
            known = memo.read_text().strip()
            if len(known) == 40 and all(c in "0123456789abcdef" for c in known):
                return known
        except OSError:
            pass
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    digest = h.hexdigest()
    if memo is not None:
        tmp_name = None
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=memo.name + ".", suffix=".tmp", dir=memo.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(digest)
            os.replace(tmp_name, memo)
            tmp_name = None
        except OSError:
            pass
        finally:
            if tmp_name is not None and os.path.exists(tmp_name):
                os.unlink(tmp_name)
    return digest


def cache_key(*parts: object) -> str:
    """A short hex key from the ``repr`` of ``parts`` (include file digests and options)."""
    return hashlib.blake2b(repr((CACHE_VERSION, *parts)).encode(), digest_size=16).hexdigest()


def load_cache(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Load a cache entry written by :func:`save_cache`.

    Returns:
        The arrays, or ``None`` when there is no entry or the entry is unreadable or lacks one of
        ``keys`` (a warning is emitted in that case and the caller recomputes).
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {k: npz[k] for k in keys}
    except Exception as exc:  # any corruption: recompute rather than fail
        warnings.warn(
            f"ignoring unreadable cache file {path} ({type(exc).__name__}: {exc}); recomputing",
            stacklevel=3,
        )
        return None
    return out


def save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as ``.npz`` atomically (temporary file, then ``os.replace``).

    A failure to write (read-only or full disk) only warns: the cache is an optimisation.
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        warnings.warn(f"could not write cache file {path}: {exc}", stacklevel=3)
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)
