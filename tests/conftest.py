"""Shared pytest configuration: markers, device selection and seeding."""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

# Tests use tiny tensors; one intra-op thread per worker avoids oversubscribing the cores when
# pytest-xdist runs several workers (PyTorch's CPU scatter slows down sharply otherwise).
torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption("--rundataset", action="store_true", help="run tests marked dataset")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: use --runslow")
    skip_data = pytest.mark.skip(reason="needs prepared real datasets: use --rundataset")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "dataset" in item.keywords and not config.getoption("--rundataset"):
            item.add_marker(skip_data)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Device for tests, from ``GRAPHTAG_TEST_DEVICE`` (default ``cpu``)."""
    return torch.device(os.environ.get("GRAPHTAG_TEST_DEVICE", "cpu"))


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHTAG_CACHE", str(tmp_path_factory.getbasetemp() / "graphtag-cache"))


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="session")
def load_experiment() -> Callable[[str], ModuleType]:
    """``load_experiment("bench_snap")``: a fresh import of ``experiments/bench_snap.py``."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
        assert spec is not None and spec.loader is not None, name
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
