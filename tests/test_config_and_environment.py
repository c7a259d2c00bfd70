"""Typed config validation, team files and special paths."""
from __future__ import annotations

import pytest

from audiotools import environment
from audiotools.config import SolverConfig, validate
from audiotools.errors import ConfigError
from audiotools.families import solver_class
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


def test_unknown_team_is_an_error_even_with_the_dirs_set_by_the_environment(monkeypatch,
                                                                             tmp_path):
    """AUDIOTOOLS_DORA_DIR / AUDIOTOOLS_REFERENCE_DIR override the team file's paths, but a
    misspelt team must not pass silently: its SLURM settings would be missing."""
    monkeypatch.setenv("AUDIOTOOLS_DORA_DIR", str(tmp_path / "xps"))
    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tmp_path / "refs"))
    monkeypatch.setenv("AUDIOTOOLS_TEAM", "nope")
    environment._team_settings.cache_clear()
    for resolve in (environment.dora_dir, environment.reference_dir):
        with pytest.raises(ConfigError, match="AUDIOTOOLS_TEAM='nope'.*Known teams: .*default"):
            resolve()
    monkeypatch.delenv("AUDIOTOOLS_TEAM")
    assert environment.dora_dir() == tmp_path / "xps"


def test_recipe_list_leaves_out_the_family_bases(dora_dir):
    recipes = environment.available_recipes()
    assert "classifier/digits" in recipes and "autoencoder/base" in recipes
    assert not [name for name in recipes if name.endswith("/default")]


def test_rules_across_keys_come_with_the_single_key_faults_and_name_their_keys():
    """A rule pydantic skips while a value is bad is still reported in the same message,
    labelled with the keys it concerns (not `<root>`)."""
    with pytest.raises(ConfigError) as error:
        validate(_base(optim={"lr": -1}, schedule={"name": "linear_warmup"}), SolverConfig)
    lines = str(error.value).splitlines()
    assert lines[1] == "  optim.lr = -1: Input should be greater than 0."
    assert lines[2].startswith("  schedule.name, schedule.warmup_steps: schedule.name="
                               "linear_warmup needs")
    # A rule that names a faulty key judged its default, not the user's value: left out.
    with pytest.raises(ConfigError) as error:
        validate(_base(schedule={"name": "linear_warmup", "warmup_steps": -1}), SolverConfig)
    assert str(error.value).splitlines()[1:] == [
        "  schedule.warmup_steps = -1: Input should be greater than or equal to 0."]


def test_family_rule_and_single_key_fault_in_one_run(dora_dir):
    from audiotools.train import main
    with pytest.raises(ConfigError) as error:
        main.get_xp(["solver=autoencoder/debug", "dataset.sample_rate=44100", "optim.lr=-1"])
    message = str(error.value)
    assert "optim.lr = -1" in message
    assert "  dataset.sample_rate, model.sample_rate: dataset.sample_rate=44100" in message
    assert "<root>" not in message


@pytest.mark.parametrize("override,section,keys", [
    ("+dataset.valid.foo=1", "dataset.valid", "channels, manifest, min_segment_ratio"),
    ("+model.encoder.foo=1", "model.encoder", "c_mults, channels, latent_dim, strides"),
])
def test_unknown_key_of_a_split_or_typed_part_lists_its_keys(dora_dir, override, section, keys):
    from audiotools.train import main
    with pytest.raises(ConfigError) as error:
        main.get_xp(["solver=autoencoder/debug", override])
    assert f"unknown key in section '{section}'. Valid keys: {keys}" in str(error.value)


def test_plateau_refuses_a_warmup_it_would_ignore():
    with pytest.raises(ConfigError, match="schedule.warmup_steps=5 has no effect with "
                                          "schedule.name=plateau"):
        validate(_base(schedule={"name": "plateau", "warmup_steps": 5}), SolverConfig)


def test_a_dataset_key_every_split_sets_points_to_the_splits(dora_dir):
    """The hint was `+dataset.manifest=...`, which no split then read (a warning in the log)."""
    with pytest.raises(ConfigError, match=(
            r"^dataset.manifest: every split of this recipe sets its own \(dataset.train."
            r"manifest, dataset.valid.manifest, .*e.g. dataset.train.manifest=/d/t.jsonl.$")):
        make_xp("solver=autoencoder/debug", "dataset.manifest=/d/t.jsonl")
    assert make_xp("solver=autoencoder/debug", "dataset.train.manifest=/d/t.jsonl"
                   ).cfg.dataset.train.manifest == "/d/t.jsonl"
