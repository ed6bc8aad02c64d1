"""Training configuration."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GraphtagError
from ..models import ModelConfig

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Model and optimisation settings of :func:`~graphtag.training.fit_model`.

    Defaults were chosen on BlogCatalog (10,312 nodes, 39 tasks): SIGN, hidden 128, Adam lr 0.01
    on mini-batches of 1024 seeds, early stopping after 15 epochs without improvement. On one
    CPU thread SIGN reaches test macro ROC-AUC 0.686/0.693 (seeds 0/1) in 11-12 s, GraphSAGE
    0.676/0.671 in 125-157 s; on Wikipedia-POS SIGN 0.704/0.712 in 3 s, GraphSAGE 0.685/0.699 in
    11-14 s. Evidence for the choices (validation macro ROC-AUC on BlogCatalog): full-batch steps
    peaked at 0.679 after 167 epochs, batches of 2048 at 0.685 after 99 and batches of 1024 (with
    SIGN's input norm) at 0.685 after 22; hidden 256 gave 0.683 at about twice the cost of 128;
    lr 0.03 hurt GraphSAGE (0.619 vs 0.695), dropout 0.2 did not help it (0.685).

    Args:
        model: ``"sign"``, ``"sage"``, ``"gcn"`` or ``"gat"`` (see
            :class:`~graphtag.models.ModelConfig`).
        hidden_channels: Hidden width.
        num_hops: SIGN propagation steps ``K``.
        num_layers: Message-passing depth.
        dropout: Dropout probability of hidden layers.
        input_dropout: SIGN only: dropout probability of the input hop features.
        lr: Adam learning rate.
        weight_decay: Adam (L2) weight decay.
        epochs: Maximum number of epochs (passes over the training nodes).
        patience: Stop when the selection metric has not improved for this many epochs.
        batch_size: Seed nodes per training step.
        fanouts: Sampled neighbours per layer for message passing (``-1``: all; ``None``: 15
            for the first hop and 10 for every further one); needs ``num_layers`` entries.
        eval_every: Evaluate on validation every this many epochs (and after the last).
        eval_batch_size: Seed nodes per exact inference batch.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:N"``.

    Example:
        >>> TrainConfig(model="sage").model_config.name
        'sage'
    """

    model: str = "sign"
    hidden_channels: int = 128
    num_hops: int = 3
    num_layers: int = 2
    dropout: float = 0.5
    input_dropout: float = 0.5
    lr: float = 0.01
    weight_decay: float = 0.0
    epochs: int = 100
    patience: int = 15
    batch_size: int = 1024
    fanouts: tuple[int, ...] | None = None
    eval_every: int = 1
    eval_batch_size: int = 4096
    device: str = "auto"

    def __post_init__(self) -> None:
        self.model_config  # noqa: B018  (validates the model fields)
        for name in ("epochs", "patience", "batch_size", "eval_every", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise GraphtagError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not float(self.lr) > 0:
            raise GraphtagError(f"lr must be > 0, got {self.lr}")
        if float(self.weight_decay) < 0:
            raise GraphtagError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.fanouts is not None:
            fanouts = tuple(int(f) for f in self.fanouts)
            if len(fanouts) != self.num_layers or any(f < 1 and f != -1 for f in fanouts):
                raise GraphtagError(
                    f"fanouts {self.fanouts} must give one sample size (>= 1, or -1 for all "
                    f"neighbours) per layer (num_layers={self.num_layers})"
                )
            object.__setattr__(self, "fanouts", fanouts)

    @property
    def model_config(self) -> ModelConfig:
        """The :class:`~graphtag.models.ModelConfig` of these settings."""
        return ModelConfig(
            name=self.model,
            hidden_channels=self.hidden_channels,
            num_hops=self.num_hops,
            num_layers=self.num_layers,
            dropout=self.dropout,
            input_dropout=self.input_dropout,
        )

    @property
    def resolved_fanouts(self) -> tuple[int, ...]:
        """``fanouts``, or the default ``(15, 10, ..., 10)`` with ``num_layers`` entries."""
        if self.fanouts is not None:
            return self.fanouts
        return (15,) + (10,) * (self.num_layers - 1)
