"""masked_bce and per_task_bce against hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from graphtag.errors import GraphtagError
from graphtag.training import masked_bce, per_task_bce


def _bce(z, y):
    p = 1 / (1 + math.exp(-z))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_masked_bce_hand_computed():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0], [-2.0, 0.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([[True, False], [True, True], [False, True]])
    expected = (_bce(2.0, 1) + _bce(0.5, 0) + _bce(3.0, 1) + _bce(0.0, 1)) / 4
    assert masked_bce(logits, y, mask).item() == pytest.approx(expected, rel=1e-6)
    per = per_task_bce(logits, y, mask)
    assert per[0].item() == pytest.approx((_bce(2.0, 1) + _bce(0.5, 0)) / 2, rel=1e-6)
    assert per[1].item() == pytest.approx((_bce(3.0, 1) + _bce(0.0, 1)) / 2, rel=1e-6)


def test_unlabelled_pairs_get_no_gradient_and_empty_task_is_nan():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[True, False], [False, False]])
    masked_bce(logits, y, mask).backward()
    assert logits.grad[0, 0] != 0
    assert logits.grad.flatten()[1:].eq(0).all()
    assert math.isnan(per_task_bce(logits, y, mask)[1].item())
    empty = masked_bce(logits, y, torch.zeros(2, 2, dtype=torch.bool))
    assert empty.item() == 0.0 and empty.requires_grad


def test_extreme_logits_stay_finite():
    logits = torch.tensor([[80.0, -80.0]])
    y = torch.tensor([[0.0, 1.0]])
    loss = masked_bce(logits, y, torch.ones(1, 2, dtype=torch.bool))
    assert loss.item() == pytest.approx(80.0)


def test_loss_shape_errors():
    with pytest.raises(GraphtagError, match=r"logits \(2, 3\), y \(2, 2\), mask \(2, 2\)"):
        masked_bce(torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(GraphtagError, match="mask must be a bool tensor"):
        per_task_bce(torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 2))
