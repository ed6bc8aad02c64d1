"""The estimator contract shared by graphtag's stateful algorithms (scikit-learn's, without it).

Every estimator (``GradientProjector``, ``GradTAG``, ``SDPClustering``,
``SpectralTaskClustering``, ``TAGAffinity`` and the affinity methods of :mod:`graphtag.methods`)
derives from :class:`Estimator`:

* ``__init__`` stores each hyperparameter unmodified under its own name and validates nothing;
  ``fit`` validates, does the work and returns ``self``;
* fitted state ends with ``_`` (``affinity_``, ``groups_``, ...); matrices handed back to the
  user are numpy arrays;
* :meth:`Estimator.get_params` / :meth:`Estimator.set_params` read and write the
  hyperparameters, so ``sklearn.base.clone(est)`` builds an unfitted copy with the same ones.
"""

from __future__ import annotations

import inspect
from typing import Any

from .errors import GraphtagError

__all__ = ["Estimator", "NotFittedError", "check_is_fitted"]


class NotFittedError(GraphtagError, AttributeError):
    """A fitted attribute was read before ``fit``.

    Also an :class:`AttributeError`, so ``hasattr(est, "affinity_")`` is ``False`` before
    ``fit`` (as with scikit-learn's ``NotFittedError``).
    """


class Estimator:
    """Base class: hyperparameters are the keyword arguments of ``__init__``.

    Example:
        >>> class Scale(Estimator):
        ...     def __init__(self, factor=2.0, seed=0):
        ...         self.factor = factor
        ...         self.seed = seed
        >>> est = Scale(factor=3.0)
        >>> est
        Scale(factor=3.0)
        >>> est.get_params()
        {'factor': 3.0, 'seed': 0}
        >>> est.set_params(seed=1).seed
        1
        >>> est.with_params(factor=0.5)
        Scale(factor=0.5, seed=1)
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        """Names of the hyperparameters: the named arguments of ``__init__``."""
        init = cls.__init__
        if init is object.__init__:
            return []
        names = []
        for p in inspect.signature(init).parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must not take *args or **kwargs")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters by name (``deep``: also ``name__sub`` of nested estimators)."""
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params(deep=True).items()})
            out[name] = value
        return out

    def set_params(self, **params: Any) -> Estimator:
        """Set hyperparameters by name (``name__sub`` reaches a nested estimator); ``self``.

        Raises:
            GraphtagError: For a name that is not a hyperparameter of this estimator.
        """
        valid = set(self._param_names())
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise GraphtagError(
                    f"{type(self).__name__} has no parameter {name!r}; its parameters are "
                    f"{sorted(valid)}"
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def with_params(self, **changes: Any) -> Estimator:
        """A new, unfitted estimator with these hyperparameters, ``changes`` applied.

        Raises:
            GraphtagError: For a name that is not a hyperparameter of this estimator.
        """
        params = self.get_params(deep=False)
        unknown = sorted(set(changes) - set(params))
        if unknown:
            raise GraphtagError(
                f"{type(self).__name__} has no parameter {unknown[0]!r}; its parameters are "
                f"{sorted(params)}"
            )
        return type(self)(**{**params, **changes})

    def __repr__(self) -> str:
        """``ClassName(param=value, ...)`` listing the parameters that differ from the defaults."""
        sig = inspect.signature(type(self).__init__).parameters
        shown = []
        for name in self._param_names():
            value = getattr(self, name)
            default = sig[name].default
            try:
                same = default is not inspect.Parameter.empty and bool(value == default)
            except (TypeError, ValueError, RuntimeError):  # arrays, tensors
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def check_is_fitted(estimator: object, attribute: str) -> None:
    """Raise unless ``estimator`` has the fitted ``attribute`` (e.g. ``"affinity_"``).

    Raises:
        NotFittedError: A :class:`~graphtag.errors.GraphtagError` naming the estimator and the
            call that fits it.
    """
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise NotFittedError(f"this {name} is not fitted yet; call {name}.fit(...) first")
