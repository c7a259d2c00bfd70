"""Shared fixtures: every test gets its own XP directory, and the toy recipe is on the
config search path (as a user's own recipes would be, through AUDIOTOOLS_CONFIG_PATH)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audiotools import environment

REPO = Path(__file__).resolve().parent.parent
TOY_CONFIG = REPO / "tests" / "toy" / "config"


def use_dora_dir(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XPs under `folder` and the toy recipes on the config path, until `monkeypatch` undoes
    it (a module-scoped fixture passes a `pytest.MonkeyPatch.context()`)."""
    monkeypatch.setenv("AUDIOTOOLS_DORA_DIR", str(folder))
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{TOY_CONFIG}")
    from audiotools.train import main
    monkeypatch.setattr(main.dora, "dir", environment.dora_dir())
    return folder


@pytest.fixture
def dora_dir(tmp_path, monkeypatch) -> Path:
    return use_dora_dir(tmp_path / "dora", monkeypatch)


def dora_command(*args: str, env: dict[str, str] | None = None, timeout: float = 240,
                 check: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run `dora ...` as a user would, from the repo root, in the test's environment."""
    full_env = {**os.environ, **(env or {})}
    dora = Path(sys.executable).parent / "dora"
    result = subprocess.run([str(dora), *args], cwd=cwd, env=full_env, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"dora {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
