"""Dataset spec grammar shared by the CLI and :func:`graphtag.data.load_dataset`.

A spec is ``NAME[:ARG,...]`` where each ARG is either a positional value (a path) or
``key=value``. Examples: ``blogcatalog``, ``mat:/data/ppi.mat``,
``snap:edges.txt.gz,cmty.txt.gz,num_tasks=100``, ``synthetic:num_nodes=2000,seed=3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import GraphtagError

__all__ = ["DatasetSpec", "parse_spec"]


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec.

    Attributes:
        name: Lower-case dataset name (``"blogcatalog"``, ``"mat"``, ``"snap"``, ...).
        args: Positional arguments in order (paths).
        options: ``key=value`` options, values kept as strings.
        text: The original spec string.
    """

    name: str
    args: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def option(self, key: str, default: object, kind: type = int) -> object:
        """Return option ``key`` converted with ``kind`` (``default`` when absent).

        Booleans accept ``true/false``, ``yes/no``, ``on/off``, ``1/0``; floats must be finite
        (``nan`` and ``inf`` are rejected).

        Raises:
            GraphtagError: If the value cannot be converted.
        """
        if key not in self.options:
            return default
        raw = self.options[key]
        if kind is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise GraphtagError(
                f"dataset spec {self.text!r}: option {key}={raw!r} is not a boolean "
                "(use true/false)"
            )
        try:
            value = kind(raw)
        except ValueError:
            raise GraphtagError(
                f"dataset spec {self.text!r}: option {key}={raw!r} is not a valid {kind.__name__}"
            ) from None
        if kind is float and not math.isfinite(value):
            raise GraphtagError(
                f"dataset spec {self.text!r}: option {key}={raw!r} is not a finite number"
            )
        return value

    def check_options(self, allowed: set[str]) -> None:
        """Raise if an option outside ``allowed`` was given."""
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            raise GraphtagError(
                f"dataset spec {self.text!r}: unknown option(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed)) or 'none'}"
            )


def parse_spec(spec: str) -> DatasetSpec:
    """Parse ``NAME[:ARG,...]`` into a :class:`DatasetSpec`.

    Example:
        >>> parse_spec("snap:e.txt,c.txt,num_tasks=5")
        DatasetSpec(name='snap', args=('e.txt', 'c.txt'), options={'num_tasks': '5'}, text='snap:e.txt,c.txt,num_tasks=5')
    """  # noqa: E501
    if not isinstance(spec, str) or not spec.strip():
        raise GraphtagError("empty dataset spec; try 'blogcatalog' or run `graphtag datasets`")
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if not name:
        raise GraphtagError(f"dataset spec {text!r} has no name before ':'")
    args: list[str] = []
    options: dict[str, str] = {}
    if rest:
        for part in rest.split(","):
            part = part.strip()
            if not part:
                continue
            key, eq, value = part.partition("=")
            if eq and key.strip().isidentifier():
                key = key.strip()
                if key in options:
                    raise GraphtagError(f"dataset spec {text!r}: option {key!r} given twice")
                options[key] = value.strip()
            else:
                if options:
                    raise GraphtagError(
                        f"dataset spec {text!r}: positional argument {part!r} after options"
                    )
                args.append(part)
    return DatasetSpec(name=name, args=tuple(args), options=options, text=text)
