"""A-weighting pre-filter: the IEC curve's landmarks, the FIR fit, filtering, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from audiotools.errors import ConfigError
from audiotools.losses.weighting import a_weighting_fir, a_weighting_response, apply_fir


@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_response_landmarks(sample_rate):
    decibels = 20 * np.log10(a_weighting_response(np.array([100.0, 1000.0]), sample_rate))
    # IEC 61672: -19.1 dB at 100 Hz, 0 dB at 1 kHz (the bilinear transform barely moves them).
    assert decibels[0] == pytest.approx(-19.1, abs=0.1)
    assert decibels[1] == pytest.approx(0.0, abs=0.05)


def test_fir_fits_the_curve():
    sample_rate = 16000
    kernel = a_weighting_fir(sample_rate).double().numpy()
    assert kernel.shape == (101,) and np.allclose(kernel, kernel[::-1])
    frequencies = np.linspace(200, 0.8 * sample_rate / 2, 200)
    response = np.abs(np.exp(-2j * np.pi * np.outer(frequencies / sample_rate,
                                                     np.arange(101))) @ kernel)
    error = 20 * np.log10(response) - 20 * np.log10(a_weighting_response(frequencies,
                                                                         sample_rate))
    assert np.abs(error).max() < 0.2


def test_apply_fir_keeps_length_and_alignment():
    audio = torch.randn(3, 1000)
    identity = torch.zeros(5)
    identity[2] = 1.0
    assert torch.equal(apply_fir(audio, identity), audio)
    assert apply_fir(audio, a_weighting_fir(16000)).shape == (3, 1000)


@pytest.mark.parametrize("taps, sample_rate, message", [
    (100, 16000, "odd number of taps"), (101, 0, "sample_rate must be > 0")])
def test_bad_design_is_a_clear_error(taps, sample_rate, message):
    with pytest.raises(ConfigError, match=message):
        a_weighting_fir(sample_rate, taps)
