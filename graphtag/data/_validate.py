"""Labels and split masks in PyG's shapes, checked and normalised to graphtag's contract.

PyG datasets and transforms (``RandomNodeSplit``) give one boolean mask per split of shape
``[N]`` and labels ``y`` of any numeric dtype; graphtag's estimators work per (node, task):
``y`` float ``[N, T]`` in {0, 1} and bool masks ``[N, T]``. :func:`check_labels` and
:func:`as_multilabel` accept both shapes, refuse what would give silent nonsense (labels
outside {0, 1} or NaN on labelled rows, masks of the wrong shape or dtype, a (node, task) in
two splits) with a :class:`~graphtag.errors.GraphtagError` naming the field, what was found and
the fix, and return normalised views without copying what is already in graphtag's shape.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import GraphtagError

__all__ = ["SPLIT_MASKS", "as_multilabel", "check_labels"]

#: Names of the split masks, in PyG's vocabulary.
SPLIT_MASKS = ("train_mask", "val_mask", "test_mask")
_BLOCK = 1 << 22  # (node, task) entries per block of the value and overlap checks


def _shape(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{str(value.dtype).replace('torch.', '')} {list(value.shape)}"
    return type(value).__name__


def _labels(y: object, where: str) -> Tensor:
    """``y`` as a float ``[N, T]`` tensor (``[N]`` is one task); dtype and rank checked."""
    if not isinstance(y, Tensor):
        raise GraphtagError(
            f"{where}: y must be a tensor [N] or [N, T] of 0/1 labels, got {_shape(y)}"
        )
    if y.dim() not in (1, 2) or y.size(0) == 0 or (y.dim() == 2 and y.size(1) == 0):
        raise GraphtagError(
            f"{where}: y must have shape [N] (one task) or [N, T] (one column per task), got "
            f"{_shape(y)}"
        )
    if y.is_complex():
        raise GraphtagError(f"{where}: y must hold real 0/1 labels, got {_shape(y)}")
    if y.dim() == 1:
        y = y.unsqueeze(1)
    return y if y.dtype == torch.float32 else y.to(torch.float32)


def _mask(name: str, mask: object, num_nodes: int, num_tasks: int, where: str) -> Tensor:
    """A bool ``[N, T]`` view of a ``[N]`` or ``[N, T]`` mask."""
    hint = (
        f"{name} must be a bool tensor [N] = [{num_nodes}] (one flag per node, as PyG's "
        f"RandomNodeSplit makes) or [N, T] = [{num_nodes}, {num_tasks}] (one flag per node "
        "and task)"
    )
    if not isinstance(mask, Tensor):
        raise GraphtagError(f"{where}: {hint}, got {_shape(mask)}")
    if mask.dtype != torch.bool:
        fix = (
            "; for node indices use torch_geometric.utils.index_to_mask(idx, size=N)"
            if not mask.is_floating_point()
            else "; convert it with mask.bool()"
        )
        raise GraphtagError(f"{where}: {hint}, got {_shape(mask)}{fix}")
    if mask.dim() == 1 and mask.size(0) == num_nodes:
        return mask.unsqueeze(1).expand(num_nodes, num_tasks)
    if tuple(mask.shape) == (num_nodes, num_tasks):
        return mask
    raise GraphtagError(f"{where}: {hint}, got {_shape(mask)}; y is [{num_nodes}, {num_tasks}]")


def _first(bad: Tensor, lo: int) -> str:
    node, task = (int(v) for v in torch.nonzero(bad)[0])
    return f"node {lo + node}, task {task}"


def _check_values(y: Tensor, masks: dict[str, Tensor], where: str) -> None:
    """Labelled entries are 0 or 1 and no (node, task) is in two splits (blockwise)."""
    num_nodes, num_tasks = y.shape
    rows = max(1, _BLOCK // max(num_tasks, 1))
    names = list(masks)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    nan_count, bad_count, overlap = 0, 0, dict.fromkeys(pairs, 0)
    nan_at = bad_at = ""
    overlap_at: dict[tuple[str, str], str] = {}
    bad_value = 0.0
    for lo in range(0, num_nodes, rows):
        yb = y[lo : lo + rows]
        mb = {k: m[lo : lo + rows] for k, m in masks.items()}
        labelled = torch.zeros_like(yb, dtype=torch.bool)
        for m in mb.values():
            labelled |= m
        nan = labelled & torch.isnan(yb)
        bad = labelled & ~nan & (yb != 0) & (yb != 1)
        if bool(nan.any()):
            nan_at = nan_at or _first(nan, lo)
            nan_count += int(nan.sum())
        if bool(bad.any()):
            if not bad_at:
                bad_at, bad_value = _first(bad, lo), float(yb[bad][0])
            bad_count += int(bad.sum())
        for a, b in pairs:
            both = mb[a] & mb[b]
            if bool(both.any()):
                overlap_at.setdefault((a, b), _first(both, lo))
                overlap[(a, b)] += int(both.sum())
    if bad_count:
        shown = int(bad_value) if bad_value.is_integer() else bad_value
        raise GraphtagError(
            f"{where}: y has value {shown} at {bad_at} ({bad_count} labelled (node, task) "
            "entries outside {0, 1}); graphtag needs binary labels per task: y [N, T] of 0/1 "
            "(for a multi-class y [N] use torch.nn.functional.one_hot(y).float())"
        )
    if nan_count:
        raise GraphtagError(
            f"{where}: y is NaN at {nan_count} labelled (node, task) entries (first: {nan_at}); "
            "unlabelled entries must be left out of the masks: use per-task masks [N, T], e.g. "
            "train_mask = train_mask[:, None] & ~y.isnan()"
        )
    for (a, b), count in overlap.items():
        if count:
            raise GraphtagError(
                f"{where}: {a} and {b} overlap at {count} (node, task) entries (first: "
                f"{overlap_at[(a, b)]}); a labelled (node, task) may be in one split only"
            )


def check_labels(
    y: Tensor, masks: Mapping[str, Tensor], *, where: str = "graphtag"
) -> tuple[Tensor, dict[str, Tensor]]:
    """Check labels and split masks; return them as float ``[N, T]`` and bool ``[N, T]``.

    Args:
        y: ``[N]`` (one task) or ``[N, T]`` labels of any real dtype (float, int, bool).
        masks: ``{name: mask}`` with bool ``[N]`` (the same nodes for every task) or
            ``[N, T]`` masks, e.g. ``{"train_mask": ..., "val_mask": ...}``.
        where: The calling function, named in error messages.

    Returns:
        ``(y, masks)``: ``y`` float32 ``[N, T]`` (the same tensor when it already is) and bool
        ``[N, T]`` masks (``[N]`` ones expanded as views, without copies).

    Raises:
        GraphtagError: When ``y`` is not ``[N]`` / ``[N, T]``, a mask is not bool ``[N]`` /
            ``[N, T]``, a labelled entry (in some mask) is NaN or not 0/1, or two masks share a
            (node, task).

    Example:
        >>> y = torch.tensor([0, 1, 1, 0])
        >>> train = torch.tensor([True, True, False, False])
        >>> y2, m = check_labels(y, {"train_mask": train, "val_mask": ~train})
        >>> y2.dtype, tuple(m["train_mask"].shape)
        (torch.float32, (4, 1))
    """
    y = _labels(y, where)
    num_nodes, num_tasks = y.shape
    out = {name: _mask(name, m, num_nodes, num_tasks, where) for name, m in masks.items()}
    _check_values(y, out, where)
    return y, out


def as_multilabel(
    data: Any, masks: Sequence[str] = ("train_mask", "val_mask"), *, where: str = "graphtag"
) -> Any:
    """A shallow copy of ``data`` whose ``y`` and ``masks`` are in graphtag's shape.

    ``data`` itself is not modified; tensors already in graphtag's shape are shared, not
    copied. Masks not listed in ``masks`` but present (e.g. ``test_mask``) are normalised and
    checked for overlap too.

    Args:
        data: A :class:`torch_geometric.data.Data` with ``y`` and the masks in ``masks``.
        masks: The split masks the caller needs.
        where: The calling function, named in error messages.

    Returns:
        A ``Data`` with ``y`` float32 ``[N, T]`` and bool ``[N, T]`` split masks.

    Raises:
        GraphtagError: When ``data`` has no ``y`` or a needed mask, or on any defect listed in
            :func:`check_labels`; also when ``x`` has another number of rows than ``y``.

    Example:
        >>> from torch_geometric.data import Data
        >>> d = Data(y=torch.tensor([0, 1, 1]), train_mask=torch.tensor([True, True, False]),
        ...          val_mask=torch.tensor([False, False, True]))
        >>> out = as_multilabel(d)
        >>> out.y.shape, out.val_mask.shape, d.y.dtype
        (torch.Size([3, 1]), torch.Size([3, 1]), torch.int64)
    """
    if not hasattr(data, "y") or not callable(getattr(data, "get", None)):
        raise GraphtagError(
            f"{where}: data must be a torch_geometric.data.Data with y and "
            f"{', '.join(masks)}, got {type(data).__name__}"
        )
    if data.get("y") is None:
        raise GraphtagError(
            f"{where}: data has no y; set data.y to the 0/1 labels [N, T] (one column per task)"
        )
    found = {}
    for name in SPLIT_MASKS + tuple(m for m in masks if m not in SPLIT_MASKS):
        value = data.get(name)
        if value is None:
            if name in masks:
                raise GraphtagError(
                    f"{where}: data has no {name}; set it to a bool mask [N] or [N, T] (e.g. "
                    "with torch_geometric.transforms.RandomNodeSplit)"
                )
            continue
        found[name] = value
    y, normalised = check_labels(data.y, found, where=where)
    x = data.get("x")
    if isinstance(x, Tensor) and x.dim() >= 1 and x.size(0) != y.size(0):
        raise GraphtagError(
            f"{where}: data.x has {x.size(0)} rows but y has {y.size(0)}; they must describe "
            "the same nodes"
        )
    out = copy.copy(data)
    out.y = y
    for name, mask in normalised.items():
        out[name] = mask
    return out
