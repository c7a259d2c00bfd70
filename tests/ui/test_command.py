"""`audiotools ui` refuses what cannot be served before starting a server: one error line
naming the model or flag, no traceback; and the page names its models uniquely."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from audiotools.cli import main as cli
from audiotools.ui import app
from audiotools.ui.app import model_name
from tests.ui.conftest import free_port, results_folder, wait_until_serving

AUDIOTOOLS = str(Path(sys.executable).parent / "audiotools")


@pytest.fixture
def taken_port():
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


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


def test_a_port_in_use_is_refused_before_any_model_loads(taken_port, tmp_path, capsys):
    missing = tmp_path / "missing.safetensors"  # loading it would be the error
    assert cli(["ui", str(missing), "--port", str(taken_port)]) == 2
    captured = capsys.readouterr()
    assert f"--port={taken_port}: already in use on 127.0.0.1; give another --port" \
        in captured.err
    assert str(missing) not in captured.err and "Serving" not in captured.out


@pytest.mark.parametrize("host", ["999.1.1.1", "nonexistent.invalid"])
def test_a_bad_host_is_named_as_the_host(host, tmp_path, capsys):
    assert cli(["ui", str(tmp_path / "missing.safetensors"), "--host", host,
                "--port", str(free_port())]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --host={host}: ") and "--port" not in error


def test_a_port_taken_while_models_load_stops_the_start_and_leaves_nothing(
        tiny_models, taken_port, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(app, "check_address", lambda host, port: None)  # taken after it
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert cli(["ui", tiny_models.classifier, "--no-experiments", "--port",
                str(taken_port)]) == 2
    captured = capsys.readouterr()
    assert f"--port={taken_port}: already in use" in captured.err
    assert "Serving" not in captured.out
    assert not list(tmp_path.glob("audiotools-ui-*"))


def test_the_results_folder_is_named_at_start_and_kept_with_its_results(tiny_models,
                                                                        tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    with open(log, "w") as output:
        process = subprocess.Popen([AUDIOTOOLS, "ui", tiny_models.classifier,
                                    "--no-experiments", "--port", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/", process, log)
        results = results_folder(log)
        assert results.is_dir()
        assert log.read_text().startswith(f"Serving 1 model(s) on http://127.0.0.1:{port}/")
        (results / "result-0123abcd.wav").write_bytes(b"what a request wrote")
    finally:
        process.terminate()  # SIGTERM, as a service manager stops it
        process.wait(timeout=30)
    # The results are the user's: kept (an unused folder is removed, as on a failed start).
    assert process.returncode == 0
    assert (results / "result-0123abcd.wav").read_bytes() == b"what a request wrote"
