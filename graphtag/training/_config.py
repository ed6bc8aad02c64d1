"""Training configuration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import GraphtagError
from ..models import ModelConfig

__all__ = ["EMBEDDING_INPUT_DROPOUT", "TrainConfig"]

#: Input dropout of ``TrainConfig(input_dropout=None)`` on node features with a graph embedding.
EMBEDDING_INPUT_DROPOUT = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """Model and optimisation settings of :func:`~graphtag.training.fit_model`.

    The defaults were chosen on validation only (macro ROC-AUC, AP and tuned macro F1, mean over
    3 seeds) on every built-in dataset (BlogCatalog, wikipedia-pos, HumanGo) with their default
    features: SIGN with 3 hops, hidden width 128, dropout 0.5 after hidden layers and, when the
    node features hold a graph embedding, 0.5 on the input hop features (it hurt on the
    synthetic graph's generated features, so ``input_dropout=None`` resolves it per graph, see
    :meth:`for_data`), Adam with lr 0.01 and no weight decay on mini-batches of 1024 seeds, an
    exponential moving average of the weights (decay 0.9 per epoch) as the model that is
    validated and kept, early stopping after 5 epochs without improvement of its mean
    validation ROC-AUC. The studies and their figures are in ``experiments/README.md``
    ("Training defaults"; the weight average was judged on held-out validation labels).

    Args:
        model: ``"sign"``, ``"sage"``, ``"gcn"`` or ``"gat"`` (see
            :class:`~graphtag.models.ModelConfig`).
        hidden_channels: Hidden width.
        num_hops: SIGN propagation steps ``K``.
        num_layers: Message-passing depth.
        dropout: Dropout probability of hidden layers.
        input_dropout: SIGN only: dropout probability of the input hop features; ``None``:
            :data:`EMBEDDING_INPUT_DROPOUT` when ``data.meta["features"]`` names an embedding
            method (``x`` holds a graph embedding), else 0 (resolved by :meth:`for_data`, which
            :func:`~graphtag.training.fit_model` calls).
        lr: Adam learning rate.
        weight_decay: Adam (L2) weight decay.
        epochs: Maximum number of epochs (passes over the training nodes).
        patience: Stop when the selection metric has not improved for this many epochs.
        ema_decay: Decay of the exponential moving average of the weights, updated after every
            epoch; the average is what is validated, selected and returned (``0``: the
            weights themselves, no averaging).
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
    input_dropout: float | None = None
    lr: float = 0.01
    weight_decay: float = 0.0
    epochs: int = 100
    patience: int = 5
    ema_decay: float = 0.9
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
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise GraphtagError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
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
            input_dropout=0.0 if self.input_dropout is None else self.input_dropout,
        )

    def for_data(self, data: Any) -> TrainConfig:
        """These settings with ``input_dropout=None`` resolved for ``data`` (see the field).

        Example:
            >>> from graphtag.data import load_dataset
            >>> TrainConfig().for_data(load_dataset("synthetic:num_nodes=100")).input_dropout
            0.0
        """
        if self.input_dropout is not None:
            return self
        record = (getattr(data, "meta", None) or {}).get("features")
        embedded = isinstance(record, dict) and record.get("method") is not None
        return replace(self, input_dropout=EMBEDDING_INPUT_DROPOUT if embedded else 0.0)

    @property
    def resolved_fanouts(self) -> tuple[int, ...]:
        """``fanouts``, or the default ``(15, 10, ..., 10)`` with ``num_layers`` entries."""
        if self.fanouts is not None:
            return self.fanouts
        return (15,) + (10,) * (self.num_layers - 1)
