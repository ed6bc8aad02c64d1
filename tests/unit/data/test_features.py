"""Feature recipes (node_features): resolution, the meta record, standardisation and the cache."""

from __future__ import annotations

import pytest
import torch

from graphtag.data import (
    EMBEDDINGS,
    EmbeddingMethod,
    cache_dir,
    clean_edges,
    node_features,
    prone_embedding,
    structural_features,
)
from graphtag.data import _features as features_module
from graphtag.errors import GraphtagError


def _graph(num_nodes: int = 40, num_edges: int = 160, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ei, _ = clean_edges(torch.randint(0, num_nodes, (2, num_edges), generator=g), num_nodes)
    return ei


def _standardized(x: torch.Tensor) -> torch.Tensor:
    std = x.std(0, unbiased=False)
    return (x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def test_auto_without_attributes_is_the_standardised_default_embedding():
    ei = _graph(200, 800)  # more nodes than the default width (the width is capped at N)
    x, record = node_features(ei, 200, seed=3)
    assert record == {
        "recipe": "prone",
        "method": "prone",
        "dim": EMBEDDINGS["prone"].dim,
        "seed": 3,
        "version": EMBEDDINGS["prone"].version,
        "params": EMBEDDINGS["prone"].params,
        "standardized": True,
        "num_features": EMBEDDINGS["prone"].dim,
    }
    params = EMBEDDINGS["prone"].params
    want = _standardized(prone_embedding(ei, 200, EMBEDDINGS["prone"].dim, 3, **params))
    torch.testing.assert_close(x, want)


def test_auto_with_attributes_concatenates_standardised_parts():
    ei = _graph()
    given = torch.randn(40, 3, generator=torch.Generator().manual_seed(1)) * 50 + 7
    x, record = node_features(ei, 40, given=given, dim=5)
    assert x.shape == (40, 8) and record["recipe"] == "given+prone"
    assert record["given_dim"] == 3 and record["num_features"] == 8
    torch.testing.assert_close(x[:, :3], _standardized(given))
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(8), atol=1e-5, rtol=0)


def test_given_keeps_attributes_and_structural_is_the_old_features():
    ei = _graph()
    given = torch.arange(80.0).reshape(40, 2)
    x, record = node_features(ei, 40, features="given", given=given)
    assert torch.equal(x, given) and record == {
        "recipe": "given",
        "given_dim": 2,
        "num_features": 2,
    }
    x, record = node_features(ei, 40, features="structural", dim=6, seed=2)
    torch.testing.assert_close(x, _standardized(structural_features(ei, 40, 6, 2)))
    assert record["method"] == "structural" and record["params"] == {"power_iters": 3}


def test_record_changes_with_every_ingredient():
    ei = _graph()
    records = [
        node_features(ei, 40, features=f, dim=d, seed=s)[1]
        for f, d, s in [("prone", 4, 0), ("prone", 5, 0), ("prone", 4, 1), ("structural", 4, 0)]
    ]
    assert len({repr(r) for r in records}) == 4


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"features": "pca"},
            r"unknown feature recipe features='pca'; choose one of auto, given,",
        ),
        ({"features": "given+pca"}, r"unknown feature recipe"),
        ({"features": "both+prone"}, r"unknown feature recipe"),
        ({"features": "given"}, r"needs node attributes, but this graph has none"),
        ({"features": "given+prone"}, r"use features=prone"),
        ({"dim": 0}, r"embedding_dim must be >= 1, got 0"),
        (
            {"given": torch.zeros(3, 2)},
            r"node attributes must have shape \[N=40, F\], got \(3, 2\)",
        ),
    ],
)
def test_bad_recipes(kwargs, pattern):
    with pytest.raises(GraphtagError, match=pattern):
        node_features(_graph(), 40, **kwargs)


def test_embedding_cache_hit_miss_and_corruption(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path))
    calls: list[int] = []
    original = EMBEDDINGS["prone"]

    def counting(*args, **kwargs):
        calls.append(1)
        return original.compute(*args, **kwargs)

    monkeypatch.setitem(
        EMBEDDINGS,
        "prone",
        EmbeddingMethod("prone", counting, 4, original.version, original.params),
    )
    ei = _graph()
    first, _ = node_features(ei, 40, cache=True)
    again, _ = node_features(ei, 40, cache=True)
    assert len(calls) == 1 and torch.equal(first, again)
    files = list((cache_dir() / "embeddings").glob("*.npz"))
    assert len(files) == 1
    node_features(ei, 40, seed=1, cache=True)  # another seed: another entry
    node_features(_graph(seed=1), 40, cache=True)  # another graph: another entry
    assert len(calls) == 3 and len(list((cache_dir() / "embeddings").glob("*.npz"))) == 3
    files[0].write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="ignoring unreadable cache file"):
        recomputed, _ = node_features(ei, 40, cache=True)
    assert len(calls) == 4 and torch.equal(recomputed, first)
    node_features(ei, 40)  # 160 edges < CACHE_MIN_EDGES: not cached by default
    assert len(calls) == 5


def test_default_cache_threshold(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path))
    monkeypatch.setattr(features_module, "CACHE_MIN_EDGES", 10)
    node_features(_graph(), 40)
    assert len(list((cache_dir() / "embeddings").glob("*.npz"))) == 1
