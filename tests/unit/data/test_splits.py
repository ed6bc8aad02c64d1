"""Per-task stratified splits: disjoint, covering, exact per-class counts, seeded."""

from __future__ import annotations

import pytest
import torch

from graphtag.data import per_task_split
from graphtag.errors import GraphtagError


def _labels(num_nodes: int = 57, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rates = torch.tensor([0.5, 0.1, 0.03, 0.9, 0.0, 1.0, 2 / 57, 1 / 57])
    y = (torch.rand(num_nodes, rates.numel(), generator=g) < rates).float()
    y[:, 6] = 0
    y[[4, num_nodes - 1], 6] = 1  # exactly 2 positives
    y[:, 7] = 0
    y[11, 7] = 1  # exactly 1 positive
    return y


def _expected(n: int, r_train: float, r_val: float) -> tuple[int, int]:
    """Reference rule: rounded shares; >= 1 each for classes of 3+; 1 and 2 go train, val."""
    if n < 3:
        return int(n >= 1), int(n >= 2)
    return max(1, round(n * r_train)), max(1, round(n * r_val))


def test_masks_disjoint_covering_bool():
    y = _labels()
    tr, va, te = per_task_split(y, seed=0)
    for m in (tr, va, te):
        assert m.dtype == torch.bool and m.shape == y.shape
    assert not (tr & va).any() and not (tr & te).any() and not (va & te).any()
    assert (tr | va | te).all()


@pytest.mark.parametrize("ratios", [(0.2, 0.2, 0.6), (0.5, 0.25, 0.25), (0.1, 0.0, 0.9)])
def test_stratified_counts_per_task_and_class(ratios):
    y = _labels()
    tr, va, te = per_task_split(y, ratios=ratios, seed=5)
    for t in range(y.size(1)):
        for cls in (0.0, 1.0):
            members = y[:, t] == cls
            n = int(members.sum())
            n_tr, n_va = _expected(n, ratios[0], ratios[1])
            assert int((tr[:, t] & members).sum()) == n_tr, (t, cls)
            assert int((va[:, t] & members).sum()) == n_va, (t, cls)
            assert int((te[:, t] & members).sum()) == n - n_tr - n_va, (t, cls)


def test_small_classes_go_to_train_then_validation():
    y = _labels()
    tr, va, te = per_task_split(y, seed=0)
    assert tr[11, 7] and not va[11, 7]  # the single positive trains
    assert sorted([bool(tr[4, 6]), bool(va[4, 6])]) == [False, True]
    assert sorted([bool(tr[56, 6]), bool(va[56, 6])]) == [False, True]
    assert bool(tr[4, 6]) != bool(tr[56, 6])
    assert not te[[4, 56], 6].any()


def test_deterministic_per_seed_and_different_across_seeds():
    y = _labels()
    state = torch.get_rng_state()
    a = per_task_split(y, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    b = per_task_split(y, seed=3)
    c = per_task_split(y, seed=4)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_tasks_are_split_independently():
    y = torch.zeros(200, 2)
    y[:100] = 1  # two identical tasks
    tr, _, _ = per_task_split(y, seed=0)
    assert not torch.equal(tr[:, 0], tr[:, 1])


def test_every_node_is_sometimes_in_each_part():
    y = _labels(num_nodes=30)[:, :1]
    seen = torch.zeros(30, 3, dtype=torch.bool)
    for seed in range(40):
        for k, m in enumerate(per_task_split(y, seed=seed)):
            seen[:, k] |= m[:, 0]
    assert seen.all()


@pytest.mark.parametrize(
    ("ratios", "pattern"),
    [
        ((0.5, 0.5, 0.5), "summing to 1"),
        ((1.2, -0.2, 0.0), "non-negative"),
        ((0.5, 0.5), "three"),
    ],
)
def test_bad_ratios(ratios, pattern):
    with pytest.raises(GraphtagError, match=pattern):
        per_task_split(torch.zeros(5, 1), ratios=ratios)  # type: ignore[arg-type]


def test_bad_label_shape():
    with pytest.raises(GraphtagError, match=r"labels must have shape \[N, T\], got \(5,\)"):
        per_task_split(torch.zeros(5))


def test_each_task_split_is_independent_of_the_other_tasks():
    # Per-task generators: task 0's masks do not depend on how many other tasks are split with
    # it, so chunking tasks (done for memory on large label matrices) never changes the split.
    import torch

    from graphtag.data import per_task_split

    y = (torch.rand(300, 5, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    full = per_task_split(y, seed=7)
    for width in (1, 2, 4):
        part = per_task_split(y[:, :width], seed=7)
        for a, b in zip(full, part):
            assert torch.equal(a[:, :width], b)


def _sorted_reference(y: torch.Tensor, seed: int, ratios=(0.2, 0.2, 0.6)):
    """Brute force: per task and class, sort the members by (key, node index) and cut."""
    from graphtag.data._splits import _split_counts, _task_keys

    keys = torch.from_numpy(_task_keys(y.size(0), range(y.size(1)), seed))
    train = torch.zeros(y.shape, dtype=torch.bool)
    val = torch.zeros_like(train)
    for t in range(y.size(1)):
        for cls in (0.0, 1.0):
            members = torch.nonzero(y[:, t] == cls).flatten()
            ranked = members[torch.argsort(keys[t, members], stable=True)]
            n_tr, n_va = (int(v) for v in _split_counts(torch.tensor([ranked.numel()]), ratios))
            train[ranked[:n_tr], t] = True
            val[ranked[n_tr : n_tr + n_va], t] = True
    return train, val, ~(train | val)


@pytest.mark.parametrize("bucket_bits", [12, 3, 0])
def test_split_equals_sorting_the_keys(monkeypatch, bucket_bits):
    # Few buckets put many nodes, and both boundaries, into one bucket.
    from graphtag.data import _splits

    monkeypatch.setattr(_splits, "_BUCKET_BITS", bucket_bits)
    y = _labels(num_nodes=3000)
    y[:, 4] = (torch.arange(3000) % 7 == 0).float()
    got = per_task_split(y, seed=9)
    for a, b in zip(got, _sorted_reference(y, seed=9)):
        assert torch.equal(a, b)


def test_tied_keys_are_ranked_by_node_index(monkeypatch):
    from graphtag.data import _splits

    real = _splits._task_keys

    def coarse(num_nodes, tasks, seed, out=None):  # 8 key values: ties at every boundary
        keys = real(num_nodes, tasks, seed, out=out)
        keys[:] = (keys * 8).astype("int32") / 8
        return keys

    monkeypatch.setattr(_splits, "_task_keys", coarse)
    y = _labels(num_nodes=500)
    got = per_task_split(y, seed=2)
    for a, b in zip(got, _sorted_reference(y, seed=2)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("chunk_elements", [1, 150, 1 << 24])
def test_chunk_size_does_not_change_the_split(monkeypatch, chunk_elements):
    from graphtag.data import _splits

    y = _labels(num_nodes=300)
    want = per_task_split(y, seed=4)
    monkeypatch.setattr(_splits, "_CHUNK_ELEMENTS", chunk_elements)  # 1 or 2 tasks per chunk
    got = per_task_split(y, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_bool_labels_give_the_same_split():
    y = _labels()
    for a, b in zip(per_task_split(y, seed=1), per_task_split(y.bool(), seed=1)):
        assert torch.equal(a, b)


def test_split_is_unchanged_from_the_sort_based_version():
    # Golden masks of the previous implementation (argsort of the same per-task keys): the
    # histogram rewrite keeps every split of every dataset.
    rows = [[1, 0], [0, 0], [1, 1], [0, 1], [1, 0], [0, 0], [0, 1], [1, 1], [0, 0], [0, 0]]
    rows += [[1, 0], [0, 1], [1, 1], [0, 0], [0, 0], [1, 0], [0, 0], [0, 1], [0, 0], [1, 1]]
    tr, va, _ = per_task_split(torch.tensor(rows, dtype=torch.float32), seed=11)
    assert [torch.nonzero(tr[:, t]).flatten().tolist() for t in range(2)] == [
        [1, 4, 8, 19],
        [2, 11, 13, 18],
    ]
    assert [torch.nonzero(va[:, t]).flatten().tolist() for t in range(2)] == [
        [2, 9, 12, 17],
        [3, 4, 15, 19],
    ]


def test_each_member_is_equally_likely_to_train():
    # 10 positives, 2 train each time: every positive trains with probability 0.2.
    y = torch.zeros(40, 1)
    y[::4] = 1
    count = torch.zeros(40)
    for seed in range(300):
        count += per_task_split(y, seed=seed)[0][:, 0].float()
    freq = count[::4] / 300  # binomial sd 0.023: 0.2 +- 0.09 is about 4 sd
    assert float(freq.sum()) == pytest.approx(2.0)
    assert bool(((freq - 0.2).abs() < 0.09).all()), freq


@pytest.mark.parametrize("shape", [(0, 3), (5, 0), (1, 2)])
def test_degenerate_label_matrices(shape):
    tr, va, te = per_task_split(torch.ones(shape), seed=0)
    assert tr.shape == va.shape == te.shape == shape
    assert int(tr.sum()) == shape[1] * min(1, shape[0]) and not (va | te).any()
