"""graphtag._utils.experiment_header: the provenance every experiment prints and saves."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from graphtag._utils import experiment_header, git_revision, versions


def test_header_holds_flags_versions_revision_threads_and_extras():
    flags = argparse.Namespace(out=Path("runs/x.json"), seeds=[0, 1], smoke=False)
    header = experiment_header(flags, cpu_count=7)
    assert header["config"] == {"out": "runs/x.json", "seeds": [0, 1], "smoke": False}
    assert header["versions"] == versions() and header["git_sha"] == git_revision()
    assert header["torch_threads"] == torch.get_num_threads() and header["cpu_count"] == 7
    assert json.loads(json.dumps(header)) == header  # printable as one JSON line
