"""experiments/baselines.py: smoke run, and its logistic regression against scikit-learn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from graphtag.data import load_dataset


def test_baselines_smoke(load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    module = load_experiment("baselines")
    out = tmp_path / "baselines.json"
    result = module.main(["--smoke", "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    header = json.loads(lines[0])
    assert header["config"]["seeds"] == [0, 1] and header["git_sha"] == result["git_sha"]
    assert header["train_config"]["epochs"] == 5 and "torch" in header["versions"]
    rows = set(result["summary"])
    assert rows == {
        "graphtag all-in-one",
        "single-task GNN",
        "LR: prone-8 embedding",
        "LR: node attributes",  # synthetic x is its generated attributes: no "graphtag x" row
    }
    for name, row in result["summary"].items():
        for key in module.METRICS:
            assert 0.0 <= row[key] <= 1.0 and row[f"{key}_std"] >= 0.0, (name, key)
    # Every seed's rows are scored on that seed's split; the summary is their mean.
    seeds = result["per_seed"]
    mean = np.mean([s["rows"]["single-task GNN"]["macro_auc"] for s in seeds])
    assert result["summary"]["single-task GNN"]["macro_auc"] == pytest.approx(mean)
    assert all(len(c) == 4 for s in seeds for c in s["chosen_c"].values())
    assert re.fullmatch(
        r"headline: synthetic:\S+ \(2 seeds\): graphtag all-in-one test macro AUC [\d.]+ vs best "
        r"baseline [\d.]+ \(.+\); tuned macro F1 [\d.]+ vs [\d.]+ \(.+\)",
        lines[-1],
    )
    assert lines[-1] == result["headline"]
    assert "| graphtag all-in-one |" in "\n".join(lines)
    assert json.loads(out.read_text())["summary"] == json.loads(json.dumps(result["summary"]))


@pytest.mark.parametrize("c", [0.01, 1.0, 100.0])
def test_logistic_regression_matches_sklearn(load_experiment, c):
    module = load_experiment("baselines")
    data = load_dataset("synthetic:num_nodes=200,num_tasks=3,num_groups=1,seed=2")
    x = data.x[:, :5] * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0]) + 2.0
    logits, chosen = module.logistic_regression_logits(x, data, [c])
    assert chosen.tolist() == [c] * 3
    z = module._standardized(x)[:, :-1].numpy()
    for t in range(3):
        rows = data.train_mask[:, t].numpy()
        ref = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(z[rows], data.y[rows, t])
        np.testing.assert_allclose(
            logits[:, t].numpy(), ref.decision_function(z), rtol=1e-4, atol=1e-4
        )


def test_c_is_chosen_per_task_on_validation(load_experiment):
    module = load_experiment("baselines")
    data = load_dataset("synthetic:num_nodes=300,num_tasks=4,num_groups=2,seed=1")
    cs = [0.001, 1.0, 1000.0]
    logits, chosen = module.logistic_regression_logits(data.x, data, cs)
    for t in range(4):
        per_c = [module.logistic_regression_logits(data.x, data, [c])[0][:, t] for c in cs]
        val = [
            float(
                module.roc_auc_scores(
                    data.y[:, t : t + 1], lg[:, None], data.val_mask[:, t : t + 1]
                )
            )
            for lg in per_c
        ]
        best = int(np.argmax(val))  # first maximum: the smaller C on ties
        assert chosen[t] == cs[best]
        torch.testing.assert_close(logits[:, t], per_c[best])
