"""experiments/recipe_study.py: smoke run, and test labels never reach a result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


def test_recipe_study_smoke(load_experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    module = load_experiment("recipe_study")
    out = tmp_path / "study.json"
    result = module.main(["--smoke", "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[0])["config"]["seeds"] == [0, 1]
    assert result["variants"] == [
        '{"epochs": 5, "hidden_channels": 16}',
        '{"ema_decay": 0, "epochs": 5, "hidden_channels": 16}',
    ]
    for rows, summary in zip(result["per_variant"], result["summary"], strict=True):
        assert len(rows) == 2 and all(1 <= r["epochs"] <= 5 for r in rows)
        for key in module.METRICS:
            assert summary[key] == pytest.approx(np.mean([r[key] for r in rows]))
            assert 0.0 <= summary[key] <= 1.0
    # The weight average changes the model, so the two variants' held-out scores differ.
    assert result["per_variant"][0] != result["per_variant"][1]
    assert "| default |" not in "\n".join(lines) and lines[-1].startswith("| {")
    assert json.loads(out.read_text())["summary"] == json.loads(json.dumps(result["summary"]))


def test_test_labels_do_not_change_any_figure(load_experiment, monkeypatch):
    module = load_experiment("recipe_study")
    real = module.load_dataset

    def scrambled(spec, seed=0):
        data = real(spec, seed=seed)
        flip = data.test_mask & (torch.rand(data.y.shape, generator=torch.Generator()) < 0.5)
        data.y = torch.where(flip, 1 - data.y, data.y)
        return data

    args = ["--smoke", "--seeds", "0"]
    want = module.main(args)["per_variant"]
    monkeypatch.setattr(module, "load_dataset", scrambled)
    got = module.main(args)["per_variant"]
    for a, b in zip(want, got, strict=True):
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in a] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in b
        ]


def test_bad_variants_are_refused(load_experiment):
    module = load_experiment("recipe_study")
    with pytest.raises(SystemExit):
        module.parse_args(["--variants", '{"ema_decay": 0}'])
