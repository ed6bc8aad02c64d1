import subprocess
import sys

import pytest

from graphtag.cli import main


def test_datasets_lists_builtins(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "blogcatalog" in out and "10,312" in out and "wikipedia-pos" in out


def test_unknown_dataset_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--dataset", "nope", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphtag: error: unknown dataset 'nope'")


def test_bad_flag_value_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--num-groups", "zero", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_import_graphtag_does_not_import_heavy_optional_modules():
    code = (
        "import sys, graphtag, graphtag.data, graphtag.cli;"
        "bad=[m for m in ('cvxpy','ogb','matplotlib') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["train", "run", "check-estimator"])
def test_recipe_flags_reach_the_train_config(command):
    from graphtag.cli import build_parser
    from graphtag.cli._commands import _train_config
    from graphtag.training import TrainConfig

    parser = build_parser()
    extra = ["--num-subsets", "2"] if command == "check-estimator" else []
    args = parser.parse_args([command, "--out", "o", *extra, "--lr", "0.005", "--ema-decay", "0"])
    config = _train_config(args)
    assert (config.lr, config.ema_decay) == (0.005, 0.0)
    defaults = _train_config(parser.parse_args([command, "--out", "o", *extra]))
    assert (defaults.lr, defaults.ema_decay) == (TrainConfig.lr, TrainConfig.ema_decay)
