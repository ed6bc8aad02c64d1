"""Affinity methods: one protocol, one registry.

Each method is an :class:`AffinityMethod` (an estimator with one set of defaults) fitted on an
:class:`AffinityContext` (the base model, the ``Data``, its batches) that sets ``affinity_``
(and ``subsets_``/``losses_`` where it has them), with a ``cache_key()`` and a
``memory_estimate(sizes)``. :data:`METHODS` is the one table the command line (``--method``),
the pipeline and the memory estimate read; adding a method is one module plus one entry here.

Importing this package imports no torch: methods import what they need when fitted.

Example:
    >>> sorted(METHODS)
    ['grad-tag', 'higher-order', 'pairwise', 'random', 'tag']
    >>> get_method("tag").summary.startswith("TAG")
    True
"""

from ..errors import GraphtagError
from ._base import AffinityMethod, Clusterer
from ._context import AffinityContext
from ._grad_tag import GradTAGMethod
from ._random import RandomMethod
from ._real import HigherOrderMethod, PairwiseMethod
from ._tag import TAGMethod

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "AffinityContext",
    "AffinityMethod",
    "Clusterer",
    "GradTAGMethod",
    "HigherOrderMethod",
    "PairwiseMethod",
    "RandomMethod",
    "TAGMethod",
    "get_method",
]

#: The affinity methods by name (the CLI's ``--method`` choices, in this order).
METHODS: dict[str, type[AffinityMethod]] = {
    cls.name: cls
    for cls in (GradTAGMethod, TAGMethod, HigherOrderMethod, PairwiseMethod, RandomMethod)
}


#: The method ``graphtag run`` uses unless told otherwise.
DEFAULT_METHOD = GradTAGMethod.name


def get_method(name: str) -> type[AffinityMethod]:
    """The method class registered as ``name``.

    Raises:
        GraphtagError: For an unknown name (listing the registered ones).
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise GraphtagError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None
