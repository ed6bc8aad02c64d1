"""experiments/compare_methods.py: one table over `graphtag run` methods (--smoke settings)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

COLUMNS = [
    "method",
    "num_groups",
    "macro_auc",
    "macro_auc_std",
    "macro_ap",
    "macro_ap_std",
    "macro_f1",
    "macro_f1_std",
    "affinity_seconds",
    "total_seconds",
    "spearman_higher_order",
    "ari_planted",
    "val_macro_auc",
    "macro_f1_tuned",
    "macro_f1_tuned_std",
    "num_seeds",
    "run_seconds",
    "groups",
]


@pytest.fixture(scope="module")
def compare(load_experiment):
    return load_experiment("compare_methods")


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _models(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "models").iterdir()}


def test_smoke_table_shared_base_validation_and_rerun(compare, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["--smoke", "--methods", "grad-tag,tag", "--seeds", "1", "--out", str(out), "--quiet"]
    result = compare.main(argv)
    stdout = capsys.readouterr().out.strip().splitlines()
    assert result["failed"] == []

    header, rows = _read_csv(out / "compare.csv")
    assert header == COLUMNS
    assert [r["method"] for r in rows] == [
        "all-in-one",
        "grad-tag",
        "tag",
        "random groups (grad-tag sizes)",
    ]
    by = {r["method"]: r for r in rows}
    grad = json.loads((out / "grad-tag" / "report.json").read_text())
    tag = json.loads((out / "tag" / "report.json").read_text())
    # The table's test metrics are the reports' blocks, unchanged.
    assert float(by["all-in-one"]["macro_auc"]) == grad["metrics"]["mtl_all"]["macro_auc"]
    assert float(by["grad-tag"]["macro_ap"]) == grad["metrics"]["grouped"]["macro_ap"]
    assert float(by["tag"]["macro_f1"]) == tag["metrics"]["grouped"]["macro_f1"]
    assert float(by["random groups (grad-tag sizes)"]["macro_auc"]) == pytest.approx(
        grad["metrics"]["random_groups"]["macro_auc"]
    )
    assert json.loads(by["tag"]["groups"]) == tag["groups"]
    assert int(by["grad-tag"]["num_groups"]) == grad["num_groups"]
    # The all-in-one model of seed 0 is the base model: its validation AUC is the one
    # fit_model selected it on.
    base = json.loads((out / "grad-tag" / "base.json").read_text())
    assert float(by["all-in-one"]["val_macro_auc"]) == pytest.approx(base["best_val"], abs=1e-6)
    # One group holding every task has ARI 0 against the planted groups; no higher-order run,
    # so no Spearman; grad-tag's affinity seconds include its gradient features.
    assert float(by["all-in-one"]["ari_planted"]) == 0.0
    assert all(r["spearman_higher_order"] == "" for r in rows)
    assert float(by["grad-tag"]["affinity_seconds"]) == pytest.approx(
        grad["timings"]["features"] + grad["timings"]["affinity"], abs=2e-3
    )
    # The base model was trained once and reused by the pipeline in tag's directory.
    assert "base" in tag["reused_stages"] and "base" not in grad["reused_stages"]
    assert (out / "tag" / "base_model.pt").read_bytes() == (
        out / "grad-tag" / "base_model.pt"
    ).read_bytes()
    # Outputs and the validation-chosen last line.
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "compare.md").read_text()
    assert "--methods grad-tag,tag --seeds 1" in md and "| method | groups |" in md
    best = max(rows, key=lambda r: float(r["val_macro_auc"]))
    assert stdout[-1].startswith(f"best by validation macro AUC: {best['method']} (val ")

    # A rerun reuses every stage and model: nothing is retrained, the table is the same.
    before = {m: _models(out / m) for m in ("grad-tag", "tag")}
    again = compare.main(argv)
    assert {m: _models(out / m) for m in ("grad-tag", "tag")} == before
    _, rows2 = _read_csv(out / "compare.csv")
    keys = ["method", "macro_auc", "macro_ap", "macro_f1", "val_macro_auc", "ari_planted"]
    assert [[r[k] for k in keys] for r in rows2] == [[r[k] for k in keys] for r in rows]
    assert any("predate this invocation" in n for n in again["notes"])
    assert not any("predate" in n for n in result["notes"])

    # Validation scores never train: missing models give no score (and stay missing).
    for p in (out / "tag" / "models").iterdir():
        p.unlink()
    results = {
        m: {
            "report": json.loads((out / m / "report.json").read_text()),
            "dir": out / m,
            "seconds": 0,
        }
        for m in ("grad-tag", "tag")
    }
    rows3, ref = compare.build_rows(results, [])
    assert ref == "grad-tag" and not any((out / "tag" / "models").iterdir())
    vals = {r["method"]: r["val_macro_auc"] for r in rows3}
    assert vals["tag"] is None
    assert vals["grad-tag"] == float(by["grad-tag"]["val_macro_auc"])
    assert vals["random groups (grad-tag sizes)"] == float(
        by["random groups (grad-tag sizes)"]["val_macro_auc"]
    )


def test_failures_and_skips_are_notes(compare, tmp_path, monkeypatch, capsys):
    calls = []

    def failing_main(argv):
        calls.append(argv[argv.index("--method") + 1])
        print("graphtag: error: boom (for the test)", file=__import__("sys").stderr)
        return 2

    monkeypatch.setattr(compare, "graphtag_main", failing_main)
    argv = ["--smoke", "--methods", "pairwise,tag", "--max-pairwise-tasks", "3"]
    with pytest.raises(SystemExit) as exc:
        compare.main([*argv, "--out", str(tmp_path)])
    assert exc.value.code == 1
    assert calls == ["tag"]  # 6 tasks > 3: pairwise is skipped without running
    err = capsys.readouterr().err
    assert "pairwise skipped: 6 tasks > --max-pairwise-tasks 3 (it fine-tunes 21 models)" in err
    assert "tag failed (no row): graphtag: error: boom (for the test)" in err
    assert not (tmp_path / "compare.csv").exists()


def test_bad_arguments_are_clear_errors(compare, capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--methods", "grad-tag,foo"])
    assert exc.value.code == 2
    assert "--methods: unknown ['foo']; choose from grad-tag, tag" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        compare.main(["--dataset", "nosuchdataset", "--out", "/nonexistent/never"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("compare_methods: error: ")


def test_spearman_and_ari_reference_values(compare):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    a = a + a.T
    assert compare.spearman_upper(a, np.exp(a)) == pytest.approx(1.0)  # monotone: ranks equal
    assert compare.spearman_upper(a, -a) == pytest.approx(-1.0)
    assert compare.spearman_upper(a, np.zeros((6, 6))) is None  # constant: undefined
    assert compare.ari([[0, 1], [2, 3]], [[2, 3], [1, 0]], 4) == 1.0
    # By hand: labels [0,0,1,1] vs [0,1,0,1]: index 0, rows 2, columns 2, total 6,
    # expected 2 * 2 / 6, maximum 2 -> (0 - 2/3) / (2 - 2/3) = -0.5.
    assert compare.ari([[0, 2], [1, 3]], [[0, 1], [2, 3]], 4) == pytest.approx(-0.5)
