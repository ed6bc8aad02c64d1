"""The bad-input table of the Python API (issue 15): every mistake ends with one clear error.

Each row is ``(id, call, pattern)``: ``call()`` makes one mistake with graphtag's estimators and
must raise a :class:`~graphtag.errors.GraphtagError` (never a raw torch or numpy exception)
whose one-line message matches ``pattern`` and so names the field, what was found and the fix.
Ids are ``<field>/<what>``. Finding 4 of the issue (bad inputs that used to pass silently: a
label 2, overlapping train/validation masks, a ``NodeBatch.out`` of the wrong length, NaN
labels) is the rows marked ``silent``. A hypothesis test at the end feeds random label and mask
tensors to the data checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GCN, GraphSAGE

from graphtag.base import Estimator
from graphtag.baselines import TAGAffinity
from graphtag.clustering import SDPClustering, SpectralTaskClustering
from graphtag.data import as_multilabel, check_labels, load_dataset
from graphtag.errors import GraphtagError
from graphtag.estimation import GradTAG, make_synthetic_features
from graphtag.gradients import GradientProjector, extract_gradient_features, network_subset_losses
from graphtag.loader import make_neighbor_loader
from graphtag.models import ModelConfig, MultiTaskGNN, NodeBatch, prepare_inputs

N, T = 60, 4


@cache
def _graph() -> Data:
    g = load_dataset(f"synthetic:num_nodes={N},num_tasks={T},num_groups=2")
    train = torch.arange(N) % 3 == 0
    val = torch.arange(N) % 3 == 1
    return Data(x=g.x, edge_index=g.edge_index, y=g.y, train_mask=train, val_mask=val)


def _data(**changes: object) -> Data:
    """A fresh copy of the PyG-style graph with some attributes replaced (``None`` deletes)."""
    data = _graph().clone()
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


class Net(nn.Module):
    def __init__(self, outputs: int = T, flat: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gnn = GraphSAGE(16, 8, num_layers=2)
        self.lin = nn.Linear(8, outputs)
        self.flat = flat

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        out = self.lin(self.gnn(x, edge_index).relu())
        return out[:, 0] if self.flat else out


def _extract(data: Data | None = None, model: object = None, **kw: object) -> object:
    data = _data() if data is None else data
    inputs = kw.pop("inputs", data)
    projector = kw.pop("projector", GradientProjector(dim=4))
    return extract_gradient_features(
        Net() if model is None else model, inputs, data, projector, **kw
    )


def _with_value(name: str, node: int, value: float) -> Callable[[], object]:
    def call() -> object:
        y = _graph().y.clone()
        y[node, 1] = value
        return _extract(_data(y=y))

    return call


def _graphtag_setup() -> tuple[Data, nn.Module, object]:
    """graphtag's own graph ([N, T] masks), model and prepared inputs: the path that already
    worked before issue 15, where the silent rows passed without an error."""
    g = load_dataset(f"synthetic:num_nodes={N},num_tasks={T},num_groups=2")
    torch.manual_seed(0)
    model = MultiTaskGNN(16, 8, T, num_layers=2, encoder="sage")
    return g, model, prepare_inputs(g, ModelConfig("sage"), "cpu")


def _silent_extract(edit: Callable[[Data], None]) -> Callable[[], object]:
    def call() -> object:
        g, model, inputs = _graphtag_setup()
        edit(g)
        return extract_gradient_features(model, inputs, g, GradientProjector(dim=4))

    return call


def _label(value: float) -> Callable[[Data], None]:
    def edit(g: Data) -> None:
        node = int(torch.nonzero(g.train_mask[:, 1])[0])
        g.y[node, 1] = value

    return edit


def _overlap(g: Data) -> None:
    node = int(torch.nonzero(g.train_mask[:, 1])[0])
    g.val_mask[node, 1] = True


def _silent_tag(value: float) -> Callable[[], object]:
    def call() -> object:
        g, model, inputs = _graphtag_setup()
        batch = next(iter(inputs.batches(torch.arange(N), N, train=False)))
        y, mask = g.y.clone(), g.train_mask
        y[int(torch.nonzero(mask[:, 2])[0]), 2] = value
        return TAGAffinity(every=1).step(model, batch, y, mask, lr=0.1)

    return call


def _tag_step(y: torch.Tensor | None = None, mask: torch.Tensor | None = None, **kw) -> object:
    data = _data()
    y = data.y if y is None else y
    mask = data.train_mask if mask is None else mask
    batch = NodeBatch.from_pyg(data)
    return TAGAffinity(head="lin", **kw).step(Net(), batch, y, mask, lr=kw.pop("lr", 0.1))


def _tag_value(value: float) -> Callable[[], object]:
    def call() -> object:
        y = _graph().y.clone()
        y[0, 2] = value  # node 0 is a training node
        return _tag_step(y=y)

    return call


def _features():
    return make_synthetic_features(num_tasks=6, num_groups=2, seed=0)


def _sampled_loader() -> object:
    data = _data()
    loader = make_neighbor_loader(data, data.train_mask, [1, 1], 8, backend="torch")
    return _extract(data, inputs=loader, node_batch_size=8)


def _prepared_for_sage_with_gcn() -> object:
    g = load_dataset(f"synthetic:num_nodes={N},num_tasks={T},num_groups=2")
    model = GCN(16, 8, num_layers=2, out_channels=T)
    inputs = prepare_inputs(g, ModelConfig("sage"), "cpu")
    return extract_gradient_features(model, inputs, g, GradientProjector(dim=4), node_batch_size=8)


def _uncovered() -> object:
    data = _data()
    loader = make_neighbor_loader(data, torch.arange(5), [-1, -1], 5, backend="torch")
    return _extract(data, inputs=list(loader))


SILENT = "silent"  # finding 4: these passed without an error before

CASES: list[tuple[str, Callable[[], object], str]] = [
    # -------------------------------------------------------------- labels and masks (data)
    (
        f"y/value-2 ({SILENT})",
        _with_value("y", 0, 2.0),
        r"y has value 2 at node 0, task 1 .*one_hot",
    ),
    ("y/value-negative", _with_value("y", 3, -1.0), r"y has value -1 at node 3, task 1"),
    (f"y/nan-labelled ({SILENT})", _with_value("y", 0, float("nan")), r"y is NaN at 1 labelled"),
    ("y/missing", lambda: _extract(_data(y=None)), r"data has no y; set data.y to the 0/1 labels"),
    (
        "y/3-d",
        lambda: _extract(_data(y=torch.zeros(N, T, 1))),
        r"y must have shape \[N\] .*\[N, T\]",
    ),
    ("y/not-tensor", lambda: as_multilabel(_data(y=[0, 1])), r"y must be a tensor .*got list"),
    ("mask/missing-val", lambda: _extract(_data(val_mask=None)), r"data has no val_mask; .*Random"),
    (
        "mask/index-tensor",
        lambda: _extract(_data(train_mask=torch.arange(0, N, 3))),
        r"train_mask must be a bool tensor \[N\] = \[60\].*got int64 \[20\].*index_to_mask",
    ),
    (
        "mask/float",
        lambda: _extract(_data(val_mask=torch.ones(N))),
        r"val_mask must be a bool tensor .*got float32 \[60\]; convert it with mask\.bool\(\)",
    ),
    (
        "mask/short",
        lambda: _extract(_data(train_mask=torch.ones(N - 1, dtype=torch.bool))),
        r"train_mask must be a bool tensor \[N\] = \[60\].*got bool \[59\]",
    ),
    (
        "mask/task-count",
        lambda: _extract(_data(train_mask=torch.ones(N, T + 1, dtype=torch.bool))),
        r"train_mask .*\[N, T\] = \[60, 4\].*got bool \[60, 5\]; y is \[60, 4\]",
    ),
    (
        f"mask/train-val-overlap ({SILENT})",
        _silent_extract(_overlap),
        r"train_mask and val_mask overlap at 1 \(node, task\) entries \(first: node \d+, task 1",
    ),
    ("x/rows", lambda: _extract(_data(x=torch.zeros(N - 1, 16))), r"data\.x has 59 rows but y"),
    ("data/tensor", lambda: as_multilabel(torch.zeros(3)), r"data must be a torch_geometric"),
    # -------------------------------------------------------------- model, inputs, batches
    ("model/not-module", lambda: _extract(model="net"), r"model must be a torch\.nn\.Module"),
    (
        "model/outputs",
        lambda: _extract(model=Net(outputs=T + 1)),
        r"the model has 5 outputs but data has 4 tasks; pass tasks=",
    ),
    ("model/1-d-logits", lambda: _extract(model=Net(flat=True)), r"needs logits \[rows, T\]"),
    ("projector/not-one", lambda: _extract(projector="P"), r"projector must be a GradientProj"),
    ("inputs/int", lambda: _extract(inputs=3), r"inputs must be a PyG Data, a PyG NeighborLoader"),
    ("inputs/sampled-loader", _sampled_loader, r"NodeLoader mini-batches are not exact.*\[-1\]"),
    ("inputs/other-model", _prepared_for_sage_with_gcn, r"not exact for this model.*prepare_in"),
    ("inputs/uncovered", _uncovered, r"rows were not produced: the batches did not cover"),
    (
        "forward_kwargs/missing",
        lambda: _extract(forward_kwargs=("edge_attr",)),
        r"forward_kwargs names 'edge_attr' but the batch has no such attribute",
    ),
    (
        "forward_kwargs/type",
        lambda: _extract(forward_kwargs=3),
        r"forward_kwargs must be attribute names such as \('edge_attr',\)",
    ),
    ("node_batch_size/zero", lambda: _extract(node_batch_size=0), r"node_batch_size must be a pos"),
    (
        f"NodeBatch.out/length ({SILENT})",
        lambda: NodeBatch(torch.arange(4), (torch.zeros(4, 2),), torch.arange(3)),
        r"NodeBatch\.out has 3 rows but nodes has 4: out\[k\] must be the output row of nodes\[k\]",
    ),
    (
        "NodeBatch.nodes/float",
        lambda: NodeBatch(torch.zeros(2), (torch.zeros(2, 2),), torch.arange(2)),
        r"NodeBatch\.nodes must be a 1-d integer tensor \[B\], got torch\.float32 \[2\]",
    ),
    (
        "NodeBatch.args/not-tuple",
        lambda: NodeBatch(torch.arange(2), torch.zeros(2, 2), torch.arange(2)),
        r"NodeBatch\.args must be a tuple",
    ),
    (
        "network/weights-shape",
        lambda: network_subset_losses(
            Net(), _data(), _data(), GradientProjector(dim=4).fit(Net()), [(0, 1)], torch.zeros(1)
        ),
        r"weights must be a tensor \[M, d\], got \(1,\)",
    ),
    # -------------------------------------------------------------- GradientProjector
    ("projector/dim", lambda: GradientProjector(dim=0).fit(Net()), r"dim must be a positive int"),
    ("projector/block", lambda: GradientProjector(block="head").fit(Net()), r"block must be one"),
    (
        "projector/head-unknown",
        lambda: GradientProjector(block="body", head="linear").fit(Net()),
        r"head='linear' names no parameter of Net; use one of its parameter groups: gnn\.convs",
    ),
    (
        "projector/head-foreign",
        lambda: GradientProjector(block="body", head=nn.Linear(8, T)).fit(Net()),
        r"head is a Linear that is not a submodule of the model",
    ),
    (
        "projector/no-head",
        lambda: GradientProjector(block="body").fit(Net()),
        r"pass head='lin' .* Net has no `\.head` module",
    ),
    # -------------------------------------------------------------- TAGAffinity
    ("tag/y-value-2-pyg", _tag_value(2.0), r"TAGAffinity: y has value 2 at node 0, task 2"),
    (
        f"tag/y-value-2 ({SILENT})",
        _silent_tag(2.0),
        r"TAGAffinity: y has value 2 at node \d+, task 2",
    ),
    (
        f"tag/nan-label ({SILENT})",
        _silent_tag(float("nan")),
        r"TAGAffinity: y is NaN at 1 labelled",
    ),
    (
        "tag/mask-rows",
        lambda: _tag_step(mask=torch.ones(N - 2, dtype=torch.bool)),
        r"TAGAffinity: mask has shape \(58,\) but the batch has 60 seed nodes",
    ),
    (
        "tag/no-lr",
        lambda: TAGAffinity(head="lin").step(Net(), _data()),
        r"no lookahead step size; pass lr=",
    ),
    ("tag/every", lambda: _tag_step(every=0), r"every=0 must be an integer >= 1"),
    ("tag/mode", lambda: _tag_step(mode="fast"), r"mode='fast' is unknown; use one of exact"),
    (
        "tag/no-head",
        lambda: TAGAffinity().step(Net(), _data(), lr=0.1),
        r"TAGAffinity needs the model's output layer: pass head='lin'",
    ),
    (
        "tag/nodebatch-without-labels",
        lambda: TAGAffinity(head="lin").step(Net(), NodeBatch.from_pyg(_data()), lr=0.1),
        r"a NodeBatch needs its labels: pass y \[B, T\] and mask \[B, T\]",
    ),
    (
        "tag/pyg-batch-without-mask",
        lambda: TAGAffinity(head="lin").step(Net(), _data(train_mask=None), lr=0.1),
        r"the PyG batch has no train_mask; pass it to step\(\)/fit\(\)",
    ),
    ("tag/not-fitted", lambda: TAGAffinity().affinity_, r"has no measurement yet"),
    (
        "tag/fit-no-batches",
        lambda: TAGAffinity(head="lin").fit(Net(), [], lr=0.1),
        r"TAGAffinity\.fit: no batches",
    ),
    # -------------------------------------------------------------- GradTAG
    ("gradtag/l2", lambda: GradTAG(l2=-1.0).fit(_features()), r"l2 must be None .* or a number"),
    ("gradtag/loss", lambda: GradTAG(loss="exact").fit(_features()), r"loss must be 'linear'"),
    (
        "gradtag/subset-size",
        lambda: GradTAG(subset_size=9, num_subsets=5).fit(_features()),
        r"subset_size=9 is larger than the number of tasks \(6\)",
    ),
    ("gradtag/features", lambda: GradTAG().fit(np.zeros((3, 3))), r"GradientFeatures"),
    ("gradtag/not-fitted", lambda: GradTAG().estimate([0, 1]), r"not fitted yet; call GradTAG"),
    # -------------------------------------------------------------- clustering
    (
        "sdp/num_groups>T",
        lambda: SDPClustering(num_groups=5).fit(np.eye(3)),
        r"num_groups=5 exceeds the number of tasks T=3",
    ),
    ("sdp/not-square", lambda: SDPClustering(2).fit(np.ones((2, 3))), r"square \[T, T\] matrix"),
    (
        "sdp/nan",
        lambda: SDPClustering(2).fit(np.array([[0.0, np.nan], [np.nan, 0.0]])),
        r"NaN",
    ),
    (
        "sdp/solver_options",
        lambda: SDPClustering(2, solver_options="fast").fit(np.eye(3)),
        r"solver_options must be a dict",
    ),
    ("spectral/negative", lambda: SpectralTaskClustering(2, negative="abs").fit(np.eye(3)), r"neg"),
    ("estimator/set_params", lambda: GradTAG().set_params(lr=1), r"GradTAG has no parameter 'lr'"),
]


def test_the_table_is_large_and_covers_the_silent_findings() -> None:
    assert len(CASES) >= 25
    assert sum(SILENT in case_id for case_id, _, _ in CASES) >= 6
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("call", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_python_input_gives_one_clear_error(call: Callable[[], object], pattern: str) -> None:
    with pytest.raises(GraphtagError) as info:
        call()
    message = str(info.value)
    assert re.search(pattern, message), (pattern, message)
    assert "\n" not in message


_dtypes = st.sampled_from([torch.bool, torch.int64, torch.float32, torch.float64])


@st.composite
def _labels_and_masks(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = draw(st.integers(1, 6))
    t = draw(st.integers(1, 3))
    y_shape = draw(st.sampled_from([(n,), (n, t), (n, t, 1), (n + 1, t), ()]))
    values = draw(st.sampled_from([[0.0, 1.0], [0.0, 1.0, 2.0], [0.0, float("nan")], [-1.0, 1.0]]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 10**6)))
    pick = torch.randint(0, len(values), y_shape, generator=g)
    y = torch.tensor(values)[pick].to(draw(st.sampled_from([torch.float32, torch.float64])))
    if draw(st.booleans()) and not torch.isnan(y).any():
        y = y.to(torch.int64)

    def mask() -> torch.Tensor:
        shape = draw(st.sampled_from([(n,), (n, t), (n - 1,), (n, t + 1)]))
        return (torch.rand(shape, generator=g) < 0.5).to(draw(_dtypes))

    return y, mask(), mask()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_labels_and_masks())
def test_fuzzed_labels_and_masks_pass_or_raise_graphtag_errors(case) -> None:
    y, train, val = case
    try:
        y2, masks = check_labels(y, {"train_mask": train, "val_mask": val})
    except GraphtagError as exc:
        assert "\n" not in str(exc)
        return
    labelled = masks["train_mask"] | masks["val_mask"]
    assert y2.dtype == torch.float32 and y2.dim() == 2 and labelled.shape == y2.shape
    assert not (masks["train_mask"] & masks["val_mask"]).any()
    assert set(y2[labelled].tolist()) <= {0.0, 1.0}


def test_estimators_refuse_unknown_parameters_uniformly() -> None:
    for est in (GradTAG(), TAGAffinity(), SDPClustering(2), GradientProjector()):
        assert isinstance(est, Estimator)
        with pytest.raises(GraphtagError, match="has no parameter 'nope'"):
            est.set_params(nope=1)
