"""The ``graphtag`` command line (a thin layer over :mod:`graphtag.pipeline`).

Every user mistake ends with one ``graphtag: error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

from ._main import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
