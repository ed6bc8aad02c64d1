"""Comparison methods: TAG's lookahead task affinity and its network (group) selection."""

from ._selection import SelectionResult, select_groups
from ._tag import TAGAffinity

__all__ = ["SelectionResult", "TAGAffinity", "select_groups"]
