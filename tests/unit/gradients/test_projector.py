"""GradientProjector: geometry, determinism, chunk invariance, blocks and errors (sklearn style)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from graphtag.errors import GraphtagError
from graphtag.gradients import GradientProjector


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(7, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x)))


def _dense(proj: GradientProjector) -> torch.Tensor:
    """The [D, d] matrix P, assembled from directions (test-only)."""
    dirs = proj.directions(0, proj.dim, dtype=torch.float64)
    return torch.cat([dirs[n].reshape(proj.dim, -1) for n in proj.param_names_], dim=1).T


def _flat_space(num_params: int) -> dict[str, torch.Tensor]:
    # Three "parameters" so that vectors span several generated blocks.
    a = num_params // 3
    return {"a": torch.zeros(a), "b": torch.zeros(2, (num_params - a) // 2), "c": torch.zeros(1)}


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_projection_preserves_pairwise_distances(kind: str) -> None:
    # sklearn's test_random_projection_embedding_quality: squared distance ratios in [1-eps, 1+eps]
    # (eps = 0.3 needs d >= 4 ln(n) / (eps^2/2 - eps^3/3) = 330 for n = 20 points).
    space = _flat_space(1501)
    proj = GradientProjector(dim=400, kind=kind, seed=3).fit(space)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, proj.num_params_, generator=gen, dtype=torch.float64)
    z = proj.project(x)
    assert z.shape == (20, 400)
    orig = torch.pdist(x) ** 2
    proj_d = torch.pdist(z) ** 2
    ratio = proj_d / orig
    eps = 0.3
    assert float(ratio.min()) > 1 - eps and float(ratio.max()) < 1 + eps
    # Inner products are preserved up to eps * |x| |y|.
    gram_err = (z @ z.T - x @ x.T).abs()
    norms = x.norm(dim=1)
    assert bool((gram_err <= eps * torch.outer(norms, norms)).all())


def test_rademacher_entries_are_signs_over_sqrt_d() -> None:
    proj = GradientProjector(dim=16, kind="rademacher").fit(_Net())
    p = _dense(proj)
    assert p.shape == (proj.num_params_, 16)
    assert torch.equal(p.abs(), torch.full_like(p, 1 / math.sqrt(16)))
    # Both signs occur in every direction, roughly balanced overall.
    assert abs(float((p > 0).double().mean()) - 0.5) < 0.1


def test_gaussian_entries_have_variance_one_over_d() -> None:
    proj = GradientProjector(dim=50, kind="gaussian", seed=1).fit(_flat_space(3000))
    p = _dense(proj)
    assert abs(float(p.mean())) < 0.01
    assert abs(float(p.var()) * 50 - 1.0) < 0.03


def test_same_seed_identical_different_seed_or_kind_differs() -> None:
    model = _Net()
    a = _dense(GradientProjector(dim=8, seed=5).fit(model))
    b = _dense(GradientProjector(dim=8, seed=5).fit(model))
    c = _dense(GradientProjector(dim=8, seed=6).fit(model))
    g = _dense(GradientProjector(dim=8, kind="gaussian", seed=5).fit(model))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a.abs(), g.abs())
    # Distinct directions are distinct.
    assert not torch.equal(a[:, 0], a[:, 1])


def test_directions_are_chunk_invariant() -> None:
    proj = GradientProjector(dim=10, kind="gaussian", seed=2).fit(_Net())
    whole = proj.directions(0, 10)
    pieces = [proj.directions(s, e) for s, e in [(0, 3), (3, 4), (4, 10)]]
    for name in proj.param_names_:
        assert torch.equal(whole[name], torch.cat([p[name] for p in pieces]))
    # A direction's values do not depend on the requested range.
    assert torch.equal(proj.directions(7, 8)["head.weight"][0], whole["head.weight"][7])


def test_project_is_chunk_invariant_and_matches_dense_product() -> None:
    proj = GradientProjector(dim=9, seed=4).fit(_Net())
    x = torch.randn(6, proj.num_params_, dtype=torch.float64)
    dense = x @ _dense(proj)
    for chunk in (1, 4, 9, 100):
        torch.testing.assert_close(proj.project(x, chunk_size=chunk), dense)


def test_project_dict_equals_flat_and_expand_is_adjoint() -> None:
    model = _Net()
    proj = GradientProjector(dim=5, kind="gaussian", seed=0).fit(model)
    grads = {n: torch.randn(4, *p.shape, dtype=torch.float64) for n, p in model.named_parameters()}
    flat = torch.cat([grads[n].reshape(4, -1) for n in proj.param_names_], dim=1)
    torch.testing.assert_close(proj.project(grads), proj.project(flat))
    torch.testing.assert_close(proj.transform(grads), proj.project(flat))
    w = torch.randn(3, 5, dtype=torch.float64)
    moved = proj.expand(w, chunk_size=2)
    assert {n: tuple(v.shape) for n, v in moved.items()} == {
        n: (3, *p.shape) for n, p in model.named_parameters()
    }
    moved_flat = torch.cat([moved[n].reshape(3, -1) for n in proj.param_names_], dim=1)
    torch.testing.assert_close(moved_flat, w @ _dense(proj).T)
    # <P^T g, w> = <g, P w>
    torch.testing.assert_close(proj.project(flat) @ w.T, flat @ moved_flat.T)


def test_body_block_excludes_head_and_shares_directions_with_all() -> None:
    model = _Net()
    full = GradientProjector(dim=6, block="all", seed=9).fit(model)
    body = GradientProjector(dim=6, block="body", seed=9).fit(model)
    assert full.param_names_ == ["body.weight", "body.bias", "head.weight", "head.bias"]
    assert body.param_names_ == ["body.weight", "body.bias"]
    assert body.num_params_ == 7 * 5 + 5
    d_full, d_body = full.directions(0, 6), body.directions(0, 6)
    for name in body.param_names_:
        assert torch.equal(d_full[name], d_body[name])


def test_frozen_parameters_are_left_out() -> None:
    model = _Net()
    model.body.bias.requires_grad_(False)
    proj = GradientProjector(dim=3).fit(model)
    assert "body.bias" not in proj.param_names_


def test_cached_directions_are_reused_and_dropped() -> None:
    proj = GradientProjector(dim=4).fit(_Net())
    with proj.cached():
        a = proj.directions(0, 4)
        assert proj.directions(0, 4) is a
        with proj.cached():  # re-entrant: keeps the outer cache
            assert proj.directions(0, 4) is a
        assert proj.directions(0, 4) is a
    b = proj.directions(0, 4)
    assert b is not a
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_directions_follow_dtype_and_values_do_not_depend_on_it() -> None:
    proj = GradientProjector(dim=3, kind="gaussian").fit(_Net())
    d32 = proj.directions(0, 3)
    d64 = proj.directions(0, 3, dtype=torch.float64)
    assert d64["head.bias"].dtype == torch.float64
    assert torch.equal(d64["head.bias"].float(), d32["head.bias"])


@pytest.mark.gpu
def test_directions_identical_on_cuda() -> None:
    proj = GradientProjector(dim=3, kind="gaussian").fit(_Net())
    cpu = proj.directions(0, 3)
    gpu = proj.directions(0, 3, device="cuda")
    assert all(torch.equal(cpu[n], gpu[n].cpu()) for n in cpu)


def test_transform_and_expand_before_fit_raise() -> None:
    proj = GradientProjector(dim=4)
    with pytest.raises(GraphtagError, match=r"project called before fit; call projector\.fit"):
        proj.project(torch.zeros(2, 3))
    with pytest.raises(GraphtagError, match="expand called before fit"):
        proj.expand(torch.zeros(1, 4))
    with pytest.raises(GraphtagError, match="directions called before fit"):
        proj.directions(0, 1)


def test_dimension_mismatches_raise_with_both_shapes() -> None:
    proj = GradientProjector(dim=4).fit(_Net())
    d = proj.num_params_
    with pytest.raises(GraphtagError, match=rf"\[n, D={d}\], got \(2, {d + 1}\)"):
        proj.project(torch.zeros(2, d + 1))
    with pytest.raises(GraphtagError, match=r"\[B, d=4\], got \(3, 5\)"):
        proj.expand(torch.zeros(3, 5))
    grads = {n: torch.zeros(2, *s) for n, s in zip(proj.param_names_, proj.param_shapes_)}
    grads["head.bias"] = torch.zeros(2, 4)
    with pytest.raises(
        GraphtagError, match=r"'head.bias' has shape \(2, 4\), expected \[n, \*\(3,\)\]"
    ):
        proj.project(grads)
    del grads["head.bias"]
    grads["extra"] = torch.zeros(2, 1)
    with pytest.raises(GraphtagError, match=r"missing \['head.bias'\], unexpected \['extra'\]"):
        proj.project(grads)


def test_model_mismatch_raises() -> None:
    proj = GradientProjector(dim=4).fit(_Net())
    other = _Net()
    other.head = nn.Linear(5, 4)
    with pytest.raises(
        GraphtagError, match=r"'head.weight' has shape \(4, 5\) in the model but \(3, 5\)"
    ):
        proj.check_model(other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "dim must be a positive int, got 0"),
        ({"dim": 2.5}, "dim must be a positive int, got 2.5"),
        ({"kind": "sparse"}, "kind must be one of .*got 'sparse'"),
        ({"block": "head"}, "block must be one of .*got 'head'"),
        ({"seed": None}, "seed must be an int, got None"),
    ],
)
def test_invalid_hyperparameters_raise_in_fit(kwargs: dict, message: str) -> None:
    proj = GradientProjector(**kwargs)  # __init__ stores without validating
    with pytest.raises(GraphtagError, match=message):
        proj.fit(_Net())


def test_body_block_needs_a_head() -> None:
    with pytest.raises(GraphtagError, match=r"pass head='lin'.*has no `\.head` module"):
        GradientProjector(block="body").fit(nn.Linear(2, 2))
    with pytest.raises(GraphtagError, match=r"head='lin' names no parameter of Linear"):
        GradientProjector(block="body", head="lin").fit(nn.Linear(2, 2))
    with pytest.raises(GraphtagError, match=r"not a submodule of the model"):
        GradientProjector(block="body", head=nn.Linear(2, 2)).fit(nn.Linear(2, 2))


def test_head_by_prefix_module_or_alias_gives_the_same_body() -> None:
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    by_name = GradientProjector(block="body", head="2").fit(seq)
    by_module = GradientProjector(block="body", head=seq[2]).fit(seq)
    assert by_name.param_names_ == by_module.param_names_ == ["0.weight", "0.bias"]
    seq.head = seq[2]  # an alias: the parameters are reachable under two names
    assert GradientProjector(block="body").fit(seq).param_names_ == ["0.weight", "0.bias"]


def test_directions_range_checked() -> None:
    proj = GradientProjector(dim=4).fit(_Net())
    with pytest.raises(GraphtagError, match=r"directions\(2, 5\) out of range"):
        proj.directions(2, 5)


def test_subclass_hook_changes_the_distribution() -> None:
    class Ones(GradientProjector):
        def _sample(self, generator: torch.Generator, numel: int) -> torch.Tensor:
            return torch.ones(numel)

    proj = Ones(dim=4, kind="anything").fit(_Net())
    assert torch.equal(_dense(proj), torch.full((proj.num_params_, 4), 0.5, dtype=torch.float64))


def test_repr_and_unmodified_hyperparameters() -> None:
    proj = GradientProjector(dim=12, kind="gaussian", block="body", seed=7)
    assert repr(proj) == "GradientProjector(block='body', dim=12, kind='gaussian', seed=7)"
    proj.fit(_Net())
    assert (proj.dim, proj.kind, proj.block, proj.seed) == (12, "gaussian", "body", 7)
