"""experiments/rank_candidates.py: smoke run (cheap scores against trained candidates)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_rank_candidates_smoke(load_experiment, tmp_path: Path):
    module = load_experiment("rank_candidates")
    out = module.main(["--smoke", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "rank_candidates.json").read_text())
    assert saved["spearman"] == out["spearman"] and "torch" in saved["versions"]
    # one model, k = 2..3 and one model per task, each with every cheap and trained score
    sizes = out["candidates"]
    assert list(sizes) == ["1", "2", "3", "T"] and sizes["1"] == [6] and sizes["T"] == [1] * 6
    assert [len(sizes[k]) for k in ("2", "3")] == [2, 3]
    assert all(sum(v) == 6 for v in sizes.values())
    cheap = {"surrogate auc l2=matched", "surrogate -loss l2=0.1", "probe 2 epochs"}
    for name, scores in out["scores"].items():
        assert cheap <= set(scores) and {"trained scratch", "trained warm"} <= set(scores), name
        for key in ("probe 2 epochs", "trained scratch", "trained warm"):
            assert 0.0 <= scores[key] <= 1.0, (name, key)
    for row in out["spearman"].values():
        for rho in row.values():
            assert rho is None or -1.0 <= rho <= 1.0
    assert out["seconds"]["trained warm"] > 0
    # A rerun reuses the trained candidates of the first (trained.json) and agrees with it.
    again = module.main(["--smoke", "--out", str(tmp_path)])
    for name in out["scores"]:
        assert again["scores"][name]["trained warm"] == pytest.approx(
            out["scores"][name]["trained warm"]
        )
