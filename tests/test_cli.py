"""The console script starts fast: building its parser (`audiotools --help`, any command's
`--help`) imports none of torch, the training stack or a model; each command's help works."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from audiotools.cli import COMMANDS, build_parser

HEAVY = ("torch", "torchaudio", "numpy", "flashy", "dora", "hydra", "wandb", "tensorboard",
         "soundfile", "webdataset")


def test_building_the_parser_imports_nothing_heavy():
    code = ("import sys; from audiotools.cli import build_parser; build_parser(); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module_name", COMMANDS)
def test_every_command_answers_help(module_name, capsys):
    name = importlib.import_module(f"audiotools.commands.{module_name}").NAME
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: audiotools " + name in capsys.readouterr().out


def test_ctrl_c_is_one_line_saying_how_to_go_on(monkeypatch, capsys):
    """It printed a KeyboardInterrupt traceback of torch's frames."""
    from audiotools import cli
    from audiotools.commands import kfold

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(kfold, "run", interrupted)
    assert cli.main(["kfold", "solver=classifier/debug"]) == 130
    assert capsys.readouterr().err == (
        "error: interrupted; the same command goes on: finished folds are skipped, the "
        "interrupted one resumes from its last checkpoint.\n")
