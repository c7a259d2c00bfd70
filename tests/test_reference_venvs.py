"""scripts/make_reference_venvs.sh refuses what it cannot do before installing anything."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_reference_venvs.sh"


def run_in_copy(tmp_path: Path, *args: str, with_torch: bool) -> subprocess.CompletedProcess:
    """The script run from a copy of the repository layout it expects (scripts/, .venv)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts")
    if with_torch:
        (tmp_path / ".venv/lib/python3.11/site-packages/torch").mkdir(parents=True)
    return subprocess.run(["bash", str(tmp_path / "scripts" / SCRIPT.name), *args],
                          capture_output=True, text=True, timeout=60)


def test_without_the_project_venv_it_says_to_make_it_first(tmp_path):
    result = run_in_copy(tmp_path, "sat", with_torch=False)
    assert result.returncode == 2
    assert "no torch in" in result.stderr and ".venv" in result.stderr
    assert not (tmp_path / "reference").exists()


def test_an_unknown_reference_is_named_with_the_valid_ones(tmp_path):
    result = run_in_copy(tmp_path, "sat", "encodec", with_torch=True)
    assert result.returncode == 2
    assert "unknown reference 'encodec' (valid: sat, audiocraft)" in result.stderr
    assert not (tmp_path / "reference").exists()  # checked before sat was made


def test_an_existing_reference_is_kept(tmp_path):
    python = tmp_path / "reference" / "sat" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    result = run_in_copy(tmp_path, "sat", with_torch=True)
    assert result.returncode == 0, result.stderr
    assert "reference/sat exists: kept" in result.stdout
    assert sorted(p.name for p in python.parent.iterdir()) == ["python"]
