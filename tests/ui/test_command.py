"""`audiotools ui` refuses what cannot be served before starting a server: one error line
naming the model or flag, no traceback; and the page names its models uniquely."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audiotools.cli import main as cli
from audiotools.ui.app import model_name


def test_a_model_that_does_not_exist_is_one_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere" / "model.safetensors"
    result = subprocess.run([str(Path(sys.executable).parent / "audiotools"), "ui",
                             str(missing), "--port", "7999"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and str(missing) in result.stderr
    assert "Traceback" not in result.stderr and "Running on" not in result.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "0"], "--port=0: give a port between 1 and 65535"),
    (["--max-duration", "0"], "--max-duration=0"),
    (["--no-experiments"], "Nothing to show"),
    (["--dora-dir", "/nonexistent/dora"], "--dora-dir=/nonexistent/dora: no such folder"),
])
def test_bad_flags_are_refused_before_serving(argv, message, capsys):
    assert cli(["ui", *argv]) == 2
    assert message in capsys.readouterr().err


def test_models_are_named_by_file_stem_or_signature_uniquely():
    taken: list[str] = []
    for source in ("exports/piano-dit.safetensors", "ab12cd34", "//sig/ab12cd34",
                   "outputs/xps/ef56ab78/checkpoint.th", "other/piano-dit.safetensors"):
        taken.append(model_name(source, taken))
    assert taken == ["piano_dit", "ab12cd34", "ab12cd34_2", "ef56ab78", "piano_dit_2"]
