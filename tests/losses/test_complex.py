"""The compressed complex spectrum loss."""
from __future__ import annotations

import pytest
import torch

from audiotools.losses import CompressedSpectrumLoss


def test_zero_for_equal_signals_and_phase_sensitive():
    loss = CompressedSpectrumLoss([64], [16])
    audio = torch.randn(2, 1, 512)
    assert loss(audio, audio) == 0
    shifted = torch.roll(audio, 3, dims=-1)  # same magnitudes, other phases
    assert loss(shifted, audio) > 0.1


def test_value_of_a_single_bin_with_power_one():
    """With power 1 it is the mean squared STFT difference: a signal against silence gives
    the mean |X|^2 of its STFT."""
    loss = CompressedSpectrumLoss([32], [8], power=1.0)
    audio = torch.randn(1, 1, 256)
    spectrum = torch.stft(audio[0], 32, 8, window=torch.hann_window(32), return_complex=True)
    expected = (spectrum.abs() + 1e-7).pow(0).mul(spectrum).abs().square().mean()
    torch.testing.assert_close(loss(torch.zeros_like(audio), audio), expected)


def test_compression_weighs_quiet_signals_more_than_a_waveform_loss():
    loss = CompressedSpectrumLoss([64], [16])
    audio = torch.randn(1, 1, 1024)
    loud = loss(torch.zeros_like(audio), audio)
    quiet = loss(torch.zeros_like(audio), audio * 0.01)
    assert quiet / loud == pytest.approx(0.01 ** 0.6, rel=1e-3)  # (|X|^0.3)^2 scales as a^0.6


def test_invalid_settings_are_named():
    with pytest.raises(ValueError, match="power"):
        CompressedSpectrumLoss([64], [16], power=0.0)
    with pytest.raises(Exception, match="fft_sizes"):
        CompressedSpectrumLoss([64, 32], [16])
