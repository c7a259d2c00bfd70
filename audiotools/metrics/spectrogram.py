"""Log-mel spectrogram pictures for TensorBoard/W&B and sample folders (pillow, no matplotlib).

One band per channel, channel 0 on top, low frequencies at the bottom of each band, one pixel
column per STFT frame and one pixel row per mel band. Colours follow a dark-to-bright ramp
over the `top_db` decibels below the loudest bin of the whole clip, so channels are comparable;
bins without energy (at the 1e-5 magnitude floor) are black.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..losses.stft import full_precision, make_window, mel_filterbank, stft_magnitude

# (position, RGB) anchors of the colour ramp: black, violet, red-orange, pale yellow.
_RAMP = ((0.0, (0, 0, 4)), (0.35, (110, 30, 130)), (0.7, (240, 100, 50)),
         (1.0, (252, 250, 190)))
_SEPARATOR = (128, 128, 128)
_FLOOR = 1e-5
_FLOOR_DB = 20 * np.log10(_FLOOR)


def _colourise(levels: np.ndarray) -> np.ndarray:
    """(H, W) levels in [0, 1] to (H, W, 3) uint8 through `_RAMP`."""
    positions = [position for position, _ in _RAMP]
    channels = [np.interp(levels, positions, [colour[index] for _, colour in _RAMP])
                for index in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def render_spectrogram(audio: torch.Tensor, sample_rate: int, n_fft: int = 1024,
                       hop_length: int = 256, n_mels: int = 128, top_db: float = 80.0,
                       separator: int = 2) -> Image.Image:
    """An RGB image of the log-mel spectrogram of (channels, time) audio: width = frames,
    height = channels * n_mels + (channels - 1) * separator."""
    if audio.dim() != 2 or audio.shape[-1] == 0:
        raise ValueError(f"render_spectrogram takes (channels, time) audio, got shape "
                         f"{tuple(audio.shape)}.")
    if not 1 <= n_mels <= n_fft // 2 + 1:
        raise ValueError(f"n_mels={n_mels} must be between 1 and n_fft // 2 + 1 = "
                         f"{n_fft // 2 + 1}.")
    with full_precision(audio.device), torch.no_grad():
        audio = audio.detach().float().cpu()
        bank = mel_filterbank(n_fft, n_mels, sample_rate)
        magnitude = stft_magnitude(audio, n_fft, hop_length, make_window("hann_window", n_fft))
        decibels = 20 * torch.log10(torch.clamp(bank @ magnitude, min=_FLOOR))
    levels = ((decibels - decibels.max() + top_db) / top_db).clamp(0, 1)
    levels[decibels <= _FLOOR_DB] = 0.0  # no energy is dark, also in an all-silent clip
    levels = levels.numpy()
    bands = [_colourise(level[::-1]) for level in levels]  # low frequencies at the bottom
    width = bands[0].shape[1]
    gap = np.empty((separator, width, 3), dtype=np.uint8)
    gap[:] = _SEPARATOR
    rows = [part for band in bands for part in (band, gap)][:-1] if separator else bands
    return Image.fromarray(np.concatenate(rows, axis=0))
