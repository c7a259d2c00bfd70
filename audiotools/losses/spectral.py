"""Multi-resolution STFT losses (Yamamoto et al. 2019; auraloss' `MultiResolutionSTFTLoss` and
`SumAndDifferenceSTFTLoss`, the `mrstft` spectral loss of stable-audio-tools).

Arguments keep auraloss' names (fft_sizes, hop_sizes, win_lengths, window, w_sc, w_log_mag,
w_lin_mag, sample_rate, scale, n_bins, perceptual_weighting, eps, mag_distance), so a
stable-audio-tools `loss_configs.spectral.config` maps onto them key for key; its w_phs,
scale_invariance and scale="chroma" are not supported.

Per resolution and per (item, channel): spectral convergence ||Y - X||_F / ||Y||_F (one ratio
per item and channel, as stable-audio-tools' copy of auraloss computes it; auraloss 0.4.0
takes one ratio over the whole batch), plus the mean |log Y - log X| (or squared,
`mag_distance="L2"`), plus the same on linear magnitudes, each with its weight; averaged over
channels and resolutions. Inputs are (batch, channels, time), called as loss(estimate,
reference). Everything runs in float32, also under autocast.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from .stft import (
    check_pair,
    check_resolutions,
    full_precision,
    make_window,
    mel_filterbank,
    stft_magnitude,
)
from .weighting import a_weighting_fir, apply_fir


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log (+ linear) magnitude distance over several STFT resolutions.

    `scale="mel"` projects magnitudes on `n_bins` mel bands (needs `sample_rate`): one
    number for every resolution (auraloss) or one per resolution (stable-audio-tools);
    `perceptual_weighting` A-weights both signals first (needs `sample_rate`).
    """

    def __init__(self, fft_sizes: Sequence[int] = (1024, 2048, 512),
                 hop_sizes: Sequence[int] = (120, 240, 50),
                 win_lengths: Sequence[int] = (600, 1200, 240), window: str = "hann_window",
                 w_sc: float = 1.0, w_log_mag: float = 1.0, w_lin_mag: float = 0.0,
                 sample_rate: int | None = None, scale: Literal["mel"] | None = None,
                 n_bins: int | Sequence[int] | None = None, perceptual_weighting: bool = False,
                 eps: float = 1e-8, mag_distance: Literal["L1", "L2"] = "L1"):
        super().__init__()
        fft_sizes, hop_sizes, win_lengths = list(fft_sizes), list(hop_sizes), list(win_lengths)
        check_resolutions(fft_sizes, hop_sizes, win_lengths, type(self).__name__)
        if scale not in (None, "mel"):
            raise ConfigError(f"scale={scale!r} is not supported; use null (linear STFT bins) "
                              "or 'mel'.")
        if mag_distance not in ("L1", "L2"):
            raise ConfigError(f"mag_distance={mag_distance!r}; use 'L1' or 'L2'.")
        if (scale == "mel" or perceptual_weighting) and not sample_rate:
            raise ConfigError("sample_rate is required with scale='mel' or "
                              "perceptual_weighting=true.")
        bins = _mel_bins(n_bins, fft_sizes) if scale == "mel" else []
        self.resolutions = list(zip(fft_sizes, hop_sizes, strict=True))
        self.weights = (w_sc, w_log_mag, w_lin_mag)
        self.eps = eps
        self.mag_distance = mag_distance
        for index, (fft_size, win) in enumerate(zip(fft_sizes, win_lengths, strict=True)):
            self.register_buffer(f"window_{index}", make_window(window, win), persistent=False)
            if scale == "mel":
                self.register_buffer(f"mel_{index}", mel_filterbank(fft_size, bins[index],
                                                                    sample_rate),
                                     persistent=False)
        self.scale = scale
        self.fir: torch.Tensor | None
        self.register_buffer("fir", a_weighting_fir(sample_rate) if perceptual_weighting
                             else None, persistent=False)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Scalar loss: the mean over items and channels."""
        return self.per_channel(estimate, reference).mean()

    def per_item(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(batch,) loss of each item, averaged over its channels."""
        return self.per_channel(estimate, reference).mean(dim=1)

    def per_channel(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(batch, channels) loss of each channel, averaged over the resolutions."""
        check_pair(type(self).__name__, estimate, reference)
        batch, channels, length = estimate.shape
        with full_precision(estimate.device):
            estimate = estimate.float().reshape(batch * channels, length)
            reference = reference.float().reshape(batch * channels, length)
            if self.fir is not None:
                estimate = apply_fir(estimate, self.fir)
                reference = apply_fir(reference, self.fir)
            total = sum(self._resolution(index, estimate, reference)
                        for index in range(len(self.resolutions)))
        return (total / len(self.resolutions)).view(batch, channels)

    def _resolution(self, index: int, estimate: torch.Tensor,
                    reference: torch.Tensor) -> torch.Tensor:
        """(N,) weighted terms at one resolution for N mono signals."""
        fft_size, hop = self.resolutions[index]
        window = getattr(self, f"window_{index}")
        x = stft_magnitude(estimate, fft_size, hop, window, self.eps)
        y = stft_magnitude(reference, fft_size, hop, window, self.eps)
        if self.scale == "mel":
            bank = getattr(self, f"mel_{index}")
            # Empty mel bands would give log(0); floor them like the magnitudes.
            x = torch.clamp(bank @ x, min=self.eps ** 0.5)
            y = torch.clamp(bank @ y, min=self.eps ** 0.5)
        w_sc, w_log, w_lin = self.weights
        loss = x.new_zeros(x.shape[0])
        if w_sc:
            loss = loss + w_sc * (torch.linalg.vector_norm(y - x, dim=(-2, -1))
                                  / torch.linalg.vector_norm(y, dim=(-2, -1)))
        if w_log:
            loss = loss + w_log * self._distance(torch.log(x), torch.log(y))
        if w_lin:
            loss = loss + w_lin * self._distance(x, y)
        return loss

    def _distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        difference = (x - y).abs() if self.mag_distance == "L1" else (x - y) ** 2
        return difference.mean(dim=(-2, -1))


def _mel_bins(n_bins: int | Sequence[int] | None, fft_sizes: list[int]) -> list[int]:
    """Mel bands per resolution; each between 1 and its FFT size (auraloss' bound)."""
    if n_bins is None:
        raise ConfigError("scale='mel' needs n_bins (mel bands, one number or one per "
                          "resolution).")
    bins = [n_bins] * len(fft_sizes) if isinstance(n_bins, int) else list(n_bins)
    if len(bins) != len(fft_sizes) or not all(
            1 <= count <= size for count, size in zip(bins, fft_sizes, strict=True)):
        raise ConfigError(f"n_bins={n_bins} does not fit fft_sizes={fft_sizes}: give one "
                          "number or one per resolution, each between 1 and its fft_size.")
    return bins


class SumAndDifferenceSTFTLoss(nn.Module):
    """Stereo loss: the multi-resolution loss of the mid (L+R) and side (L-R) signals,
    (w_sum * mid + w_diff * side) / 2 as auraloss computes it, plus `w_left_right` times the
    loss of each of the left and right channels, as stable-audio-tools adds for stereo
    autoencoders (its weight mrstft/2 per channel next to mrstft for sum/difference: 0.5).
    Other keyword arguments go to `MultiResolutionSTFTLoss`.
    """

    def __init__(self, w_sum: float = 1.0, w_diff: float = 1.0, w_left_right: float = 0.5,
                 **kwargs):
        super().__init__()
        self.mrstft = MultiResolutionSTFTLoss(**kwargs)
        self.w_sum, self.w_diff, self.w_left_right = w_sum, w_diff, w_left_right

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Scalar loss: the mean of `per_item`."""
        return self.per_item(estimate, reference).mean()

    def per_item(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(batch,) loss of each stereo item."""
        check_pair(type(self).__name__, estimate, reference)
        if estimate.shape[1] != 2:
            raise ValueError(f"SumAndDifferenceSTFTLoss needs stereo (2-channel) audio, got "
                             f"{estimate.shape[1]} channel(s); use MultiResolutionSTFTLoss.")
        estimate, reference = estimate.float(), reference.float()  # mid/side sums in float32
        mid, side = self.mrstft.per_channel(_sum_and_difference(estimate),
                                            _sum_and_difference(reference)).unbind(dim=1)
        loss = (self.w_sum * mid + self.w_diff * side) / 2
        if self.w_left_right:
            left, right = self.mrstft.per_channel(estimate, reference).unbind(dim=1)
            loss = loss + self.w_left_right * (left + right)
        return loss


def _sum_and_difference(audio: torch.Tensor) -> torch.Tensor:
    """(batch, 2, time) stereo to (batch, 2, time) [left + right, left - right]."""
    left, right = audio.unbind(dim=1)
    return torch.stack([left + right, left - right], dim=1)


def spectral_loss(channels: int, **kwargs) -> nn.Module:
    """The spectral loss stable-audio-tools picks for `channels`: sum/difference plus
    left/right for stereo, the plain multi-resolution loss otherwise."""
    if channels == 2:
        return SumAndDifferenceSTFTLoss(**kwargs)
    return MultiResolutionSTFTLoss(**kwargs)
