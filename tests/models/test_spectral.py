"""The STFT encoder and iSTFT decoder: framing, exact inversion, heads and config errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiotools.errors import ConfigError
from audiotools.models.autoencoder import build_autoencoder
from audiotools.models.autoencoder.spectral import ISTFTDecoder, STFTEncoder
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
])
def test_config_errors_name_the_key(change, message):
    config = model_config("stft", "vae")
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=message):
        build_autoencoder(config)
