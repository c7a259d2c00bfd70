"""What a researcher who extends the framework gets wrong (recipes of their own, a network or
a loss term added, code changed under an XP) is one message naming the file or the part,
not a traceback or a run that silently uses something else."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from audiotools.environment import CONFIG_DIR
from audiotools.errors import CheckpointError, ConfigError
from tests.solvers.helpers import train

pytestmark = pytest.mark.usefixtures("one_thread")

DIFFUSION_DEBUG = ["solver=diffusion/debug", "optim.epochs=1", "evaluate.every=0",
                   "generate.every=0"]


def _user_tree(tmp_path, monkeypatch, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / "mine" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'mine'}")


def _get_xp(*argv: str):
    from audiotools.train import main
    return main.get_xp(list(argv))


RECIPE = "# @package _global_\ndefaults:\n  - /solver/diffusion/debug\n  - _self_\n"


def test_a_user_recipe_with_a_shipped_name_is_refused(dora_dir, tmp_path, monkeypatch):
    """Hydra reads the project's tree first: the user's file was never read."""
    _user_tree(tmp_path, monkeypatch, {"solver/diffusion/debug.yaml": RECIPE,
                                       "teams/default.yaml": "dora_dir: null\n"})
    with pytest.raises(ConfigError, match=r"solver/diffusion/debug.yaml has the name of a file "
                                          r"of the project's config tree .* Rename it"):
        _get_xp("solver=toy/debug")
    # A team file of the user's is meant to win over the project's, and is not refused.
    (tmp_path / "mine" / "solver" / "diffusion" / "debug.yaml").unlink()
    assert _get_xp("solver=diffusion/debug").cfg.solver == "diffusion"


def test_a_recipe_that_is_not_yaml_or_lacks_its_header_is_named(dora_dir, tmp_path,
                                                               monkeypatch):
    _user_tree(tmp_path, monkeypatch, {
        "solver/mine/bad.yaml": RECIPE + "optim:\n  lr: [1e-3\n",
        "solver/mine/twice.yaml": RECIPE + "optim:\n  lr: 1\n  lr: 2\n",
        "solver/mine/bare.yaml": RECIPE.removeprefix("# @package _global_\n") + "optim:\n"
                                 "  lr: 0.01\n"})
    for recipe in ("bad", "twice"):
        with pytest.raises(ConfigError, match=rf"(?s)not valid YAML: .*mine/{recipe}.yaml"):
            _get_xp(f"solver=mine/{recipe}")
    with pytest.raises(ConfigError, match=r"mine/bare.yaml: a recipe's first line is "
                                          r"`# @package _global_`"):
        _get_xp("solver=mine/bare")
    assert all((CONFIG_DIR / "solver").glob("*/*.yaml"))  # the shipped ones all have it


def test_a_checkpoint_the_changed_model_cannot_load_is_named_and_kept(dora_dir):
    """The model's code changed under an XP (a layer added): torch's load_state_dict
    traceback, now one message with the way out."""
    solver = train("optim.epochs=1")
    path = solver.folder / "checkpoint.th"
    state = torch.load(path, weights_only=True)
    state["model"]["extra.weight"] = torch.zeros(3)
    torch.save(state, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"checkpoint.th does not load into this XP's "
                                              r"model or optimizer: .*extra.weight.* put the "
                                              r"code back"):
        train("optim.epochs=1")
    assert path.read_bytes() == before


def test_a_network_that_refuses_its_settings_names_the_section(dora_dir, monkeypatch):
    from audiotools.solvers.diffusion import DiffusionSolver

    def refuses(self):
        raise ValueError("ConvNet: channels=15 must be even")

    monkeypatch.setattr(DiffusionSolver, "build_generative_model", refuses)
    with pytest.raises(ConfigError, match="^model: ConvNet: channels=15 must be even$"):
        train(*DIFFUSION_DEBUG)


def test_a_diffusion_network_must_return_its_input_shape():
    from audiotools.models.diffusion import build_diffusion_model
    network = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/diffusion/unet_tiny.yaml"))
    model = build_diffusion_model({"network": network})
    x = torch.randn(2, 1, 256)
    assert model(x, torch.rand(2)).shape == x.shape
    inner = model.model.forward
    model.model.forward = lambda x, t, **inputs: inner(x, t, **inputs)[..., :-1]
    with pytest.raises(ConfigError, match=r"returned \(2, 1, 255\) for an input of \(2, 1, 256\)"):
        model(x, torch.rand(2))


def test_a_loss_term_without_a_weight_is_refused(dora_dir, monkeypatch):
    """A term a researcher added was summed at weight 1 in silence."""
    from audiotools.solvers.autoencoder import AutoencoderSolver
    original = AutoencoderSolver._reconstruction_terms

    def with_extra(self, audio, reconstruction):
        return {**original(self, audio, reconstruction), "mse_extra": audio.abs().mean()}

    monkeypatch.setattr(AutoencoderSolver, "_reconstruction_terms", with_extra)
    with pytest.raises(ConfigError, match="loss term.s. mse_extra have no weight: add each to "
                                          "LossWeights"):
        train("solver=autoencoder/debug", "optim.epochs=1", "dataset.train.num_samples=4",
              "evaluate.every=0", "generate.every=0")


def test_two_families_of_one_name_are_refused():
    from audiotools.families import FAMILIES, _by_name
    with pytest.raises(ValueError, match="families declared twice: diffusion"):
        _by_name(*FAMILIES.values(), FAMILIES["diffusion"])


def test_every_registered_type_has_its_schema_and_its_builder():
    """docs/configuration.md: a new type goes in a registry, a union and a builder; a type in
    one of them only gave another type's errors, or a KeyError after the XP folder existed."""
    from typing import get_args

    from audiotools.conditioning import conditioner_set
    from audiotools.conditioning import config as conditioning
    from audiotools.models.diffusion import config as diffusion
    from audiotools.models.diffusion import model
    assert set(diffusion.NETWORKS) == set(model._NETWORKS)
    assert set(get_args(diffusion.NetworkConfig)) == set(diffusion.NETWORKS.values())
    union = get_args(get_args(conditioning.ConditionerConfig)[0])
    assert set(union) == set(conditioning.CONDITIONERS.values())
    assert set(conditioning.CONDITIONERS) == set(conditioner_set._SIMPLE) | {"text", "audio"}
    for name, section in {**diffusion.NETWORKS, **conditioning.CONDITIONERS}.items():
        assert get_args(section.model_fields["type"].annotation) == (name,), name


def test_a_missing_config_option_is_named_with_the_available_ones(dora_dir, tmp_path,
                                                                  monkeypatch):
    with pytest.raises(ConfigError, match=(
            r"^dset=nosuch: no such option \(config/dset/nosuch.yaml\). Available: "
            r"music_ensembles, music_small, music_small_shards.$")):
        _get_xp("solver=autoencoder/debug", "dset=nosuch")
    _user_tree(tmp_path, monkeypatch, {"solver/mine/bad_dset.yaml": (
        "# @package _global_\ndefaults:\n  - /solver/autoencoder/debug\n"
        "  - override /dset: nosuch\n  - _self_\n")})
    with pytest.raises(ConfigError, match=(
            r"^solver=mine/bad_dset \(its recipe or a file it builds on\) names dset: nosuch, "
            r"which does not exist \(config/dset/nosuch.yaml\). Available: music_ensembles")
    ) as error:
        _get_xp("solver=mine/bad_dset")
    assert "Config search path" not in str(error.value)
