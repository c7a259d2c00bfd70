"""The audio conditioner: a reference clip through a real (tiny) audiotools autoencoder."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from audiotools.conditioning import ConditionerSet
from audiotools.data.audio import audio_write
from audiotools.errors import ConfigError
from audiotools.families import FAMILIES
from tests.conftest import REPO


@pytest.fixture(scope="module")
def codec() -> torch.nn.Module:
    section = OmegaConf.load(REPO / "config" / "model" / "autoencoder" / "debug.yaml")
    torch.manual_seed(0)
    return FAMILIES["autoencoder"].new_model(section, "test").eval()


def _set(codec, **section) -> ConditionerSet:
    torch.manual_seed(0)
    return ConditionerSet({"reference": {"type": "audio", "seconds": 0.1, **section}}, dim=8,
                          codec=codec).eval()


def test_latent_frames_projected_with_padding_masked(codec):
    conditioners = _set(codec)
    hop = codec.hop_length  # 64 samples: 0.1 s at 16 kHz is 1600 samples, 25 frames
    clip = torch.randn(1, 1600) * 0.1
    out = conditioners.encode([{"reference": clip}, {"reference": clip[0, :640]},
                               {"reference": torch.randn(1, 4000)}])["reference"]
    assert out.embeddings.shape == (3, 25, 8)
    assert out.mask.sum(dim=1).tolist() == [25, 640 // hop, 25]  # the long clip is cut
    assert not out.embeddings[~out.mask].any()
    latents = codec.encode(clip.unsqueeze(0)).transpose(1, 2)
    expected = conditioners["reference"].proj(latents)[0]
    torch.testing.assert_close(out.embeddings[0], expected)


def test_a_path_in_the_metadata_is_read_from_the_item_folder(codec, tmp_path):
    clip = torch.randn(2, 3200) * 0.1  # stereo at 32 kHz: converted to the codec's
    audio_write(tmp_path / "ref.wav", clip, 32000)
    conditioners = _set(codec)
    item = {"path": str(tmp_path / "song.wav"), "meta": {"reference": "ref.wav"}}
    out = conditioners([item])["reference"]
    assert out.embeddings.shape == (1, 25, 8) and out.mask.all()
    missing = {"path": str(tmp_path / "song.wav"), "meta": {"reference": "absent.wav"}}
    with pytest.raises(ConfigError, match="conditioner 'reference': item .*song.wav"):
        conditioners([missing])
    conditioners["reference"].check_item(item)  # at start: the clip is a file, not read
    with pytest.raises(ConfigError, match=r"item .*song.wav \(reference\) names "
                                          r".*absent.wav, which is not a file"):
        conditioners["reference"].check_item(missing)


def test_the_codec_stays_frozen_and_outside_the_state(codec):
    conditioners = _set(codec).train()
    out = conditioners.encode({"reference": torch.randn(1, 1600)})["reference"]
    out.embeddings.sum().backward()
    assert set(conditioners.state_dict()) == {"conditioners.reference.proj.weight",
                                              "conditioners.reference.proj.bias"}
    assert all(parameter.grad is None for parameter in codec.parameters())


def test_wrong_audio_and_a_missing_codec_are_errors(codec):
    with pytest.raises(ConfigError, match=r"expected \(channels=1, samples > 0\) at 16000 Hz"):
        _set(codec).encode({"reference": torch.randn(2, 1600)})
    with pytest.raises(ConfigError, match="an audio file path or a tensor"):
        _set(codec).encode({"reference": 3})
    with pytest.raises(ConfigError, match="conditioners.reference: an audio conditioner"):
        ConditionerSet({"reference": {"type": "audio", "seconds": 1}}, dim=8)
