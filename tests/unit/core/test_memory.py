"""graphtag.memory: size parsing, stage estimates, the budget check and RSS measurement."""

from __future__ import annotations

import doctest
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import graphtag.memory as memory
import graphtag.memory._measure as measure
from graphtag.errors import GraphtagError
from graphtag.memory import (
    STAGES,
    PeakTracker,
    available_memory,
    check_memory_budget,
    current_rss,
    estimate_data_memory,
    estimate_run_memory,
    format_bytes,
    parse_memory,
)
from graphtag.methods import GradTAGMethod
from graphtag.training import TrainConfig

REPO = Path(__file__).resolve().parents[3]
MiB = 2**20


def small_estimate(**changes: object):
    sizes = {"num_nodes": 20_000, "num_edges": 160_000, "num_features": 64, "num_tasks": 40}
    sizes.update({k: v for k, v in changes.items() if k in sizes})
    train = TrainConfig(device="cpu")
    est = GradTAGMethod(
        **{k: v for k, v in changes.items() if k in ("projection_dim", "num_subsets")}
    )
    return estimate_run_memory(
        sizes["num_nodes"],
        sizes["num_edges"],
        sizes["num_features"],
        sizes["num_tasks"],
        train,
        est,
    )


# ---------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 * MiB),
        ("16G", 16 * 2**30),
        ("16g", 16 * 2**30),
        ("1.5GiB", 3 * 2**29),
        ("2048", 2048),
        ("2048B", 2048),
        (" 4 GB ", 4 * 2**30),
        ("1T", 2**40),
        ("64k", 64 * 1024),
        (".5M", MiB // 2),
    ],
)
def test_parse_memory_values(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "16 X", "-1G", "1e9", "nan", "16GG", "G"])
def test_parse_memory_rejects_garbage(text: str) -> None:
    with pytest.raises(GraphtagError, match=r"cannot read memory size .*e\.g\. 512M, 16G"):
        parse_memory(text)


def test_parse_memory_rejects_zero() -> None:
    with pytest.raises(GraphtagError, match="is zero; give a positive size"):
        parse_memory("0.0001K")


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(1000 * 2**20) == "1000 MiB"
    assert format_bytes(3 * 2**30) == "3 GiB"


# ---------------------------------------------------------------------------------- estimates


@pytest.mark.parametrize(
    ("name", "small", "large", "stages"),
    [
        ("num_nodes", 10_000, 40_000, ("data", "inputs", "features", "surrogate")),
        ("num_tasks", 20, 80, ("data", "base_training", "features", "surrogate")),
        ("projection_dim", 64, 256, ("features", "surrogate")),
    ],
)
def test_estimates_grow_with_size(name: str, small: int, large: int, stages: tuple) -> None:
    lo, hi = small_estimate(**{name: small}), small_estimate(**{name: large})
    assert hi.peak > lo.peak
    for stage in stages:
        assert hi.stage(stage).total > lo.stage(stage).total, stage
    # Stages that do not depend on the setting are unchanged.
    if name == "projection_dim":
        for stage in ("data", "inputs", "base_training", "clustering"):
            assert hi.stage(stage).total == lo.stage(stage).total


def test_peak_is_the_cumulative_maximum() -> None:
    est = small_estimate()
    held, best = 0, 0
    for s in est.stages:
        best = max(best, held + s.total)
        held += s.held
    assert est.peak == best
    assert [s.name for s in est.stages] == list(STAGES)
    assert est.peak_of(STAGES[1:]) <= est.peak
    assert est.peak_of(["clustering"]) == est.clustering
    with pytest.raises(GraphtagError, match="unknown stage"):
        est.peak_of(["training"])
    text = est.describe()
    for name in STAGES:
        assert name in text
    assert f"peak {format_bytes(est.peak)} (at {est.peak_stage})" in text
    assert json.loads(json.dumps(est.to_dict()))["peak"] == est.peak


def test_held_bytes_match_real_tensors(tiny_run: dict) -> None:
    """Held terms are exact: the data, hops, model and features the library really keeps."""
    data, inputs, model, feats, est = (tiny_run[k] for k in ("data", "inputs", "model", "f", "est"))

    def nbytes(*tensors: torch.Tensor) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    def terms(stage: str, *labels: str) -> int:
        parts = {label: b for label, b, _ in est.stage(stage).parts}
        return sum(parts[label] for label in labels)

    assert terms("data", "x", "edge_index", "y + masks") == nbytes(
        data.x, data.edge_index, data.y, data.train_mask, data.val_mask, data.test_mask
    )
    assert terms("inputs", "hops") == est.stage("inputs").held == nbytes(inputs.hops)
    assert terms("base_training", "model") == nbytes(*model.parameters())
    assert terms("features", "features", "row metadata") == nbytes(
        feats.features, feats.offsets, feats.labels, feats.task, feats.node, feats.split
    )
    assert est.sizes["num_parameters"] == sum(p.numel() for p in model.parameters())


def test_parameter_count_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    small_estimate()
    assert torch.equal(torch.random.get_rng_state(), state)


def test_device_terms_are_reported_apart() -> None:
    kwargs = {"num_labelled_rows": None}
    cpu = estimate_run_memory(20_000, 160_000, 64, 40, TrainConfig(), GradTAGMethod(), **kwargs)
    gpu = estimate_run_memory(
        20_000, 160_000, 64, 40, TrainConfig(), GradTAGMethod(), device="cuda", **kwargs
    )
    assert cpu.device_peak == 0 and gpu.device_peak > 0
    assert gpu.stage("inputs").total == 0  # the hops live on the accelerator
    assert gpu.stage("inputs").device_held == cpu.stage("inputs").held
    assert gpu.peak < cpu.peak
    assert "accelerator peak" in gpu.describe()


def test_estimate_rejects_bad_sizes() -> None:
    with pytest.raises(GraphtagError, match="num_nodes must be an integer >= 1, got 0"):
        estimate_run_memory(0, 10, 4, 3, TrainConfig(), GradTAGMethod())


# ---------------------------------------------------------------------------------- budget


def test_budget_that_fits_passes() -> None:
    est = small_estimate()
    check_memory_budget(est, est.peak)
    check_memory_budget(est, est.peak + 100, in_use=100)


def test_budget_error_names_stage_estimate_budget_and_a_fix_that_fits() -> None:
    est = small_estimate(projection_dim=400)
    assert est.largest_stage in ("features", "surrogate")
    budget = int(est.peak * 0.6)
    with pytest.raises(GraphtagError) as info:
        check_memory_budget(est, budget, source="--max-memory")
    msg = str(info.value)
    assert msg.startswith(
        f"not enough memory: the estimated peak is {format_bytes(est.peak)} but the budget is "
        f"{format_bytes(budget)} (--max-memory); the largest stage is {est.largest_stage} "
    )
    assert "N=20000, T=40, d=400" in msg
    assert f"a budget of at least {format_bytes(math.ceil(est.peak * 1.1))}" in msg
    suggested = int(msg.split("--projection-dim ")[1].split()[0])
    assert 8 <= suggested < 400
    # The suggestion fits, and one more dimension does not (it is the largest that fits).
    fits = small_estimate(projection_dim=suggested).peak
    assert fits <= budget < small_estimate(projection_dim=suggested + 1).peak


def test_budget_counts_memory_in_use_and_only_the_given_stages() -> None:
    est = small_estimate()
    rest = est.peak_of(STAGES[1:])
    check_memory_budget(est, rest + 10, in_use=10, stages=STAGES[1:])
    with pytest.raises(GraphtagError, match="already in use"):
        check_memory_budget(est, rest + 9, in_use=10, stages=STAGES[1:])
    # `train` only needs the stages up to the base model.
    check_memory_budget(est, est.peak_of(STAGES[1:3]), stages=STAGES[1:3])


def test_budget_error_exits_2_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphtag.cli import main
    from graphtag.cli._commands import COMMANDS

    def run_command(args: object) -> None:
        check_memory_budget(small_estimate(), parse_memory("1M"), source="--max-memory")

    monkeypatch.setitem(COMMANDS, "run", run_command)
    code = main(["run", "--dataset", "synthetic", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("graphtag: error: not enough memory: the estimated peak is ")
    assert "(--max-memory)" in err[0] and "Try " in err[0]


# ---------------------------------------------------------------------------------- measuring


def test_available_memory_is_positive_and_below_total() -> None:
    total = None
    if Path("/proc/meminfo").exists():
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in x)
        total = int(line.split()[1]) * 1024
    avail = available_memory()
    assert avail > 0
    if total is not None:
        assert avail <= total


def test_available_memory_without_sources_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(measure, "_meminfo_available", lambda: None)
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(
        GraphtagError,
        match=r"give the budget explicitly with --max-memory, e\.g\. --max-memory 16G",
    ):
        available_memory()


def test_cgroup_limit_lowers_available_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "memory.max").write_text(f"{512 * MiB}\n")
    (tmp_path / "memory.current").write_text(f"{300 * MiB}\n")
    (tmp_path / "memory.stat").write_text(f"anon 1\ninactive_file {100 * MiB}\n")
    real = Path

    def fake_path(p: str | os.PathLike) -> Path:
        if str(p) == "/sys/fs/cgroup":
            return real(tmp_path)
        if str(p) == "/proc/self/cgroup":
            return real(tmp_path / "none")
        return real(p)

    monkeypatch.setattr(measure, "Path", fake_path)
    assert measure._cgroup_available() == (512 - 300 + 100) * MiB


def test_peak_tracker_sees_a_known_allocation() -> None:
    assert current_rss() > 0
    with PeakTracker() as p:
        block = bytearray(64 * MiB)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page
        # Held for 10 sampling intervals: where the kernel's peak counter cannot be reset the
        # tracker samples, and (as documented) may miss a peak shorter than an interval.
        time.sleep(10 * p.interval)
        del block
    assert 60 * MiB <= p.growth <= 80 * MiB
    assert p.method in ("hwm", "sampling") and p.seconds >= 0


@pytest.mark.parametrize("module", ["", "._check", "._estimate", "._units"])
def test_module_examples(module: str) -> None:
    import importlib

    mod = importlib.import_module(f"graphtag.memory{module}")
    assert doctest.testmod(mod, raise_on_error=False).failed == 0


# ---------------------------------------------------------------------------------- vs measured

MEASURE = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from graphtag.memory import PeakTracker, configure_allocator, estimate_data_memory
    from graphtag.memory import release_memory
    from graphtag.pipeline import EstimatorConfig, Run, RunConfig, RunOptions
    from graphtag.training import TrainConfig
    from graphtag.estimation import GradTAG
    configure_allocator()  # as the graphtag command does
    tc = TrainConfig(hidden_channels=48, epochs=1, device="cpu")
    ec = EstimatorConfig(projection_dim=48, num_subsets=250, subset_size=5)
    spec = "synthetic:num_nodes=2500,num_tasks=16,num_groups=4,seed=0"
    config = RunConfig(dataset=spec, train=tc, estimator=ec)
    run = Run(config, RunOptions(sys.argv[1], progress=False))
    out = {}

    def stage(name, fn):
        with PeakTracker() as p:
            value = fn()
        out[name] = p.growth
        release_memory()
        return value

    data = stage("data", lambda: run.data)
    stage("inputs", lambda: run.inputs)
    stage("base_training", run.base_model)
    feats = stage("features", run.features)
    stage("surrogate", lambda: GradTAG(5, 250, min_pair_count=0, seed=0).fit(feats))
    est = estimate_data_memory(data, tc, run.method)
    print(json.dumps({"measured": out, "estimate": {s.name: s.total for s in est.stages}}))
    """
)


def test_estimate_bounds_measured_stage_growth(tmp_path: Path) -> None:
    """The big stages' estimates bound their measured peak RSS growth, within a factor of 3.

    The stages run through ``graphtag.pipeline.Run`` in a fresh process set up like the
    graphtag command (``configure_allocator``, and ``release_memory`` after each stage), so
    that each stage's growth is its own.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    measured, estimate = result["measured"], result["estimate"]
    if any(v == 0 for v in measured.values()):
        pytest.skip("peak RSS is not measurable here")
    for stage, got in measured.items():  # small stages are noisy: a loose bound
        assert estimate[stage] >= 0.8 * got, (stage, estimate[stage], got)
    big = [s for s, got in measured.items() if got >= 10 * MiB]
    assert {"features", "surrogate"} <= set(big)
    for stage in big:
        assert measured[stage] <= estimate[stage] <= 3 * measured[stage], (
            stage,
            estimate[stage],
            measured[stage],
        )


@pytest.fixture(scope="module")
def tiny_run() -> dict:
    from graphtag.data import load_dataset
    from graphtag.gradients import GradientProjector, extract_gradient_features
    from graphtag.models import prepare_inputs
    from graphtag.training import fit_model

    tc = TrainConfig(hidden_channels=8, epochs=1, device="cpu")
    ec = GradTAGMethod(projection_dim=6)
    data = load_dataset("synthetic:num_nodes=120,num_tasks=5,num_groups=2,seed=0")
    inputs = prepare_inputs(data, tc.model_config, "cpu")
    model = fit_model(data, inputs, None, tc, seed=0).model
    f = extract_gradient_features(model, inputs, data, GradientProjector(dim=6, seed=0), seed=0)
    est = estimate_data_memory(data, tc, ec)
    return {"data": data, "inputs": inputs, "model": model, "f": f, "est": est}


def test_parse_memory_budget() -> None:
    assert memory.parse_memory_budget(" Auto ") == "auto"
    assert memory.parse_memory_budget("OFF") == "off"
    assert memory.parse_memory_budget("2G") == 2 * 2**30
    with pytest.raises(
        GraphtagError, match=r"^--max-memory: cannot read memory size 'lots'.*or off$"
    ):
        memory.parse_memory_budget("lots")


def test_check_run_memory_budgets(tiny_run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_run["data"]
    tc, ec = TrainConfig(hidden_channels=8, device="cpu"), GradTAGMethod(projection_dim=6)
    est = memory.check_run_memory(data, tc, ec, "off")
    rest = est.peak_of(STAGES[1:])
    # auto: the remaining stages against what is available now.
    monkeypatch.setattr(memory._check, "available_memory", lambda: rest)
    assert memory.check_run_memory(data, tc, ec).peak == est.peak
    monkeypatch.setattr(memory._check, "available_memory", lambda: rest - 1)
    with pytest.raises(GraphtagError, match=r"\(memory available now; --max-memory SIZE or off"):
        memory.check_run_memory(data, tc, ec, "auto")
    # A size limits the whole process: what it holds now counts.
    monkeypatch.setattr(memory._check, "current_rss", lambda: 100 * MiB)
    memory.check_run_memory(data, tc, ec, 100 * MiB + rest)
    with pytest.raises(GraphtagError, match=r"\(--max-memory, of which 100 MiB already in use\)"):
        memory.check_run_memory(data, tc, ec, "100M")
    # `train` needs only the stages up to the base model.
    memory.check_run_memory(data, tc, ec, 100 * MiB + est.peak_of(STAGES[1:3]), stages=STAGES[1:3])


def test_budget_below_what_is_in_use_only_suggests_a_larger_budget() -> None:
    est = small_estimate()
    with pytest.raises(GraphtagError) as info:
        check_memory_budget(est, 100 * MiB, in_use=200 * MiB)
    msg = str(info.value)
    assert "of which 200 MiB already in use" in msg
    need = format_bytes(math.ceil((est.peak + 200 * MiB) * 1.1))
    assert msg.endswith(f"Try a budget of at least {need} (--max-memory)")


def test_absurd_model_sizes_are_estimated_not_crashed() -> None:
    """A width no tensor can hold (meta build overflows) gets an analytic parameter bound."""
    train = TrainConfig(hidden_channels=2**31 - 1, device="cpu")
    est = estimate_run_memory(300, 1000, 16, 4, train, GradTAGMethod())
    assert est.stage("base_training").held > 2**60
    with pytest.raises(GraphtagError, match=r"largest stage is base_training .*--hidden-channels"):
        check_memory_budget(est, parse_memory("16G"), stages=STAGES[1:3])
