"""AudioCNN: shape flow, parameter count of the default config, config files, clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audiotools.models import AudioCNN

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "model" / "cnn"


def _model_kwargs(name: str) -> dict:
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    if "defaults" in cfg:
        cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "default.yaml"), cfg)
        del cfg["defaults"]
    kwargs = OmegaConf.to_container(cfg)
    kwargs.update(n_mels=64, num_classes=10)
    return kwargs


def test_default_config_matches_the_constructor_defaults():
    from_config = AudioCNN(**_model_kwargs("default"))
    assert str(from_config) == str(AudioCNN())


def test_default_parameter_count():
    # conv 1->32, 32->64, 64->128 (3x3) with BN; conv1d 128->64 (k3); Linear 64*8->128->10.
    expected = ((1 * 32 * 9 + 32 + 64) + (32 * 64 * 9 + 64 + 128) + (64 * 128 * 9 + 128 + 256)
                + (128 * 64 * 3 + 64) + (64 * 8 * 128 + 128) + (128 * 10 + 10))
    model = AudioCNN(n_mels=64, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == expected == 184_714


@pytest.mark.parametrize("frames", [16, 101, 250])
def test_default_shapes(frames):
    model = AudioCNN(n_mels=64, num_classes=10).eval()
    features = torch.randn(3, 64, frames)
    hidden = model.encoder(features.unsqueeze(1))
    assert hidden.shape == (3, 128, 8, frames // 16)
    assert model.freq_conv(hidden.mean(dim=3)).shape == (3, 64, 8)
    assert model(features).shape == (3, 10)


def test_tiny_config_is_small_and_runs():
    model = AudioCNN(**_model_kwargs("tiny"))
    assert sum(p.numel() for p in model.parameters()) < 5_000
    logits = model(torch.randn(2, 64, 20))
    logits.sum().backward()
    assert logits.shape == (2, 10)


def test_configurable_sizes():
    model = AudioCNN(n_mels=40, num_classes=3, channels=[8], pools=[[4, 1]], conv1d_channels=5,
                     hidden_size=7)
    assert model(torch.randn(2, 40, 3)).shape == (2, 3)
    assert model.head[1].in_features == 5 * 10


def test_bad_shapes_are_clear_errors():
    model = AudioCNN(n_mels=64)
    with pytest.raises(ValueError, match="n_mels=64"):
        model(torch.randn(2, 32, 100))
    with pytest.raises(ValueError, match="at least 16 frames"):
        model(torch.randn(2, 64, 15))
    with pytest.raises(ValueError, match="one pool per encoder block"):
        AudioCNN(channels=[8, 16], pools=[[2, 2]])
    with pytest.raises(ValueError, match="too small"):
        AudioCNN(n_mels=4)


@pytest.mark.parametrize("key", ["kernel_size", "conv1d_kernel_size"])
def test_an_even_kernel_is_refused_naming_the_key(key):
    """An even kernel padded by size // 2 grew the length by one: a shape error at the
    first training step, after the features were computed."""
    from audiotools.errors import ConfigError
    from audiotools.models.cnn import build_cnn
    with pytest.raises(ConfigError, match=rf"model.{key} = 2: .*2 is even; use an odd kernel"):
        build_cnn({"n_mels": 64, "num_classes": 3, key: 2})
    assert build_cnn({"n_mels": 64, "num_classes": 3, key: 5})(torch.randn(1, 64, 101)).shape \
        == (1, 3)

