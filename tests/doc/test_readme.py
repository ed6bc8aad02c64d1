"""The README's Python examples run as written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _graphtag_call_lines(block: str) -> int:
    """Lines of ``block`` (imports aside) that use a name imported from graphtag."""
    tree = ast.parse(block)
    names = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphtag")
        for alias in node.names
    }
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            lines.add(node.lineno)
    # a name bound to a graphtag object (e.g. `tag.step(...)`) counts too
    bound = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node.value))
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    for node in ast.walk(tree):
        named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if named and node.value.id in bound:
            lines.add(node.lineno)
    return len(lines)


def _run(block: str, namespace: dict, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with torch.random.fork_rng(devices=[]):
        exec(compile(block, str(README), "exec"), namespace)
    return capsys.readouterr().out


def _groups(text: str) -> list[list[list[int]]]:
    """The partitions printed on one line, separated by spaces."""
    return ast.literal_eval("[" + text.strip().replace("]] [[", "]], [[") + "]")


def test_readme_has_the_three_examples() -> None:
    blocks = _python_blocks()
    assert len(blocks) == 3
    assert "## Use it from your own PyG code" in README.read_text()


def test_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    block = _python_blocks()[0]
    code = [ln for ln in block.strip().splitlines() if ln and not ln.startswith("from ")]
    assert len(code) <= 15  # "a 15-line example" (imports aside)
    out = _run(block, {}, capsys)
    groups_text, auc = out.strip().rsplit(" ", 1)
    groups = ast.literal_eval(groups_text)
    assert sorted(t for g in groups for t in g) == list(range(6))
    assert 0.5 < float(auc) <= 1.0


def test_pyg_examples_run_and_find_the_planted_groups(capsys: pytest.CaptureFixture[str]) -> None:
    full_graph, loader = _python_blocks()[1:]
    assert _graphtag_call_lines(full_graph) <= 15
    assert "RandomNodeSplit" in full_graph and "GraphSAGE" in full_graph
    namespace: dict = {}
    out = _run(full_graph, namespace, capsys)
    grad_tag, tag = _groups(out)
    planted = namespace["graph"].planted_groups
    assert grad_tag == tag == planted == [[0, 1, 3], [2, 4, 5]]
    assert namespace["data"].train_mask.shape == (600,)  # PyG's [N] masks
    out = _run(loader, namespace, capsys)  # the second example reuses the first one's imports
    grad_tag, tag = _groups(out)
    for groups in (grad_tag, tag):
        assert sorted(t for g in groups for t in g) == list(range(6)) and len(groups) == 2
    assert grad_tag == namespace["graph"].planted_groups


def test_readme_has_exactly_two_setup_commands() -> None:
    block = README.read_text().split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.strip().splitlines() if ln.strip()]
    assert len(lines) == 2
    assert "graphtag run" in lines[0] and "pytest" in lines[1]
