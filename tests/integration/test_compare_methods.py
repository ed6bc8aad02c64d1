"""experiments/compare_methods.py: the predicted choice next to the validation sweep (--smoke)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def compare(load_experiment):
    return load_experiment("compare_methods")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _models(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "models").iterdir()}


def test_smoke_table_both_modes_shared_base_and_rerun(compare, tmp_path):
    out = tmp_path / "cmp"
    argv = ["--smoke", "--methods", "grad-tag,tag", "--seeds", "1", "--out", str(out), "--quiet"]
    result = compare.main(argv)
    assert result["notes"] == []
    rows = _rows(out / "compare.csv")
    names = [r["row"] for r in rows]
    assert names[:2] == ["one model", "one model per task"]
    assert names[2].startswith("random groups (sizes ")
    runs = {("grad-tag", "predicted"), ("grad-tag", "validation"), ("tag", "predicted")}
    runs |= {("tag", "validation")}
    assert {tuple(n.split(":")[0].split(", ")) for n in names[3:]} == runs
    pred = json.loads((out / "grad-tag" / "report.json").read_text())
    sweep = json.loads((out / "grad-tag-validation" / "report.json").read_text())
    by = {r["row"].split(":")[0]: r for r in rows}
    # The table's numbers are the reports' blocks, unchanged.
    assert float(by["one model"]["macro_auc"]) == pred["metrics"]["mtl_all"]["macro_auc"]
    got = float(by["grad-tag, predicted"]["macro_ap"])
    assert got == pred["metrics"]["recommended"]["macro_ap"]
    got = float(by["grad-tag, validation"]["val_macro_auc"])
    assert got == sweep["recommended"]["validation"]
    assert by["grad-tag, validation"]["spearman"] != ""  # the sweep trains every candidate
    assert all(c["validation"] is not None for c in sweep["candidates"])
    # The base model was trained once and reused by the pipeline in the other directories.
    tag = json.loads((out / "tag" / "report.json").read_text())
    assert "base" in tag["reused_stages"] and "base" not in pred["reused_stages"]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "--methods grad-tag,tag --seeds 1" in (out / "compare.md").read_text()
    # A rerun reuses every stage and model: nothing is retrained, the table is the same.
    before = {m: _models(out / m) for m in ("grad-tag", "tag-validation")}
    compare.main(argv)
    assert {m: _models(out / m) for m in ("grad-tag", "tag-validation")} == before
    keys = ["row", "macro_auc", "macro_ap", "val_macro_auc", "ari_planted"]
    assert [[r[k] for k in keys] for r in _rows(out / "compare.csv")] == [
        [r[k] for k in keys] for r in rows
    ]


def test_failures_and_skips_are_notes(compare, tmp_path, monkeypatch, capsys):
    calls = []

    def failing_main(argv):
        calls.append(argv[argv.index("--method") + 1])
        print("graphtag: error: boom (for the test)", file=sys.stderr)
        return 2

    monkeypatch.setattr(compare, "graphtag_main", failing_main)
    argv = ["--smoke", "--methods", "pairwise,tag", "--max-pairwise-tasks", "3"]
    with pytest.raises(SystemExit) as exc:
        compare.main([*argv, "--out", str(tmp_path), "--modes", "predicted"])
    assert exc.value.code == 1
    assert calls == ["tag"]  # 6 tasks > 3: pairwise is skipped without running
    err = capsys.readouterr().err
    assert "pairwise skipped: 6 tasks > --max-pairwise-tasks 3 (it fine-tunes 21 models)" in err
    assert "tag (predicted) failed: graphtag: error: boom (for the test)" in err
    assert not (tmp_path / "compare.csv").exists()


def test_bad_arguments_are_clear_errors(compare, capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--methods", "grad-tag,foo"])
    assert exc.value.code == 2
    assert "--methods/--modes: unknown ['foo']; methods are grad-tag" in capsys.readouterr().err


def test_ari_reference_values(compare):
    assert compare.ari([[0, 1], [2, 3]], [[2, 3], [1, 0]], 4) == 1.0
    # By hand: labels [0,0,1,1] vs [0,1,0,1]: index 0, rows 2, columns 2, total 6,
    # expected 2 * 2 / 6, maximum 2 -> (0 - 2/3) / (2 - 2/3) = -0.5.
    assert compare.ari([[0, 2], [1, 3]], [[0, 1], [2, 3]], 4) == pytest.approx(-0.5)
