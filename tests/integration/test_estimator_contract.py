"""The scikit-learn estimator contract of graphtag's estimators (issue 15, finding 5).

``sklearn.base.clone`` works and round-trips the parameters of every estimator, ``__init__``
stores parameters unmodified and validates nothing (``fit`` does), fitted matrices are numpy
arrays, and the defaults are those of :mod:`graphtag.defaults` (which ``graphtag run`` uses).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from graphtag import defaults
from graphtag.base import Estimator
from graphtag.baselines import TAGAffinity
from graphtag.clustering import SDPClustering, SpectralTaskClustering
from graphtag.errors import GraphtagError
from graphtag.estimation import GradTAG, make_synthetic_features
from graphtag.estimation._finetune import matched_ridge
from graphtag.gradients import GradientProjector, extract_gradient_features
from graphtag.models import NodeBatch

ESTIMATORS = [
    (GradientProjector, {"dim": 16, "block": "body", "seed": 3, "head": "lin"}),
    (GradTAG, {"subset_size": 3, "num_subsets": 20, "l2": 0.5, "min_pair_count": 1, "seed": 1}),
    (SDPClustering, {"num_groups": 2, "solver": "admm", "solver_options": {"tol": 1e-5}}),
    (SpectralTaskClustering, {"num_groups": 3, "seed": 2, "negative": "shift"}),
    (TAGAffinity, {"every": 2, "mode": "naive", "head": "lin", "divide_by_lr": True}),
]
IDS = [cls.__name__ for cls, _ in ESTIMATORS]


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.lin = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(self.body(x)))


def _fit(est: Estimator) -> Estimator:
    """Fit ``est`` on a tiny input of its kind."""
    torch.manual_seed(0)
    if isinstance(est, GradientProjector):
        return est.fit(_Net())
    if isinstance(est, GradTAG):
        return est.fit(make_synthetic_features(num_tasks=6, num_groups=2, seed=0))
    if isinstance(est, SDPClustering | SpectralTaskClustering):
        return est.fit(np.kron(np.eye(3), np.ones((2, 2))) - 0.2)
    x = torch.randn(12, 4)
    batch = NodeBatch(torch.arange(12), (x,), torch.arange(12))
    y = (torch.rand(12, 3) < 0.5).float()
    return est.fit(_Net(), [batch], y, torch.ones(12, 3) > 0, lr=0.1)


@pytest.mark.parametrize(("cls", "params"), ESTIMATORS, ids=IDS)
def test_clone_round_trips_parameters_and_is_unfitted(cls, params) -> None:
    est = cls(**params)
    assert isinstance(est, Estimator)
    assert {k: est.get_params()[k] for k in params} == params
    copy = clone(est)
    assert type(copy) is cls and copy is not est
    assert copy.get_params() == est.get_params()
    fitted = _fit(cls(**params))
    refit = clone(fitted)
    assert refit.get_params() == cls(**params).get_params()
    fitted_names = [n for n in vars(fitted) if n.endswith("_") and not n.startswith("_")]
    assert fitted_names and not any(n in vars(refit) for n in fitted_names)
    assert est.set_params(**est.get_params()).get_params() == copy.get_params()


@pytest.mark.parametrize(
    ("make", "call", "message"),
    [
        (lambda: GradientProjector(dim=0), lambda e: e.fit(_Net()), "dim must be a positive int"),
        (
            lambda: GradTAG(loss="exact"),
            lambda e: e.fit(make_synthetic_features()),
            "loss must be 'linear' or 'network'",
        ),
        (lambda: GradTAG(l2=-1.0), lambda e: e.fit(make_synthetic_features()), "l2 must be None"),
        (lambda: SDPClustering(num_groups=0), lambda e: e.fit(np.eye(3)), "num_groups"),
        (
            lambda: SpectralTaskClustering(2, negative="abs"),
            lambda e: e.fit(np.eye(3)),
            "negative must be one of",
        ),
        (
            lambda: TAGAffinity(every=0),
            lambda e: e.fit(_Net(), [], lr=0.1),
            "every=0 must be an integer >= 1",
        ),
    ],
    ids=["projector", "gradtag-loss", "gradtag-l2", "sdp", "spectral", "tag"],
)
def test_init_validates_nothing_fit_does(make, call, message) -> None:
    est = make()  # no error here: parameters are stored unmodified
    with pytest.raises(GraphtagError, match=message):
        call(est)


def test_fitted_matrices_are_numpy() -> None:
    grad_tag = _fit(GradTAG(subset_size=3, num_subsets=20, min_pair_count=1))
    for name in ("weights_", "converged_", "excluded_", "losses_", "base_losses_", "affinity_"):
        assert isinstance(getattr(grad_tag, name), np.ndarray), name
    assert isinstance(grad_tag.estimate([0, 1]), np.ndarray)
    for est in (_fit(SDPClustering(2)), _fit(SpectralTaskClustering(2))):
        assert isinstance(est.labels_, np.ndarray)
    tag = _fit(TAGAffinity(head="lin"))
    assert isinstance(tag.affinity_, np.ndarray) and isinstance(tag.counts_, np.ndarray)


def test_unfitted_attributes_are_absent_with_a_clear_message() -> None:
    tag = TAGAffinity()
    assert not hasattr(tag, "affinity_")
    with pytest.raises(GraphtagError, match="no measurement yet"):
        tag.affinity_  # noqa: B018


def _default(func, name):
    return inspect.signature(func).parameters[name].default


def test_python_defaults_are_graphtags_defaults() -> None:
    assert _default(GradientProjector, "dim") == defaults.PROJECTION_DIM
    assert _default(GradientProjector, "block") == defaults.PROJECTION_BLOCK
    assert _default(extract_gradient_features, "max_task_rows") == defaults.MAX_TASK_ROWS
    assert _default(GradTAG, "subset_size") == defaults.SUBSET_SIZE
    assert _default(GradTAG, "num_subsets") == defaults.NUM_SUBSETS
    assert _default(GradTAG, "min_pair_count") == defaults.MIN_PAIR_COUNT
    assert _default(SDPClustering, "solver") == defaults.SDP_SOLVER
    assert _default(TAGAffinity, "every") == defaults.TAG_EVERY
    assert "lookahead" not in inspect.signature(TAGAffinity).parameters


def test_default_ridge_is_the_pipelines_matched_ridge() -> None:
    feats = make_synthetic_features(num_tasks=6, num_groups=2, seed=1)
    kw = {"subset_size": 3, "num_subsets": 15, "min_pair_count": 1}
    default = GradTAG(**kw).fit(feats)
    as_run = GradTAG(**kw, l2=matched_ridge(), l2_relative=False).fit(feats)  # `graphtag run`
    assert default.l2_ == as_run.l2_ == matched_ridge()
    np.testing.assert_array_equal(default.affinity_, as_run.affinity_)
