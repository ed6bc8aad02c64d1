"""The wheel ships the embedded datasets: build it, install it in a fresh venv, load blogcatalog."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_data_and_loads_blogcatalog(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = dist.glob("graphtag-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("blogcatalog.mat", "wikipedia-pos.edges", "wikipedia-pos.cmty", "PROVENANCE.md"):
        assert f"graphtag/data/_embedded/{f}" in names
    assert "graphtag/py.typed" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--force-reinstall",
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import graphtag, sys; from graphtag.data import load_dataset;"
        "d = load_dataset('blogcatalog');"
        "print(graphtag.__file__); print(tuple(d.y.shape), d.edge_index.size(1) // 2)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not the source tree
    out = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    where, shape = out.stdout.strip().splitlines()
    assert str(venv) in where  # the installed wheel, not the source tree
    assert shape == "(10312, 39) 333983"
