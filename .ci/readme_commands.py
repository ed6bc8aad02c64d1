"""Print one of the two set-up commands at the top of README.md (``run`` or ``test``).

The commands are the first two lines of the first ```bash block of README.md.
"""

import sys
from pathlib import Path


def commands() -> list[str]:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 2:
        raise SystemExit(f"README.md's first bash block must hold exactly two commands, got {lines}")
    return lines


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "test"
    print(commands()[0 if which == "run" else 1])
