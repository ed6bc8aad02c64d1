"""experiments/bench_tag.py --smoke runs through main() and reports consistent costs and ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphtag.estimation import plan_subsets


def test_bench_tag_smoke(
    load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    result = load_experiment("bench_tag").main(
        ["--smoke", "--modes", "exact,first_order,naive", "--out", str(out)]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    meta = json.loads(lines[0])
    assert meta["config"]["seed"] == 0 and "torch" in meta["versions"]
    assert set(meta["seeds"]) == {"split_and_models", "projection", "subsets", "tag_sketch"}
    assert [r["num_tasks"] for r in result["rows"]] == [6, 12]
    for row in result["rows"]:
        # The recorders leave training untouched; steps 1, 3, 5 of 6 are measured (every 2).
        assert row["same_trajectory"] and row["steps"] == 6 and row["measured_steps"] == 3
        plain = row["plain_training"]["wall"]
        gt = row["grad_tag_features"]["wall"] + row["grad_tag_surrogates"]["wall"]
        for mode, d in row["modes"].items():
            rec = d["recorder"]["wall"]
            assert d["ratio_without_base"] == pytest.approx(rec / gt)
            assert d["ratio_with_base"] == pytest.approx((plain + rec) / (plain + gt))
            # exact and naive compute the same Z; first-order approximates it.
            if mode in ("exact", "naive"):
                assert d["corr_with_exact"] == pytest.approx(1.0, abs=1e-6)  # float32
            else:
                assert d["corr_with_exact"] > 0.5
    saved = json.loads(out.read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    head = result["rows"][0]["modes"]["exact"]
    assert lines[-1] == (
        f"headline: synthetic (T=6): TAG's exact lookahead affinity costs "
        f"{head['ratio_with_base']:.2f}x Grad-TAG's with base training, "
        f"{head['ratio_without_base']:.2f}x without (recorder vs features + surrogates); "
        f"wall clock, 2 epochs, 3 measured steps (CPU time: {head['cpu_ratio_with_base']:.2f}x "
        f"/ {head['cpu_ratio_without_base']:.2f}x)"
    )


def test_bench_uses_the_pipeline_subset_plan(load_experiment) -> None:
    module = load_experiment("bench_tag")
    args = module.parse_args([])
    assert (args.num_subsets, args.subset_size, args.min_pair_count) == (1000, 10, 5)
    assert module.plan_subsets is plan_subsets  # one rule: the library's
    args_bad = ["--modes", "exact,bogus"]
    with pytest.raises(SystemExit):
        module.parse_args(args_bad)
