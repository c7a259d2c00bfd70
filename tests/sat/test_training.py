"""The `training` section of SAT autoencoder configs as audiotools solver keys."""
from __future__ import annotations

import copy

import pytest

from audiotools.errors import ConfigError
from audiotools.sat.notes import Notes
from audiotools.sat.training import convert_training
from tests.sat.conftest import sat_config

SA2 = sat_config("stable_audio_2_0_vae")["training"]


def _convert(training, bottleneck="vae"):
    notes = Notes()
    return convert_training(training, bottleneck, notes), notes


def test_stable_audio_2_0_vae_training():
    converted, notes = _convert(SA2)
    sections = converted.sections
    assert sections["optim"] == {
        "optimizer": "adamw", "lr": 1.5e-4, "betas": [0.8, 0.99], "eps": 1e-8,
        "weight_decay": 1e-3,
        "ema": {"use": True, "decay": 0.9999, "warmup_power": 0.75, "every": 1}}
    assert sections["schedule"] == {"name": "inverse", "inv_gamma": 200000.0, "power": 0.5,
                                    "exp_warmup": 0.999, "min_lr_ratio": 0.0}
    assert sections["adversarial"] == {
        "filters": 64, "n_ffts": [2048, 1024, 512, 256, 128],
        "hop_lengths": [512, 256, 128, 64, 32], "win_lengths": [2048, 1024, 512, 256, 128],
        "stride": [1, 1], "loss": "hinge", "relative_feature_matching": False, "lr": 3e-4,
        "warmup_steps": 0}
    assert sections["losses"]["weights"] == {"spectral": 1.0, "l1": 0.0, "kl": 1e-4,
                                             "commitment": 0.0, "adversarial": 0.1,
                                             "feature_matching": 5.0}
    spectral = sections["losses"]["spectral"]
    assert spectral["perceptual_weighting"] and spectral["hop_sizes"][-1] == 8
    assert converted.demo_every == 2000
    assert not notes.unsupported


def test_sat_defaults_fill_what_a_config_leaves_out():
    converted, _ = _convert({"learning_rate": 1e-4}, bottleneck="rvq")
    sections = converted.sections
    # SAT's default optimizers: AdamW(lr, betas=(0.8, 0.99)) with torch's weight decay 0.01.
    assert sections["optim"]["weight_decay"] == 0.01 and sections["optim"]["betas"] == [0.8, 0.99]
    assert sections["schedule"] == {"name": "none"} and sections["optim"]["ema"] == {"use": False}
    # SAT's default losses: 7-scale encodec discriminator (32 filters), perceptual mrstft.
    assert sections["adversarial"]["filters"] == 32 and len(sections["adversarial"]["n_ffts"]) == 7
    assert sections["losses"]["weights"]["commitment"] == 1.0  # RVQ quantizer loss, weight 1
    training = {"learning_rate": 1e-4, "loss_configs": {
        "spectral": {"weights": {"mrstft": 2.0}}, "time": {"weights": {"l1": 0.5}}}}
    converted, _ = _convert(training)
    losses = converted.sections["losses"]
    assert losses["spectral"]["fft_sizes"] == [1024, 2048, 512]  # auraloss' defaults
    assert losses["weights"]["kl"] == 1e-6  # SAT's KL weight when none is given
    assert losses["weights"]["adversarial"] == 0.0 and "adversarial" not in converted.sections


def test_warmup_and_alternation_are_explained():
    training = copy.deepcopy(SA2) | {"warmup_steps": 5}
    converted, notes = _convert(training)
    assert converted.sections["adversarial"]["warmup_steps"] == 3
    assert any("warmup_steps=5" in item for item in notes.unsupported)
    assert any("alternates batches" in item for item in notes.differences)


def test_features_without_an_equivalent_are_listed():
    training = copy.deepcopy(SA2)
    losses = training["loss_configs"]
    losses["spectral"]["config"] |= {"w_phs": 1.0, "scale": "chroma"}
    losses["time"]["weights"]["l2"] = 0.5
    losses["mrmel"] = {"weights": {"mrmel": 1.0}, "config": {}}
    losses["discriminator"]["config"] |= {"spec_scale_pow": 0.5, "mystery": 1}
    training |= {"teacher_model": {"model_type": "autoencoder"}, "latent_mask_ratio": 0.1,
                 "eval_loss_configs": {"sisdr": {}}, "pre_encoded": True}
    training["optimizer_configs"]["discriminator"]["optimizer"]["config"]["betas"] = [0.5, 0.9]
    training["optimizer_configs"]["discriminator"]["scheduler"]["config"]["power"] = 1.0
    _, notes = _convert(training)
    text = "\n".join(notes.unsupported)
    for words in ("w_phs=1.0", "scale='chroma'", "l2=0.5", "mrmel (weight 1.0)",
                  "spec_scale_pow=0.5", "keys ['mystery']: ignored", "teacher_model",
                  "latent_mask_ratio=0.1", "eval_loss_configs", "['betas'] differ",
                  "discriminator.scheduler differs"):
        assert words in text, words
    assert any("training.pre_encoded: not read" in item for item in notes.differences)
    other = copy.deepcopy(SA2)
    other["loss_configs"]["discriminator"]["type"] = "dac"
    converted, notes = _convert(other)
    assert "discriminator.type='dac'" in notes.unsupported[0]
    assert converted.sections["adversarial"] == {"stride": [1, 1], "lr": 3e-4, "warmup_steps": 0}


@pytest.mark.parametrize("change, words", [
    (lambda t: t.pop("optimizer_configs") and t.pop("learning_rate"),
     "training.learning_rate or training.optimizer_configs is required"),
    (lambda t: t["loss_configs"].pop("spectral"), "loss_configs.spectral is missing"),
    (lambda t: t["loss_configs"]["discriminator"]["weights"].pop("adversarial"),
     "discriminator.weights.adversarial is missing"),
    (lambda t: t["loss_configs"]["discriminator"]["config"].update(loss_type="wgan"),
     "loss_type='wgan'; stable-audio-tools knows hinge, rpgan"),
    (lambda t: t["loss_configs"]["spectral"]["config"].update(fft_size=[1]),
     r"unknown keys \['fft_size'\] \(auraloss would refuse them too\)"),
    (lambda t: t["optimizer_configs"]["autoencoder"]["scheduler"]["config"].update(
        final_lr=1.0), "final_lr=1.0 exceeds the optimizer's lr=0.00015"),
    (lambda t: t["optimizer_configs"].pop("discriminator"),
     "optimizer_configs.discriminator.optimizer is missing"),
])
def test_bad_training_sections_name_the_key(change, words):
    training = copy.deepcopy(SA2)
    change(training)
    with pytest.raises(ConfigError, match=words):
        _convert(training)
    with pytest.raises(ConfigError, match="has no `training` section"):
        _convert(None)
