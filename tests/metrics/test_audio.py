"""SI-SNR, mel distance and STFT distance: analytic values, invariances, per-item results,
float32 under bf16 autocast, clear errors."""
from __future__ import annotations

import math

import pytest
import torch

from audiotools.metrics.audio import (
    frame_buzz,
    frame_rate_comb,
    mel_distance,
    si_snr,
    stft_distance,
)
from tests.signals import SAMPLE_RATE, noise


def _sine(seconds: float = 4.0, freq: float = 440.0, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return amplitude * torch.sin(2 * math.pi * freq * t)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_si_snr_of_a_known_noise_level(snr_db):
    reference = _sine().view(1, 1, -1)  # power 1/2
    std = math.sqrt(0.5 / 10 ** (snr_db / 10))
    estimate = reference + noise(*reference.shape, std=std)
    assert si_snr(estimate, reference).item() == pytest.approx(snr_db, abs=0.1)


def test_si_snr_is_scale_and_offset_invariant():
    reference = _sine().view(1, 1, -1)
    estimate = reference + noise(*reference.shape, std=0.3)
    value = si_snr(estimate, reference).item()
    assert si_snr(3.0 * estimate, reference).item() == pytest.approx(value, abs=1e-4)
    assert si_snr(estimate, 0.25 * reference).item() == pytest.approx(value, abs=1e-4)
    assert si_snr(estimate + 0.7, reference).item() == pytest.approx(value, abs=1e-4)


def test_si_snr_identical_silent_and_multichannel():
    reference = noise(2, 1, 8000)
    assert (si_snr(reference, reference) > 80).all()
    silent = torch.zeros(1, 1, 8000)
    assert torch.isfinite(si_snr(noise(1, 1, 8000), silent)).all()
    assert torch.isfinite(si_snr(silent, silent)).all()
    # Both channels at 10 dB -> the item is at 10 dB; per item, not per channel.
    stereo = torch.stack([_sine(), _sine(freq=660.0)]).unsqueeze(0)
    estimate = stereo + noise(*stereo.shape, std=math.sqrt(0.05))
    assert si_snr(estimate, stereo).shape == (1,)
    assert si_snr(estimate, stereo).item() == pytest.approx(10.0, abs=0.1)


def test_per_item_values():
    reference = noise(3, 2, 8000)
    estimate = reference.clone()
    estimate[1] += noise(2, 8000, std=0.5, seed=1)
    for metric in (mel_distance(estimate, reference, SAMPLE_RATE),
                   stft_distance(estimate, reference)):
        assert metric.shape == (3,)
        assert metric[0].item() == metric[2].item() == 0.0 and metric[1].item() > 0.01


def test_distances_on_scaled_signals():
    # 10x the amplitude -> every log10-mel value moves by exactly 1 (bins far above the floor).
    reference = noise(2, 1, 8000, std=0.5)
    assert mel_distance(10 * reference, reference, SAMPLE_RATE) == pytest.approx(
        [1.0, 1.0], abs=1e-4)
    # Spectral convergence 1 + |log 2| in every bin.
    assert stft_distance(2 * reference, reference) == pytest.approx(
        [1 + math.log(2)] * 2, rel=1e-5)


@pytest.mark.parametrize("sample_rate", [8000, 44100, 48000])
def test_mel_distance_at_other_rates(sample_rate):
    reference = noise(1, 2, sample_rate // 2, std=0.5)
    assert mel_distance(reference, reference, sample_rate).item() == 0.0
    assert mel_distance(10 * reference, reference, sample_rate).item() == pytest.approx(
        1.0, abs=1e-4)


def test_metrics_are_float32_under_bf16_autocast():
    reference = noise(2, 1, 8000).bfloat16()
    estimate = (reference.float() + noise(2, 1, 8000, std=0.2, seed=1)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = [si_snr(estimate, reference), mel_distance(estimate, reference, SAMPLE_RATE),
                  stft_distance(estimate, reference)]
    for value in values:
        assert value.dtype == torch.float32 and torch.isfinite(value).all()


@pytest.mark.parametrize("metric", [si_snr, stft_distance,
                                    lambda a, b: mel_distance(a, b, SAMPLE_RATE)])
def test_bad_shapes_are_clear_errors(metric):
    with pytest.raises(ValueError, match=r"same shape \(batch, channels, time\)"):
        metric(torch.zeros(2, 1, 4000), torch.zeros(2, 4000))


def test_frame_buzz_finds_frames_that_repeat_and_is_one_on_noise():
    hop = 320
    frame = noise(hop, seed=3)
    repeated = frame.repeat(50).view(1, 1, -1)                       # every hop
    flipped = torch.cat([frame, -frame]).repeat(25).view(1, 1, -1)  # every other hop, negated
    reference = noise(1, 1, 50 * hop, seed=4)
    assert frame_rate_comb(reference, SAMPLE_RATE, hop).item() == pytest.approx(1.0, abs=0.15)
    for periodic in (repeated, flipped):
        assert frame_rate_comb(periodic, SAMPLE_RATE, hop).item() > 50
        assert frame_buzz(periodic, reference, SAMPLE_RATE, hop).item() > 50
    # The reference's own lines do not count against the estimate.
    assert frame_buzz(repeated, repeated, SAMPLE_RATE, hop).item() == pytest.approx(1.0)
    assert frame_buzz(torch.cat([repeated, reference]), torch.cat([reference, reference]),
                      SAMPLE_RATE, hop).shape == (2,)
