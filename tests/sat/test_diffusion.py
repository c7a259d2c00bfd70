"""stable-audio-tools diffusion configs and checkpoints: the conversion of a small SAT
`diffusion_cond` config (sections, parameter counts, the not-reproduced conditioner, the recipe
`migrate` writes and dora composes), and checkpoints in SAT's key layouts (unwrapped and
wrapped, made here from our own modules) loading to the same outputs. Parity against SAT
itself: scripts/check_sat_diffusion_parity.py."""
from __future__ import annotations

import copy

import pytest
import torch
import yaml

from audiotools.cli import main as cli
from audiotools.conditioning import ConditionerSet
from audiotools.errors import ConfigError
from audiotools.families import validate_config
from audiotools.io.codecs import load_codec
from audiotools.models.autoencoder import build_autoencoder
from audiotools.models.diffusion import build_diffusion_model, validate_diffusion_config
from audiotools.sat import load_diffusion
from audiotools.sat.diffusion import (
    DiffusionConversion,
    convert_diffusion_model,
    parameter_counts,
)
from audiotools.sat.diffusion_training import convert_diffusion_training
from audiotools.sat.loading import SAT_FORMAT
from audiotools.sat.model import check_model_type, load_architecture
from audiotools.sat.notes import Notes
from tests.sat.conftest import FIXTURES, sat_config, write_json


def small_config() -> dict:
    """A SAT diffusion_cond config: a DiT on the tiny VAE's 8-dim latents; number, int and
    list conditioners, and a clap_text prompt audiotools does not build."""
    vae = sat_config("tiny_vae")
    return {
        "model_type": "diffusion_cond", "sample_rate": 16000, "sample_size": 8192,
        "audio_channels": 1,
        "model": {
            "io_channels": 8,
            "pretransform": {"type": "autoencoder", "scale": 2.0, "config": vae["model"]},
            "conditioning": {"cond_dim": 32, "configs": [
                {"id": "prompt", "type": "clap_text", "config": {"clap_ckpt_path": "x.ckpt"}},
                {"id": "seconds_total", "type": "number",
                 "config": {"min_val": 0, "max_val": 60}},
                {"id": "bpm", "type": "int", "config": {"min_val": 0, "max_val": 200}},
                {"id": "genre", "type": "list", "config": {"options": ["rock", "jazz"]}}]},
            "diffusion": {
                "type": "dit", "diffusion_objective": "rectified_flow",
                "cross_attention_cond_ids": ["prompt", "genre", "seconds_total"],
                "global_cond_ids": ["seconds_total"], "prepend_cond_ids": ["bpm"],
                "config": {"io_channels": 8, "embed_dim": 32, "depth": 2, "num_heads": 2,
                           "cond_token_dim": 32, "global_cond_dim": 32,
                           "prepend_cond_dim": 32}}},
        "training": {
            "cfg_dropout_prob": 0.2, "timestep_sampler": "logit_normal",
            "optimizer_configs": {"diffusion": {"optimizer": {
                "type": "AdamW", "config": {"lr": 2e-4, "weight_decay": 1e-3}}}},
            "demo": {"demo_every": 4, "demo_steps": 20, "demo_cfg_scales": [1, 4],
                     "demo_cond": [{"prompt": "jazz", "genre": "jazz", "seconds_total": 1}]}}}


def test_conversion_lists_the_conditioner_it_cannot_build():
    notes = Notes()
    converted = convert_diffusion_model(small_config(), notes)
    assert converted.model["objective"] == "rectified_flow"
    assert converted.model["cross_attention_cond_ids"] == ["genre", "seconds_total"]
    assert converted.model["network"]["mask_cross_attention"] is False
    assert converted.conditioners == {
        "seconds_total": {"type": "number", "min": 0.0, "max": 60.0},
        "bpm": {"type": "int", "min": 0, "max": 200},
        "genre": {"type": "options", "options": ["rock", "jazz"], "default": "rock"}}
    assert converted.codec == {"scale": 2.0} and converted.conditioning == {"dim": 32}
    assert [(item.id, item.type) for item in converted.not_reproduced] == [("prompt",
                                                                             "clap_text")]
    assert any("'prompt' (type clap_text): not built here; use a `text` conditioner" in line
               for line in notes.unsupported)
    counts = parameter_counts(converted)
    with torch.device("meta"):
        dit = build_diffusion_model(converted.model)
        ae = build_autoencoder(load_architecture(converted.pretransform))
    assert counts["diffusion model"] == sum(p.numel() for p in dit.parameters())
    assert counts["pretransform (frozen codec)"] == sum(p.numel() for p in ae.parameters())
    # 256 Fourier features + 257 x 32 projection; 201 and 2 rows of 32.
    assert counts["conditioners"] == 128 + 257 * 32 + 32 + 201 * 32 + 2 * 32
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


@pytest.mark.parametrize("change, words", [
    (lambda c: c.update(model_type="lm"), "not yet supported"),
    (lambda c: c.update(model_type="vocoder"), "not a stable-audio-tools model type"),
    (lambda c: c["model"]["diffusion"].update(type="DAU1d"),
     r"type='DAU1d' is not supported here: .* fail to build in stable-audio-tools"),
    (lambda c: c["model"]["diffusion"].update(type="adp_cfg_1d"),
     "prepend_cond_ids: an ADP U-Net takes no prepended tokens"),
    (lambda c: c["model"]["diffusion"]["config"].update(conformer=True),
     "conformer not supported by audiotools' DiT"),
    (lambda c: c["model"]["pretransform"].update(type="pqmf"), "pretransform.type='pqmf'"),
    (lambda c: c["model"]["conditioning"]["configs"].append({"id": "x", "type": "magic"}),
     "type='magic' is not a stable-audio-tools conditioner type"),
])
def test_unsupported_parts_are_clear_errors(change, words):
    config = small_config()
    change(config)
    with pytest.raises(ConfigError, match=words):
        check_model_type(config, "cfg.json")
        convert_diffusion_model(config, Notes())


def test_migrate_writes_a_diffusion_recipe_that_composes(tmp_path, audio_dir, monkeypatch,
                                                         capsys):
    from audiotools.train import main
    model = write_json(tmp_path / "diffusion.json", small_config())
    dataset = write_json(tmp_path / "data.json", {
        "dataset_type": "audio_dir", "datasets": [{"id": "m", "path": str(audio_dir)}]})
    config_dir = tmp_path / "config"
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{config_dir}")
    assert cli(["migrate", "--model-config", str(model), "--dataset-config", str(dataset),
                "--pretransform-ckpt-path", str(FIXTURES / "tiny_vae.safetensors"),
                "--config-dir", str(config_dir), "--manifest-dir", str(tmp_path / "m"),
                "--name", "tiny", "--checkpoint-every", "4"]) == 0
    out = capsys.readouterr().out
    assert "Parameters of the converted model:" in out and "  total: " in out
    assert "conditioner 'prompt' (type clap_text): not built here" in out
    # No pretransform weights: the recipe's own check named only codec.source, not SAT's flag.
    assert cli(["migrate", "--model-config", str(model), "--dataset-config", str(dataset),
                "--config-dir", str(config_dir), "--manifest-dir", str(tmp_path / "m"),
                "--name", "nopt"]) == 2
    assert "model.pretransform has no weights here: pass --pretransform-ckpt-path" in \
        capsys.readouterr().err
    assert not (config_dir / "solver" / "diffusion" / "nopt.yaml").exists()
    solver = yaml.safe_load((config_dir / "solver" / "diffusion" / "tiny.yaml").read_text())
    assert solver["codec"]["scale"] == 2.0
    assert solver["codec"]["sat_model_config"] == str(model.resolve())
    assert solver["conditioning"] == {"joint_dropout": 0.2, "dim": 32}
    assert solver["timesteps"] == {"type": "logit_normal"}
    assert solver["optim"]["lr"] == 2e-4 and solver["optim"]["ema"]["decay"] == 0.9999
    assert solver["generate"]["conditions"] == [{"genre": "jazz", "seconds_total": 1,
                                                 "bpm": None}]
    assert solver["generate"]["cfg_scale"] == [1.0, 4.0] and solver["generate"]["every"] == 1
    cfg = main.get_xp(["solver=diffusion/tiny"]).cfg
    settings = validate_config(cfg)
    assert settings.model.network.embed_dim == 32 and sorted(settings.conditioners) == [
        "bpm", "genre", "seconds_total"]
    codec = load_codec(cfg.codec.source, sat_model_config=cfg.codec.sat_model_config,
                       scale=cfg.codec.scale)
    assert codec.latent_dim == 8


# ------------------------------------------------------------------ checkpoints
def _sat_dit_key(key: str) -> str:
    """Our DiT key in SAT's DiffusionTransformer naming (the inverse of dit_key)."""
    return (key.replace("_norm.weight", "_norm.gamma").replace(".ff.proj_in.", ".ff.ff.0.proj.")
            .replace(".ff.proj_out.", ".ff.ff.2."))


_SAT_CONDITIONER_KEYS = {"fourier.frequencies": "embedder.embedding.0.weights",
                         "proj.weight": "embedder.embedding.1.weight",
                         "proj.bias": "embedder.embedding.1.bias"}


def _sat_conditioners(conditioners: ConditionerSet) -> dict[str, torch.Tensor]:
    state = {}
    for name, conditioner in conditioners.conditioners.items():
        for key, value in conditioner.state_dict().items():
            if conditioner.config.type == "number":
                key = _SAT_CONDITIONER_KEYS[key]
            elif conditioner.config.type == "int":
                key = "int_embedder.weight"
            else:  # options: SAT's row 0 is for unknown values
                key, value = "embedder.weight", torch.cat([torch.randn(1, value.shape[1]),
                                                           value])
            state[f"conditioner.conditioners.{name}.{key}"] = value
    return state


def randomised(config: dict) -> tuple[DiffusionConversion, torch.nn.Module]:
    """The conversion of a SAT config and our model of it with random weights (seed 0), so
    that no zero-initialised branch hides a mapping error."""
    torch.manual_seed(0)
    converted = convert_diffusion_model(config, Notes())
    model = build_diffusion_model(converted.model).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return converted, model


@pytest.fixture
def ours():
    converted, model = randomised(small_config())
    conditioners = ConditionerSet(converted.conditioners, 32).eval()
    autoencoder = build_autoencoder(load_architecture(converted.pretransform)).eval()
    return model, conditioners, autoencoder


def _outputs(model, conditioners) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 8, generator=generator)
    t = torch.rand(2, generator=generator)
    conditions = conditioners.encode([{"seconds_total": 3.0, "bpm": 90, "genre": "jazz"},
                                      {"seconds_total": 50.0, "bpm": 7, "genre": "pop"}])
    with torch.no_grad():
        return model(x, t, **model.condition_inputs(conditions))


def write_sat_checkpoints(folder, network: dict, state: dict) -> tuple:
    """(unwrapped, wrapped) SAT diffusion .ckpt files of `state` (the network's `model.model.*`
    tensors and the rest): the wrapped one's EMA network is `network` halved."""
    unwrapped = folder / "unwrapped.ckpt"
    torch.save({"state_dict": state}, unwrapped)
    ema = {key.replace("model.model.", "diffusion_ema.ema_model.model.", 1): value * 0.5
           for key, value in network.items()}
    wrapped = folder / "wrapped.ckpt"
    torch.save({"state_dict": {**{f"diffusion.{k}": v for k, v in state.items()}, **ema,
                               "diffusion_ema.step": torch.tensor(3)}}, wrapped)
    return unwrapped, wrapped


def test_unwrapped_and_wrapped_checkpoints_load_to_the_same_outputs(ours, tmp_path):
    model, conditioners, autoencoder = ours
    network = {f"model.model.{_sat_dit_key(k)}": v for k, v in model.model.state_dict().items()}
    sat = {**network, **_sat_conditioners(conditioners),
           **{f"pretransform.model.{k}": v for k, v in autoencoder.state_dict().items()}}
    unwrapped, wrapped = write_sat_checkpoints(tmp_path, network, sat)
    expected = _outputs(model, conditioners)
    for path, prefer_ema in ((unwrapped, True), (wrapped, False)):
        loaded = load_diffusion(path, small_config(), prefer_ema=prefer_ema)
        assert torch.equal(_outputs(loaded.model, loaded.conditioners), expected)
    loaded = load_diffusion(wrapped, small_config())
    ema_model = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in ema_model.parameters():
            parameter.mul_(0.5)
    assert torch.equal(_outputs(loaded.model, loaded.conditioners),
                       _outputs(ema_model, conditioners))
    # The pretransform as the recipe's codec, and the network for continue_from.
    z = torch.randn(1, 8, 4)
    config_path = write_json(tmp_path / "diffusion.json", small_config())
    codec = load_codec(wrapped, sat_model_config=str(config_path))
    with torch.no_grad():
        assert torch.allclose(codec.codec.decode(z), autoencoder.decode(z))
    weights = SAT_FORMAT.weights_for(wrapped, model)
    assert set(weights) == set(model.state_dict())


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.model.nope": torch.zeros(1)}}, path)
    with pytest.raises(Exception, match="does not fit"):
        load_diffusion(path, small_config())


def test_inpainting_and_unconditional_configs_convert():
    inpaint = small_config()
    inpaint["model_type"] = "diffusion_cond_inpaint"
    inpaint["model"]["diffusion"]["input_concat_ids"] = ["inpaint_mask", "inpaint_masked_input"]
    inpaint["model"]["diffusion"]["config"]["input_concat_dim"] = 9
    inpaint["training"]["inpainting"] = {"mask_kwargs": {
        "max_mask_segments": 4, "mask_type_probabilities": [0.2, 0.6, 0.2]}}
    converted = convert_diffusion_model(inpaint, Notes())
    assert validate_diffusion_config(converted.model).inpainting
    training = convert_diffusion_training(inpaint["training"], "diffusion_cond_inpaint",
                                          "v", converted.conditioners, Notes(), inpainting=True)
    assert training.sections["inpainting"] == {"max_segments": 4, "random_segments": 0.2,
                                               "full": 0.6, "causal": 0.2}
    uncond = {"model_type": "diffusion_uncond", "sample_rate": 16000, "sample_size": 4096,
              "audio_channels": 1, "model": {"type": "dit", "config": {
                  "in_channels": 1, "embed_dim": 32, "depth": 1, "num_heads": 2}}}
    converted = convert_diffusion_model(uncond, Notes())
    assert validate_diffusion_config(converted.model).network.io_channels == 1
    assert converted.conditioners == {} and converted.codec is None
