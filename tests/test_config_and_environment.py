"""Typed config validation, team files and special paths."""
from __future__ import annotations

import pytest

from audiotools import environment
from audiotools.config import SolverConfig, validate
from audiotools.errors import ConfigError
from audiotools.solvers.builders import solver_class
from tests.solvers.helpers import make_xp


def _base(**overrides):
    return {"solver": "toy", **overrides}


def test_valid_config_is_typed():
    settings = validate(_base(optim={"lr": 1, "betas": [0.8, 0.9]}), SolverConfig)
    assert settings.optim.lr == 1.0 and settings.optim.betas == (0.8, 0.9)


@pytest.mark.parametrize("overrides,expected", [
    ({"optim": {"lr": -1}}, "optim.lr = -1: Input should be greater than 0"),
    ({"optim": {"lrr": 1}}, "optim.lrr: unknown key in section 'optim'. Valid keys: accumulation"),
    ({"precision": 16}, "precision = 16"),
    ({"schedule": {"name": "linear_warmup"}}, "needs schedule.warmup_steps >= 1"),
    ({"early_stop": {"patience": 0}}, "early_stop.patience = 0"),
    ({"logging": {"wandb": {"mode": "on"}}}, "'online', 'offline' or 'disabled'"),
    ({"extra_section": {}}, "extra_section: unknown key in the root config"),
])
def test_invalid_values_name_key_value_and_allowed(overrides, expected):
    with pytest.raises(ConfigError) as error:
        validate(_base(**overrides), SolverConfig)
    assert expected in str(error.value)


def test_precision_32_from_the_command_line_is_full_precision(dora_dir):
    assert make_xp("precision=32").cfg.precision == 32
    assert validate(_base(precision=32), SolverConfig).precision == "32"


def test_all_faults_in_one_message():
    with pytest.raises(ConfigError) as error:
        validate(_base(optim={"lr": 0, "epochs": 0}), SolverConfig)
    message = str(error.value)
    assert "optim.lr" in message and "optim.epochs" in message
    assert message.startswith("Invalid configuration:")


def test_recipe_typo_in_a_typed_section_is_refused_before_any_xp(dora_dir):
    with pytest.raises(ConfigError, match="model.hiden: unknown key"):
        make_xp("+model.hiden=3")
    assert not (dora_dir / "xps").exists()


def test_unknown_solver_is_explained(dora_dir):
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        solver_class("no_such_module:Solver")
    with pytest.raises(ConfigError, match="unknown solver.*Recipes .solver=<recipe>.:.*toy/debug"):
        solver_class("nonsense")
    with pytest.raises(ConfigError, match="is not a StandardSolver subclass"):
        solver_class("audiotools.config:SolverConfig")
    with pytest.raises(ConfigError, match="no such recipe .*Available recipes: .*toy/debug"):
        make_xp("solver=no/such_recipe")


def test_special_paths(dora_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tmp_path / "ref"))
    assert environment.resolve_path("//reference/music/a.wav") == tmp_path / "ref/music/a.wav"
    assert environment.resolve_path("//sig/abc123") == dora_dir.resolve() / "xps" / "abc123"
    assert environment.resolve_path("//sig/abc123/checkpoint.th").name == "checkpoint.th"
    with pytest.raises(ConfigError, match="//sig/SIG"):
        environment.resolve_path("//sig/")


def test_team_file_sets_dirs_and_slurm(monkeypatch, tmp_path):
    teams = tmp_path / "config" / "teams"
    teams.mkdir(parents=True)
    (teams / "lab.yaml").write_text(
        f"dora_dir: {tmp_path}/xps_here\nreference_dir: {tmp_path}/refs\n"
        "slurm:\n  partition: gpu\n  setup: ['module load cuda']\n")
    monkeypatch.setattr(environment, "CONFIG_DIR", tmp_path / "config")
    environment._team_settings.cache_clear()
    monkeypatch.setenv("AUDIOTOOLS_TEAM", "lab")
    monkeypatch.delenv("AUDIOTOOLS_DORA_DIR", raising=False)
    monkeypatch.delenv("AUDIOTOOLS_REFERENCE_DIR", raising=False)
    assert environment.dora_dir() == tmp_path / "xps_here"
    assert environment.resolve_path("//reference/x") == tmp_path / "refs" / "x"
    assert environment.slurm_defaults() == {"partition": "gpu", "setup": ["module load cuda"]}
    monkeypatch.setenv("AUDIOTOOLS_DORA_DIR", str(tmp_path / "env_wins"))
    assert environment.dora_dir() == tmp_path / "env_wins"
    monkeypatch.delenv("AUDIOTOOLS_DORA_DIR")
    monkeypatch.setenv("AUDIOTOOLS_TEAM", "nope")
    with pytest.raises(ConfigError, match="Known teams: lab"):
        environment.dora_dir()
    environment._team_settings.cache_clear()
