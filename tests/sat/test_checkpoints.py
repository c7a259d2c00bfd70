"""SAT checkpoints into audiotools autoencoders: the SAT-saved fixture, the key forms SAT
writes (unwrapped .ckpt/.safetensors, Lightning training checkpoints, weight norm folded or
not), weight-norm removal, and loading through audiotools.load / reconstruct."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import audiotools
from audiotools.cli import main as cli
from audiotools.data.audio import audio_info, audio_write
from audiotools.errors import CheckpointError
from audiotools.models.autoencoder import build_autoencoder
from audiotools.sat import load_architecture, load_autoencoder, read_checkpoint, remove_weight_norm
from audiotools.sat.checkpoints import match_weights
from tests.sat.conftest import CONFIGS, FIXTURES

TINY = CONFIGS / "tiny_vae.json"
# Written by stable-audio-tools 0.0.19 (save_model of the model it builds from tiny_vae.json,
# seed 0) with its encoder/decoder outputs: scripts/check_sat_autoencoder_parity.py --fixture.
SAT_WEIGHTS = FIXTURES / "tiny_vae.safetensors"
SAT_OUTPUTS = load_file(str(FIXTURES / "tiny_vae_outputs.safetensors"))


def _outputs(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        features = model.encoder(SAT_OUTPUTS["audio"])
        return features, model.decoder(features[:, :model.latent_dim])


def _assert_sat_outputs(model: nn.Module) -> None:
    features, decoded = _outputs(model)
    torch.testing.assert_close(features, SAT_OUTPUTS["features"], atol=1e-4, rtol=0)
    torch.testing.assert_close(decoded, SAT_OUTPUTS["decoded"], atol=1e-4, rtol=0)


def _weight_norm_count(model: nn.Module) -> int:
    return sum(1 for name, _ in model.named_parameters() if name.endswith("original0"))


def test_sat_saved_weights_give_sat_outputs(tmp_path):
    state = load_file(str(SAT_WEIGHTS))
    assert any(key.endswith("weight_g") for key in state)  # SAT 0.0.19's weight-norm form
    _assert_sat_outputs(load_autoencoder(SAT_WEIGHTS, TINY))
    ckpt = tmp_path / "unwrapped.ckpt"  # what SAT's unwrap_model.py writes
    torch.save({"state_dict": state}, ckpt)
    pipeline = audiotools.load(ckpt, sat_model_config=TINY)
    assert pipeline.export.family == "autoencoder"
    model = pipeline.model
    assert not model.training
    _assert_sat_outputs(model)


def _lightning_checkpoint(live: dict, ema: dict) -> dict:
    """A PyTorch Lightning checkpoint of SAT's AutoencoderTrainingWrapper, key for key as SAT
    0.0.19 writes one (the parity script checks a real one)."""
    state = {f"autoencoder.{k}": v for k, v in live.items()}
    state.update({f"autoencoder_ema.ema_model.{k}": v for k, v in ema.items()})
    state.update({f"autoencoder_ema.online_model.{k}": v for k, v in live.items()})
    state.update({"autoencoder_ema.initted": torch.tensor(True),
                  "autoencoder_ema.step": torch.tensor(4),
                  "discriminator.discriminators.discriminators.0.conv_post.bias": torch.zeros(1),
                  "sdstft.stft_losses.0.window": torch.ones(512)})
    return {"state_dict": state, "epoch": 0, "global_step": 4,
            "pytorch-lightning_version": "2.1.0", "optimizer_states": [], "lr_schedulers": [],
            "loops": {}, "callbacks": {}}


def test_training_checkpoint_is_unwrapped_ema_for_inference_live_to_continue(tmp_path):
    ema = load_file(str(SAT_WEIGHTS))
    live = {k: v + 1.0 if v.is_floating_point() else v for k, v in ema.items()}
    path = tmp_path / "epoch=0-step=4.ckpt"
    torch.save(_lightning_checkpoint(live, ema), path)
    found = read_checkpoint(path)
    assert found.source.startswith("EMA weights autoencoder_ema.ema_model.*")
    assert found.left_out == {"autoencoder (live weights)": len(live), "autoencoder_ema": 2 +
                              len(live), "discriminator": 1, "sdstft": 1}
    assert "left out: autoencoder (live weights)" in found.describe()
    _assert_sat_outputs(load_autoencoder(path, TINY))
    live_found = read_checkpoint(path, prefer_ema=False)
    assert torch.equal(live_found.weights["encoder.layers.0.bias"],
                       ema["encoder.layers.0.bias"] + 1)
    torch.save({**_lightning_checkpoint(live, ema), "model_config": json.loads(TINY.read_text())},
               path)
    _assert_sat_outputs(load_autoencoder(path))  # newer SAT embeds the model config


def test_every_weight_norm_form_loads_exactly(tmp_path):
    reference = load_autoencoder(SAT_WEIGHTS, TINY)
    assert _weight_norm_count(reference) == 32
    plain = copy.deepcopy(reference)
    assert remove_weight_norm(plain) == 32
    plain_path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(plain_path))
    assert not any("weight_g" in k or "original" in k for k in load_file(str(plain_path)))
    # A plain-weight checkpoint into weight-normed layers (g = |w|, v = w) ...
    _assert_sat_outputs(load_autoencoder(plain_path, TINY))
    # ... and a weight_g/weight_v one into layers whose weight norm was removed first.
    pre = load_autoencoder(SAT_WEIGHTS, TINY, remove_norm="pre_load")
    post = load_autoencoder(SAT_WEIGHTS, TINY, remove_norm="post_load")
    for model in (pre, post):
        assert _weight_norm_count(model) == 0
        _assert_sat_outputs(model)


def test_remove_weight_norm_leaves_other_layers_alone():
    model = nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 3), nn.utils.parametrizations.weight_norm(
        nn.Conv1d(3, 3, 1)), nn.utils.parametrizations.orthogonal(nn.Linear(3, 3)))
    assert remove_weight_norm(model) == 1  # SAT's remove_weight_norm_from_model fails here
    assert remove_weight_norm(model) == 0
    assert nn.utils.parametrize.is_parametrized(model[3], "weight")  # not a weight norm


def test_a_checkpoint_of_another_model_is_refused_with_every_unmatched_key(tmp_path):
    with pytest.raises(CheckpointError) as error:
        load_autoencoder(SAT_WEIGHTS, CONFIGS / "oobleck_tanh_mono.json")
    message = str(error.value)
    assert "does not fit the model its config describes" in message
    assert "missing from the checkpoint: " in message and "of another shape: " in message
    assert "Is the model config the one this checkpoint was trained with?" in message
    assert "more" in message and len(message) < 2500  # 8 keys of each kind, not hundreds
    weights = dict(load_file(str(SAT_WEIGHTS)))
    weights["extra.bias"] = torch.zeros(2)
    model = build_autoencoder(load_architecture(TINY))
    converted, report = match_weights(weights, model)
    assert report.unexpected == ["extra.bias"] and not report.missing
    assert "extra.bias" in converted  # kept, so a lenient loader still reports it


def test_files_that_are_not_sat_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nothing.ckpt")
    with pytest.raises(CheckpointError, match="does not embed its model config: give the "
                                              "stable-audio-tools model config JSON"):
        load_autoencoder(SAT_WEIGHTS)
    ours = tmp_path / "ours.ckpt"
    torch.save({"xp.cfg": {}, "model": {}}, ours)
    with pytest.raises(CheckpointError, match="is an audiotools XP checkpoint"):
        read_checkpoint(ours)
    code = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hparams": nn.Linear(1, 1)}, code)
    with pytest.raises(CheckpointError, match="unwrap it with stable-audio-tools' "
                                              "unwrap_model.py"):
        read_checkpoint(code)
    with pytest.raises(CheckpointError, match="holds no tensors"):
        torch.save({"state_dict": {"step": 3}}, tmp_path / "empty.ckpt")
        read_checkpoint(tmp_path / "empty.ckpt")


def test_reconstruct_a_file_with_a_sat_checkpoint(tmp_path, capsys):
    source = tmp_path / "in.wav"
    audio_write(source, 0.1 * torch.randn(2, 22050), 22050)
    out = tmp_path / "out.wav"
    assert cli(["reconstruct", str(SAT_WEIGHTS), str(source), str(out),
                "--sat-model-config", str(TINY)]) == 0
    info = audio_info(out)
    assert (info.sample_rate, info.channels, info.frames) == (22050, 2, 22050)
    assert cli(["reconstruct", str(SAT_WEIGHTS), str(source), str(tmp_path / "x.wav")]) == 2
    assert "does not embed its model config" in capsys.readouterr().err


def test_an_unknown_remove_norm_is_refused():
    """'pre' or 'yes' loaded with weight norm kept, and said nothing."""
    from audiotools.errors import ConfigError
    with pytest.raises(ConfigError, match="remove_norm='pre': use 'pre_load', 'post_load'"):
        load_autoencoder(SAT_WEIGHTS, TINY, remove_norm="pre")

