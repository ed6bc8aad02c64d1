"""Evaluator and tune_thresholds against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from graphtag.errors import GraphtagError
from graphtag.metrics import Evaluator, roc_auc_scores, tune_thresholds


def _random(seed, n=150, t=6, ties=True):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, t, generator=g) < 0.3).float()
    s = torch.randn(n, t, generator=g) + y
    if ties:
        s = torch.round(s * 2) / 2  # many tied scores
    m = torch.rand(n, t, generator=g) < 0.7
    return y, s, m


def test_hand_computed_example():
    # Task 0: scores 3 (pos), 1 (pos), 1 (neg), -1 (neg), -2 (unlabelled pos).
    y = torch.tensor([[1.0], [1.0], [0.0], [0.0], [1.0]])
    s = torch.tensor([[3.0], [1.0], [1.0], [-1.0], [-2.0]])
    m = torch.tensor([[True], [True], [True], [True], [False]])
    out = Evaluator().evaluate(y, s, m, thresholds=torch.tensor([2.0]))
    # AUC: pairs (3,1n)=1, (3,-1)=1, (1p,1n)=0.5, (1p,-1)=1 -> 3.5 / 4.
    assert out["auc"] == [0.875] and out["macro_auc"] == 0.875
    # AP: thresholds 3 -> P=1, R=1/2; 1 -> P=2/3, R=1 -> 1/2 * 1 + 1/2 * 2/3.
    assert out["ap"][0] == pytest.approx(0.5 + 1 / 3)
    # F1 at 0: predicted {3, 1p, 1n}: tp=2, fp=1, fn=0 -> 4/5. At 2: tp=1, fn=1 -> 2/3.
    assert out["f1"][0] == pytest.approx(0.8)
    assert out["f1_tuned"][0] == pytest.approx(2 / 3)
    assert out["num_pos"] == [2] and out["num_neg"] == [2] and out["skipped"] == []


@pytest.mark.parametrize("seed", range(4))
def test_matches_sklearn_with_ties_and_masks(seed):
    y, s, m = _random(seed)
    thr = torch.linspace(-0.5, 0.5, y.size(1))
    out = Evaluator().evaluate(y, s, m, thresholds=thr)
    for t in range(y.size(1)):
        yt, st = y[m[:, t], t].numpy(), s[m[:, t], t].numpy()
        assert out["auc"][t] == pytest.approx(roc_auc_score(yt, st), abs=1e-12)
        assert out["ap"][t] == pytest.approx(average_precision_score(yt, st), abs=1e-12)
        assert out["f1"][t] == pytest.approx(f1_score(yt, st > 0), abs=1e-12)
        assert out["f1_tuned"][t] == pytest.approx(f1_score(yt, st > thr[t].item()), abs=1e-12)
        assert out["num_pos"][t] == int(yt.sum())
    assert out["macro_auc"] == pytest.approx(np.mean(out["auc"]))
    assert out["macro_f1_tuned"] == pytest.approx(np.mean(out["f1_tuned"]))
    torch.testing.assert_close(
        roc_auc_scores(y, s, m), torch.tensor(out["auc"], dtype=torch.float64)
    )


def test_undefined_tasks_are_nan_and_skipped():
    y, s, m = _random(0, t=4)
    y[:, 1] = 0  # no positives
    m[:, 3] &= y[:, 3] == 1  # only positives labelled
    out = Evaluator().evaluate(y, s, m)
    assert out["skipped"] == [1, 3]
    for key in ("auc", "ap", "f1"):
        assert math.isnan(out[key][1]) and math.isnan(out[key][3])
        assert out[f"macro_{key}"] == pytest.approx(np.mean([out[key][0], out[key][2]]))
    assert "f1_tuned" not in out and "macro_f1_tuned" not in out
    none = Evaluator().evaluate(y[:, 1:2], s[:, 1:2], m[:, 1:2])
    assert math.isnan(none["macro_auc"]) and none["skipped"] == [0]


def test_perfect_and_reversed_scores():
    y = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    m = torch.ones(4, 1, dtype=torch.bool)
    good = Evaluator().evaluate(y, torch.tensor([[-2.0], [-1.0], [1.0], [2.0]]), m)
    bad = Evaluator().evaluate(y, torch.tensor([[2.0], [1.0], [-1.0], [-2.0]]), m)
    assert (good["auc"], good["ap"], good["f1"]) == ([1.0], [1.0], [1.0])
    assert bad["auc"] == [0.0] and bad["f1"] == [0.0]
    same = Evaluator().evaluate(y, torch.zeros(4, 1), m)
    assert same["auc"] == [0.5] and same["ap"] == [0.5]


@pytest.mark.parametrize("seed", range(4))
def test_tune_thresholds_reaches_the_best_f1(seed):
    y, s, m = _random(seed)
    thr = tune_thresholds(y, s, m)
    for t in range(y.size(1)):
        yt, st = y[m[:, t], t].numpy(), s[m[:, t], t].numpy()
        best = max(f1_score(yt, st >= c, zero_division=0) for c in np.unique(st))
        got = f1_score(yt, st > thr[t].item(), zero_division=0)
        assert got == pytest.approx(best, abs=1e-12)
        # Midway between two distinct scores: no labelled score sits on the threshold.
        assert not np.any(st == thr[t].item())


def test_tune_thresholds_hand_example_and_edge_cases():
    y = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    s = torch.tensor([[-2.0, 1.0, 4.0], [3.0, 2.0, 5.0], [1.0, 3.0, 6.0], [0.5, 4.0, 7.0]])
    thr = tune_thresholds(y, s, torch.ones(4, 3, dtype=torch.bool))
    # Task 0: best cut keeps {3, 1} (F1 = 1), midway to 0.5. Task 1: no positive -> 0.
    # Task 2: all positive -> predict everything: 1 below the lowest score (4).
    assert thr.tolist() == [0.75, 0.0, 3.0]


def test_shape_and_value_errors():
    y, s, m = _random(0, n=10, t=3)
    with pytest.raises(GraphtagError, match=r"y_true \(10, 3\), y_score \(10, 2\), mask \(10, 3\)"):
        Evaluator().evaluate(y, s[:, :2], m)
    with pytest.raises(GraphtagError, match=r"thresholds \(2,\), y_true \(10, 3\)"):
        Evaluator().evaluate(y, s, m, thresholds=torch.zeros(2))
    with pytest.raises(GraphtagError, match="mask must be a bool tensor"):
        Evaluator().evaluate(y, s, m.float())
    s_nan = s.clone()
    s_nan[2, 1] = math.nan
    m[2, 1] = True
    with pytest.raises(GraphtagError, match="y_score is NaN at node 2, task 1"):
        Evaluator().evaluate(y, s_nan, m)
    y_bad = y.clone()
    y_bad[4, 0] = 0.5
    m[4, 0] = True
    with pytest.raises(GraphtagError, match=r"y_true\[4, 0\] = 0.5"):
        Evaluator().evaluate(y_bad, s, m)
    with pytest.raises(GraphtagError, match=r"y_true must have shape \[N, T\], got \(10,\)"):
        Evaluator().evaluate(y[:, 0], s[:, 0], m[:, 0])


def test_accepts_numpy_arrays():
    y, s, m = _random(1)
    a = Evaluator().evaluate(y.numpy(), s.numpy(), m.numpy())
    b = Evaluator().evaluate(y, s, m)
    assert a == b


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64])
@pytest.mark.parametrize("seed", range(3))
def test_roc_auc_scores_matches_sklearn_for_every_score_dtype(dtype, seed):
    # The labelled-entries path: float32 and narrower sort by bit pattern, float64 (and
    # integers) by two stable sorts. Negative, zero (both signs), tied and infinite scores.
    y, s, m = _random(seed, n=200, t=7)
    s[:5, 0] = -0.0
    s[5:10, 0] = 0.0
    s[10, 1], s[11, 1] = math.inf, -math.inf
    s = (s * 4).round().to(dtype) if dtype == torch.int64 else s.to(dtype)
    s[12, 2] = 1e-40 if dtype != torch.int64 else 0  # subnormal in float32
    y[:, 3] = 0  # no positive: undefined
    got = roc_auc_scores(y, s, m)
    for t in range(y.size(1)):
        yt, st = y[m[:, t], t].numpy(), s[m[:, t], t].double().numpy()
        st = rankdata(st)  # same order and ties; scikit-learn refuses infinite scores
        if t == 3:
            assert math.isnan(got[t])
        else:
            assert got[t].item() == pytest.approx(roc_auc_score(yt, st), abs=1e-12)


def test_roc_auc_scores_keeps_float64_resolution():
    # Two float64 scores that round to the same float32 must not be tied.
    y = torch.tensor([[1.0], [0.0]])
    s = torch.tensor([[1.0 + 1e-12], [1.0]], dtype=torch.float64)
    assert roc_auc_scores(y, s, torch.ones(2, 1, dtype=torch.bool)).tolist() == [1.0]


def test_roc_auc_scores_without_labelled_entries_is_nan():
    y, s = torch.ones(3, 2), torch.zeros(3, 2)
    assert roc_auc_scores(y, s, torch.zeros(3, 2, dtype=torch.bool)).isnan().all()
    assert roc_auc_scores(y[:0], s[:0], torch.zeros(0, 2, dtype=torch.bool)).isnan().all()
