"""estimate_scores: surrogate validation loss and ROC-AUC equal a brute-force computation."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from graphtag.errors import GraphtagError
from graphtag.estimation import (
    estimate_losses,
    estimate_scores,
    fit_surrogates,
    make_synthetic_features,
)
from graphtag.gradients import VAL


def test_scores_equal_brute_force_per_subset_and_task():
    feats = make_synthetic_features(num_tasks=5, num_groups=2, dim=6, seed=3)
    subsets = [(0, 1, 2), (3, 4), (1,), (0, 4)]
    w = fit_surrogates(feats, subsets, 0.1).weights
    losses, auc = estimate_scores(feats, subsets, w, batch_size=2)
    assert torch.equal(losses.isnan(), estimate_losses(feats, subsets, w).isnan())
    assert torch.allclose(losses, estimate_losses(feats, subsets, w), equal_nan=True)
    val = feats.split == VAL
    for k, s in enumerate(subsets):
        for t in range(5):
            if t not in s:
                assert auc[k, t].isnan()
                continue
            rows = val & (feats.task == t)
            z = feats.offsets[rows].double() + feats.features[rows].double() @ w[k]
            y = feats.labels[rows].numpy()
            assert auc[k, t].item() == pytest.approx(roc_auc_score(y, z.numpy()), abs=1e-12)
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                z, torch.from_numpy(y).double()
            )
            assert losses[k, t].item() == pytest.approx(bce.item(), rel=1e-10)


def test_scores_reject_bad_weights():
    feats = make_synthetic_features(num_tasks=3, dim=4, seed=0)
    with pytest.raises(GraphtagError, match=r"weights must be a tensor of shape \[1, 4\]"):
        estimate_scores(feats, [(0, 1)], torch.zeros(2, 4))
    assert np.isnan(estimate_scores(feats, [(2,)], torch.zeros(1, 4))[1][0, :2].numpy()).all()
