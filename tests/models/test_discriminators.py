"""MS-STFT discriminator: parameter counts of EnCodec/stable-audio-tools configs, output and
feature shapes, float32 STFT under bf16 autocast, gradients, clear errors."""
from __future__ import annotations

import pytest
import torch

from audiotools.errors import ConfigError
from audiotools.models.discriminators import MultiScaleSTFTDiscriminator, STFTDiscriminator

SAT_SCALES = [2048, 1024, 512, 256, 128, 64, 32]


def _parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _per_scale(in_channels: int, filters: int = 32) -> int:
    """Weights + bias + weight-norm gain of: (3, 9) conv from 2*C planes, three (3, 9) convs,
    one (3, 3) conv, and the (3, 3) conv to one logit."""
    def conv(cin: int, cout: int, kernel: int) -> int:
        return cin * cout * kernel + 2 * cout
    return (conv(2 * in_channels, filters, 27) + 3 * conv(filters, filters, 27)
            + conv(filters, filters, 9) + conv(filters, 1, 9))


def test_parameter_counts():
    # Default (EnCodec's 5 scales, 32 filters), mono: 5 x 94,498.
    assert _per_scale(1) == 94_498
    assert _parameters(MultiScaleSTFTDiscriminator()) == 5 * 94_498 == 472_490
    # stable-audio-tools' default `encodec` discriminator (7 scales); the same figures as its
    # own MultiScaleSTFTDiscriminator (0.0.19) counts: 661,486 mono, 673,582 stereo.
    for channels, expected in ((1, 661_486), (2, 673_582)):
        discriminator = MultiScaleSTFTDiscriminator(
            in_channels=channels, n_ffts=SAT_SCALES, hop_lengths=[s // 4 for s in SAT_SCALES])
        assert _parameters(discriminator) == 7 * _per_scale(channels) == expected


def test_output_and_feature_shapes():
    length = 4096
    discriminator = MultiScaleSTFTDiscriminator(in_channels=2)
    logits, features = discriminator(torch.randn(2, 2, length))
    assert len(logits) == len(features) == 5
    for n_fft, hop, logit, maps in zip([2048, 1024, 512, 256, 128], [512, 256, 128, 64, 32],
                                       logits, features, strict=True):
        frames = 1 + (length - n_fft) // hop
        bins = n_fft // 2 + 1
        halved = [bins]
        for _ in range(3):  # three (1, 2)-strided convs with 'same' padding
            halved.append((halved[-1] - 1) // 2 + 1)
        assert logit.shape == (2, 1, frames, halved[-1])
        assert [tuple(m.shape) for m in maps] == [
            (2, 32, frames, halved[0]), (2, 32, frames, halved[1]), (2, 32, frames, halved[2]),
            (2, 32, frames, halved[3]), (2, 32, frames, halved[3])]


def test_stride_one_keeps_frequency_resolution():
    discriminator = MultiScaleSTFTDiscriminator(n_ffts=[256], hop_lengths=[64], stride=(1, 1))
    logits, features = discriminator(torch.randn(1, 1, 1024))
    assert logits[0].shape == (1, 1, 13, 129)
    assert all(m.shape[-1] == 129 for m in features[0])


def test_stft_is_float32_under_bf16_autocast():
    sub = STFTDiscriminator(n_fft=256, hop_length=64, win_length=256)
    audio = torch.randn(2, 1, 2048).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        planes = sub.spectrogram(audio)
        logits, features = sub(audio)
    assert planes.dtype == torch.float32
    assert torch.equal(planes, sub.spectrogram(audio.float()))
    assert torch.isfinite(logits.float()).all() and len(features) == 5


def test_spectrogram_planes_are_real_then_imaginary_per_channel():
    sub = STFTDiscriminator(in_channels=2, n_fft=64, hop_length=16, win_length=64)
    audio = torch.randn(1, 2, 256)
    planes = sub.spectrogram(audio)
    spectrum = torch.stft(audio[0, 1], 64, 16, 64, torch.hann_window(64), center=False,
                          return_complex=True) / torch.hann_window(64).pow(2).sum().sqrt()
    assert planes.shape == (1, 4, 13, 33)
    assert torch.allclose(planes[0, 1], spectrum.real.T, atol=1e-6)
    assert torch.allclose(planes[0, 3], spectrum.imag.T, atol=1e-6)


def test_gradients_reach_the_input_and_every_parameter():
    discriminator = MultiScaleSTFTDiscriminator(n_ffts=[256, 128], hop_lengths=[64, 32])
    audio = torch.randn(2, 1, 1024, requires_grad=True)
    logits, features = discriminator(audio)
    (sum(logit.mean() for logit in logits) + features[0][2].mean()).backward()
    assert audio.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in discriminator.parameters())


def test_clear_errors():
    with pytest.raises(ConfigError, match="n_ffts, hop_lengths and win_lengths"):
        MultiScaleSTFTDiscriminator(n_ffts=[512, 256], hop_lengths=[128])
    with pytest.raises(ConfigError, match="n_fft=2048 needs at least 2048 samples, got 1000"):
        MultiScaleSTFTDiscriminator()(torch.randn(1, 1, 1000))
    with pytest.raises(ValueError, match=r"\(batch, channels, time\)"):
        MultiScaleSTFTDiscriminator()(torch.randn(1, 4000))
