"""How graphtag calls a model: the node batch, PyG batches, and calls that leave the model intact.

Every model-facing stage consumes :class:`NodeBatch`: ``model(*b.args, **b.kwargs)[b.out]``
are the logits of ``b.nodes``. :meth:`NodeBatch.from_pyg` turns a PyG ``Data`` (a full graph,
or a ``NeighborLoader`` / ``NodeLoader`` mini-batch with ``n_id`` and ``batch_size``) into one.

:func:`call_model` is the one place where graphtag evaluates a user's model, with the model's
own parameters or with substituted ones (:func:`torch.func.functional_call`). It restores every
parameter and buffer object and every ``training`` flag of the model afterwards, so no call
changes the identity, values or ``requires_grad`` of the user's parameters, including
parameters reachable under two names (``model.head = model.lin``), which
``functional_call`` alone would leave replaced by detached tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import GraphtagError, preview

__all__ = [
    "NodeBatch",
    "call_model",
    "eval_mode",
    "forward_kwarg_names",
    "head_parameter_ids",
    "preserved_state",
]

#: What graphtag passes to ``model`` as keyword arguments: ``{kwarg: attribute of the batch}``.
ForwardKwargs = Sequence[str] | Mapping[str, str]


def _is_index(t: object) -> bool:
    return (
        isinstance(t, Tensor)
        and t.dim() == 1
        and not t.is_floating_point()
        and not t.is_complex()
        and t.dtype != torch.bool
    )


@dataclass
class NodeBatch:
    """Inputs for computing model outputs at a set of seed nodes.

    ``model(*batch.args, **batch.kwargs)[batch.out]`` are the logits ``[B, T]`` of
    ``batch.nodes``, in order.

    Attributes:
        nodes: int64 ``[B]`` global ids of the seed nodes.
        args: Positional arguments of ``model.forward`` (for SIGN: ``(xs,)`` with
            ``xs`` ``[B, K+1, F]``; for message passing: ``(x_sub, edge_index_sub)``), already on
            the target device.
        out: int64 ``[B]`` rows of the model output that belong to ``nodes`` (for SIGN simply
            ``arange(B)``; for a subgraph, the positions of the seeds in it).
        exact: ``True`` when the outputs equal full-graph inference (full k-hop neighbourhood or
            precomputed hops), ``False`` for neighbour-sampled batches or batches whose
            exactness is not known (PyG mini-batches, checked against full-graph inference
            where exactness matters).
        kwargs: Keyword arguments of ``model.forward`` (``edge_attr``, ``edge_weight``, ...).

    Raises:
        GraphtagError: When ``nodes`` or ``out`` is not a 1-d integer tensor, or their lengths
            differ (the rows would be misaligned).

    Example:
        >>> x = torch.randn(5, 3)
        >>> b = NodeBatch(nodes=torch.tensor([7, 9]), args=(x,), out=torch.tensor([0, 1]))
        >>> call_model(torch.nn.Linear(3, 2), b).shape
        torch.Size([2, 2])
    """

    nodes: Tensor
    args: tuple[Tensor, ...]
    out: Tensor
    exact: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("nodes", "out"):
            value = getattr(self, name)
            if not _is_index(value):
                shape = (
                    f"{value.dtype} {list(value.shape)}"
                    if isinstance(value, Tensor)
                    else type(value).__name__
                )
                raise GraphtagError(
                    f"NodeBatch.{name} must be a 1-d integer tensor [B], got {shape}"
                )
        if self.out.numel() != self.nodes.numel():
            raise GraphtagError(
                f"NodeBatch.out has {self.out.numel()} rows but nodes has {self.nodes.numel()}: "
                "out[k] must be the output row of nodes[k] (for a PyG mini-batch, "
                "out = arange(batch_size) and nodes = n_id[:batch_size])"
            )
        if not isinstance(self.args, tuple):
            if isinstance(self.args, list):
                self.args = tuple(self.args)
            else:
                raise GraphtagError(
                    f"NodeBatch.args must be a tuple of positional arguments of model.forward, "
                    f"got {type(self.args).__name__}"
                )
        if not isinstance(self.kwargs, dict) or not all(isinstance(k, str) for k in self.kwargs):
            raise GraphtagError(
                "NodeBatch.kwargs must be a dict {argument name: value} of model.forward, got "
                f"{type(self.kwargs).__name__}"
            )

    def to(self, device: torch.device | str) -> NodeBatch:
        """A copy with every tensor moved to ``device``."""

        def move(v: Any) -> Any:
            return v.to(device) if isinstance(v, Tensor) else v

        return NodeBatch(
            self.nodes.to(device),
            tuple(move(a) for a in self.args),
            self.out.to(device),
            self.exact,
            {k: move(v) for k, v in self.kwargs.items()},
        )

    @classmethod
    def from_pyg(
        cls,
        batch: Any,
        *,
        forward_kwargs: ForwardKwargs = (),
        x: Tensor | None = None,
        where: str = "graphtag",
    ) -> NodeBatch:
        """The node batch of a PyG ``Data``: a full graph or a sampled mini-batch.

        A mini-batch of ``NeighborLoader`` / ``NodeLoader`` (attributes ``n_id`` and
        ``batch_size``; seeds first) gives ``nodes = n_id[:batch_size]``,
        ``out = arange(batch_size)`` and ``exact=False`` (its exactness is unknown). Any other
        ``Data`` is a full graph: every node is a seed and ``exact=True``. The model is called
        as ``model(batch.x, batch.edge_index, **{k: batch[a] for k, a in forward_kwargs})``.

        Args:
            batch: A :class:`torch_geometric.data.Data`.
            forward_kwargs: Attributes of ``batch`` passed as keyword arguments: names
                (``("edge_attr",)``) or ``{argument: attribute}``.
            x: Node features of the whole graph, used (rows ``n_id``) when ``batch`` has none.
            where: The calling function, named in error messages.

        Raises:
            GraphtagError: When ``batch`` is not a ``Data`` with ``x`` (or ``x`` given) and
                ``edge_index``, or lacks an attribute of ``forward_kwargs``.

        Example:
            >>> from torch_geometric.data import Data
            >>> ei = torch.tensor([[0, 1], [1, 0]])
            >>> b = NodeBatch.from_pyg(Data(x=torch.randn(2, 3), edge_index=ei))
            >>> b.nodes.tolist(), b.exact
            ([0, 1], True)
        """
        from torch_geometric.data import Data

        if not isinstance(batch, Data):
            raise GraphtagError(
                f"{where}: expected a torch_geometric.data.Data batch (a graph or a "
                f"NeighborLoader mini-batch) or a graphtag NodeBatch, got {type(batch).__name__}"
            )
        edge_index = batch.get("edge_index")
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise GraphtagError(f"{where}: the batch needs edge_index [2, E]")
        n_id, size = batch.get("n_id"), batch.get("batch_size")
        feats = batch.get("x")
        if feats is None and x is not None:
            feats = x if n_id is None else x[n_id.to(x.device)]
        if not isinstance(feats, Tensor):
            raise GraphtagError(
                f"{where}: the batch has no node features x; add 'x' to the loader's node "
                "attributes"
            )
        kwargs = {}
        for arg, attr in forward_kwarg_names(forward_kwargs, where).items():
            value = batch.get(attr)
            if value is None:
                raise GraphtagError(
                    f"{where}: forward_kwargs names {attr!r} but the batch has no such "
                    f"attribute (it has {sorted(batch.keys())})"
                )
            kwargs[arg] = value
        if n_id is not None and size is not None:
            size = int(size)
            out = torch.arange(size, device=edge_index.device)
            return cls(n_id[:size], (feats, edge_index), out, exact=False, kwargs=kwargs)
        nodes = torch.arange(feats.size(0), device=edge_index.device)
        return cls(nodes, (feats, edge_index), nodes, exact=True, kwargs=kwargs)


def forward_kwarg_names(forward_kwargs: ForwardKwargs, where: str = "graphtag") -> dict[str, str]:
    """Normalise ``forward_kwargs`` (names or ``{argument: attribute}``) to a dict."""
    if isinstance(forward_kwargs, str):
        forward_kwargs = (forward_kwargs,)
    if isinstance(forward_kwargs, Mapping):
        items = dict(forward_kwargs)
    elif isinstance(forward_kwargs, Sequence):
        items = {name: name for name in forward_kwargs}
    else:
        items = None
    if items is None or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in items.items()
    ):
        raise GraphtagError(
            f"{where}: forward_kwargs must be attribute names such as ('edge_attr',) or a dict "
            f"{{argument: attribute}}, got {forward_kwargs!r}"
        )
    return items


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore every parameter and buffer object and ``training`` flag of ``model`` on exit."""
    saved = [(m, dict(m._parameters), dict(m._buffers), m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, params, buffers, training in saved:
            for name, p in params.items():
                if module._parameters.get(name) is not p:
                    module._parameters[name] = p
            for name, b in buffers.items():
                if module._buffers.get(name) is not b:
                    module._buffers[name] = b
            module.training = training


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, frozen batch-norm statistics) inside; every flag restored."""
    with preserved_state(model):
        model.eval()
        yield


def call_model(
    model: nn.Module, batch: NodeBatch, params: Mapping[str, Tensor] | None = None
) -> Tensor:
    """Logits ``[B, T]`` of ``batch.nodes``: ``model(*batch.args, **batch.kwargs)[batch.out]``.

    With ``params`` (``{name: tensor}``, names as in ``model.named_parameters()`` and
    ``named_buffers()``), those tensors replace the model's in the forward pass
    (:func:`torch.func.functional_call`, usable under ``vmap``/``jvp``). Either way the model's
    parameter and buffer objects and training flags are restored afterwards.

    Raises:
        GraphtagError: When the output is not ``[rows, T]`` or has fewer rows than ``batch.out``
            needs.
    """
    with preserved_state(model):
        if params is None:
            logits = model(*batch.args, **batch.kwargs)
        else:
            logits = functional_call(model, dict(params), batch.args, batch.kwargs)
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise GraphtagError(
            f"the model returned {shape}; graphtag needs logits [rows, T], one column per task "
            "(for a single task, [rows, 1])"
        )
    return logits[batch.out]


def _prefixes(model: nn.Module) -> list[str]:
    return sorted({n.rpartition(".")[0] or n for n, _ in model.named_parameters()})


def head_parameter_ids(model: nn.Module, head: str | nn.Module | None, where: str) -> set[int]:
    """``id`` of every parameter of the model's output layer ``head``.

    Args:
        model: The model.
        head: A submodule of ``model``, a parameter-name prefix (``"lin"``, ``"convs.1"``: every
            parameter named ``head`` or ``head.*``, under any of its names), or ``None`` for the
            module ``model.head``.
        where: The calling estimator, named in error messages.

    Raises:
        GraphtagError: When the head cannot be found or has no parameters.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        >>> len(head_parameter_ids(net, "1", "example"))
        2
    """
    if head is None:
        module = getattr(model, "head", None)
        if not isinstance(module, nn.Module):
            raise GraphtagError(
                f"{where} needs the model's output layer: pass head='lin' (a parameter-name "
                f"prefix such as 'lin' or 'convs.1') or head=model.lin; {type(model).__name__} "
                f"has no `.head` module. Its parameter groups: {preview(_prefixes(model), 8)}"
            )
        head = module
    if isinstance(head, str):
        ids = {
            id(p)
            for n, p in model.named_parameters(remove_duplicate=False)
            if n == head or n.startswith(head + ".")
        }
        if not ids:
            raise GraphtagError(
                f"{where}: head={head!r} names no parameter of {type(model).__name__}; use one "
                f"of its parameter groups: {preview(_prefixes(model), 8)}"
            )
        return ids
    if isinstance(head, nn.Module):
        if not any(m is head for m in model.modules()):
            raise GraphtagError(
                f"{where}: head is a {type(head).__name__} that is not a submodule of the model; "
                "pass the model's own output layer (e.g. head=model.lin) or its name"
            )
        ids = {id(p) for p in head.parameters()}
        if not ids:
            raise GraphtagError(f"{where}: the head module has no parameters")
        return ids
    raise GraphtagError(
        f"{where}: head must be a parameter-name prefix (str), a submodule or None, got "
        f"{type(head).__name__}"
    )
