"""The memory budget check: stop before the first stage when the estimate cannot fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..errors import GraphtagError
from ._estimate import MemoryEstimate, estimate_data_memory, estimate_sizes, num_parameters
from ._measure import available_memory, current_rss
from ._units import format_bytes, parse_memory_budget

__all__ = ["check_memory_budget", "check_run_memory"]


def _re_estimate(estimate: MemoryEstimate, name: str, value: int) -> MemoryEstimate:
    """``estimate`` with one integer setting changed (a training field or a method parameter)."""
    sizes, method = estimate.run_sizes, estimate.method
    if sizes is None:
        raise GraphtagError("this estimate keeps no sizes to re-estimate from")
    if hasattr(sizes.train, name):
        train = replace(sizes.train, **{name: value})
        params = num_parameters(train.model_config, sizes.num_features, sizes.num_tasks)
        sizes = replace(sizes, train=train, num_parameters=params)
    else:
        method = method.with_params(**{name: value})
    return estimate_sizes(sizes, method)


def _largest_fitting(
    estimate: MemoryEstimate,
    name: str,
    current: int,
    budget: int,
    floor: int,
    stages: Sequence[str] | None,
) -> int | None:
    """Largest value of integer setting ``name`` below ``current`` whose peak fits ``budget``."""
    lo, hi = floor, current - 1

    def fits(value: int) -> bool:
        return _re_estimate(estimate, name, value).peak_of(stages) <= budget

    if hi < lo or not fits(lo):
        return None
    while lo < hi:  # every peak grows with the settings searched here
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fixes(estimate: MemoryEstimate, big: Any, room: int, names: tuple[str, ...]) -> list[str]:
    """Concrete settings that would fit ``room`` bytes, for the largest stage ``big``."""
    sizes = estimate.run_sizes
    assert sizes is not None
    train, params = sizes.train, estimate.method.get_params(deep=False)
    top = sorted(big.parts, key=lambda t: -t[1])[0][0] if big.parts else ""
    fixes: list[str] = []

    def smaller(name: str, current: int, flag: str) -> None:
        value = _largest_fitting(estimate, name, current, room, 8, names)
        if value is not None:
            fixes.append(f"{flag} {value} (now {current})")

    if big.name in ("features", "surrogate"):
        if top in ("JVP activations", "batch gradients"):
            smaller("hidden_channels", train.hidden_channels, "--hidden-channels")
            fixes.append("a smaller node_batch_size or chunk_size of the gradient features")
        if "projection_dim" in params:
            smaller("projection_dim", params["projection_dim"], "--projection-dim")
        if top in ("features", "row metadata", "validation blocks", "losses temporaries"):
            fixes.append("fewer validation rows (EstimatorConfig.val_fraction < 1)")
    elif big.name in ("base_training", "inputs"):
        smaller("hidden_channels", train.hidden_channels, "--hidden-channels")
        if big.name == "inputs" and train.model == "sign":
            fixes.append(
                f"fewer SIGN hops (TrainConfig.num_hops, now {train.num_hops}) or a "
                "message-passing model (--model sage)"
            )
        else:
            fixes.append("a smaller TrainConfig.batch_size or eval_batch_size")
    elif big.name == "clustering":
        fixes.append("--grouping spectral")
    elif big.name == "data":
        fixes.append("a smaller dataset (fewer tasks or nodes)")
    return fixes


def check_memory_budget(
    estimate: MemoryEstimate,
    max_bytes: int,
    *,
    in_use: int = 0,
    stages: Sequence[str] | None = None,
    source: str = "--max-memory",
) -> None:
    """Raise when the estimated peak does not fit in ``max_bytes``.

    The job fits when ``in_use + estimate.peak_of(stages) <= max_bytes``. Pass ``in_use =
    current_rss()`` when ``max_bytes`` limits the whole process (``--max-memory``); leave it 0
    when ``max_bytes`` is what is still free (:func:`available_memory`). After the data is
    loaded, pass the remaining stages: the data is then in ``in_use`` or no longer in the free
    memory.

    Args:
        estimate: From :func:`estimate_run_memory` or :func:`estimate_data_memory`.
        max_bytes: The budget in bytes.
        in_use: Bytes the process already holds.
        stages: The stages still to run (default all).
        source: Where the budget came from, for the message (e.g. ``"--max-memory"``).

    Raises:
        GraphtagError: Naming the largest stage with its main terms, the estimate, the budget
            and concrete fixes (a smaller setting that fits, or the budget the job needs).

    Example:
        >>> from graphtag.memory import estimate_run_memory, parse_memory
        >>> from graphtag.training import TrainConfig
        >>> est = estimate_run_memory(10_000, 80_000, 128, 40, TrainConfig())
        >>> check_memory_budget(est, parse_memory("64G"))  # fits: returns None
    """
    names = estimate.check_names(stages)
    need = in_use + estimate.peak_of(names)
    if need <= max_bytes:
        return
    big = max((estimate.stage(n) for n in names), key=lambda st: st.total)
    fixes = [] if in_use >= max_bytes else _fixes(estimate, big, max_bytes - in_use, names)
    fixes.append(f"a budget of at least {format_bytes(math.ceil(need * 1.1))} ({source})")
    terms = sorted(big.parts, key=lambda t: -t[1])[:2]
    sz = estimate.sizes
    dim = sz.get("method", {}).get("projection_dim")
    used = f", of which {format_bytes(in_use)} already in use" if in_use else ""
    raise GraphtagError(
        f"not enough memory: the estimated peak is {format_bytes(need)} but the budget is "
        f"{format_bytes(max_bytes)} ({source}{used}); the largest stage is {big.name} "
        f"({format_bytes(big.total)}: "
        + ", ".join(f"{label} {format_bytes(b)}" for label, b, _ in terms)
        + f"; N={sz['num_nodes']}, T={sz['num_tasks']}"
        + (f", d={dim}" if dim is not None and {"features", "surrogate"} & set(names) else "")
        + "). "
        + "Try "
        + "; or ".join(fixes)
    )


def check_run_memory(
    data: Any,
    train_config: Any,
    method: Any = None,
    budget: int | str = "auto",
    *,
    stages: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> MemoryEstimate:
    """Estimate a run on loaded ``data`` and stop early if it cannot fit (the pipeline's check).

    Call it after loading the data and before the first expensive stage. With ``budget="auto"``
    the remaining ``stages`` must fit in :func:`available_memory`; with a size, the whole
    process must (:func:`current_rss` now plus the remaining peak); ``"off"`` only estimates.
    On CUDA the accelerator peak must also fit in the device's free memory.

    Args:
        data: The loaded multi-label graph.
        train_config: A :class:`~graphtag.training.TrainConfig`.
        method: The affinity method (default Grad-TAG).
        budget: ``"auto"``, ``"off"`` or bytes (see :func:`parse_memory_budget`).
        stages: Stages still to run (default: every stage after ``data``).
        device: Where the run computes.

    Returns:
        The :class:`MemoryEstimate`.

    Raises:
        GraphtagError: When the estimate exceeds the budget (see :func:`check_memory_budget`).
    """
    if isinstance(budget, str) and budget not in ("auto", "off"):
        budget = parse_memory_budget(budget)
    estimate = estimate_data_memory(data, train_config, method, device=device)
    if stages is None:
        stages = estimate.stage_names[1:]
    if budget == "off":
        return estimate
    if budget == "auto":
        check_memory_budget(
            estimate,
            available_memory(),
            stages=stages,
            source="memory available now; --max-memory SIZE or off overrides it",
        )
    else:
        check_memory_budget(
            estimate, int(budget), in_use=current_rss(), stages=stages, source="--max-memory"
        )
    if estimate.sizes["device"] == "cuda" and torch.cuda.is_available():
        _check_device(estimate, stages, device)
    return estimate


def _check_device(
    estimate: MemoryEstimate, stages: Sequence[str], device: str | torch.device
) -> None:
    dev = torch.device(device) if not (isinstance(device, str) and device == "auto") else None
    free, _ = torch.cuda.mem_get_info(dev)
    need = estimate.peak_of(stages, device=True)
    if need > free:
        names = estimate.check_names(stages)
        big = max((estimate.stage(n) for n in names), key=lambda st: st.device_total)
        raise GraphtagError(
            f"not enough accelerator memory: the estimated peak is {format_bytes(need)} but "
            f"{format_bytes(free)} is free on {device}; the largest stage is {big.name} "
            f"({format_bytes(big.device_total)}). Try a smaller --projection-dim or "
            "--hidden-channels, or --device cpu"
        )
