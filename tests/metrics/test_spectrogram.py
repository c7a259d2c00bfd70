"""Log-mel spectrogram pictures: size, channel layout, a tone on its mel row, silence dark."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiotools.losses.stft import mel_filterbank
from audiotools.metrics.spectrogram import render_spectrogram

SAMPLE_RATE = 16000
DARKEST = (0, 0, 4)


def _tone(freq: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return 0.5 * torch.sin(2 * math.pi * freq * t)


def test_size_and_mode():
    image = render_spectrogram(torch.zeros(2, 16000), SAMPLE_RATE)
    assert image.mode == "RGB"
    assert image.size == (1 + 16000 // 256, 2 * 128 + 2)
    assert render_spectrogram(torch.zeros(1, 100), SAMPLE_RATE, n_mels=64).size == (1, 64)


def test_tone_lights_its_mel_row_and_silence_is_dark():
    freq, n_mels = 1000.0, 128
    audio = torch.stack([_tone(freq), torch.zeros(SAMPLE_RATE)])
    pixels = np.asarray(render_spectrogram(audio, SAMPLE_RATE, n_mels=n_mels)).astype(int)
    top = pixels[:n_mels]  # channel 0
    bottom = pixels[n_mels + 2:]  # channel 1, after the separator
    assert (bottom == DARKEST).all()
    band = int(mel_filterbank(1024, n_mels, SAMPLE_RATE)[:, round(freq * 1024 / SAMPLE_RATE)]
               .argmax())
    brightest_row = int(top.sum(axis=(1, 2)).argmax())
    assert abs(brightest_row - (n_mels - 1 - band)) <= 1  # low frequencies at the bottom


def test_all_silent_clip_is_dark():
    pixels = np.asarray(render_spectrogram(torch.zeros(1, 4000), SAMPLE_RATE))
    assert (pixels == DARKEST).all()


@pytest.mark.parametrize("audio, options, message", [
    (torch.zeros(1, 1, 100), {}, r"\(channels, time\)"),
    (torch.zeros(1, 100), {"n_mels": 1000}, "n_mels=1000"),
])
def test_clear_errors(audio, options, message):
    with pytest.raises(ValueError, match=message):
        render_spectrogram(audio, SAMPLE_RATE, **options)
