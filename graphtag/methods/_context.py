"""What an affinity method is fitted on: the objects a Python user has after a base model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GraphtagError

if TYPE_CHECKING:
    from torch import nn
    from torch_geometric.data import Data

    from ..executor import ExecutorConfig
    from ..gradients import GradientFeatures
    from ..models import GraphInputs
    from ..training import TrainConfig

__all__ = ["AffinityContext"]


@dataclass
class AffinityContext:
    """The base model, the graph and its batches, and how real training runs.

    Args:
        model: theta0, the base model with one output per task (never modified).
        data: The multi-label graph (``y``, ``train_mask``, ``val_mask`` ``[N, T]``).
        inputs: The batches of ``model``: ``prepare_inputs(data, config, device)``
            (:class:`graphtag.models.GraphInputs`, whose ``batches(...)`` yields the node
            batches every method iterates over).
        train_config: The recipe of methods that train (TAG records its affinity while a model
            trains with it; real fine-tunes start from its settings). Default: ``TrainConfig()``.
        seed: Master seed; each method derives its own streams from it.
        executor: Where real-training jobs run (default: in-process).
        workdir: Folder for job checkpoints (``None``: no checkpoints, no resume).
        progress: Show progress bars.
        features: Projected gradient features of ``model``, when already computed (methods
            that use them otherwise extract them).

    Attributes:
        notes: Sentences the methods add (plan adjustments, unmeasured pairs) for the report.
    """

    model: nn.Module
    data: Data
    inputs: GraphInputs
    train_config: TrainConfig | None = None
    seed: int = 0
    executor: ExecutorConfig | None = None
    workdir: Path | None = None
    progress: bool = False
    features: GradientFeatures | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        y = getattr(self.data, "y", None)
        if y is None or getattr(y, "dim", lambda: 0)() != 2:
            raise GraphtagError("AffinityContext: data needs multi-label targets y [N, T]")
        if self.train_config is None:
            from ..training import TrainConfig

            self.train_config = TrainConfig(device=str(self.inputs.device))
        if self.executor is None:
            from ..executor import ExecutorConfig

            self.executor = ExecutorConfig()

    @property
    def num_tasks(self) -> int:
        """``T``."""
        return int(self.data.y.size(1))

    @property
    def device(self) -> Any:
        """The device of the inputs (and the model)."""
        return self.inputs.device

    def note(self, text: str) -> None:
        """Add ``text`` to :attr:`notes` once."""
        if text not in self.notes:
            self.notes.append(text)
