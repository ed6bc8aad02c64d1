"""graphtag: find which label tasks of a graph should be learned together.

Stages live in subpackages (``graphtag.data``, ``graphtag.models``, ``graphtag.training``,
``graphtag.gradients``, ``graphtag.estimation``, ``graphtag.clustering``, ...). Importing
``graphtag`` never imports cvxpy, ogb or matplotlib.
"""

from ._version import __version__
from .errors import DataFormatError, GraphtagError

__all__ = ["DataFormatError", "GraphtagError", "__version__"]
