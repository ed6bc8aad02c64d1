"""The synthetic generator: contract, planted groups, determinism, label structure, options."""

from __future__ import annotations

import itertools

import pytest
import torch

from graphtag.data import _synthetic as synthetic
from graphtag.data import check_multilabel_graph, load_dataset, task_warnings
from graphtag.data._synthetic import SYNTHETIC_OPTIONS, make_multilabel_graph
from graphtag.errors import GraphtagError


@pytest.fixture(scope="module")
def small():
    return make_multilabel_graph(num_nodes=600, num_tasks=9, num_groups=3, seed=4)


@pytest.fixture(scope="module")
def default():
    return make_multilabel_graph()


def _pairs(groups: list[list[int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    group_of = {t: g for g, members in enumerate(groups) for t in members}
    tasks = sorted(group_of)
    same = [(s, t) for s, t in itertools.combinations(tasks, 2) if group_of[s] == group_of[t]]
    cross = [(s, t) for s, t in itertools.combinations(tasks, 2) if group_of[s] != group_of[t]]
    return same, cross


def test_contract_shapes_and_meta(small):
    check_multilabel_graph(small)
    n, t = 600, 9
    assert small.x.dtype == torch.float32 and small.x.shape == (n, 16)
    assert small.y.shape == (n, t) and set(small.y.unique().tolist()) <= {0.0, 1.0}
    assert small.edge_index.dtype == torch.int64
    ei = small.edge_index
    assert not (ei[0] == ei[1]).any()
    fwd = set(map(tuple, ei.T.tolist()))
    assert fwd == {(b, a) for a, b in fwd}  # undirected
    assert len(fwd) == ei.size(1)  # deduplicated
    assert (small.train_mask | small.val_mask | small.test_mask).all()
    assert small.name == "synthetic" and small.task_names == [f"task_{i}" for i in range(t)]
    meta = small.meta
    for key in ("noise", "avg_degree", "homophily", "community_size", "latent_dim", "spread"):
        assert key in meta
    assert meta["generator_seed"] == 4 and meta["split_seed"] == 4
    assert meta["num_groups"] == 3 and meta["num_communities"] == 60
    assert len(meta["task_prevalence"]) == t
    assert meta["attributes"].startswith("generated (dim=16)")
    assert meta["features"] == {"recipe": "given", "given_dim": 16, "num_features": 16}
    # Features are standardised columns.
    torch.testing.assert_close(small.x.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(small.x.std(0), torch.ones(16), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("num_tasks", "num_groups"), [(1, 1), (7, 3), (12, 4), (20, 20), (9, 1)])
def test_planted_groups_are_a_sorted_balanced_partition(num_tasks, num_groups):
    data = make_multilabel_graph(num_nodes=200, num_tasks=num_tasks, num_groups=num_groups)
    groups = data.planted_groups
    assert len(groups) == num_groups
    assert sorted(itertools.chain.from_iterable(groups)) == list(range(num_tasks))
    assert all(g == sorted(g) and g for g in groups)
    assert groups == sorted(groups)
    sizes = [len(g) for g in groups]
    assert max(sizes) - min(sizes) <= 1


def test_groups_are_shuffled_not_contiguous():
    groups = make_multilabel_graph(num_nodes=200, num_tasks=12, num_groups=3).planted_groups
    assert groups != [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_same_seed_identical_other_seed_different():
    kwargs = {"num_nodes": 300, "num_tasks": 6, "num_groups": 2}
    a = make_multilabel_graph(**kwargs, seed=7)
    b = make_multilabel_graph(**kwargs, seed=7)
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert a.planted_groups == b.planted_groups and a.meta == b.meta
    c = make_multilabel_graph(**kwargs, seed=8)
    assert not torch.equal(a.y, c.y)
    assert not torch.equal(a.x, c.x)
    assert a.edge_index.shape != c.edge_index.shape or not torch.equal(a.edge_index, c.edge_index)
    # split_seed changes the split only.
    d = make_multilabel_graph(**kwargs, seed=7, split_seed=99)
    assert torch.equal(a.y, d.y) and torch.equal(a.x, d.x)
    assert torch.equal(a.edge_index, d.edge_index)
    assert not torch.equal(a.train_mask, d.train_mask)
    assert d.meta["split_seed"] == 99


def test_generator_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_multilabel_graph(num_nodes=100, num_tasks=2, num_groups=1)
    assert torch.equal(torch.rand(3), expected)


def test_default_prevalence_and_training_positives(default):
    rate = default.y.mean(0)
    assert default.y.shape == (3000, 12)
    assert len(default.planted_groups) == 3
    assert bool((rate >= 0.05).all() and (rate <= 0.35).all()), rate
    wanted = torch.tensor(default.meta["task_prevalence"])
    assert bool(((wanted >= 0.1) & (wanted <= 0.3)).all())
    # Label noise replaces labels by Bernoulli(p_t) draws, which keeps the rate.
    torch.testing.assert_close(rate, wanted, atol=0.02, rtol=0)
    assert task_warnings(default) == []
    assert int(((default.y > 0) & default.train_mask).sum(0).min()) >= 50


def test_same_group_labels_correlate_cross_group_do_not(default):
    y = default.y
    corr = torch.corrcoef(y.T)
    same, cross = _pairs(default.planted_groups)
    within = torch.stack([corr[s, t] for s, t in same])
    between = torch.stack([corr[s, t] for s, t in cross])
    assert float(within.min()) > 0.3, within
    # Groups use independent latent positions; over 300 communities their labels still show
    # chance correlations of about ±1/sqrt(300), which average out.
    assert abs(float(between.mean())) < 0.05, between
    assert float(within.min()) > float(between.abs().max()) + 0.2


def test_labels_are_homophilous_over_edges(default):
    src, dst = default.edge_index
    y = default.y
    # For every pair of tasks: correlation of y_s at one end of an edge with y_t at the other.
    a = (y[src] - y[src].mean(0)) / y[src].std(0)
    b = (y[dst] - y[dst].mean(0)) / y[dst].std(0)
    edge_corr = a.T @ b / (src.numel() - 1)
    same, cross = _pairs(default.planted_groups)
    # A task's own labels agree across edges (the graph is homophilous for every group).
    assert float(edge_corr.diagonal().min()) > 0.4, edge_corr.diagonal()
    within = torch.stack([edge_corr[s, t] for s, t in same])
    between = torch.stack([edge_corr[s, t] for s, t in cross])
    assert float(within.mean()) > 0.3
    assert float(within.min()) > float(between.abs().max()) + 0.1
    assert abs(float(between.mean())) < 0.05


def test_mean_degree_follows_avg_degree():
    kwargs = {"num_nodes": 2000, "num_tasks": 2, "num_groups": 1, "avg_degree": 10.0}
    degree = make_multilabel_graph(**kwargs, community_size=50).edge_index.size(1) / 2000
    # Poisson edge draws, minus self-loops and repeated pairs inside communities of 50.
    assert 8.5 < degree < 10.0
    # Small communities merge more repeated pairs.
    small = make_multilabel_graph(**kwargs, community_size=10).edge_index.size(1) / 2000
    assert 6.0 < small < degree


def _reference_labels(latent, task_group, centres, prevalence):
    n = latent.size(0)
    out = torch.zeros(n, task_group.numel(), dtype=torch.bool)
    dists = []
    for t in range(task_group.numel()):  # brute force, one task at a time
        d = (latent[:, int(task_group[t])].double() - centres[t].double()).square().sum(-1)
        k = max(1, min(n, round(float(prevalence[t]) * n)))
        radius = d.sort().values[k - 1]
        out[:, t] = d <= radius
        dists.append((d - radius).abs())
    return out, torch.stack(dists, 1)


@pytest.mark.parametrize("chunk_elements", [1 << 24, 97])
def test_noiseless_labels_match_brute_force_balls(monkeypatch, chunk_elements):
    monkeypatch.setattr(synthetic, "_CHUNK_ELEMENTS", chunk_elements)
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(500, 3, 2, generator=g)
    task_group = torch.tensor([2, 0, 0, 1, 2, 2, 0])
    centres = 0.5 * torch.randn(7, 2, generator=g)
    prevalence = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25, 0.12, 0.3])
    got = synthetic._labels(latent, task_group, centres, prevalence, noise=0.0, seed=0)
    want, margin = _reference_labels(latent, task_group, centres, prevalence)
    differ = got != want
    assert bool((margin[differ] < 1e-4).all())  # only float ties at the radius may differ
    assert int(differ.sum()) <= 2
    torch.testing.assert_close(got.float().mean(0), prevalence, atol=0.005, rtol=0)


def test_large_graph_uses_sampled_radii_and_keeps_prevalence():
    n, t = 40000, 30  # above the 32768-node quantile sample
    data = make_multilabel_graph(num_nodes=n, num_tasks=t, num_groups=6, noise=0.0, seed=2)
    wanted = torch.tensor(data.meta["task_prevalence"])
    torch.testing.assert_close(data.y.mean(0), wanted, atol=0.01, rtol=0)
    assert data.x.shape == (n, 24)  # max(16, num_groups * latent_dim)


def test_load_dataset_parses_options():
    data = load_dataset("synthetic:num_nodes=500,num_tasks=6,num_groups=2,seed=1")
    ref = make_multilabel_graph(num_nodes=500, num_tasks=6, num_groups=2, seed=1, split_seed=0)
    assert data.y.shape == (500, 6) and len(data.planted_groups) == 2
    assert data.planted_groups == ref.planted_groups
    for key in ("x", "edge_index", "y", "train_mask"):
        assert torch.equal(getattr(data, key), getattr(ref, key)), key
    assert data.meta["spec"] == "synthetic:num_nodes=500,num_tasks=6,num_groups=2,seed=1"
    # load_dataset's seed is the split seed; the spec's seed is the generator seed.
    other = load_dataset("synthetic:num_nodes=500,num_tasks=6,num_groups=2,seed=1", seed=5)
    assert torch.equal(other.y, data.y) and not torch.equal(other.train_mask, data.train_mask)
    floats = load_dataset(
        "synthetic:num_nodes=300,num_tasks=4,num_groups=2,noise=0,homophily=0.5,"
        "avg_degree=6.5,latent_dim=3,feature_dim=8,feature_noise=0.2,prevalence=0.3,spread=0,"
        "community_size=10"
    )
    assert floats.x.shape == (300, 8)
    assert floats.meta["avg_degree"] == 6.5 and floats.meta["num_communities"] == 30


def test_every_documented_option_is_accepted():
    assert len(SYNTHETIC_OPTIONS) == len(set(SYNTHETIC_OPTIONS))
    values = {
        "num_nodes": "120",
        "num_tasks": "4",
        "num_groups": "2",
        "noise": "0.1",
        "avg_degree": "8",
        "homophily": "0.9",
        "community_size": "20",
        "latent_dim": "2",
        "feature_dim": "12",
        "feature_noise": "1",
        "prevalence": "0.25",
        "spread": "0.2",
        "seed": "3",
        "features": "given+structural",
        "embedding_dim": "5",
    }
    assert set(values) == set(SYNTHETIC_OPTIONS)
    spec = "synthetic:" + ",".join(f"{k}={v}" for k, v in values.items())
    check_multilabel_graph(load_dataset(spec))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_tasks": 3, "num_groups": 4}, r"num_groups must lie in \[1, num_tasks=3\]"),
        ({"num_groups": 0}, r"num_groups must lie in \[1, num_tasks=12\]"),
        ({"num_nodes": 49}, r"num_nodes must be >= 50 .* got 49"),
        ({"num_tasks": 0, "num_groups": 0}, r"num_tasks must be >= 1, got 0"),
        ({"noise": 1.0}, r"noise \(label replacement probability\) must lie in \[0, 1\), got 1.0"),
        ({"noise": -0.1}, r"noise .* got -0.1"),
        ({"homophily": 1.5}, r"homophily .* must lie in \[0, 1\], got 1.5"),
        ({"avg_degree": 0}, r"avg_degree must lie in \(0, num_nodes=3000\)"),
        ({"community_size": 1}, r"community_size must lie in \[2, num_nodes=3000\]"),
        ({"latent_dim": 0}, r"latent_dim must be >= 1"),
        ({"feature_dim": 0}, r"feature_dim must be >= 1"),
        ({"feature_noise": -1.0}, r"feature_noise must be >= 0"),
        ({"prevalence": 0.6}, r"prevalence .* must lie in \(0, 0.5\], got 0.6"),
        ({"num_nodes": 60, "prevalence": 0.1}, r"fewer than 5 positives; raise num_nodes"),
        ({"spread": -1.0}, r"spread must be >= 0"),
    ],
)
def test_out_of_range_parameters_raise(kwargs, message):
    with pytest.raises(GraphtagError, match=message):
        make_multilabel_graph(**kwargs)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "synthetic:num_nodes=500,num_tasks=2,num_groups=3",
            r"dataset spec 'synthetic:num_nodes=500,num_tasks=2,num_groups=3': synthetic graph: "
            r"num_groups must lie in \[1, num_tasks=2\]",
        ),
        ("synthetic:num_nodes=10", r"'synthetic:num_nodes=10': .*num_nodes must be >= 50"),
        ("synthetic:colour=red", r"unknown option\(s\) colour; allowed: avg_degree, "),
        ("synthetic:noise=1.5", r"noise \(label replacement probability\) must lie in \[0, 1\)"),
        ("synthetic:num_nodes=1e3", r"option num_nodes='1e3' is not a valid int"),
        ("synthetic:noise=high", r"option noise='high' is not a valid float"),
        ("synthetic:/some/path", r"expected synthetic\[:key=value,...\]"),
    ],
)
def test_bad_specs_raise(spec, message):
    with pytest.raises(GraphtagError, match=message):
        load_dataset(spec)


def test_outputs_unchanged_by_the_speed_up():
    # Golden values of the previous implementation (seed 3): the same random streams, so labels,
    # edges and splits are identical and features agree to float32 rounding.
    data = make_multilabel_graph(num_nodes=300, num_tasks=5, num_groups=2, seed=3)
    node = torch.arange(300, dtype=torch.float64).unsqueeze(1)
    assert data.y.sum(0).tolist() == [46.0, 35.0, 74.0, 50.0, 52.0]
    assert (data.y.double() * node).sum(0).tolist() == [6407.0, 4154.0, 11041.0, 7730.0, 7357.0]
    assert data.edge_index.size(1) == 3014
    train = data.train_mask.double()
    assert (train * node).sum(0).tolist() == [8578.0, 10248.0, 8552.0, 8389.0, 9067.0]
    want_x = [
        [-0.1172938346862793, -1.1916676759719849, -0.8474233150482178],
        [-1.2311755418777466, 1.8284316062927246, 1.2150452136993408],
        [0.6367673873901367, 1.7796553373336792, 0.01776091568171978],
    ]
    torch.testing.assert_close(data.x[[0, 7, 299], :3], torch.tensor(want_x), atol=1e-5, rtol=0)


def test_standardised_columns_match_torch_std_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(70001, 5, generator=g) * torch.tensor([1.0, 10.0, 1e-3, 3.0, 0.0])
    x += torch.tensor([0.0, 1000.0, -5.0, 1e4, 2.0])  # large offsets; one constant column
    std, mean = torch.std_mean(x.double(), dim=0)
    want = ((x.double() - mean) / std.clamp(min=1e-12)).float()
    got = x.clone()
    synthetic._standardise_columns_(got)
    torch.testing.assert_close(got[:, :4], want[:, :4], atol=2e-3, rtol=0)
    assert torch.equal(got[:, 4], torch.zeros(70001))


@pytest.mark.parametrize("chunk_elements", [1 << 24, 97])
def test_label_noise_follows_the_documented_stream(monkeypatch, chunk_elements):
    # Per block of _CHUNK_ELEMENTS // T nodes, one task-major uniform u per label: u < noise
    # replaces the label by u < noise * p_t. Checked against the noiseless labels.
    from graphtag._utils import torch_generator

    monkeypatch.setattr(synthetic, "_CHUNK_ELEMENTS", chunk_elements)  # 97: blocks of 13 nodes
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(200, 3, 2, generator=g)
    task_group = torch.tensor([2, 0, 0, 1, 2, 2, 0])
    centres = 0.5 * torch.randn(7, 2, generator=g)
    prevalence = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25, 0.12, 0.3])
    clean = synthetic._labels(latent, task_group, centres, prevalence, noise=0.0, seed=5)
    got = synthetic._labels(latent, task_group, centres, prevalence, noise=0.4, seed=5)
    gen = torch_generator(5, "synthetic", "labels")
    block = max(1, chunk_elements // 7)
    want = torch.empty_like(clean)
    for lo in range(0, 200, block):
        u = torch.rand(7, min(200, lo + block) - lo, generator=gen)
        noisy = torch.where(u < 0.4, u < 0.4 * prevalence.unsqueeze(1), clean[lo : lo + block].T)
        want[lo : lo + block] = noisy.T
    assert torch.equal(got, want)
    assert 0.08 < float((got != clean).float().mean()) < 0.2  # 0.4 * 2 p (1 - p) ~ 0.13
