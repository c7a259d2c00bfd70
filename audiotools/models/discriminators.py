"""EnCodec's multi-scale STFT (MS-STFT) discriminator (Défossez et al. 2022), the `encodec`
discriminator of stable-audio-tools.

Each sub-discriminator takes the complex STFT of the waveform at its own resolution (frames
not centred, divided by the window's L2 norm as torchaudio's `normalized=True`), stacks real
and imaginary parts of every channel as 2*in_channels input planes over (time, frequency), and
runs weight-normalised Conv2d layers: one (3, 9) conv, one (3, 9) conv per entry of
`dilations` (dilated in time, strided by `stride`), a (3, 3) conv, each followed by
LeakyReLU(0.2) and returned as a feature map, then a (3, 3) conv to `out_channels` logits.
`spec_scale_pow` (stable-audio-tools) multiplies the spectrum by |spectrum|^p before the
convolutions. The STFT is computed in float32 with autocast off; the convolutions follow the
caller's precision.

Differences from the reference implementations, on purpose:
- `stride` defaults to EnCodec's (1, 2) (frequency halved per dilated conv);
  stable-audio-tools' copy defaults to (1, 1): pass stride=(1, 1) to reproduce it. At the
  default scales one forward of a 32,768-sample mono item costs 17.8 GFLOP with (1, 2) and
  61.0 GFLOP with (1, 1).
- every conv is weight-normalised, as in stable-audio-tools (AudioCraft leaves the first
  one plain); the parameter count is stable-audio-tools'.
- with filters_scale > 1 the channel growth is consistent layer to layer (EnCodec's code
  mis-sizes the first dilated conv in that case); with the default 1 both agree.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError
from ..losses.stft import check_resolutions, full_precision, stft

DiscriminatorOutput = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _padding(kernel_size: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """'Same' padding for odd kernels."""
    return ((kernel_size[0] - 1) * dilation[0] // 2, (kernel_size[1] - 1) * dilation[1] // 2)


def _conv(in_channels: int, out_channels: int, kernel_size: tuple[int, int],
          stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> nn.Module:
    return weight_norm(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                 dilation=dilation, padding=_padding(kernel_size, dilation)))


class STFTDiscriminator(nn.Module):
    """One resolution of the MS-STFT discriminator; returns (logits, feature maps)."""

    def __init__(self, filters: int = 32, in_channels: int = 1, out_channels: int = 1,
                 n_fft: int = 1024, hop_length: int = 256, win_length: int = 1024,
                 max_filters: int = 1024, filters_scale: int = 1,
                 kernel_size: tuple[int, int] = (3, 9), dilations: Sequence[int] = (1, 2, 4),
                 stride: tuple[int, int] = (1, 2), normalized: bool = True,
                 negative_slope: float = 0.2, spec_scale_pow: float = 0.0):
        super().__init__()
        kernel_size, stride = tuple(kernel_size), tuple(stride)
        if len(kernel_size) != 2 or len(stride) != 2 or min(kernel_size) < 1:
            raise ConfigError(f"kernel_size {kernel_size} and stride {stride} need two "
                              "positive entries (time, frequency).")
        self.n_fft, self.hop_length, self.normalized = n_fft, hop_length, normalized
        self.spec_scale_pow = spec_scale_pow
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.activation = nn.LeakyReLU(negative_slope)
        self.convs = nn.ModuleList([_conv(2 * in_channels, filters, kernel_size)])
        channels = filters
        for index, dilation in enumerate(dilations):
            out = min(filters_scale ** (index + 1) * filters, max_filters)
            self.convs.append(_conv(channels, out, kernel_size, stride, (dilation, 1)))
            channels = out
        square = (kernel_size[0], kernel_size[0])
        out = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        self.convs.append(_conv(channels, out, square))
        self.conv_post = _conv(out, out_channels, square)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, C, T) audio to (B, 2C, frames, n_fft // 2 + 1) float32 real/imag planes."""
        batch, channels, length = audio.shape
        if length < self.n_fft:
            raise ConfigError(f"The STFT discriminator with n_fft={self.n_fft} needs at least "
                              f"{self.n_fft} samples, got {length}; use longer segments or "
                              "smaller n_ffts.")
        with full_precision(audio.device):
            spectrum = stft(audio.float().reshape(batch * channels, length), self.n_fft,
                            self.hop_length, self.window, center=False)
            if self.normalized:
                spectrum = spectrum / self.window.pow(2).sum().sqrt()
            if self.spec_scale_pow:
                spectrum = spectrum * (spectrum.abs() + 1e-6) ** self.spec_scale_pow
            spectrum = spectrum.view(batch, channels, *spectrum.shape[-2:])
            planes = torch.cat([spectrum.real, spectrum.imag], dim=1)
        return planes.transpose(2, 3)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden = self.spectrogram(audio)
        features = []
        for conv in self.convs:
            hidden = self.activation(conv(hidden))
            features.append(hidden)
        return self.conv_post(hidden), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """One `STFTDiscriminator` per (n_fft, hop_length, win_length); forward returns the list
    of logits and the list of feature-map lists, one entry per resolution. Extra keyword
    arguments (kernel_size, dilations, stride, ...) go to every sub-discriminator."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, filters: int = 32,
                 n_ffts: Sequence[int] = (2048, 1024, 512, 256, 128),
                 hop_lengths: Sequence[int] = (512, 256, 128, 64, 32),
                 win_lengths: Sequence[int] | None = None, **kwargs):
        super().__init__()
        n_ffts, hop_lengths = list(n_ffts), list(hop_lengths)
        win_lengths = list(n_ffts if win_lengths is None else win_lengths)
        check_resolutions(n_ffts, hop_lengths, win_lengths, type(self).__name__,
                          names=("n_ffts", "hop_lengths", "win_lengths"))
        self.discriminators = nn.ModuleList([
            STFTDiscriminator(filters, in_channels, out_channels, n_fft=n_fft,
                              hop_length=hop, win_length=win, **kwargs)
            for n_fft, hop, win in zip(n_ffts, hop_lengths, win_lengths, strict=True)])

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        if audio.dim() != 3:
            raise ValueError(f"The discriminator takes (batch, channels, time) audio, got shape "
                             f"{tuple(audio.shape)}.")
        logits, features = [], []
        for discriminator in self.discriminators:
            logit, feature_maps = discriminator(audio)
            logits.append(logit)
            features.append(feature_maps)
        return logits, features
