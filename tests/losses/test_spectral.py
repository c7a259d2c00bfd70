"""Multi-resolution and sum/difference STFT losses: exact values on scaled signals, parity with
stable-audio-tools' auraloss, float32 under bf16 autocast, gradients, clear errors."""
from __future__ import annotations

import math

import pytest
import torch

from audiotools.errors import ConfigError
from audiotools.losses import MultiResolutionSTFTLoss, SumAndDifferenceSTFTLoss, spectral_loss
from tests.signals import SAMPLE_RATE, noise, stereo_pair

# stable-audio-tools' autoencoder defaults: 7 scales, 75 % overlap.
SAT_SCALES = [2048, 1024, 512, 256, 128, 64, 32]
SAT_RESOLUTIONS = dict(fft_sizes=SAT_SCALES, hop_sizes=[s // 4 for s in SAT_SCALES],
                       win_lengths=SAT_SCALES)
SMALL = dict(fft_sizes=[512, 128], hop_sizes=[128, 32], win_lengths=[512, 128])


@pytest.mark.parametrize("options", [
    {}, {"scale": "mel", "n_bins": 32, "sample_rate": SAMPLE_RATE},
    {"perceptual_weighting": True, "sample_rate": SAMPLE_RATE}, {"w_lin_mag": 1.0}])
def test_identical_signals_give_zero(options):
    audio = noise(2, 2, 4000)
    assert MultiResolutionSTFTLoss(**SMALL, **options)(audio, audio).item() == 0.0
    assert SumAndDifferenceSTFTLoss(**SMALL, **options)(audio, audio).item() == 0.0


@pytest.mark.parametrize("options, tolerance", [
    ({}, 1e-6), ({"scale": "mel", "n_bins": 32, "sample_rate": SAMPLE_RATE}, 1e-6),
    # A-weighting leaves the DC bin near the magnitude floor, where doubling changes nothing.
    ({"perceptual_weighting": True, "sample_rate": SAMPLE_RATE}, 1e-4)])
def test_doubled_signal_costs_one_plus_log_two(options, tolerance):
    # |2Y - Y| / |Y| = 1 and |log 2Y - log Y| = log 2 in every bin (the pre-filter and the mel
    # projection are linear), so the loss is exactly 1 + log 2.
    reference = noise(2, 1, 4000, std=0.5)
    loss = MultiResolutionSTFTLoss(**SMALL, **options)(2 * reference, reference)
    assert loss.item() == pytest.approx(1 + math.log(2), rel=tolerance)


def test_linear_magnitude_and_l2_terms():
    reference = noise(1, 1, 4000, std=0.5)
    plain = MultiResolutionSTFTLoss(**SMALL, w_sc=0.0, w_log_mag=1.0, mag_distance="L2")
    assert plain(2 * reference, reference).item() == pytest.approx(math.log(2) ** 2, rel=1e-5)
    linear = MultiResolutionSTFTLoss(**SMALL, w_sc=0.0, w_log_mag=0.0, w_lin_mag=1.0)
    twice, once = linear(3 * reference, reference), linear(2 * reference, reference)
    assert twice.item() == pytest.approx(2 * once.item(), rel=1e-5)  # mean |kY - Y| linear in k


def test_values_match_stable_audio_tools_auraloss():
    # Measured with stable-audio-tools 0.0.19's training/losses/auraloss.py on the same signals
    # (its perceptual weighting designs the FIR with scipy; ours fits the same curve in numpy).
    estimate, reference = stereo_pair()
    mono = MultiResolutionSTFTLoss(**SAT_RESOLUTIONS, sample_rate=SAMPLE_RATE)
    assert mono(estimate, reference).item() == pytest.approx(0.7524079, rel=1e-5)
    mid_side = SumAndDifferenceSTFTLoss(**SAT_RESOLUTIONS, w_left_right=0.0)
    assert mid_side(estimate, reference).item() == pytest.approx(0.5409967, rel=1e-5)
    weighted = MultiResolutionSTFTLoss(**SAT_RESOLUTIONS, sample_rate=SAMPLE_RATE,
                                       perceptual_weighting=True)
    assert weighted(estimate, reference).item() == pytest.approx(0.7961835, rel=1e-4)
    weighted = SumAndDifferenceSTFTLoss(**SAT_RESOLUTIONS, sample_rate=SAMPLE_RATE,
                                        perceptual_weighting=True, w_left_right=0.0)
    assert weighted(estimate, reference).item() == pytest.approx(0.5405655, rel=1e-4)


def test_stereo_loss_adds_left_and_right_as_stable_audio_tools():
    reference = noise(2, 2, 4000, std=0.5)
    one_term = 1 + math.log(2)
    # mid/side: (1 * term + 1 * term) / 2; left and right: 0.5 * term each.
    assert SumAndDifferenceSTFTLoss(**SMALL)(2 * reference, reference).item() == pytest.approx(
        2 * one_term, rel=1e-5)
    assert SumAndDifferenceSTFTLoss(**SMALL, w_left_right=0.0)(
        2 * reference, reference).item() == pytest.approx(one_term, rel=1e-5)


def test_sum_and_difference_weights_reach_their_own_signal():
    # Adding the same signal to both channels changes the sum, never the difference.
    reference = noise(1, 2, 4000, std=0.5)
    estimate = reference + noise(1, 1, 4000, std=0.3, seed=1)
    mid_only = SumAndDifferenceSTFTLoss(**SMALL, w_sum=1.0, w_diff=0.0, w_left_right=0.0)
    both = SumAndDifferenceSTFTLoss(**SMALL, w_sum=1.0, w_diff=1.0, w_left_right=0.0)
    side_only = SumAndDifferenceSTFTLoss(**SMALL, w_sum=0.0, w_diff=1.0, w_left_right=0.0)
    assert mid_only(estimate, reference).item() > 0.1
    assert both(estimate, reference).item() == pytest.approx(
        mid_only(estimate, reference).item(), rel=1e-6)
    assert side_only(estimate, reference).item() == pytest.approx(0.0, abs=1e-6)


def test_per_item_and_per_channel():
    reference = noise(3, 2, 4000)
    estimate = reference.clone()
    estimate[1, 0] *= 2
    loss = MultiResolutionSTFTLoss(**SMALL)
    per_channel = loss.per_channel(estimate, reference)
    assert per_channel.shape == (3, 2)
    assert per_channel[1, 0].item() == pytest.approx(1 + math.log(2), rel=1e-5)
    assert per_channel.flatten()[[0, 1, 3, 4, 5]].abs().max().item() == 0.0
    assert torch.allclose(loss.per_item(estimate, reference), per_channel.mean(dim=1))
    assert loss(estimate, reference).item() == pytest.approx(per_channel.mean().item())


def test_gradients_flow_and_stay_finite_on_silence():
    estimate = noise(2, 1, 4000).requires_grad_()
    MultiResolutionSTFTLoss(**SAT_RESOLUTIONS)(estimate, noise(2, 1, 4000, seed=1)).backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
    silent = torch.zeros(1, 2, 4000, requires_grad=True)
    loss = SumAndDifferenceSTFTLoss(**SMALL, scale="mel", n_bins=16, sample_rate=SAMPLE_RATE,
                                    perceptual_weighting=True)(silent, torch.zeros(1, 2, 4000))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(silent.grad).all()


def test_bf16_autocast_computes_in_float32():
    reference = noise(2, 2, 4000)
    estimate = reference + noise(2, 2, 4000, std=0.1, seed=1)
    loss = SumAndDifferenceSTFTLoss(**SMALL, scale="mel", n_bins=32, sample_rate=SAMPLE_RATE)
    low_estimate, low_reference = estimate.bfloat16(), reference.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(low_estimate, low_reference)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert value.item() == pytest.approx(
        loss(low_estimate.float(), low_reference.float()).item(), rel=1e-6)


def test_spectral_loss_picks_the_stable_audio_tools_loss():
    assert type(spectral_loss(2, **SMALL)) is SumAndDifferenceSTFTLoss
    assert type(spectral_loss(1, **SMALL)) is MultiResolutionSTFTLoss


def test_module_moves_with_to_and_saves_no_state():
    loss = MultiResolutionSTFTLoss(**SMALL, scale="mel", n_bins=32, sample_rate=SAMPLE_RATE,
                                   perceptual_weighting=True)
    assert loss.state_dict() == {}
    assert loss.to(torch.float64).window_0.dtype == torch.float64


@pytest.mark.parametrize("options, message", [
    ({"fft_sizes": [512, 256], "hop_sizes": [128], "win_lengths": [512, 256]},
     "one entry per resolution"),
    ({**SMALL, "win_lengths": [1024, 128]}, "win_length=1024"),
    ({**SMALL, "window": "gauss"}, "hann_window"),
    ({**SMALL, "scale": "mel", "n_bins": 32}, "sample_rate is required"),
    ({**SMALL, "perceptual_weighting": True}, "sample_rate is required"),
    ({**SMALL, "scale": "mel", "n_bins": 256, "sample_rate": 16000}, "n_bins=256"),
    ({**SMALL, "scale": "mel", "n_bins": [64], "sample_rate": 16000}, "one per resolution"),
    ({**SMALL, "scale": "chroma", "n_bins": 12, "sample_rate": 16000}, "'mel'"),
    ({**SMALL, "mag_distance": "L3"}, "'L1' or 'L2'"),
])
def test_bad_configuration_is_a_clear_error(options, message):
    with pytest.raises(ConfigError, match=message):
        MultiResolutionSTFTLoss(**options)


def test_mel_bins_per_resolution():
    loss = MultiResolutionSTFTLoss(**SMALL, scale="mel", n_bins=[64, 16],
                                   sample_rate=SAMPLE_RATE)
    assert loss.mel_0.shape == (64, 257) and loss.mel_1.shape == (16, 65)


def test_bad_shapes_are_clear_errors():
    loss = MultiResolutionSTFTLoss(**SMALL)
    with pytest.raises(ValueError, match=r"same shape \(batch, channels, time\)"):
        loss(torch.zeros(2, 1, 1000), torch.zeros(2, 1, 999))
    with pytest.raises(ValueError, match="stereo"):
        SumAndDifferenceSTFTLoss(**SMALL)(torch.zeros(2, 1, 1000), torch.zeros(2, 1, 1000))
