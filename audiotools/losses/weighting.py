"""Perceptual (A-)weighting as a linear-phase FIR pre-filter, the `perceptual_weighting` option
of auraloss' STFT losses that stable-audio-tools turns on for its autoencoders.

The filter matches auraloss' construction: the IEC 61672 analog A-weighting curve, mapped to
the digital domain by the bilinear transform, fitted by least squares with an odd number of
symmetric taps. It is designed here with numpy (no scipy) on a dense frequency grid.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError

# Pole frequencies (Hz) and 1 kHz gain (dB) of the analog A-weighting filter (IEC 61672).
_F1, _F2, _F3, _F4 = 20.598997, 107.65265, 737.86223, 12194.217
_A1000_DB = 1.9997


def a_weighting_response(frequencies: np.ndarray, sample_rate: float) -> np.ndarray:
    """|H| of the bilinear-transformed A-weighting filter at `frequencies` (Hz, < Nyquist)."""
    digital = 2 * math.pi * np.asarray(frequencies, dtype=np.float64) / sample_rate
    s = 1j * 2 * sample_rate * np.tan(digital / 2)  # bilinear transform: analog frequency
    w1, w2, w3, w4 = (2 * math.pi * f for f in (_F1, _F2, _F3, _F4))
    gain = w4 ** 2 * 10 ** (_A1000_DB / 20)
    response = gain * s ** 4 / ((s + w4) ** 2 * (s + w1) ** 2 * (s + w3) * (s + w2))
    return np.abs(response)


def a_weighting_fir(sample_rate: float, taps: int = 101, grid: int = 4096) -> torch.Tensor:
    """Symmetric FIR taps (float32, length `taps`) whose amplitude response is the least-squares
    fit of `a_weighting_response` over `grid` frequencies from 0 to Nyquist."""
    if taps < 1 or taps % 2 == 0:
        raise ConfigError(f"A-weighting FIR needs an odd number of taps, got {taps}.")
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be > 0 for perceptual weighting, got {sample_rate}.")
    half = taps // 2
    omega = np.linspace(0.0, math.pi, grid, endpoint=False)
    target = a_weighting_response(omega * sample_rate / (2 * math.pi), sample_rate)
    # Type I linear phase: A(w) = c0 + sum_k c_k cos(k w), taps h[half -+ k] = c_k / 2.
    basis = np.cos(np.outer(omega, np.arange(half + 1)))
    coefficients = np.linalg.lstsq(basis, target, rcond=None)[0]
    kernel = np.concatenate([coefficients[:0:-1] / 2, coefficients[:1], coefficients[1:] / 2])
    return torch.from_numpy(kernel.astype(np.float32))


def apply_fir(audio: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter (N, T) audio with a symmetric kernel, same length out (zero padded, no delay)."""
    filtered = torch.nn.functional.conv1d(audio.unsqueeze(1), kernel.view(1, 1, -1),
                                          padding=kernel.shape[0] // 2)
    return filtered.squeeze(1)
