"""Shared pieces of the stable-audio-tools compatibility tests: the SAT-format configs written
for them (configs/), the SAT-saved fixture (fixtures/) and a folder of real audio."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audiotools.environment import DATASETS_DIR

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
FIXTURES = HERE / "fixtures"


def sat_config(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def write_json(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content))
    return path


@pytest.fixture
def audio_dir(tmp_path) -> Path:
    """Six clips of the shipped music (16 kHz mono ogg), plus a file SAT would not read."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for source in sorted((DATASETS_DIR / "music_small" / "audio").glob("*.ogg"))[:6]:
        shutil.copy(source, folder / source.name)
    (folder / "notes.txt").write_text("not audio")
    return folder
