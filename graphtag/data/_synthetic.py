"""Synthetic multi-label graphs with planted task groups.

The generator plants the answer that task grouping should find. Every node belongs to one
community (planted partition, mean size ``community_size``). Every task group ``g`` owns a
latent space of dimension ``r = latent_dim``: each community gets a position ``a[c, g]`` drawn
uniformly from the cube ``[-√3, √3]^r`` (unit variance per coordinate), and a node sits at its
community's position plus a small jitter, ``z[i, g] = a[c(i), g] + 0.05 ε``. Positions of
different groups are independent.

* **Tasks** of group ``g`` are balls in group ``g``'s latent space: task ``t`` is positive at the
  ``p_t`` fraction of nodes nearest to its centre ``μ_t = μ_g + spread · ε_t`` (``μ_g`` drawn
  from ``[-√3/2, √3/2]^r``, ``p_t`` uniform in ``[prevalence / 2, 3 prevalence / 2]``). Tasks of
  one group are nested or overlapping balls around one point: they share latent communities
  and their labels are strongly correlated. Tasks of different groups depend on independent
  coordinates and carry no information about each other. Label noise: each label is replaced,
  with probability ``noise``, by a fresh Bernoulli(``p_t``) draw.
* **Graph**: each node draws Poisson(``avg_degree / 2``) edges; an edge stays inside the node's
  community with probability ``homophily`` and goes to a uniformly random node otherwise. The
  graph is homophilous for every group's latent positions, so propagated features (SIGN hops,
  message passing) denoise them.
* **Features** ``x = Σ_g z[:, g] A_g + feature_noise · ε``, columns standardised; ``A_g`` maps
  group ``g``'s ``r`` coordinates to its own orthonormal directions of the ``feature_dim``
  columns (random unit directions when ``num_groups · latent_dim > feature_dim``).

Interference. A ball in ``r`` dimensions needs about ``r`` hidden units (one ``|u·x - b|``
ridge per latent direction), and tasks of one group need the same units, while every other
group needs ``r`` units of its own. ``latent_dim`` is therefore the knob that makes groups
interfere: a model whose hidden layer is narrower than about (groups trained together) ×
``latent_dim`` must split it between groups, so an other-group partner hurts a task, while a
same-group partner adds labels of nearly the same function and helps.
``tests/integration/test_synthetic_transfer.py`` checks ``same-group partner < alone <
other-group partner`` for the validation loss of target tasks (SIGN, hidden width 4,
``latent_dim=6``, ``community_size=25``); with width 32 the other-group partner is neutral.

Why generated rather than structural features: the tasks are functions of latent positions
that the graph alone does not reveal (it shows the communities, not where they sit). On 64
structural features a model learns community identities, which every task can use, so tasks of
different groups help each other. In the transfer test's setting (generator seeds 0-2, 3
targets × 3 training seeds), an other-group partner changed a target's validation BCE by
-0.024 to -0.007 at width 32 with structural features (it helped) and by -0.014 to 0.012 with
the generated ones; at width 4 a same-group partner helped by 0.012 to 0.020 with structural
features and 0.033 to 0.059 with generated ones.

Label correlations: over a finite number ``C`` of communities, tasks of different groups still
show chance label correlations of about ``±1/√C``, which make an other-group partner slightly
informative on small graphs; hence the small default communities (``C = N / 10``: 300 at the
default size, spread of cross-group correlations about ±0.1, mean about 0). Tasks of one group
correlate at 0.5 or more.

Cost: ``O(N · avg_degree)`` for the edges and ``O(N · (num_groups · latent_dim · feature_dim +
num_tasks · latent_dim))`` for features and labels, vectorised (labels in blocks of nodes with
reused buffers). The speed-up of issue 2 kept every random stream: labels, edges and groups are
identical to the earlier implementation's, splits too (bar ties of float32 keys at a split
boundary, now broken by node index), and features agree to float32 rounding (the column
statistics are computed differently). ``experiments/bench_synthetic.py`` times every step;
1M nodes × 500 tasks × 50 groups take about 22 s of CPU time and 5.3 GiB peak RSS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from .._utils import torch_generator
from ..errors import GraphtagError
from ._graph import build_multilabel_graph
from ._spec import DatasetSpec

__all__ = ["SYNTHETIC_OPTIONS", "make_multilabel_graph", "synthetic_from_spec"]

#: ``key=value`` options accepted by the ``synthetic`` dataset spec (defaults and meaning:
#: :func:`make_multilabel_graph`).
SYNTHETIC_OPTIONS: tuple[str, ...] = (
    "num_nodes",
    "num_tasks",
    "num_groups",
    "noise",
    "avg_degree",
    "homophily",
    "community_size",
    "latent_dim",
    "feature_dim",
    "feature_noise",
    "prevalence",
    "spread",
    "seed",
    "features",
    "embedding_dim",
)

_OPTION_TYPES: dict[str, type] = {
    "num_nodes": int,
    "num_tasks": int,
    "num_groups": int,
    "noise": float,
    "avg_degree": float,
    "homophily": float,
    "community_size": int,
    "latent_dim": int,
    "feature_dim": int,
    "feature_noise": float,
    "prevalence": float,
    "spread": float,
    "seed": int,
    "features": str,
    "embedding_dim": int,
}

MIN_NODES = 50
_JITTER = 0.05  # node offset from its community's latent position (latent units)
_HALF_WIDTH = math.sqrt(3.0)  # latent cube [-√3, √3]: unit variance per coordinate
_QUANTILE_SAMPLE = 1 << 15  # nodes used to place ball radii (all nodes when N is smaller)
_CHUNK_ELEMENTS = 1 << 24  # (node, task) pairs per label block
_STATS_ROWS = 1 << 10  # feature rows per block of the column statistics


@dataclass(frozen=True)
class _RawSynthetic:
    """Generator output before assembly (edges raw: one direction, may hold duplicates)."""

    edge_index: Tensor  # int64 [2, E]
    x: Tensor  # float32 [N, F]
    y: Tensor  # bool [N, T]
    groups: list[list[int]]
    meta: dict[str, Any]


def _check_parameters(
    num_nodes: int,
    num_tasks: int,
    num_groups: int,
    noise: float,
    avg_degree: float,
    homophily: float,
    community_size: int,
    latent_dim: int,
    feature_dim: int,
    feature_noise: float,
    prevalence: float,
    spread: float,
) -> None:
    def bad(what: str) -> GraphtagError:
        return GraphtagError(f"synthetic graph: {what}")

    if num_nodes < MIN_NODES:
        raise bad(
            f"num_nodes must be >= {MIN_NODES} (fewer leave too few positives per task for the "
            f"20/20/60 split), got {num_nodes}"
        )
    if num_tasks < 1:
        raise bad(f"num_tasks must be >= 1, got {num_tasks}")
    if not 1 <= num_groups <= num_tasks:
        raise bad(
            f"num_groups must lie in [1, num_tasks={num_tasks}] (every group needs a task), "
            f"got {num_groups}"
        )
    if not 0.0 <= noise < 1.0:
        raise bad(f"noise (label replacement probability) must lie in [0, 1), got {noise}")
    if not 0.0 < avg_degree < num_nodes:
        raise bad(f"avg_degree must lie in (0, num_nodes={num_nodes}), got {avg_degree}")
    if not 0.0 <= homophily <= 1.0:
        raise bad(
            f"homophily (fraction of within-community edges) must lie in [0, 1], got {homophily}"
        )
    if not 2 <= community_size <= num_nodes:
        raise bad(f"community_size must lie in [2, num_nodes={num_nodes}], got {community_size}")
    if latent_dim < 1:
        raise bad(f"latent_dim must be >= 1, got {latent_dim}")
    if feature_dim < 1:
        raise bad(f"feature_dim must be >= 1, got {feature_dim}")
    if not feature_noise >= 0.0:
        raise bad(f"feature_noise must be >= 0, got {feature_noise}")
    if not 0.0 < prevalence <= 0.5:
        raise bad(f"prevalence (mean positive rate) must lie in (0, 0.5], got {prevalence}")
    if prevalence * num_nodes / 2 < 5:
        raise bad(
            f"prevalence={prevalence} with num_nodes={num_nodes} gives tasks with fewer than 5 "
            "positives; raise num_nodes or prevalence"
        )
    if not spread >= 0.0:
        raise bad(f"spread must be >= 0, got {spread}")


def _planted_groups(num_tasks: int, num_groups: int, gen: torch.Generator) -> Tensor:
    """Group of every task ``[T]``: balanced sizes, tasks shuffled so groups are not contiguous."""
    base = torch.arange(num_tasks) * num_groups // num_tasks
    return base[torch.randperm(num_tasks, generator=gen)]


def _edges(
    community: Tensor, num_communities: int, avg_degree: float, homophily: float, seed: int
) -> Tensor:
    """Raw planted-partition edges ``[2, E]`` (one direction; loops and duplicates possible)."""
    num_nodes = community.numel()
    gen = torch_generator(seed, "synthetic", "edges")
    rate = torch.full((num_nodes,), avg_degree / 2.0, dtype=torch.float64)
    src = torch.repeat_interleave(
        torch.arange(num_nodes), torch.poisson(rate, generator=gen).long()
    )
    num_edges = src.numel()
    # Members of every community, contiguous: a uniform member of c is order[start[c] + k].
    # numpy's stable argsort is the same permutation, several times faster than torch's on CPU.
    order = torch.from_numpy(np.argsort(community.numpy(), kind="stable"))
    sizes = torch.bincount(community, minlength=num_communities)
    starts = torch.cumsum(sizes, 0) - sizes
    cs = community[src]
    offset = (torch.rand(num_edges, generator=gen, dtype=torch.float64) * sizes[cs]).long()
    inside = order[starts[cs] + torch.minimum(offset, sizes[cs] - 1)]
    anywhere = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    keep_inside = torch.rand(num_edges, generator=gen) < homophily
    return torch.stack([src, torch.where(keep_inside, inside, anywhere)])


def _feature_maps(
    num_groups: int, latent_dim: int, feature_dim: int, gen: torch.Generator
) -> Tensor:
    """Maps ``A`` ``[G, r, F]`` from each group's latent coordinates to the feature columns.

    Orthonormal rows when ``G * r <= F``, random unit rows otherwise.
    """
    k = num_groups * latent_dim
    raw = torch.randn(feature_dim, k, generator=gen)
    basis = torch.linalg.qr(raw).Q if k <= feature_dim else raw / raw.norm(dim=0, keepdim=True)
    return basis.T.reshape(num_groups, latent_dim, feature_dim)


def _slot_scores(latent: Tensor, weights: Tensor, out: Tensor | None = None) -> Tensor:
    """``|z[i, g]|² - 2 z[i, g]·μ`` of every task slot for a block of nodes, ``[G * m, n]``.

    One batched product: each group's positions, augmented with their squared norm, times the
    matrix ``[-2 μ_t, 1]`` of the group's tasks.

    Args:
        latent: ``[n, G, r]`` node positions.
        weights: ``[G, m, r + 1]`` rows ``[-2 μ_t, 1]`` of each group's tasks (zero padded).
        out: Optional contiguous ``[G, m, n]`` float32 buffer for the result.
    """
    augmented = torch.cat([latent, latent.square().sum(-1, keepdim=True)], dim=-1)
    product = torch.bmm(weights, augmented.permute(1, 2, 0), out=out)  # [G, m, n]
    return product.view(-1, latent.size(0))


def _labels(
    latent: Tensor,
    task_group: Tensor,
    centres: Tensor,
    prevalence: Tensor,
    noise: float,
    seed: int,
) -> Tensor:
    """Noisy ball labels ``[N, T]`` (bool), computed in blocks of nodes.

    Ball radii are the ``p_t`` quantiles of the distances over all nodes, or over a seeded
    sample of 32768 nodes on larger graphs (the realised prevalence is then within a few tenths
    of a percentage point of ``p_t``). Blocks hold ``_CHUNK_ELEMENTS // T`` nodes; the noise
    uniforms are drawn task-major per block (this fixes the random stream).

    Args:
        latent: ``[N, G, r]`` node positions per group.
        task_group: ``[T]`` group of every task.
        centres: ``[T, r]`` ball centres.
        prevalence: ``[T]`` target positive rate of every task.
        noise: Probability of replacing a label by a Bernoulli(prevalence) draw.
        seed: Generator seed.
    """
    num_nodes, num_groups, latent_dim = latent.shape
    num_tasks = task_group.numel()
    # Slot of every task among its group's tasks, so the products batch over groups.
    order = torch.argsort(task_group, stable=True)
    sizes = torch.bincount(task_group, minlength=num_groups)
    slot = torch.empty(num_tasks, dtype=torch.long)
    slot[order] = torch.arange(num_tasks) - (torch.cumsum(sizes, 0) - sizes)[task_group[order]]
    width = int(sizes.max())
    weights = torch.zeros(num_groups, width, latent_dim + 1)
    weights[task_group, slot] = torch.cat([-2.0 * centres, torch.ones(num_tasks, 1)], dim=1)
    rows = task_group * width + slot  # row of task t in the [G * m, n] slot scores

    gen = torch_generator(seed, "synthetic", "labels")
    ref_nodes = torch.arange(num_nodes)
    if num_nodes > _QUANTILE_SAMPLE:
        ref_nodes = torch.randperm(num_nodes, generator=gen)[:_QUANTILE_SAMPLE]
    ref = _slot_scores(latent[ref_nodes], weights)[rows]  # [T, S]
    rank = (prevalence * ref.size(1)).round().long().clamp(1, ref.size(1)) - 1
    # numpy's vectorised sort is much faster than torch's on CPU; the order statistic is the same.
    ordered = torch.from_numpy(np.sort(ref.numpy(), axis=1))
    threshold = torch.full((num_groups * width, 1), -math.inf)
    threshold[rows] = ordered.gather(1, rank.unsqueeze(1))  # padded slots are never positive

    y = torch.empty(num_nodes, num_tasks, dtype=torch.bool)
    block = min(num_nodes, max(1, _CHUNK_ELEMENTS // num_tasks))
    fresh_rate = noise * prevalence.unsqueeze(1)  # < noise: a fresh positive is a replacement
    # Block buffers, reused: fresh allocations of this size cost a page fault per 4 KiB.
    scores = torch.empty(num_groups, width, block)
    hits = torch.empty(num_groups * width, block, dtype=torch.bool)
    u = torch.empty(num_tasks, block)
    keep = torch.empty(num_tasks, block, dtype=torch.bool)
    for lo in range(0, num_nodes, block):
        hi = min(num_nodes, lo + block)
        if hi - lo < block:  # the last, shorter block
            scores, hits, u, keep = (
                b[..., : hi - lo].contiguous() for b in (scores, hits, u, keep)
            )
        torch.le(_slot_scores(latent[lo:hi], weights, out=scores), threshold, out=hits)
        # [T, n] rows in task order. (index_select with out= is up to 100 times slower here,
        # depending on the row pattern.)
        labels = hits[rows]
        if noise > 0:
            # One uniform per label: u < noise replaces it; u / noise is then a fresh uniform,
            # so the new label u < noise * p_t is Bernoulli(p_t).
            torch.rand(labels.shape, generator=gen, out=u)
            labels &= torch.ge(u, noise, out=keep)
            labels |= torch.lt(u, fresh_rate, out=keep)
        y[lo:hi] = labels.T
    return y


def _standardise_columns_(x: Tensor) -> None:
    """Centre and scale the columns of ``x`` ``[N, F]`` in place (unbiased standard deviation).

    Corrected two-pass algorithm: centre on a first mean estimate, then take the residual mean
    and the squared deviations of the centred data. Column sums come from numpy over blocks of
    ``_STATS_ROWS`` rows, accumulated in float64 (``torch.std_mean`` over dim 0 is a strided
    Welford pass, about 50 times slower on CPU).
    """
    rows = x.numpy()
    num_rows, num_cols = rows.shape
    blocks = [rows[i : i + _STATS_ROWS] for i in range(0, num_rows, _STATS_ROWS)]
    total = np.zeros(num_cols)
    for b in blocks:
        total += b.sum(0)
    x.sub_(torch.from_numpy(total / num_rows).float())
    total[:] = 0.0
    squares = np.zeros(num_cols)
    for b in blocks:  # the views now hold the centred values
        total += b.sum(0)
        squares += np.einsum("ij,ij->j", b, b)
    residual = total / num_rows
    var = np.maximum(squares - num_rows * residual**2, 0.0) / max(1, num_rows - 1)
    std = torch.from_numpy(np.sqrt(var)).float().clamp(min=1e-12)
    x.sub_(torch.from_numpy(residual).float()).div_(std)


def _generate(
    num_nodes: int,
    num_tasks: int,
    num_groups: int,
    noise: float,
    avg_degree: float,
    homophily: float,
    community_size: int,
    latent_dim: int,
    feature_dim: int,
    feature_noise: float,
    prevalence: float,
    spread: float,
    seed: int,
) -> _RawSynthetic:
    """Draw edges, features, labels and groups (see the module docstring)."""
    num_communities = max(1, round(num_nodes / community_size))
    gen = torch_generator(seed, "synthetic", "latent")
    task_group = _planted_groups(num_tasks, num_groups, gen)
    community = torch.randint(0, num_communities, (num_nodes,), generator=gen)
    positions = (
        torch.rand(num_communities, num_groups, latent_dim, generator=gen) * 2 - 1
    ) * _HALF_WIDTH
    latent = positions.view(num_communities, -1).index_select(0, community)
    latent = latent.view(num_nodes, num_groups, latent_dim)
    latent += torch.randn(latent.shape, generator=gen).mul_(_JITTER)
    group_centre = (torch.rand(num_groups, latent_dim, generator=gen) - 0.5) * _HALF_WIDTH
    centres = group_centre[task_group] + spread * torch.randn(num_tasks, latent_dim, generator=gen)
    task_prevalence = prevalence * (0.5 + torch.rand(num_tasks, generator=gen))

    maps = _feature_maps(num_groups, latent_dim, feature_dim, gen)
    # x = feature_noise * ε + z A in one GEMM pass (the noise is drawn at the same point of the
    # stream as before), then standardised in place.
    x = torch.randn(num_nodes, feature_dim, generator=gen)
    x.addmm_(latent.view(num_nodes, -1), maps.reshape(-1, feature_dim), beta=feature_noise)
    _standardise_columns_(x)

    edge_index = _edges(community, num_communities, avg_degree, homophily, seed)
    y = _labels(latent, task_group, centres, task_prevalence, noise, seed)
    groups = [sorted(torch.nonzero(task_group == g).flatten().tolist()) for g in range(num_groups)]
    groups.sort()
    meta: dict[str, Any] = {
        "generator": "graphtag.data.make_multilabel_graph",
        "num_groups": num_groups,
        "noise": noise,
        "avg_degree": avg_degree,
        "homophily": homophily,
        "community_size": community_size,
        "num_communities": num_communities,
        "latent_dim": latent_dim,
        "feature_dim": feature_dim,
        "feature_noise": feature_noise,
        "prevalence": prevalence,
        "spread": spread,
        "generator_seed": seed,
        "task_prevalence": [round(float(p), 4) for p in task_prevalence],
        "attributes": (
            f"generated (dim={feature_dim}): per-group latent positions mixed into the columns "
            f"plus Gaussian noise (std {feature_noise}), standardised"
        ),
    }
    return _RawSynthetic(edge_index, x.float(), y, groups, meta)


def make_multilabel_graph(
    num_nodes: int = 3000,
    num_tasks: int = 12,
    num_groups: int = 3,
    *,
    noise: float = 0.05,
    avg_degree: float = 16.0,
    homophily: float = 0.8,
    community_size: int = 10,
    latent_dim: int = 4,
    feature_dim: int | None = None,
    feature_noise: float = 0.5,
    prevalence: float = 0.2,
    spread: float = 0.1,
    seed: int = 0,
    split_seed: int | None = None,
    name: str = "synthetic",
    features: str = "given",
    embedding_dim: int | None = None,
) -> Data:
    """Generate a multi-label graph whose tasks form planted groups.

    See the module docstring of ``graphtag.data._synthetic`` for the model. Tasks of one group
    are balls around one point of the group's latent space and help each other; tasks of
    different groups carry no information about each other and, in a model narrower than about
    (groups trained together) × ``latent_dim`` hidden units, compete for it. The defaults
    (3000 nodes, 12 tasks in 3 groups) keep a full graphtag run on two CPU cores within a few
    minutes.

    Args:
        num_nodes: Number of nodes ``N`` (at least 50).
        num_tasks: Number of tasks ``T``.
        num_groups: Number of planted groups, in ``[1, T]``; group sizes differ by at most one
            and tasks are assigned to groups in a seeded random order.
        noise: Probability in ``[0, 1)`` that a label is replaced by a Bernoulli(``p_t``) draw.
        avg_degree: Mean number of undirected edge draws per node. Repeated pairs are merged,
            so the realised mean degree is lower when ``avg_degree * homophily`` approaches
            ``community_size`` (about 10 at the defaults).
        homophily: Probability that an edge stays inside its source node's community.
        community_size: Mean number of nodes per community.
        latent_dim: Dimension ``r`` of every group's latent space (the interference knob: a
            group needs about ``r`` hidden units).
        feature_dim: Feature width ``F`` (default ``max(16, num_groups * latent_dim)``).
        feature_noise: Standard deviation of the feature noise (the latent signal has unit
            variance per coordinate).
        prevalence: Mean positive rate in ``(0, 0.5]``; task ``t``'s rate ``p_t`` is uniform in
            ``[prevalence / 2, 3 prevalence / 2]`` (before label noise, which keeps it).
        spread: Standard deviation of task centres around their group's centre (latent units;
            the latent cube has half-width √3).
        seed: Seed of everything generated (graph, features, labels, groups).
        split_seed: Seed of the per-task 20/20/60 split (default: ``seed``).
        name: Dataset name.
        features: Feature recipe (:func:`~graphtag.data.node_features`); the default
            ``"given"`` keeps the generated features (``"auto"`` would add a graph embedding,
            which reveals community identities that every task can use: see the module
            docstring).
        embedding_dim: Embedding width when ``features`` has one.

    Returns:
        A multi-label graph (contract: :mod:`graphtag.data._graph`) with ``planted_groups``
        (list of sorted lists of task indices, a partition of ``range(T)``, sorted by first
        element) and ``meta`` entries recording every generator parameter and the realised
        per-task ``task_prevalence``.

    Raises:
        GraphtagError: For a parameter out of range.

    Shapes:
        - ``x``: ``[N, F]``; ``y``, masks: ``[N, T]``; ``edge_index``: ``[2, E]``.

    Example:
        >>> data = make_multilabel_graph(num_nodes=200, num_tasks=6, num_groups=2, seed=1)
        >>> data.y.shape, data.planted_groups
        (torch.Size([200, 6]), [[0, 2, 5], [1, 3, 4]])
    """
    num_nodes, num_tasks, num_groups = int(num_nodes), int(num_tasks), int(num_groups)
    latent_dim, community_size = int(latent_dim), int(community_size)
    if feature_dim is None:
        feature_dim = max(16, num_groups * latent_dim)
    feature_dim = int(feature_dim)
    params: dict[str, Any] = {
        "noise": float(noise),
        "avg_degree": float(avg_degree),
        "homophily": float(homophily),
        "community_size": community_size,
        "latent_dim": latent_dim,
        "feature_dim": feature_dim,
        "feature_noise": float(feature_noise),
        "prevalence": float(prevalence),
        "spread": float(spread),
    }
    _check_parameters(num_nodes, num_tasks, num_groups, **params)
    raw = _generate(num_nodes, num_tasks, num_groups, seed=int(seed), **params)
    data = build_multilabel_graph(
        raw.edge_index,
        raw.y,
        name=name,
        x=raw.x,
        seed=int(seed) if split_seed is None else int(split_seed),
        features=features,
        feature_dim=embedding_dim,
        meta=raw.meta,
    )
    data.planted_groups = raw.groups
    return data


def synthetic_from_spec(spec: DatasetSpec, *, split_seed: int = 0) -> Data:
    """Build the ``synthetic[:key=value,...]`` dataset of a parsed spec.

    Options are those of :func:`make_multilabel_graph` listed in :data:`SYNTHETIC_OPTIONS`
    (``seed`` is the generator seed; ``split_seed`` comes from ``load_dataset(..., seed=)``).

    Raises:
        GraphtagError: For an unknown option, a value of the wrong type or out of range (the
            message names the spec).

    Example:
        >>> from graphtag.data import parse_spec
        >>> synthetic_from_spec(parse_spec("synthetic:num_nodes=100,num_tasks=4")).y.shape
        torch.Size([100, 4])
    """
    spec.check_options(set(SYNTHETIC_OPTIONS))
    kwargs = {key: spec.option(key, None, kind) for key, kind in _OPTION_TYPES.items()}
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    try:
        data = make_multilabel_graph(**kwargs, split_seed=split_seed)  # type: ignore[arg-type]
    except GraphtagError as exc:
        raise GraphtagError(f"dataset spec {spec.text!r}: {exc}") from None
    data.meta["spec"] = spec.text
    return data
