"""SAT autoencoder model configs converted to audiotools' model section."""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from audiotools.errors import ConfigError
from audiotools.models.autoencoder import build_autoencoder
from audiotools.sat import load_architecture
from tests.sat.conftest import CONFIGS, sat_config

# Parameters and state-dict tensors of the model stable-audio-tools 0.0.19 builds from each
# config: measured in /work/sat-venv with
#   create_model_from_config(json.load(open(path)))  ->  sum(p.numel() ...), len(state_dict())
# (scripts/check_sat_autoencoder_parity.py re-checks them against SAT, with its layouts).
SAT_COUNTS = {
    "oobleck_tanh_mono": (161_985, 134),
    "seanet_fsq_mono": (64_746, 66),
    "seanet_rvq_stereo": (669_100, 128),
    "stable_audio_2_0_vae": (156_112_514, 365),
    "tiny_vae": (14_105, 155),
}


@pytest.mark.parametrize("name", sorted(SAT_COUNTS))
def test_converted_model_has_sat_parameter_count(name):
    config = load_architecture(CONFIGS / f"{name}.json")
    large = name == "stable_audio_2_0_vae"
    with torch.device("meta") if large else contextlib.nullcontext():
        model = build_autoencoder(config)
    count = sum(p.numel() for p in model.parameters())
    assert (count, len(model.state_dict())) == SAT_COUNTS[name]


def test_conversion_keeps_every_setting():
    config = load_architecture(CONFIGS / "seanet_rvq_stereo.json")
    assert (config.sample_rate, config.channels, config.latent_dim) == (16000, 2, 32)
    assert config.encoder.ratios == [2, 4, 5, 8] and config.encoder.lstm == 1
    # SAT lists decoder ratios in upsampling order; audiotools in downsampling order.
    assert config.decoder.ratios == [2, 4, 5, 8]
    assert config.bottleneck.model_dump() == {
        "type": "rvq", "num_quantizers": 3, "codebook_size": 64, "decay": 0.99,
        "kmeans_init": True, "kmeans_iters": 50, "threshold_ema_dead_code": 2.0,
        "quantizer_dropout": True, "min_quantizers": 1,
        # SAT pins vector-quantize-pytorch 1.14.41, from before the rotation trick.
        "rotation_trick": False, "codebook_dim": None}
    model = build_autoencoder(config)
    upsampling = [m.kernel_size[0] for m in model.decoder.modules()
                  if isinstance(m, nn.ConvTranspose1d)]
    assert upsampling == [16, 10, 8, 4]  # 2 x SAT's decoder ratios 8, 5, 4, 2, in that order
    tanh = load_architecture(CONFIGS / "oobleck_tanh_mono.json")
    assert tanh.bottleneck.scale == 2.0 and tanh.decoder.use_nearest_upsample
    assert tanh.decoder.final_tanh and not tanh.encoder.use_snake  # SAT's defaults


@pytest.mark.parametrize("kind, words", [
    ("diffusion_cond", "has no autoencoder pretransform to build a codec from"),
    ("diffusion_autoencoder", "has no autoencoder pretransform to build a codec from"),
    ("lm", r"no language-model \(MusicGen-style\) conversion"),
    ("musicgen", r"no language-model \(MusicGen-style\) conversion"),
    ("vocoder", "not a stable-audio-tools model type; supported: autoencoder"),
])
def test_other_model_types_are_named(kind, words):
    with pytest.raises(ConfigError, match=words):
        load_architecture({**sat_config("tiny_vae"), "model_type": kind})


def _broken(change) -> dict:
    config = sat_config("tiny_vae")
    change(config["model"])
    return config


@pytest.mark.parametrize("change, words", [
    (lambda m: m["encoder"]["config"].update(chanels=8),
     r"model.encoder.config.chanels: unknown key \(stable-audio-tools would fail on it too\). "
     "Valid keys: antialias_activation, c_mults, channels"),
    (lambda m: m["decoder"]["config"].update(antialias_activation=True),
     "antialias_activation=true is not supported"),
    (lambda m: m["encoder"]["config"].update(in_channels=2),
     "in_channels=2 differs from model.io_channels=1"),
    (lambda m: m.update(downsampling_ratio=64),
     "model.downsampling_ratio=64 but the encoder downsamples by 32"),
    (lambda m: m["bottleneck"].update(type="dac_rvq"),
     "model.bottleneck.type='dac_rvq' is not supported; audiotools converts vae, tanh, rvq"),
    (lambda m: m["bottleneck"].update(type="rvq", config={"num_quantizers": 2}),
     r"config.dim=128 differs from model.latent_dim=8 \(stable-audio-tools defaults dim"),
    (lambda m: m["encoder"].update(type="dac"), "model.encoder.type='dac' is not supported"),
    (lambda m: m.update(pretransform={"type": "pqmf"}), "model.pretransform is not supported"),
    (lambda m: m.pop("latent_dim"), r"model.latent_dim: missing \(stable-audio-tools requires"),
    (lambda m: m["decoder"]["config"].update(latent_dim=4),
     "decoder.latent_dim=4 differs from latent_dim=8"),
])
def test_bad_configs_name_the_key(change, words):
    with pytest.raises(ConfigError, match=words):
        load_architecture(_broken(change))


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="model config .*missing.json does not exist"):
        load_architecture(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json is not valid JSON"):
        load_architecture(bad)
