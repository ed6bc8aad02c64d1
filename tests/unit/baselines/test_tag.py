"""TAGAffinity: the vectorised lookahead equals the literal loop and a hand-written reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphtag.baselines import TAGAffinity, select_groups
from graphtag.errors import GraphtagError
from graphtag.models import SIGN, MultiTaskGNN, NodeBatch

T = 4


def _sign(dtype=torch.float64, dropout=0.5):
    torch.manual_seed(1)
    return SIGN(5, 8, num_tasks=T, num_hops=2, dropout=dropout).to(dtype).train()


def _sign_batch(n=24, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n, 3, 5, generator=g, dtype=dtype)
    return NodeBatch(nodes=torch.arange(n), args=(xs,), out=torch.arange(n))


def _labels(n=24, seed=0, missing=(3,)):
    g = torch.Generator().manual_seed(100 + seed)
    y = (torch.rand(n, T, generator=g) < 0.5).double()
    mask = torch.rand(n, T, generator=g) < 0.7
    for t in missing:
        mask[:, t] = False
    return y, mask


def _gnn():
    torch.manual_seed(2)
    return MultiTaskGNN(5, 8, num_tasks=T, num_layers=2, encoder="sage").double().train()


def _gnn_batch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    ei = torch.randint(0, 12, (2, 40), generator=g)
    ei = torch.cat([ei, ei.flip(0)], 1)
    # seed nodes are the first 8 rows of the subgraph, listed out of order
    out = torch.tensor([3, 0, 7, 1, 5, 2, 6, 4])
    return NodeBatch(nodes=out + 100, args=(x, ei), out=out)


def _reference(model, batch, y, mask, lr):
    """Hand-written TAG on deep copies: SGD step of the body on task i, loss of task j."""
    num_tasks = y.size(1)
    z = np.full((num_tasks, num_tasks), np.nan)

    def losses(m):
        logits = m(*batch.args)[batch.out]
        out = []
        for t in range(num_tasks):
            rows = mask[:, t]
            out.append(F.binary_cross_entropy_with_logits(logits[rows, t], y[rows, t]))
        return out

    base = copy.deepcopy(model).eval()
    with torch.no_grad():
        l0 = [float(v) if mask[:, t].any() else np.nan for t, v in enumerate(losses(base))]
    for i in range(num_tasks):
        if not mask[:, i].any():
            continue
        m = copy.deepcopy(model).eval()
        body = [p for n, p in m.named_parameters() if not n.startswith("head.")]
        m.zero_grad()
        losses(m)[i].backward()
        with torch.no_grad():
            for p in body:
                p -= lr * p.grad
            new = losses(m)
        for j in range(num_tasks):
            if mask[:, j].any():
                z[j, i] = 1.0 - float(new[j]) / l0[j]
    return z


@pytest.mark.parametrize("kind", ["sign", "sage"])
def test_exact_and_naive_equal_handwritten_reference(kind):
    model, batch = (_sign(), _sign_batch()) if kind == "sign" else (_gnn(), _gnn_batch())
    y, mask = _labels(n=len(batch.nodes))
    ref = _reference(model, batch, y, mask, lr=0.3)
    assert np.isfinite(ref[:3, :3]).all() and np.abs(ref[:3, :3]).max() > 1e-4
    for mode in ("exact", "naive"):
        tag = TAGAffinity(mode=mode).measure(model, [batch], [y], [mask], lr=0.3)
        np.testing.assert_allclose(tag.affinity_, ref, rtol=1e-9, atol=1e-12, equal_nan=True)
        expected = np.zeros((T, T), dtype=np.int64)
        expected[:3, :3] = 1
        np.testing.assert_array_equal(tag.counts_, expected)


def test_exact_equals_naive_with_chunks_and_gat():
    torch.manual_seed(5)
    model = MultiTaskGNN(5, 8, num_tasks=T, encoder="gat").double()
    batch = _gnn_batch()
    y, mask = _labels(n=8, missing=())
    naive = TAGAffinity(mode="naive").measure(model, [batch], [y], [mask], lr=0.5).affinity_
    for chunk in (None, 1, 3):
        exact = TAGAffinity(chunk_size=chunk).measure(model, [batch], [y], [mask], lr=0.5)
        np.testing.assert_allclose(exact.affinity_, naive, rtol=1e-9, atol=1e-13)


def test_first_order_matches_exact_for_small_step():
    model, batch = _sign(), _sign_batch()
    y, mask = _labels()
    kw = {"divide_by_lr": True}
    exact = TAGAffinity(**kw).measure(model, [batch], y, mask, lr=1e-6).affinity_
    first = TAGAffinity(mode="first_order", **kw).measure(model, [batch], y, mask, lr=1e-6)
    np.testing.assert_allclose(first.affinity_[:3, :3], exact[:3, :3], rtol=1e-4, atol=1e-9)
    # ... and differs visibly for a large step (the second-order term matters)
    big = TAGAffinity(**kw).measure(model, [batch], y, mask, lr=3.0).affinity_
    assert np.abs(big[:3, :3] - first.affinity_[:3, :3]).max() > 1e-3


def test_divide_by_lr_and_fixed_lr():
    model, batch = _sign(), _sign_batch()
    y, mask = _labels()
    z = TAGAffinity().measure(model, [batch], y, mask, lr=0.2).affinity_
    zd = TAGAffinity(divide_by_lr=True).measure(model, [batch], y, mask, lr=0.2).affinity_
    np.testing.assert_allclose(zd, z / 0.2, rtol=1e-12, equal_nan=True)
    fixed = TAGAffinity(lr=0.2).measure(model, [batch], y, mask, lr=5.0).affinity_
    np.testing.assert_allclose(fixed, z, rtol=1e-12, equal_nan=True)


def test_sketched_first_order_is_unbiased_deterministic_and_chunk_invariant():
    model, batch = _sign(), _sign_batch()
    y, mask = _labels(missing=())
    ref = TAGAffinity(mode="first_order").measure(model, [batch], y, mask, lr=0.1).affinity_

    def sketch(seed, chunk=1000, d=4000):
        tag = TAGAffinity(mode="first_order", projection_dim=d, seed=seed, chunk_size=chunk)
        return tag.measure(model, [batch], y, mask, lr=0.1).affinity_

    a = sketch(0)
    np.testing.assert_array_equal(a, sketch(0))
    np.testing.assert_allclose(a, sketch(0, chunk=700), rtol=1e-10)
    assert not np.allclose(a, sketch(1))
    err = np.abs(a - ref).max() / np.abs(ref).max()
    assert err < 0.15, err
    small = sketch(0, d=8)
    assert np.abs(small - ref).max() / np.abs(ref).max() > err


def test_step_measures_every_kth_call_and_averages_per_pair():
    model = _sign()
    batches = [_sign_batch(seed=s) for s in range(5)]
    labels = [_labels(seed=s, missing=(3,) if s == 2 else ()) for s in range(5)]
    tag = TAGAffinity(every=2)
    flags = [tag.step(model, b, y, m, lr=0.1) for b, (y, m) in zip(batches, labels)]
    assert flags == [True, False, True, False, True]
    assert tag.num_calls_ == 5 and tag.num_measured_ == 3
    singles = [
        TAGAffinity().measure(model, [batches[k]], *labels[k], lr=0.1).affinity_ for k in (0, 2, 4)
    ]
    expected = np.nanmean(np.stack(singles), axis=0)  # task 3 missing at step 2
    np.testing.assert_allclose(tag.affinity_, expected, rtol=1e-12)
    counts = np.full((T, T), 3)
    counts[3, :] = counts[:, 3] = 2
    np.testing.assert_array_equal(tag.counts_, counts)


def test_measure_accepts_global_or_per_batch_labels():
    model, batch = _gnn(), _gnn_batch()
    y, mask = _labels(n=8)
    big_y = torch.zeros(120, T, dtype=torch.float64)
    big_m = torch.zeros(120, T, dtype=torch.bool)
    big_y[batch.nodes], big_m[batch.nodes] = y, mask
    a = TAGAffinity().measure(model, [batch], big_y, big_m, lr=0.1).affinity_
    b = TAGAffinity().measure(model, [batch], [y], [mask], lr=0.1).affinity_
    np.testing.assert_array_equal(a, b)
    with pytest.raises(GraphtagError, match=r"batch 0 has node id 107 but y/masks have 8/8 rows"):
        TAGAffinity().measure(model, [batch], y, mask, lr=0.1)


class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(5, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.9)
        self.head = nn.Linear(8, T)

    def forward(self, x):
        return self.head(self.drop(torch.tanh(self.bn(self.body(x)))))


def test_eval_mode_lookahead_leaves_model_untouched():
    torch.manual_seed(0)
    model = _BNNet().double().train()
    model.drop.eval()  # a mixed state must be restored as it was
    x = torch.randn(16, 5, dtype=torch.float64)
    model(x)  # non-trivial running statistics
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    before = copy.deepcopy(model.state_dict())
    batch = NodeBatch(torch.arange(16), (x,), torch.arange(16))
    y, mask = _labels(n=16)
    z1 = TAGAffinity().measure(model, [batch], y, mask, lr=0.1).affinity_
    z2 = TAGAffinity(mode="naive").measure(model, [batch], y, mask, lr=0.1).affinity_
    np.testing.assert_allclose(z1, z2, rtol=1e-9, equal_nan=True)  # no dropout noise
    assert model.training and model.bn.training and not model.drop.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    ref = _reference(model, batch, y, mask, lr=0.1)  # eval-mode BN and no dropout
    np.testing.assert_allclose(z1, ref, rtol=1e-9, equal_nan=True)


def test_planted_helping_and_hurting_tasks_are_grouped():
    # Tasks 0, 1 share labels, tasks 2, 3 have the opposite labels, and all heads are equal:
    # a step on task 0 lowers task 1's loss and raises the losses of tasks 2 and 3.
    torch.manual_seed(0)
    model = SIGN(5, 16, num_tasks=T, num_hops=2, dropout=0.0).double()
    with torch.no_grad():
        model.head.weight[:] = model.head.weight[0]
        model.head.bias.zero_()
    batch = _sign_batch(n=64)
    g = torch.Generator().manual_seed(0)
    base = (torch.rand(64, generator=g) < 0.5).double()
    y = torch.stack([base, base, 1 - base, 1 - base], 1)
    mask = torch.ones(64, T, dtype=torch.bool)
    z = TAGAffinity().measure(model, [batch], y, mask, lr=0.5).affinity_
    same = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=bool)
    assert (z[same] > 0).all() and (z[~same] < 0).all()
    tag = TAGAffinity().measure(model, [batch], y, mask, lr=0.5)
    assert select_groups(tag.symmetric(), max_groups=2).groups == [[0, 1], [2, 3]]


def test_float32_exact_matches_naive():
    model, batch = _sign(torch.float32), _sign_batch(dtype=torch.float32)
    y, mask = _labels()
    a = TAGAffinity().measure(model, [batch], y.float(), mask, lr=0.3).affinity_
    b = TAGAffinity(mode="naive").measure(model, [batch], y.float(), mask, lr=0.3).affinity_
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, equal_nan=True)


def test_symmetric_and_repr():
    model, batch = _sign(), _sign_batch()
    y, mask = _labels(missing=())
    tag = TAGAffinity(every=3).measure(model, [batch], y, mask, lr=0.1)
    z = tag.affinity_
    np.testing.assert_allclose(tag.symmetric(), (z + z.T) / 2)
    assert repr(tag) == "TAGAffinity(every=3)"
    assert repr(TAGAffinity(mode="naive", head="lin")) == "TAGAffinity(head='lin', mode='naive')"


class _ItemNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(5, 8)
        self.head = nn.Linear(8, T)

    def forward(self, x):
        h = self.body(x)
        scale = 2.0 if h.sum().item() > 0 else 1.0  # data-dependent: not vmap-able
        return self.head(scale * h)


def test_unbatchable_model_raises_and_naive_works():
    torch.manual_seed(0)
    model = _ItemNet().double()
    batch = NodeBatch(torch.arange(6), (torch.randn(6, 5, dtype=torch.float64),), torch.arange(6))
    y, mask = _labels(n=6, missing=())
    with pytest.raises(GraphtagError, match="use mode='naive'"):
        TAGAffinity().measure(model, [batch], y, mask, lr=0.1)
    z = TAGAffinity(mode="naive").measure(model, [batch], y, mask, lr=0.1).affinity_
    assert np.isfinite(z).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every": 0}, r"every=0 must be an integer >= 1"),
        ({"mode": "fast"}, r"mode='fast' is unknown; use one of exact, first_order, naive"),
        ({"lr": -1.0}, r"lr=-1.0 must be a positive finite number"),
        ({"chunk_size": 0}, r"chunk_size=0 must be a positive integer or None"),
        ({"projection_dim": 8}, r"projection_dim is only used by mode='first_order'"),
        ({"mode": "first_order", "projection_dim": 0}, r"projection_dim=0 must be a positive"),
    ],
)
def test_invalid_parameters_are_refused_by_step_and_fit_not_init(kwargs, match):
    tag = TAGAffinity(**kwargs)  # stored unmodified, validated later
    assert all(getattr(tag, k) == v for k, v in kwargs.items())
    model, batch = _sign(), _sign_batch()
    y, mask = _labels()
    with pytest.raises(GraphtagError, match=match):
        tag.step(model, batch, y, mask, lr=0.1)
    with pytest.raises(GraphtagError, match=match):
        tag.fit(model, [batch], y, mask, lr=0.1)


def test_usage_errors():
    model, batch = _sign(), _sign_batch()
    y, mask = _labels()
    tag = TAGAffinity(every=1)
    with pytest.raises(GraphtagError, match="has no measurement yet"):
        tag.affinity_  # noqa: B018
    with pytest.raises(GraphtagError, match="no lookahead step size; pass lr="):
        tag.step(model, batch, y, mask)
    with pytest.raises(GraphtagError, match=r"mask must be .* got bool \[24, 4\]; y is \[24, 3\]"):
        tag.step(model, batch, y[:, :3], mask, lr=0.1)
    with pytest.raises(GraphtagError, match=r"y has shape \(24, 3\) but the batch has 24 seed"):
        tag.step(model, batch, y[:, :3], mask[:, :3], lr=0.1)
    with pytest.raises(GraphtagError, match=r"mask has shape \(5, 4\)"):
        tag.step(model, batch, y, mask[:5], lr=0.1)
    with pytest.raises(GraphtagError, match=r"pass head='lin'.*has no `\.head` module"):
        tag.step(nn.Linear(5, 4), batch, y, mask, lr=0.1)
    with pytest.raises(GraphtagError, match="same layout"):
        tag.measure(model, [batch], [y], mask, lr=0.1)
    with pytest.raises(GraphtagError, match="got 1 batches but 2 label"):
        tag.measure(model, [batch], [y, y], [mask, mask], lr=0.1)
    tag.measure(model, [batch], y, mask, lr=0.1)
    with pytest.raises(GraphtagError, match=r"tasks 0 and 3 \(and 6 more pairs\) was never"):
        tag.symmetric()
    other = SIGN(5, 8, num_tasks=T + 1, num_hops=2).double()
    with pytest.raises(GraphtagError, match="has 5 tasks but earlier ones had 4; call reset"):
        tag.step(other, batch, torch.zeros(24, T + 1), torch.ones(24, T + 1, dtype=bool), 0.1)
