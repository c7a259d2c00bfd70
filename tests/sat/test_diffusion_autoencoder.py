"""stable-audio-tools `diffusion_autoencoder` configs and checkpoints: the conversion of a
small SAT config (sections, parameter counts per part, what is listed), the parts that are
refused, `audiotools train` training the recipe it writes, and checkpoints in SAT's key
layouts (unwrapped and wrapped, made here from our own modules with SAT's weight-norm names)
loading to the same outputs. Parity against SAT itself: scripts/check_sat_diffusion_parity.py."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from audiotools.cli import main as cli
from audiotools.conditioning import Conditioning
from audiotools.errors import ConfigError
from audiotools.io.codecs import load_codec
from audiotools.models.autoencoder import build_autoencoder
from audiotools.models.diffusion import ENCODER_LATENTS, build_diffusion_model
from audiotools.sat import load_diffusion
from audiotools.sat.diffusion import convert_diffusion_model, parameter_counts
from audiotools.sat.diffusion_training import convert_diffusion_training
from audiotools.sat.loading import SAT_FORMAT
from audiotools.sat.model import load_architecture
from audiotools.sat.notes import Notes
from tests.sat.conftest import sat_config, write_json
from tests.sat.test_diffusion import _sat_dit_key, randomised

# stable-audio-tools 0.0.19's own counts for autoencoder_config() (create_model_from_config,
# in the reference venv): its DiTWrapper, and its OobleckEncoder (the VAE has no parameters).
SAT_DIT_PARAMETERS = 88_538
SAT_ENCODER_PARAMETERS = 1_644


def autoencoder_config() -> dict:
    """A SAT diffusion autoencoder on 16 kHz mono audio: an Oobleck encoder (snake) and a VAE
    giving 4 latent channels a 16-sample frame, decoded by a tiny DiT (4 samples a token;
    heads 32 wide, the least SAT's rotary positions take)."""
    return {
        "model_type": "diffusion_autoencoder", "sample_rate": 16000, "sample_size": 4096,
        "audio_channels": 1,
        "model": {
            "io_channels": 1, "latent_dim": 4, "downsampling_ratio": 16,
            "encoder": {"type": "oobleck", "config": {
                "in_channels": 1, "channels": 4, "c_mults": [1, 2], "strides": [4, 4],
                "latent_dim": 8, "use_snake": True}},
            "bottleneck": {"type": "vae"},
            "diffusion": {"type": "dit", "config": {
                "diffusion_objective": "v", "io_channels": 1, "input_concat_dim": 4,
                "embed_dim": 64, "depth": 1, "num_heads": 2, "patch_size": 4}}},
        "training": {"learning_rate": 2e-4, "use_reconstruction_loss": True,
                     "demo": {"demo_every": 2, "demo_steps": 3}}}


def latent_autoencoder_config() -> dict:
    """The same kind on the tiny VAE's 8-dim latents (a pretransform), with a tanh bottleneck."""
    config = autoencoder_config()
    config["sample_size"] = 8192
    config["model"].update(
        io_channels=8, latent_dim=2, downsampling_ratio=2,
        pretransform={"type": "autoencoder", "scale": 2.0,
                      "config": sat_config("tiny_vae")["model"]},
        encoder={"type": "oobleck", "config": {"in_channels": 8, "channels": 4, "c_mults": [1],
                                               "strides": [2], "latent_dim": 2}},
        bottleneck={"type": "tanh", "config": {"scale": 3.0}})
    config["model"]["diffusion"]["config"].update(io_channels=8, input_concat_dim=2,
                                                  patch_size=1)
    return config


def test_conversion_builds_sats_parts_and_lists_what_differs():
    notes = Notes()
    config = autoencoder_config()
    converted = convert_diffusion_model(config, notes)
    model = converted.model
    assert model["objective"] == "v" and model["input_concat_ids"] == [ENCODER_LATENTS]
    assert model["encoder"] == {
        "latent_dim": 4, "init_scale": 0.5, "bottleneck": {"type": "vae"},
        "encoder": {"type": "oobleck", "channels": 4, "c_mults": [1, 2], "strides": [4, 4],
                    "use_snake": True, "latent_dim": 8}}
    assert model["network"]["input_concat_dim"] == 4 and model["network"]["patch_size"] == 4
    assert converted.conditioners == {} and converted.codec is None
    assert parameter_counts(converted) == {
        "diffusion model": SAT_DIT_PARAMETERS, "encoder and bottleneck": SAT_ENCODER_PARAMETERS,
        "conditioners": 0, "total": SAT_DIT_PARAMETERS + SAT_ENCODER_PARAMETERS}
    training = convert_diffusion_training(config["training"], "diffusion_autoencoder", "v", {},
                                          notes).sections
    assert training["optim"]["optimizer"] == "adam" and training["optim"]["lr"] == 2e-4
    assert training["optim"]["ema"]["decay"] == 0.9999 and training["losses"] == {"kl": 1e-6}
    assert training["schedule"] == {"name": "none"}
    assert training["generate"] == {"steps": 3, "sampler": "ddim"}
    assert training["conditioning"] == {"joint_dropout": 0.0}
    assert any("use_reconstruction_loss=true" in line for line in notes.unsupported)
    assert any("samples its latents at inference too" in line for line in notes.differences)


def test_a_latent_diffusion_autoencoder_counts_its_pretransform():
    converted = convert_diffusion_model(latent_autoencoder_config(), Notes())
    assert converted.codec == {"scale": 2.0}
    assert converted.model["encoder"]["bottleneck"] == {"type": "tanh", "scale": 3.0}
    counts = parameter_counts(converted)
    with torch.device("meta"):
        pretransform = build_autoencoder(load_architecture(converted.pretransform))
    assert counts["pretransform (frozen codec)"] == sum(p.numel() for p in
                                                        pretransform.parameters())


def _set(path: str, value):
    """A change to autoencoder_config() at a dotted path (None: remove the key)."""
    def change(config):
        *parents, last = path.split(".")
        section = config
        for key in parents:
            section = section[key]
        if value is None:
            del section[last]
        else:
            section[last] = value
    return change


@pytest.mark.parametrize("change, words", [
    (_set("model.diffusion.type", "adp_1d"),
     r"model.diffusion.type='adp_1d' is not supported here: audiotools converts type dit\..*"
     r"a diffusion autoencoder's decoder converts as a DiT only"),
    (_set("model.decoder", {"type": "oobleck", "config": {}}), "model.decoder is not supported"),
    (_set("model.encoder", None), "model.encoder is missing"),
    (_set("model.bottleneck", {"type": "rvq", "config": {"dim": 4}}),
     "model.bottleneck.type='rvq' is not supported in a diffusion autoencoder.*vae, tanh, none"),
    (_set("model.downsampling_ratio", 32),
     "model.downsampling_ratio=32 but the encoder downsamples by 16"),
    (_set("model.diffusion.config.diffusion_objective", None),
     "diffusion_objective is missing .*DiTWrapper requires it"),
    (_set("model.diffusion.config.input_concat_dim", 3),
     "input_concat_dim=3 but model.latent_dim=4"),
    (_set("model.diffusion.config.cond_token_dim", 8),
     "cond_token_dim=8: a diffusion autoencoder's DiT reads the encoder latents only"),
    (_set("model.io_channels", 2), "model.io_channels=2 differs from the network's io_channels=1"),
])
def test_parts_audiotools_cannot_build_are_refused_naming_the_key(change, words):
    config = autoencoder_config()
    change(config)
    with pytest.raises(ConfigError, match=words):
        convert_diffusion_model(config, Notes())


def test_training_without_a_learning_rate_is_refused():
    with pytest.raises(ConfigError, match="training.learning_rate is required"):
        convert_diffusion_training({"optimizer_configs": {}}, "diffusion_autoencoder", "v", {},
                                   Notes())


@pytest.fixture
def sat_args(tmp_path, audio_dir, monkeypatch):
    """SAT-style arguments for autoencoder_config() on six clips; recipes go to tmp/config."""
    dataset = write_json(tmp_path / "data.json", {
        "dataset_type": "audio_dir", "datasets": [{"id": "m", "path": str(audio_dir)}]})
    config_dir = tmp_path / "config"
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{config_dir}")
    return ["--dataset-config", str(dataset), "--config-dir", str(config_dir),
            "--manifest-dir", str(tmp_path / "m"), "--name", "dae"]


def test_migrate_refuses_segments_of_partial_latent_frames(sat_args, tmp_path, capsys):
    config = autoencoder_config()
    config["sample_size"] = 4100
    model = write_json(tmp_path / "dae.json", config)
    assert cli(["migrate", "--model-config", str(model), *sat_args]) == 2
    assert ("sample_size=4100 is not a multiple of 16 samples" in capsys.readouterr().err)
    assert not (tmp_path / "config").exists()


@pytest.mark.slow
def test_train_trains_the_migrated_recipe(dora_dir, sat_args, tmp_path, capsys):
    """dora_dir first: it sets its own AUDIOTOOLS_CONFIG_PATH, which sat_args then replaces."""
    model = write_json(tmp_path / "dae.json", autoencoder_config())
    argv = ["train", "--model-config", str(model), *sat_args, "--checkpoint-every", "2",
            "--epochs", "1", "--batch-size", "2", "--precision", "32", "--num-workers", "0",
            "--logger", ""]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    for words in (f"  diffusion model: {SAT_DIT_PARAMETERS:,}\n",
                  f"  encoder and bottleneck: {SAT_ENCODER_PARAMETERS:,}\n",
                  "  conditioners: 0\n",
                  f"  total: {SAT_DIT_PARAMETERS + SAT_ENCODER_PARAMETERS:,}\n",
                  "training.use_reconstruction_loss=true", "solver=diffusion/sat_dae_"):
        assert words in out, words
    [folder] = (dora_dir / "xps").iterdir()
    history = json.loads((folder / "history.json").read_text())
    assert len(history) == 1 and history[0]["train"]["kl"] > 0
    assert {"loss", "loss_t0.5"} <= history[0]["valid"].keys()
    records = json.loads((folder / "samples" / "1" / "conditions.json").read_text())
    assert records[0]["sampler"] == "ddim" and records[0]["steps"] == 3
    [recipe] = (tmp_path / "config" / "solver" / "diffusion").glob("sat_dae_*.yaml")
    solver = yaml.safe_load(recipe.read_text())
    assert solver["losses"] == {"kl": 1e-6} and solver["timesteps"] == {"type": "uniform"}


# ------------------------------------------------------------------ checkpoints
def _sat_encoder_key(key: str) -> str:
    """Our encoder key as SAT 0.0.19 saves it (torch's old weight norm)."""
    return (key.replace("parametrizations.weight.original0", "weight_g")
            .replace("parametrizations.weight.original1", "weight_v"))


def _sat_state(model) -> dict[str, torch.Tensor]:
    """Our diffusion autoencoder's state dict in SAT's DiffusionAutoencoder naming."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("model."):
            state[f"diffusion.model.{_sat_dit_key(key.removeprefix('model.'))}"] = value
        else:
            state[_sat_encoder_key(key)] = value
    return state


@pytest.fixture
def ours():
    """Our model of latent_autoencoder_config() with random weights, and its pretransform."""
    converted, model = randomised(latent_autoencoder_config())
    return model, build_autoencoder(load_architecture(converted.pretransform)).eval()


def _outputs(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's latents and the DiT's output for fixed data, noise level and latents."""
    generator = torch.Generator().manual_seed(1)
    data = torch.randn(2, 8, 16, generator=generator)
    t = torch.rand(2, generator=generator)
    with torch.no_grad():
        latents = model.encode(data).latents
        real = torch.ones(2, latents.shape[-1], dtype=torch.bool)
        inputs = model.condition_inputs({ENCODER_LATENTS: Conditioning(latents.transpose(1, 2),
                                                                       real)})
        return latents, model(data, t, **inputs)


def test_unwrapped_and_wrapped_checkpoints_load_to_the_same_outputs(ours, tmp_path):
    model, autoencoder = ours
    sat = {**_sat_state(model),
           **{f"pretransform.model.{k}": v for k, v in autoencoder.state_dict().items()}}
    unwrapped = tmp_path / "unwrapped.ckpt"
    torch.save({"state_dict": sat}, unwrapped)
    wrapped = tmp_path / "wrapped.ckpt"
    torch.save({"state_dict": {**{f"diffae.{k}": v for k, v in sat.items()},
                               **{f"diffae_ema.ema_model.{k}": v * 0.5 for k, v in sat.items()},
                               "diffae_ema.step": torch.tensor(3)}}, wrapped)
    config = latent_autoencoder_config()
    expected = _outputs(model)
    for path, prefer_ema in ((unwrapped, True), (wrapped, False)):
        loaded = load_diffusion(path, config, prefer_ema=prefer_ema)
        assert loaded.conditioners is None
        for got, want in zip(_outputs(loaded.model), expected, strict=True):
            assert torch.equal(got, want)
    loaded = load_diffusion(wrapped, config)
    halved = build_diffusion_model(loaded.conversion.model).eval()
    halved.load_state_dict({k: v * 0.5 for k, v in model.state_dict().items()})
    for got, want in zip(_outputs(loaded.model), _outputs(halved), strict=True):
        torch.testing.assert_close(got, want)
    # The pretransform as the recipe's codec, and the model for continue_from.
    z = torch.randn(1, 8, 4)
    codec = load_codec(wrapped, sat_model_config=str(write_json(tmp_path / "dae.json", config)))
    with torch.no_grad():
        assert torch.allclose(codec.codec.decode(z), autoencoder.decode(z))
    weights = SAT_FORMAT.weights_for(wrapped, model)
    assert set(weights) == set(model.state_dict())
    assert torch.equal(weights["encoder.layers.0.parametrizations.weight.original1"],
                       model.state_dict()["encoder.layers.0.parametrizations.weight.original1"])


def test_a_checkpoint_without_the_encoder_is_refused(ours, tmp_path):
    model, _ = ours
    path = tmp_path / "network_only.ckpt"
    torch.save({"state_dict": {k: v for k, v in _sat_state(model).items()
                               if k.startswith("diffusion.")}}, path)
    with pytest.raises(Exception, match="does not fit .*missing from the checkpoint.*encoder"):
        load_diffusion(path, latent_autoencoder_config())
