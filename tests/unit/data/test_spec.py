"""Dataset spec grammar: NAME[:ARG,...] with positional paths and key=value options."""

from __future__ import annotations

import re

import pytest

from graphtag.data import DatasetSpec, parse_spec
from graphtag.errors import GraphtagError


@pytest.mark.parametrize(
    ("text", "name", "args", "options"),
    [
        ("blogcatalog", "blogcatalog", (), {}),
        ("  BlogCatalog  ", "blogcatalog", (), {}),
        ("mat:/data/ppi.mat", "mat", ("/data/ppi.mat",), {}),
        (
            "snap:e.txt.gz, c.txt.gz ,num_tasks=5",
            "snap",
            ("e.txt.gz", "c.txt.gz"),
            {"num_tasks": "5"},
        ),
        ("synthetic:num_nodes=20,seed=3", "synthetic", (), {"num_nodes": "20", "seed": "3"}),
        ("ogbn-proteins:root=/x/y", "ogbn-proteins", (), {"root": "/x/y"}),
        ("snap:a,,b", "snap", ("a", "b"), {}),  # empty parts are skipped
        ("mat:", "mat", (), {}),
        # Only the first ':' separates the name: Windows drive letters survive.
        ("mat:C:\\data\\x.mat", "mat", ("C:\\data\\x.mat",), {}),
        # '=' in a path that is not an identifier key stays positional.
        ("mat:/data/a=b.mat", "mat", ("/data/a=b.mat",), {}),
        ("synthetic:seed= 4 ", "synthetic", (), {"seed": "4"}),
    ],
)
def test_parse_valid_specs(text, name, args, options):
    spec = parse_spec(text)
    assert spec == DatasetSpec(name=name, args=args, options=options, text=text.strip())


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"empty dataset spec; try 'blogcatalog'"),
        ("   ", r"empty dataset spec"),
        (":x.mat", r"dataset spec ':x\.mat' has no name before ':'"),
        ("snap:num_tasks=3,e.txt", r"positional argument 'e\.txt' after options"),
        ("synthetic:seed=1,seed=2", r"option 'seed' given twice"),
    ],
)
def test_parse_errors(text, pattern):
    with pytest.raises(GraphtagError, match=pattern):
        parse_spec(text)


def test_parse_rejects_non_string():
    with pytest.raises(GraphtagError, match="empty dataset spec"):
        parse_spec(None)  # type: ignore[arg-type]


def test_option_conversion_and_default():
    spec = parse_spec("snap:e,c,num_tasks=7,ratio=0.5,label=x")
    assert spec.option("num_tasks", 100, int) == 7
    assert spec.option("ratio", 0.0, float) == 0.5
    assert spec.option("label", "", str) == "x"
    assert spec.option("absent", 100, int) == 100
    with pytest.raises(
        GraphtagError,
        match=re.escape("dataset spec 'snap:e,c,num_tasks=7,ratio=0.5,label=x': option "),
    ):
        spec.option("ratio", 1, int)
    with pytest.raises(GraphtagError, match=r"option label='x' is not a valid float"):
        spec.option("label", 1.0, float)


def test_check_options_lists_unknown_and_allowed():
    spec = parse_spec("snap:e,c,num_task=3,zeta=1")
    spec.check_options({"num_task", "zeta"})
    with pytest.raises(
        GraphtagError, match=r"unknown option\(s\) num_task, zeta; allowed: num_tasks"
    ):
        spec.check_options({"num_tasks"})
    with pytest.raises(GraphtagError, match=r"allowed: none"):
        spec.check_options(set())


def test_spec_is_frozen():
    spec = parse_spec("mat:x")
    with pytest.raises(AttributeError):
        spec.name = "y"  # type: ignore[misc]


def test_option_bool_parses_false():
    spec = parse_spec("synthetic:flag=false,other=1,bad=maybe")
    assert spec.option("flag", True, bool) is False
    assert spec.option("other", False, bool) is True
    with pytest.raises(GraphtagError, match="not a boolean"):
        spec.option("bad", False, bool)
