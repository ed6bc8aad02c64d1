"""Seeded random projection of parameter-space vectors, regenerated block by block.

The projection matrix ``P`` (``D x d``, ``D`` = number of parameters in the chosen block) is never
stored: the restriction of direction ``k`` (column ``P[:, k]``) to the parameter tensor called
``name`` is drawn from a private generator seeded by ``(seed, name, k)``
(:func:`graphtag._utils.torch_generator`). Any chunking of the directions therefore gives the same
values, a parameter's directions do not depend on which other parameters are in the block, and
the values are the same on every device (they are drawn on the CPU, then cast and moved).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .._utils import torch_generator
from ..base import Estimator
from ..defaults import PROJECTION_BLOCK, PROJECTION_DIM
from ..errors import GraphtagError
from ..models._batch import head_parameter_ids

__all__ = ["BLOCKS", "KINDS", "GradientProjector"]

KINDS = ("rademacher", "gaussian")
BLOCKS = ("all", "body")

_BITS = torch.arange(64, dtype=torch.int64)


def _rademacher_entries(generator: torch.Generator, numel: int) -> Tensor:
    """``numel`` i.i.d. +-1 signs (float32), 64 per drawn random word."""
    words = torch.randint(
        -(2**63), 2**63 - 1, ((numel + 63) // 64,), generator=generator, dtype=torch.int64
    )
    bits = (words.unsqueeze(1) >> _BITS) & 1
    return (bits.flatten()[:numel] * 2 - 1).to(torch.float32)


def _gaussian_entries(generator: torch.Generator, numel: int) -> Tensor:
    """``numel`` i.i.d. standard normal entries (float32)."""
    return torch.randn(numel, generator=generator, dtype=torch.float32)


_SAMPLERS = {"rademacher": _rademacher_entries, "gaussian": _gaussian_entries}


class GradientProjector(Estimator):
    r"""Random projection ``P`` (``D x d``) of a model's parameter space, never stored densely.

    ``P`` has i.i.d. entries ``+-1/sqrt(d)`` (``kind="rademacher"``) or ``N(0, 1/d)``
    (``kind="gaussian"``), so ``E ||P^T g||^2 = ||g||^2`` (Johnson-Lindenstrauss). Rows of ``P``
    are indexed by the parameters of one block ``B`` of the model: ``block="all"`` (every
    parameter that requires grad) or ``block="body"`` (all but those of the output layer named by
    ``head``). The same block must be used for the gradient features and for moving the model
    (``theta0 + P w``), see docs/algorithms.md §3-4.

    The class follows the scikit-learn estimator contract (:class:`graphtag.base.Estimator`):
    hyperparameters are stored unmodified in ``__init__``, :meth:`fit` validates them, records
    the block and returns ``self``; ``sklearn.base.clone`` gives an unfitted copy. The model is
    only read. The generation of the entries is the one hook :meth:`_sample`, dispatched on
    ``kind``; a subclass may override it to add a distribution (it must return i.i.d. entries
    of mean 0 and variance 1).

    Args:
        dim: Projection dimension ``d`` (number of directions), >= 1.
        kind: ``"rademacher"`` or ``"gaussian"``.
        block: ``"all"`` or ``"body"`` (every parameter except the output layer's).
        seed: Seed of the projection.
        head: The output layer, for ``block="body"``: a parameter-name prefix (``"lin"``,
            ``"convs.1"``), a submodule of the model, or ``None`` for ``model.head``. Prefer the
            name: ``sklearn.base.clone`` copies a module, and a copy is not the model's.

    Attributes:
        param_names_: Names (as in ``model.named_parameters()``) of the block's parameters.
        param_shapes_: Their shapes, in the same order.
        num_params_: ``D``, the total number of entries of the block.

    Shapes:
        - :meth:`directions`: ``{name: [stop - start, *shape]}``.
        - :meth:`project`: ``{name: [n, *shape]}`` or ``[n, D]`` -> ``[n, d]`` (``P^T g``).
        - :meth:`expand`: ``[B, d]`` -> ``{name: [B, *shape]}`` (``P w``).

    Example:
        >>> model = torch.nn.Linear(3, 2)
        >>> proj = GradientProjector(dim=4, seed=0).fit(model)
        >>> proj.num_params_
        8
        >>> proj.project(torch.ones(5, 8)).shape
        torch.Size([5, 4])
        >>> {k: tuple(v.shape) for k, v in proj.expand(torch.ones(1, 4)).items()}
        {'weight': (1, 2, 3), 'bias': (1, 2)}
    """

    _cache: dict[tuple, dict[str, Tensor]] | None = None

    def __init__(
        self,
        dim: int = PROJECTION_DIM,
        kind: str = "rademacher",
        block: str = PROJECTION_BLOCK,
        seed: int = 0,
        head: str | nn.Module | None = None,
    ) -> None:
        self.dim = dim
        self.kind = kind
        self.block = block
        self.seed = seed
        self.head = head

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise GraphtagError(f"GradientProjector: dim must be a positive int, got {self.dim!r}")
        if type(self)._sample is GradientProjector._sample and self.kind not in KINDS:
            raise GraphtagError(
                f"GradientProjector: kind must be one of {KINDS}, got {self.kind!r}"
            )
        if self.block not in BLOCKS:
            raise GraphtagError(
                f"GradientProjector: block must be one of {BLOCKS}, got {self.block!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise GraphtagError(f"GradientProjector: seed must be an int, got {self.seed!r}")

    def fit(self, model: nn.Module | Mapping[str, Tensor]) -> GradientProjector:
        """Record the parameter block of ``model``.

        Args:
            model: The model whose parameters are projected. Parameters that do not require
                grad are left out. A mapping ``{name: tensor}`` is accepted too (treated as
                ``block="all"``; handy for projecting arbitrary vectors).

        Returns:
            ``self``.

        Raises:
            GraphtagError: Invalid hyperparameters, ``block="body"`` without an output layer
                (``head``, or a ``.head`` module), or an empty block.
        """
        self._check_params()
        named: list[tuple[str, Tensor]]
        if isinstance(model, nn.Module):
            named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            if self.block == "body":
                head_ids = head_parameter_ids(model, self.head, "GradientProjector(block='body')")
                named = [(n, p) for n, p in named if id(p) not in head_ids]
        elif isinstance(model, Mapping):
            if self.block != "all":
                raise GraphtagError(
                    "GradientProjector.fit got a mapping of tensors: block='body' needs an "
                    "nn.Module and its output layer (head=); use block='all'"
                )
            named = list(model.items())
        else:
            raise GraphtagError(
                f"GradientProjector.fit expects an nn.Module or a mapping name -> tensor, "
                f"got {type(model).__name__}"
            )
        if not named:
            raise GraphtagError(
                f"GradientProjector(block={self.block!r}): the model has no trainable parameters "
                "in this block"
            )
        self.param_names_ = [n for n, _ in named]
        self.param_shapes_ = [tuple(p.shape) for _, p in named]
        self.num_params_ = sum(math.prod(s) for s in self.param_shapes_)
        self._numels = [math.prod(s) for s in self.param_shapes_]
        return self

    def _check_fitted(self, what: str) -> None:
        if not hasattr(self, "param_names_"):
            raise GraphtagError(
                f"GradientProjector.{what} called before fit; call projector.fit(model) first"
            )

    def check_model(self, model: nn.Module) -> None:
        """Raise :class:`GraphtagError` unless ``model`` has the fitted block's parameters.

        Args:
            model: A model to compute gradients of or to move along ``P w``.
        """
        self._check_fitted("check_model")
        params = dict(model.named_parameters())
        for name, shape in zip(self.param_names_, self.param_shapes_):
            if name not in params:
                raise GraphtagError(
                    f"the projector was fitted on a model with parameter {name!r}, which "
                    f"{type(model).__name__} does not have; refit it with projector.fit(model)"
                )
            if tuple(params[name].shape) != shape:
                raise GraphtagError(
                    f"parameter {name!r} has shape {tuple(params[name].shape)} in the model but "
                    f"{shape} in the projector; refit it with projector.fit(model)"
                )

    # ------------------------------------------------------------- generation
    def _sample(self, generator: torch.Generator, numel: int) -> Tensor:
        """Hook: ``numel`` i.i.d. entries of mean 0 and variance 1 (float32, CPU)."""
        return _SAMPLERS[self.kind](generator, numel)

    @contextmanager
    def cached(self) -> Iterator[GradientProjector]:
        """Memoise generated direction chunks inside a ``with`` block.

        Inside the block, :meth:`directions` returns the same tensors for repeated
        ``(start, stop, dtype, device)`` instead of regenerating them, at a memory cost of up to
        ``D x d`` entries. Use it when the same directions are needed many times (one chunk per
        node batch); the cache is dropped on exit. Re-entrant (an outer cache is kept).
        """
        if self._cache is not None:
            yield self
            return
        self._cache = {}
        try:
            yield self
        finally:
            self._cache = None

    def directions(
        self,
        start: int,
        stop: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> dict[str, Tensor]:
        """Columns ``start..stop-1`` of ``P``, split by parameter tensor.

        Args:
            start: First direction (inclusive), ``0 <= start <= stop <= dim``.
            stop: Last direction (exclusive).
            dtype: Floating dtype of the result.
            device: Device of the result.

        Returns:
            ``{name: Tensor [stop - start, *shape]}``: entry ``[k - start]`` is direction ``k``
            restricted to parameter ``name``.
        """
        self._check_fitted("directions")
        if not (0 <= start <= stop <= self.dim):
            raise GraphtagError(
                f"directions({start}, {stop}) out of range; need 0 <= start <= stop <= "
                f"dim={self.dim}"
            )
        key = (start, stop, dtype, str(device))
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        scale = 1.0 / math.sqrt(self.dim)
        out = {}
        for name, shape, numel in zip(self.param_names_, self.param_shapes_, self._numels):
            block = torch.empty(stop - start, numel, dtype=torch.float32)
            for k in range(start, stop):
                gen = torch_generator(self.seed, "projection", self.kind, name, k)
                block[k - start] = self._sample(gen, numel)
            block.mul_(scale)
            out[name] = block.reshape(stop - start, *shape).to(dtype=dtype, device=device)
        if self._cache is not None:
            self._cache[key] = out
        return out

    def _chunks(self, chunk_size: int) -> Iterator[tuple[int, int]]:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise GraphtagError(f"chunk_size must be a positive int, got {chunk_size!r}")
        for start in range(0, self.dim, chunk_size):
            yield start, min(start + chunk_size, self.dim)

    # ------------------------------------------------------------ projection
    def _as_dict(self, grads: Mapping[str, Tensor] | Tensor) -> tuple[dict[str, Tensor], int]:
        """Validate ``grads`` and return ``({name: [n, numel]}, n)``."""
        if isinstance(grads, Tensor):
            if grads.dim() != 2 or grads.size(1) != self.num_params_:
                raise GraphtagError(
                    f"project: flat gradients must have shape [n, D={self.num_params_}], got "
                    f"{tuple(grads.shape)}"
                )
            return dict(zip(self.param_names_, grads.split(self._numels, dim=1))), grads.size(0)
        if not isinstance(grads, Mapping):
            raise GraphtagError(
                f"project expects a dict name -> [n, *shape] or a tensor [n, D], got "
                f"{type(grads).__name__}"
            )
        missing = [n for n in self.param_names_ if n not in grads]
        extra = [n for n in grads if n not in set(self.param_names_)]
        if missing or extra:
            raise GraphtagError(
                f"project: gradient keys do not match the projector's block "
                f"(missing {missing}, unexpected {extra}); fit the projector on this model"
            )
        sizes = {int(grads[n].shape[0]) if grads[n].dim() else -1 for n in self.param_names_}
        flat = {}
        for name, shape in zip(self.param_names_, self.param_shapes_):
            g = grads[name]
            if g.dim() == 0 or tuple(g.shape[1:]) != shape or len(sizes) != 1:
                raise GraphtagError(
                    f"project: gradient of {name!r} has shape {tuple(g.shape)}, expected "
                    f"[n, *{shape}] with the same n for every parameter"
                )
            flat[name] = g.reshape(g.size(0), -1)
        return flat, sizes.pop()

    def project(self, grads: Mapping[str, Tensor] | Tensor, *, chunk_size: int = 64) -> Tensor:
        """Compute ``P^T g`` for ``n`` parameter-space vectors, chunked over directions.

        Args:
            grads: ``{name: [n, *shape]}`` for every parameter of the block, or a flat
                ``[n, D]`` tensor (parameters concatenated in :attr:`param_names_` order).
            chunk_size: Number of directions generated at once (memory ``chunk_size x D``).

        Returns:
            ``[n, d]`` in the dtype and on the device of the gradients.
        """
        self._check_fitted("project")
        flat, n = self._as_dict(grads)
        first = flat[self.param_names_[0]]
        out = torch.zeros(n, self.dim, dtype=first.dtype, device=first.device)
        for start, stop in self._chunks(chunk_size):
            dirs = self.directions(start, stop, dtype=first.dtype, device=first.device)
            for name in self.param_names_:
                out[:, start:stop] += flat[name] @ dirs[name].reshape(stop - start, -1).T
        return out

    def transform(self, grads: Mapping[str, Tensor] | Tensor, *, chunk_size: int = 64) -> Tensor:
        """Alias of :meth:`project` (scikit-learn vocabulary)."""
        return self.project(grads, chunk_size=chunk_size)

    def expand(self, weights: Tensor, *, chunk_size: int = 64) -> dict[str, Tensor]:
        """Map projected coordinates back to parameter space: ``P w``.

        Args:
            weights: ``[B, d]`` coordinates (e.g. surrogate weights of ``B`` task subsets).
            chunk_size: Number of directions generated at once.

        Returns:
            ``{name: [B, *shape]}`` parameter displacements, in the dtype and on the device of
            ``weights``.
        """
        self._check_fitted("expand")
        if not isinstance(weights, Tensor) or weights.dim() != 2 or weights.size(1) != self.dim:
            shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
            raise GraphtagError(f"expand: weights must have shape [B, d={self.dim}], got {shape}")
        b = weights.size(0)
        out = {
            name: torch.zeros(b, numel, dtype=weights.dtype, device=weights.device)
            for name, numel in zip(self.param_names_, self._numels)
        }
        for start, stop in self._chunks(chunk_size):
            dirs = self.directions(start, stop, dtype=weights.dtype, device=weights.device)
            w = weights[:, start:stop]
            for name in self.param_names_:
                out[name] += w @ dirs[name].reshape(stop - start, -1)
        return {
            name: out[name].reshape(b, *shape)
            for name, shape in zip(self.param_names_, self.param_shapes_)
        }
