"""experiments/bench_sdp.py runs end to end in --smoke mode."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("cvxpy")


def test_bench_sdp_smoke(load_experiment, tmp_path, capsys):
    module = load_experiment("bench_sdp")
    out = tmp_path / "bench.json"
    result = module.main(["--smoke", "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    meta = json.loads(lines[0])
    assert meta["config"]["seed"] == 0 and "cvxpy" in meta["versions"]
    assert lines[-1].startswith("headline:")
    assert [r["num_tasks"] for r in result["rows"]] == [12, 20]
    for row in result["rows"]:
        assert row["admm_status"] == row["scs_status"] == "optimal"
        assert row["objective_relative_gap"] < 1e-3
        assert row["ari_scs_admm"] == 1.0
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(result["rows"]))


def test_bench_sdp_headline_is_the_last_line(load_experiment, monkeypatch, capsys):
    module = load_experiment("bench_sdp")
    module.main(["--sizes", "200", "--groups", "4", "--cvxpy-max-tasks", "0", "--tol", "1e-2"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("headline: n/a")


def test_adjusted_rand_index_known_values(load_experiment):
    module = load_experiment("bench_sdp")
    ari = module.adjusted_rand_index
    assert ari([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert ari([0, 0, 1, 1, 2], [5, 5, 3, 3, 9]) == 1.0
    # By hand: table [[2, 1], [0, 3]]; pair counts: index 1 + 3 = 4, rows 3 + 3 = 6,
    # columns 1 + 6 = 7, total 15, expected 6 * 7 / 15, maximum (6 + 7) / 2.
    assert ari([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]) == pytest.approx(
        (4 - 42 / 15) / (6.5 - 42 / 15)
    )
