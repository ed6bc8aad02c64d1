"""Every ``>>>`` example in graphtag's docstrings runs (one test per module).

Modules are imported and their examples collected with :mod:`doctest`, so an example that
drifts from the code fails CI. Examples that need hardware or optional packages skip cleanly:
a module listed in :data:`NEEDS` is skipped when the requirement is missing.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import io
import pkgutil

import pytest
import torch

import graphtag

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(graphtag.__path__, prefix="graphtag.")
    if m.name != "graphtag.__main__"  # importing it runs the command line
)

#: Module -> (requirement, available?): examples that cannot run without it are skipped.
NEEDS: dict[str, tuple[str, bool]] = {
    "graphtag.executor._ray": ("ray", importlib.util.find_spec("ray") is not None),
}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = finder.find(module, name, globs=dict(vars(module)))
    return [t for t in tests if t.examples and t.name.startswith(name)]


def test_every_public_module_is_collected() -> None:
    assert "graphtag.gradients._extract" in MODULES and "graphtag.base" in MODULES
    assert sum(len(_examples(name)) for name in MODULES) >= 40


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    need = NEEDS.get(name)
    if need is not None and not need[1]:
        pytest.skip(f"examples of {name} need {need[0]}")
    tests = _examples(name)
    if not tests:
        pytest.skip(f"{name} has no examples")
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for test in tests:
            runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()
