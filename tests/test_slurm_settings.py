"""SLURM settings from the team file over config.yaml's, checked before anything is submitted
(the submission itself: tests/slurm/)."""
from __future__ import annotations

from pathlib import Path

import pytest

from audiotools import environment
from audiotools.errors import ConfigError


@pytest.fixture
def team(tmp_path, monkeypatch):
    """Write `teams/lab.yaml` in the user's own config tree and select it."""
    teams = tmp_path / "tree" / "teams"
    teams.mkdir(parents=True)
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'tree'}")
    monkeypatch.setenv("AUDIOTOOLS_TEAM", "lab")

    def write(text: str) -> Path:
        path = teams / "lab.yaml"
        path.write_text(text)
        environment._team_settings.cache_clear()
        return path

    yield write
    environment._team_settings.cache_clear()


def test_team_file_settings_apply_over_config_yaml(team):
    path = team("slurm:\n  partition: debug\n  gpus: 2\n  mem_per_gpu: 8\n"
                "  constraint: volta\n  setup: ['module load cuda']\n")
    assert environment.team_file() == path  # found in AUDIOTOOLS_CONFIG_PATH's tree
    from audiotools.train import main
    slurm = main.get_slurm_config()
    assert (slurm.partition, slurm.gpus, slurm.mem_per_gpu) == ("debug", 2, 8)
    assert slurm.constraint == "volta" and slurm.setup == ["module load cuda"]
    # Keys the team file leaves alone keep config.yaml's values, not Dora's defaults.
    assert (slurm.cpus_per_task, slurm.time) == (2, 1440)


@pytest.mark.parametrize("text, message", [
    ("slurm:\n  memory: 4\n", r"unknown slurm key\(s\) \['memory'\]; valid keys are gpus, "),
    ("slurm:\n  gpus: two\n", r"slurm.gpus='two' is not a valid int"),
    ("slurm:\n  mem_per_gpu: 1.5\n", r"slurm.mem_per_gpu=1.5 is not a valid int"),
    ("slurm:\n  setup: module load cuda\n", r"slurm.setup='module load cuda' is not a valid"),
])
def test_bad_team_slurm_settings_name_the_file(team, text, message):
    path = team(text)
    from audiotools.train import main
    with pytest.raises(ConfigError, match=f"{path}: {message}"):
        main.get_slurm_config()


def test_unknown_team_lists_teams_of_both_trees(team, monkeypatch):
    team("dora_dir: ./outputs\n")
    monkeypatch.setenv("AUDIOTOOLS_TEAM", "nope")
    with pytest.raises(ConfigError, match="Known teams: default, lab"):
        environment.team_file()
