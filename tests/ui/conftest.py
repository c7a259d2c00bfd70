"""The web UI under test: `audiotools ui` on the session's tiny models (tests/conftest.py
`tiny_models`) and their dora dir, on a free local port."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio", reason="the web UI tests need the ui extra (pip install -e .[dev])")

# The page's model tabs, in order; each is named by its export's stem (the family's name).
FAMILIES = ("diffusion", "musicgen", "autoencoder", "classifier")
MAX_DURATION = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log: Path,
                       timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"audiotools ui exited with {process.returncode}:\n"
                                 f"{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"audiotools ui did not answer at {url} within {timeout:g} s:\n"
                         f"{log.read_text()}")


@pytest.fixture(scope="session")
def ui_server(tiny_models, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """`audiotools ui` serving the four tiny models and their dora dir, run as a person runs
    it (the console script, its own process), on one thread: its address and its log."""
    port = free_port()
    models = [getattr(tiny_models, family) for family in FAMILIES]
    log = tmp_path_factory.mktemp("ui") / "server.log"
    command = [str(Path(sys.executable).parent / "audiotools"), "ui", *models, "--port",
               str(port), "--dora-dir", str(tiny_models.dora_dir), "--max-duration",
               str(MAX_DURATION)]
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_until_serving(url, process, log)
        yield SimpleNamespace(url=url, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def ui_url(ui_server) -> str:
    return ui_server.url


def results_folder(log: Path, timeout: float = 30.0) -> Path:
    """Where a server writes its results, as its startup line says (printed once the page
    serves, so it may come a moment after the page answers)."""
    deadline = time.monotonic() + timeout
    while not (found := re.search(r"results go to (\S+), kept when it stops", log.read_text())):
        assert time.monotonic() < deadline, f"no results folder in the startup line:\n" \
                                            f"{log.read_text()}"
        time.sleep(0.2)
    return Path(found.group(1))
