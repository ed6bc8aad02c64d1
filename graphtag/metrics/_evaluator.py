"""Per-task ROC-AUC, average precision and F1 of multi-label node predictions, vectorised.

Every metric is computed for all tasks at once from one descending sort of each score column:
masked-out entries are moved behind the labelled ones, ties are grouped (a tie group counts as
one threshold, as in scikit-learn), and the per-task sums are read off cumulative counts.
:func:`roc_auc_scores` alone (what training computes on validation every epoch) skips the
unlabelled entries: one sort of the labelled ``(task, score)`` pairs, so its cost follows the
labelled pairs rather than ``N x T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import GraphtagError

__all__ = ["Evaluator", "roc_auc_scores", "tune_thresholds"]


def _as_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError) as exc:
        raise GraphtagError(
            f"{name} must be an array or tensor, got {type(value).__name__}"
        ) from exc


def _check(
    y_true: Any, y_score: Any, mask: Any, *, float64: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate shapes and return ``(y bool, score, mask bool)``, all ``[N, T]``.

    ``score`` is float64, or with ``float64=False`` float32 when the scores are float32 or
    narrower (exact, and half the memory of a float64 copy).
    """
    y = _as_tensor(y_true, "y_true")
    s = _as_tensor(y_score, "y_score")
    m = _as_tensor(mask, "mask")
    if y.dim() != 2:
        raise GraphtagError(f"y_true must have shape [N, T], got {tuple(y.shape)}")
    if s.shape != y.shape or m.shape != y.shape:
        raise GraphtagError(
            f"shape mismatch: y_true {tuple(y.shape)}, y_score {tuple(s.shape)}, "
            f"mask {tuple(m.shape)}; all three must be [N, T]"
        )
    if m.dtype != torch.bool:
        raise GraphtagError(f"mask must be a bool tensor [N, T], got {m.dtype}")
    narrow = s.dtype in (torch.float32, torch.float16, torch.bfloat16)
    s = s.to(torch.float32 if narrow and not float64 else torch.float64)
    nan = torch.isnan(s) & m
    if nan.any():
        i, t = (int(v) for v in nan.nonzero()[0])
        raise GraphtagError(f"y_score is NaN at node {i}, task {t}; scores must be numbers")
    if y.dtype == torch.bool:
        return y, s, m
    bad = m & (y != 0) & (y != 1)
    if bad.any():
        i, t = (int(v) for v in bad.nonzero()[0])
        raise GraphtagError(f"y_true[{i}, {t}] = {float(y[i, t])!r}; labels must be 0 or 1")
    return y == 1, s, m


@dataclass
class _Sorted:
    """Score columns sorted descending with labelled rows first, and tie-group bookkeeping."""

    score: Tensor  # [N, T] float64 sorted scores
    pos: Tensor  # [N, T] float64, 1 for labelled positives
    labelled: Tensor  # [N, T] bool
    group_end: Tensor  # [N, T] int64, last index of each entry's tie group
    is_end: Tensor  # [N, T] bool, entry is the last of its tie group (and labelled)
    tp: Tensor  # [N, T] float64 cumulative labelled positives
    num_pos: Tensor  # [T] float64
    num_labelled: Tensor  # [T] float64


def _sort(y: Tensor, s: Tensor, m: Tensor) -> _Sorted:
    n = y.size(0)
    # One descending sort with the unlabelled rows keyed -inf and labelled -inf scores lifted to
    # the lowest finite float64: labelled rows come first, in score order.
    lowest = torch.finfo(torch.float64).min
    key = torch.where(m, s.clamp(min=lowest), torch.full_like(s, -math.inf))
    ss, order = torch.sort(key, dim=0, descending=True)
    sm = m.gather(0, order)
    sp = (y.gather(0, order) & sm).to(torch.float64)
    idx = torch.arange(n).unsqueeze(1).expand_as(ss)
    same_as_next = torch.zeros_like(sm)
    if n > 1:
        same_as_next[:-1] = (ss[:-1] == ss[1:]) & sm[:-1] & sm[1:]
    is_end = ~same_as_next & sm
    end_at = torch.where(same_as_next, torch.full_like(idx, n), idx)
    group_end = torch.flip(torch.cummin(torch.flip(end_at, [0]), dim=0).values, [0])
    tp = torch.cumsum(sp, dim=0)
    return _Sorted(ss, sp, sm, group_end, is_end, tp, sp.sum(0), sm.sum(0).to(torch.float64))


def _defined(st: _Sorted) -> Tensor:
    return (st.num_pos > 0) & (st.num_pos < st.num_labelled)


def _auc(st: _Sorted) -> Tensor:
    n = st.score.size(0)
    idx = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    # Average descending rank (1-based) of each entry's tie group.
    start = torch.cummax(
        torch.where(
            torch.cat([torch.ones_like(st.labelled[:1]), st.is_end[:-1] | ~st.labelled[:-1]]),
            idx.expand_as(st.score),
            torch.zeros_like(st.score),
        ),
        dim=0,
    ).values
    rank_desc = (start + st.group_end.to(torch.float64)) / 2 + 1
    p, total = st.num_pos, st.num_labelled
    neg = total - p
    # Ascending rank = total + 1 - descending rank; Mann-Whitney U of the positives.
    rank_sum = p * (total + 1) - (rank_desc * st.pos).sum(0)
    auc = (rank_sum - p * (p + 1) / 2) / (p * neg)
    return torch.where(_defined(st), auc, torch.full_like(auc, math.nan))


def _ap(st: _Sorted) -> Tensor:
    tp_end = st.tp.gather(0, st.group_end)
    precision = tp_end / (st.group_end + 1).to(torch.float64)
    ap = (precision * st.pos).sum(0) / st.num_pos
    return torch.where(_defined(st), ap, torch.full_like(ap, math.nan))


def _f1(y: Tensor, s: Tensor, m: Tensor, thresholds: Tensor, defined: Tensor) -> Tensor:
    pred = s > thresholds.to(torch.float64).unsqueeze(0)
    tp = (pred & y & m).sum(0).to(torch.float64)
    fp = (pred & ~y & m).sum(0).to(torch.float64)
    fn = (~pred & y & m).sum(0).to(torch.float64)
    f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    return torch.where(defined, f1, torch.full_like(f1, math.nan))


def roc_auc_scores(y_true: Any, y_score: Any, mask: Any) -> Tensor:
    """Per-task ROC-AUC over the labelled rows of each task.

    Args:
        y_true: ``[N, T]`` labels in {0, 1}.
        y_score: ``[N, T]`` scores (logits or probabilities).
        mask: bool ``[N, T]``, which (node, task) pairs count.

    Returns:
        float64 ``[T]``; NaN where a task's labelled rows lack one of the classes.

    Example:
        >>> y = torch.tensor([[0.0], [1.0], [1.0]])
        >>> s = torch.tensor([[0.1], [0.9], [0.1]])
        >>> roc_auc_scores(y, s, torch.ones(3, 1, dtype=torch.bool))
        tensor([0.7500], dtype=torch.float64)
    """
    return _auc_labelled(*_check(y_true, y_score, mask, float64=False))


def _labelled_order(s: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The labelled entries of ``m`` sorted by ``(task, score)`` ascending.

    Returns ``(task, node, score)`` of the ``R`` labelled entries, each ``[R]``. Scores of at
    most float32 precision are sorted with one int64 sort of ``task << 32 | key(score)``, where
    ``key`` maps a float32's bit pattern to an unsigned integer of the same order (negative
    floats: all bits flipped; others: the sign bit set; ``-0.0`` is first made ``+0.0``).
    float64 scores take two stable sorts (by score, then by task).
    """
    task, node = m.t().nonzero(as_tuple=True)  # ordered by (task, node)
    if s.dtype == torch.float64:
        sc = s.t()[task, node]
        order = torch.argsort(sc, stable=True)
        order = order[torch.argsort(task[order], stable=True)]
        return task[order], node[order], sc[order]
    sc = s.t()[task, node] + 0.0  # float32; -0.0 + 0.0 == +0.0
    bits = sc.view(torch.int32).to(torch.int64)
    key = torch.where(bits < 0, ~bits & 0xFFFFFFFF, bits | 0x80000000)
    order = torch.argsort((task << 32) | key)
    return task[order], node[order], sc[order].to(torch.float64)


def _auc_labelled(y: Tensor, s: Tensor, m: Tensor) -> Tensor:
    """Per-task ROC-AUC (Mann-Whitney U with average ranks for ties) of the labelled entries.

    Works on the ``R`` labelled entries only (memory and time ``O(R log R)``, independent of
    the unlabelled ones), so validating a model whose tasks each label a fifth of the nodes
    costs a fifth of a dense per-column sort. Device-agnostic: training calls it on the model's
    device with trusted inputs (no validation copies to the CPU).

    Args:
        y: bool ``[N, T]`` labels.
        s: ``[N, T]`` float64 or float32 scores (float32: sorted exactly by bit pattern).
        m: bool ``[N, T]``.

    Returns:
        float64 ``[T]``; NaN where a task lacks one of the classes.
    """
    num_tasks = m.size(1)
    dev = m.device
    task, node, sc = _labelled_order(s, m)
    pos = y.t()[task, node]
    count = torch.bincount(task, minlength=num_tasks)
    p = torch.bincount(task[pos], minlength=num_tasks).to(torch.float64)
    neg = count.to(torch.float64) - p
    total = sc.numel()
    if total == 0:
        return torch.full((num_tasks,), math.nan, dtype=torch.float64, device=dev)
    # Tie groups: runs of equal (task, score); each member gets the group's average rank. Twice
    # the average rank is an integer, so the rank sums are exact int64 sums: the same on every
    # device and in every summation order (float64 atomics on CUDA are not).
    new = torch.ones(total, dtype=torch.bool, device=dev)
    new[1:] = (task[1:] != task[:-1]) | (sc[1:] != sc[:-1])
    first = torch.nonzero(new).flatten()
    last = torch.cat([first[1:], first.new_tensor([total])]) - 1
    task_start = torch.cumsum(count, 0) - count
    twice_rank = (first + last + 2 - 2 * task_start[task[first]])[torch.cumsum(new, 0) - 1]
    twice_sum = torch.zeros(num_tasks, dtype=torch.int64, device=dev)
    twice_sum.index_add_(0, task[pos], twice_rank[pos])
    auc = (twice_sum.to(torch.float64) / 2 - p * (p + 1) / 2) / (p * neg)
    return torch.where((p > 0) & (neg > 0), auc, torch.full_like(auc, math.nan))


def tune_thresholds(y_true: Any, y_score: Any, mask: Any) -> Tensor:
    """Per-task score threshold maximising F1 on the labelled rows (e.g. the validation mask).

    Every distinct score is a candidate cut (predict positive when ``score > threshold``). The
    returned threshold lies midway between the lowest score predicted positive and the next
    lower labelled score (or 1 below the lowest score when every row is predicted positive), so
    it transfers to unseen scores without favouring either side. Ties in F1 go to the highest
    threshold. Tasks without a labelled positive get threshold ``0`` (the logit-0 default).

    Args:
        y_true: ``[N, T]`` labels in {0, 1}.
        y_score: ``[N, T]`` scores.
        mask: bool ``[N, T]``.

    Returns:
        float64 ``[T]`` thresholds on the score scale.

    Example:
        >>> y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
        >>> s = torch.tensor([[-2.0], [3.0], [1.0], [0.5]])
        >>> tune_thresholds(y, s, torch.ones(4, 1, dtype=torch.bool))
        tensor([0.7500], dtype=torch.float64)
    """
    st = _sort(*_check(y_true, y_score, mask))
    n = st.score.size(0)
    if n == 0:
        return torch.zeros(st.score.size(1), dtype=torch.float64)
    count = torch.arange(1, n + 1, dtype=torch.float64).unsqueeze(1)
    f1 = 2 * st.tp / (count + st.num_pos)
    f1 = torch.where(st.is_end, f1, torch.full_like(f1, -1.0))
    best = f1.argmax(dim=0, keepdim=True)
    cut = st.score.gather(0, best).squeeze(0)
    nxt_idx = (best + 1).clamp(max=n - 1)
    has_next = ((best + 1) < n).squeeze(0) & st.labelled.gather(0, nxt_idx).squeeze(0)
    nxt = torch.where(has_next, st.score.gather(0, nxt_idx).squeeze(0), cut - 2.0)
    thr = (cut + nxt) / 2
    # Infinite scores: fall back to the cut itself minus a margin that keeps the order.
    thr = torch.where(torch.isfinite(thr), thr, cut - 1.0)
    return torch.where(st.num_pos > 0, thr, torch.zeros_like(thr))


class Evaluator:
    """Per-task and macro ROC-AUC, average precision and F1 of multi-label predictions.

    A task counts towards a macro mean only when its labelled rows contain both classes;
    otherwise all its metrics are NaN and it is listed under ``"skipped"``. F1 predicts
    positive when ``score > threshold`` (``threshold = 0`` on logits is probability 0.5).

    Args:
        threshold: Default decision threshold of ``"f1"`` on the score scale.

    Example:
        >>> y = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
        >>> s = torch.tensor([[-1.0, 2.0], [2.0, 0.5], [0.5, -3.0]])
        >>> out = Evaluator().evaluate(y, s, torch.ones(3, 2, dtype=torch.bool))
        >>> out["auc"], out["macro_auc"]
        ([1.0, 1.0], 1.0)
    """

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = threshold

    def evaluate(
        self, y_true: Any, y_score: Any, mask: Any, thresholds: Any | None = None
    ) -> dict[str, Any]:
        """Score ``y_score`` against ``y_true`` on the labelled ``mask`` of every task.

        Args:
            y_true: ``[N, T]`` labels in {0, 1} (tensor or array).
            y_score: ``[N, T]`` scores, e.g. logits.
            mask: bool ``[N, T]``, which (node, task) pairs count (e.g. ``data.test_mask``).
            thresholds: Optional ``[T]`` per-task thresholds (e.g. from :func:`tune_thresholds`
                on validation); adds ``"f1_tuned"`` and ``"macro_f1_tuned"``.

        Returns:
            Dict with per-task lists ``"auc"``, ``"ap"``, ``"f1"``, (``"f1_tuned"``),
            ``"num_pos"``, ``"num_neg"`` (labelled counts), macro means ``"macro_auc"``,
            ``"macro_ap"``, ``"macro_f1"`` (``"macro_f1_tuned"``) over defined tasks (NaN when
            none is), and ``"skipped"``, the tasks without both classes.

        Raises:
            GraphtagError: For mismatched shapes, a non-bool mask, NaN scores or non-binary
                labels.
        """
        y, s, m = _check(y_true, y_score, mask)
        st = _sort(y, s, m)
        defined = _defined(st)
        num_tasks = y.size(1)
        metrics: dict[str, Tensor] = {
            "auc": _auc(st),
            "ap": _ap(st),
            "f1": _f1(y, s, m, torch.full((num_tasks,), float(self.threshold)), defined),
        }
        if thresholds is not None:
            thr = _as_tensor(thresholds, "thresholds").to(torch.float64).flatten()
            if thr.numel() != num_tasks:
                raise GraphtagError(
                    f"shape mismatch: thresholds {tuple(thr.shape)}, y_true {tuple(y.shape)}; "
                    f"give one threshold per task ({num_tasks})"
                )
            metrics["f1_tuned"] = _f1(y, s, m, thr, defined)
        out: dict[str, Any] = {k: v.tolist() for k, v in metrics.items()}
        out["num_pos"] = [int(v) for v in st.num_pos.tolist()]
        out["num_neg"] = [int(v) for v in (st.num_labelled - st.num_pos).tolist()]
        for k, v in metrics.items():
            out[f"macro_{k}"] = float(v[defined].mean()) if bool(defined.any()) else math.nan
        out["skipped"] = torch.nonzero(~defined).flatten().tolist()
        return out
