"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_runs(capsys):
    (block,) = _python_blocks()
    code = [ln for ln in block.strip().splitlines() if ln and not ln.startswith("from ")]
    assert len(code) <= 15  # "a 15-line example" (imports aside)
    exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    groups_text, auc = out.strip().rsplit(" ", 1)
    groups = eval(groups_text)  # a list of lists printed by the example
    assert sorted(t for g in groups for t in g) == list(range(6))
    assert 0.5 < float(auc) <= 1.0


def test_readme_has_exactly_two_setup_commands():
    block = README.read_text().split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.strip().splitlines() if ln.strip()]
    assert len(lines) == 2
    assert "graphtag run" in lines[0] and "pytest" in lines[1]
