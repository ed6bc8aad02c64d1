"""Tiny graphs and float64 models shared by the gradients tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from graphtag.data import build_multilabel_graph
from graphtag.models import SIGN, GraphInputs, ModelConfig, MultiTaskGNN, prepare_inputs

NUM_NODES = 24
NUM_TASKS = 3
NUM_FEATURES = 5
HIDDEN = 6


@dataclass
class Setup:
    name: str
    model: nn.Module
    inputs: GraphInputs
    data: Data


def make_graph(seed: int = 0) -> Data:
    gen = torch.Generator().manual_seed(seed)
    # A ring (every node has neighbours) plus random chords.
    ring = torch.stack([torch.arange(NUM_NODES), (torch.arange(NUM_NODES) + 1) % NUM_NODES])
    chords = torch.randint(0, NUM_NODES, (2, 20), generator=gen)
    y = (torch.rand(NUM_NODES, NUM_TASKS, generator=gen) < 0.4).float()
    x = torch.randn(NUM_NODES, NUM_FEATURES, generator=gen)
    return build_multilabel_graph(torch.cat([ring, chords], 1), y, name="tiny", x=x, seed=seed)


def make_setup(name: str, data: Data) -> Setup:
    """A float64 model (train mode, dropout 0.5: the code under test must switch to eval)."""
    torch.manual_seed(1)
    if name == "sign":
        config = ModelConfig("sign", hidden_channels=HIDDEN, num_hops=2)
        model = SIGN(NUM_FEATURES, HIDDEN, NUM_TASKS, num_hops=2, dropout=0.5)
    else:
        config = ModelConfig("sage", hidden_channels=HIDDEN, num_layers=2)
        model = MultiTaskGNN(NUM_FEATURES, HIDDEN, NUM_TASKS, num_layers=2, encoder="sage")
    model = model.double().train()
    inputs = prepare_inputs(data, config, "cpu")
    if inputs.hops is not None:
        inputs.hops = inputs.hops.double()
    if inputs.x is not None:
        inputs.x = inputs.x.double()
    return Setup(name, model, inputs, data)


@pytest.fixture(scope="module")
def graph() -> Data:
    return make_graph()


@pytest.fixture(params=["sign", "sage"])
def setup(request: pytest.FixtureRequest, graph: Data) -> Setup:
    return make_setup(request.param, graph)


@pytest.fixture
def sign_setup(graph: Data) -> Setup:
    return make_setup("sign", graph)


@pytest.fixture
def sage_setup(graph: Data) -> Setup:
    return make_setup("sage", graph)
