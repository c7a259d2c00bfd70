"""scripts/make_reference_venvs.sh refuses what it cannot do before installing anything, keeps
what exists and leaves nothing half-made behind."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_reference_venvs.sh"

# Stands in for a venv's python: `-c ...` (the script asks for site-packages) prints
# <venv>/site; `-m venv DIR` makes DIR with this python and a pip that fails as an install
# without the registry would.
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = "-c" ]; then echo "$(dirname "$0")/../site"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" "$3/site"; cp "$0" "$3/bin/python"
  printf '#!/bin/sh\\necho "pip: no registry" >&2\\nexit 1\\n' > "$3/bin/pip"
  chmod +x "$3/bin/pip"; exit 0
fi
exit 1
"""


def layout(root: Path, project_venv: str) -> None:
    """scripts/ with a copy of the script; a project .venv: "none", "no torch" or "torch"."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "scripts")
    if project_venv != "none":
        python = root / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(FAKE_PYTHON)
        python.chmod(0o755)
        (root / ".venv" / "site" / ("torch" if project_venv == "torch" else "numpy")).mkdir(
            parents=True)


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "scripts" / SCRIPT.name), *args],
                          capture_output=True, text=True, timeout=60)


def test_without_torch_in_the_project_venv_it_says_to_make_it_first(tmp_path):
    for project_venv in ("none", "no torch"):
        root = tmp_path / project_venv.replace(" ", "_")
        layout(root, project_venv)
        result = run(root, "sat")
        assert result.returncode == 2
        assert "no torch in" in result.stderr and ".venv" in result.stderr
        assert not (root / "reference").exists()


def test_an_unknown_reference_is_named_with_the_valid_ones(tmp_path):
    layout(tmp_path, "torch")
    result = run(tmp_path, "sat", "encodec")
    assert result.returncode == 2
    assert "unknown reference 'encodec' (valid: sat, audiocraft)" in result.stderr
    assert not (tmp_path / "reference").exists()  # checked before sat was made


def test_an_existing_reference_is_kept(tmp_path):
    layout(tmp_path, "none")  # not needed: nothing is made
    python = tmp_path / "reference" / "sat" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    result = run(tmp_path, "sat")
    assert result.returncode == 0, result.stderr
    assert "reference/sat exists: kept" in result.stdout
    assert sorted(p.name for p in python.parent.iterdir()) == ["python"]


def test_a_failed_install_leaves_no_venv_to_be_kept_next_time(tmp_path):
    layout(tmp_path, "torch")
    result = run(tmp_path, "audiocraft")
    assert result.returncode != 0
    assert "pip: no registry" in result.stderr
    assert not (tmp_path / "reference" / "audiocraft").exists()
