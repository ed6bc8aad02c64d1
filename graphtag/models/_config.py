"""Model configuration and the factory that turns it into a module."""

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

from ..errors import GraphtagError

__all__ = ["MODEL_NAMES", "ModelConfig", "MultiTaskHeadMixin", "build_model", "check_tasks"]

_M = TypeVar("_M", bound="MultiTaskHeadMixin")

#: Accepted values of :attr:`ModelConfig.name`: SIGN or one of the message-passing encoders.
MODEL_NAMES = ("sign", "sage", "gcn", "gat")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a multi-task node classifier.

    Args:
        name: ``"sign"`` (precomputed hops, :class:`~graphtag.models.SIGN`) or a message-passing
            encoder of :class:`~graphtag.models.MultiTaskGNN`: ``"sage"``, ``"gcn"``, ``"gat"``.
        hidden_channels: Width of every hidden layer.
        num_hops: SIGN only: number of propagation steps ``K`` (inputs have ``K + 1`` hops).
        num_layers: Message passing only: number of graph convolutions.
        dropout: Dropout probability of hidden layers, in ``[0, 1)``.
        input_dropout: SIGN only: dropout probability of the input hop features, in ``[0, 1)``.

    Raises:
        GraphtagError: For an unknown name or an out-of-range value.

    Example:
        >>> ModelConfig("sage", hidden_channels=64).num_layers
        2
    """

    name: str = "sign"
    hidden_channels: int = 128
    num_hops: int = 3
    num_layers: int = 2
    dropout: float = 0.5
    input_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise GraphtagError(
                f"unknown model {self.name!r}; choose one of {', '.join(map(repr, MODEL_NAMES))}"
            )
        if int(self.hidden_channels) < 1:
            raise GraphtagError(f"hidden_channels must be >= 1, got {self.hidden_channels}")
        if int(self.num_hops) < 0:
            raise GraphtagError(f"num_hops must be >= 0, got {self.num_hops}")
        if int(self.num_layers) < 1:
            raise GraphtagError(f"num_layers must be >= 1, got {self.num_layers}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise GraphtagError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not 0.0 <= float(self.input_dropout) < 1.0:
            raise GraphtagError(f"input_dropout must lie in [0, 1), got {self.input_dropout}")

    @property
    def message_passing(self) -> bool:
        """``True`` for the message-passing encoders, ``False`` for SIGN."""
        return self.name != "sign"


def build_model(config: ModelConfig, in_channels: int, num_tasks: int) -> nn.Module:
    """Build the model described by ``config`` (parameters from the global RNG).

    Args:
        config: Architecture.
        in_channels: Node feature width ``F``.
        num_tasks: Number of outputs ``T``.

    Returns:
        A :class:`~graphtag.models.SIGN` or :class:`~graphtag.models.MultiTaskGNN`.

    Example:
        >>> model = build_model(ModelConfig("sign", hidden_channels=8), in_channels=4, num_tasks=3)
        >>> model.head.out_features
        3
    """
    if in_channels < 1 or num_tasks < 1:
        raise GraphtagError(
            f"need in_channels >= 1 and num_tasks >= 1, got {in_channels} and {num_tasks}"
        )
    if config.name == "sign":
        from ._sign import SIGN

        return SIGN(
            in_channels,
            config.hidden_channels,
            num_tasks,
            num_hops=config.num_hops,
            dropout=config.dropout,
            input_dropout=config.input_dropout,
        )
    from ._gnn import MultiTaskGNN

    return MultiTaskGNN(
        in_channels,
        config.hidden_channels,
        num_tasks,
        num_layers=config.num_layers,
        encoder=config.name,
        dropout=config.dropout,
    )


def check_tasks(tasks: Sequence[int] | Tensor, num_tasks: int, *, what: str = "tasks") -> list[int]:
    """Validate a list of task indices and return it as a list of ``int``.

    Args:
        tasks: Task indices (a sequence or a 1-d integer tensor).
        num_tasks: Number of tasks ``T``; indices must lie in ``[0, T)``.
        what: Name of the argument, for error messages.

    Raises:
        GraphtagError: When ``tasks`` is empty, has duplicates, non-integers or out-of-range
            entries.
    """
    if isinstance(tasks, Tensor):
        if tasks.dim() != 1 or tasks.is_floating_point() or tasks.is_complex():
            raise GraphtagError(
                f"{what} must be a 1-d integer tensor, got {tasks.dtype} {tuple(tasks.shape)}"
            )
        tasks = tasks.tolist()
    out = []
    for t in tasks:
        try:
            if isinstance(t, bool):
                raise TypeError
            out.append(operator.index(t))
        except TypeError:
            raise GraphtagError(f"{what} must be integer task indices, got {t!r}") from None
    if not out:
        raise GraphtagError(f"{what} is empty; give at least one task index in [0, {num_tasks})")
    bad = [t for t in out if not 0 <= t < num_tasks]
    if bad:
        raise GraphtagError(
            f"{what} {bad} out of range: there are {num_tasks} tasks (0..{num_tasks - 1})"
        )
    if len(set(out)) != len(out):
        dup = sorted({t for t in out if out.count(t) > 1})
        raise GraphtagError(f"{what} contains duplicates {dup}; list each task once")
    return out


class MultiTaskHeadMixin:
    """``with_tasks`` for models whose last layer is ``self.head: nn.Linear(hidden, T)``."""

    head: nn.Linear
    num_tasks: int

    def set_dropout(self, dropout: float, input_dropout: float | None = None) -> None:
        """Set the dropout probabilities in place (a warm start follows the new recipe's).

        ``dropout`` goes to every hidden dropout; ``input_dropout`` (models that have it) to
        the input's. No parameter changes.
        """
        inp = getattr(self, "input_dropout", None)
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, nn.Dropout) and module is not inp:
                module.p = float(dropout)
        if isinstance(inp, nn.Dropout) and input_dropout is not None:
            inp.p = float(input_dropout)
        if hasattr(self, "dropout"):
            self.dropout = float(dropout)

    def with_tasks(self: _M, tasks: Sequence[int] | Tensor) -> _M:
        """A deep copy whose head keeps only the output rows ``tasks`` (in that order).

        The body is copied unchanged, so ``copy(x)[:, i] == self(x)[:, tasks[i]]``.

        Args:
            tasks: Distinct task indices in ``[0, T)``.

        Returns:
            A model of the same class with ``len(tasks)`` outputs.

        Raises:
            GraphtagError: For empty, duplicate or out-of-range task indices.
        """
        rows = check_tasks(tasks, self.head.out_features)
        new = copy.deepcopy(self)
        old = self.head
        head = nn.Linear(
            old.in_features,
            len(rows),
            bias=old.bias is not None,
            device=old.weight.device,
            dtype=old.weight.dtype,
        )
        index = torch.tensor(rows, device=old.weight.device)
        with torch.no_grad():
            head.weight.copy_(old.weight.index_select(0, index))
            if old.bias is not None:
                head.bias.copy_(old.bias.index_select(0, index))
        head.train(old.training)
        new.head = head
        new.num_tasks = len(rows)
        return new
