"""The STFT encoder and iSTFT decoder: framing, exact inversion, heads and config errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from audiotools.errors import ConfigError
from audiotools.models.autoencoder import build_autoencoder
from audiotools.models.autoencoder.spectral import ISTFTDecoder, STFTEncoder, _phase_advance
from tests.models.autoencoder_cases import model_config


@pytest.mark.parametrize(("n_fft", "hop"), [(64, 16), (32, 16), (18, 16)])
def test_overlap_add_inverts_the_encoders_framing_exactly(n_fft, hop):
    """The decoder's iSTFT is the exact inverse of the encoder's "same" STFT framing, so a
    network that predicts the input's spectrum reconstructs it to rounding."""
    decoder = ISTFTDecoder(1, 4, n_fft=n_fft, hop_length=hop, channels=8, depth=1)
    audio = torch.randn(3, 1, hop * 20)
    pad = (n_fft - hop) // 2
    spectrum = torch.stft(F.pad(audio.reshape(3, -1), (pad, pad)), n_fft, hop,
                          window=torch.hann_window(n_fft), center=False, return_complex=True)
    assert spectrum.shape[-1] == 20  # one frame per hop, as the latents
    torch.testing.assert_close(decoder._overlap_add(spectrum, 3), audio, atol=1e-5, rtol=0)


def _frame_spectrum(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    pad = (n_fft - hop) // 2
    return torch.stft(F.pad(audio, (pad, pad)), n_fft, hop, window=torch.hann_window(n_fft),
                      center=False, return_complex=True)


def test_time_referenced_phase_inverts_exactly_and_holds_a_steady_partial():
    """`phase: time` turns each frame's phase back by its bin's advance over t hops: the
    decoder's turn forward undoes the encoder's exactly, and a steady partial's phase then
    moves by its offset from the bin centre only (0.3 bin: 2 pi 0.3 / 4 a hop at hop n_fft/4)
    instead of the frame-referenced jump of 2 pi (k + 0.3) / 4."""
    n_fft, hop, frames = 64, 16, 24
    audio = torch.sin(2 * torch.pi * (5.3 / n_fft) * torch.arange(hop * frames))[None]
    spectrum = _frame_spectrum(audio, n_fft, hop)
    advance = _phase_advance(*spectrum.shape[-2:], n_fft, hop, spectrum.device)
    decoder = ISTFTDecoder(1, 4, n_fft=n_fft, hop_length=hop, channels=8, depth=1, phase="time")
    torch.testing.assert_close(decoder._overlap_add(spectrum * advance.conj() * advance, 1),
                               audio[None], atol=1e-5, rtol=0)
    steps = {}
    for name, bin_frames in [("frame", spectrum[0, 5]),
                             ("time", (spectrum * advance.conj())[0, 5])]:
        turn = torch.angle(bin_frames[5:-5][1:] / bin_frames[5:-5][:-1])
        steps[name] = turn.mean().item()
        assert turn.std() < 1e-3
    assert steps["time"] == pytest.approx(2 * torch.pi * 0.3 / 4, abs=1e-3)
    assert steps["frame"] == pytest.approx(math.remainder(2 * math.pi * 5.3 / 4, 2 * math.pi),
                                           abs=1e-3)


class _SameEveryFrame(torch.nn.Module):
    """A stand-in network: one random prediction, repeated for every latent frame."""

    def __init__(self, channels: int):
        super().__init__()
        self.prediction = torch.randn(1, channels, 1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.prediction.expand(latents.shape[0], -1, latents.shape[-1])


@pytest.mark.parametrize(("phase", "period"), [("time", 64), ("frame", 16)])
def test_a_prediction_that_holds_still_is_periodic_in_n_fft_only_with_time_phases(phase, period):
    """A decoder network whose output does not change from frame to frame gives a signal of
    period hop with frame phases (the frame-rate buzz) and of period n_fft, bin-centred
    partials, with `phase: time`."""
    torch.manual_seed(0)
    decoder = ISTFTDecoder(1, 4, n_fft=64, hop_length=16, channels=8, depth=1, phase=phase)
    decoder.network = _SameEveryFrame(2 * 33)
    audio = decoder(torch.zeros(1, 4, 40))[0, 0, 64:-64]
    torch.testing.assert_close(audio[period:], audio[:-period], atol=1e-4, rtol=0)
    repeats_every_hop = torch.allclose(audio[16:], audio[:-16], atol=1e-4)
    assert repeats_every_hop is (phase == "frame")


@pytest.mark.parametrize(("features", "blind"), [("magnitude", True), ("complex", False)])
def test_magnitude_features_make_the_encoder_phase_blind(features, blind):
    """`features: magnitude` reads |X|^0.3 alone: the input and its negation (every phase
    turned by pi) give the same latents; the complex features tell them apart."""
    torch.manual_seed(0)
    encoder = STFTEncoder(1, 5, n_fft=64, hop_length=16, channels=8, depth=1,
                          features=features)
    assert encoder.network.project_in.in_channels == (33 if blind else 66)
    audio = torch.randn(2, 1, 16 * 7)
    same = torch.allclose(encoder(audio), encoder(-audio), atol=1e-6)
    assert same is blind


def test_encoder_reads_one_frame_per_hop_for_every_channel():
    encoder = STFTEncoder(2, 5, n_fft=64, hop_length=16, channels=8, depth=1)
    assert encoder(torch.randn(2, 2, 16 * 7)).shape == (2, 5, 7)
    assert encoder.network.project_in.in_channels == 2 * 2 * 33


@pytest.mark.parametrize("head", ["complex", "polar"])
def test_decoder_heads_give_audio_of_the_latent_length(head):
    decoder = ISTFTDecoder(2, 6, n_fft=64, hop_length=16, channels=8, depth=1, head=head)
    audio = decoder(torch.randn(2, 6, 9))
    assert audio.shape == (2, 2, 144) and torch.isfinite(audio).all()


def test_complex_head_undoes_the_magnitude_compression():
    decoder = ISTFTDecoder(1, 4, n_fft=16, hop_length=16, channels=8, depth=1)
    compressed = torch.full((1, 9, 1), 2.0)
    spectrum = decoder._spectrum(torch.cat([compressed, torch.zeros_like(compressed)], 1))
    torch.testing.assert_close(spectrum.real, torch.full((1, 9, 1), 2.0 ** (1 / 0.3)))


def test_stft_model_trains_towards_its_input():
    torch.manual_seed(0)
    model = build_autoencoder(model_config("stft", "none"))
    audio = torch.sin(torch.arange(16 * 32) * 0.3)[None, None] * 0.5
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(60):
        loss = (model(audio).audio - audio).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize(("change", "message"), [
    ({"patch_size": 4}, "use patch_size: 1"),
    ({"encoder": {"type": "stft", "n_fft": 63, "hop_length": 16}}, "differ from it by an even"),
    ({"encoder": {"type": "stft", "n_fft": 8, "hop_length": 16}}, "exceed hop_length"),
    ({"decoder": {"type": "istft", "kernel_size": 4}}, "must be odd"),
    ({"decoder": {"type": "istft", "head": "phase"}}, "head"),
    ({"encoder": {"type": "stft", "features": "phase"}}, "features"),
    ({"decoder": {"type": "istft", "phase": "signal"}}, "phase"),
])
def test_config_errors_name_the_key(change, message):
    config = model_config("stft", "vae")
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=message):
        build_autoencoder(config)
