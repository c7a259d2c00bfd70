"""Oobleck encoder and decoder: the convolutional VAE network of Stable Audio 2.0.

Each encoder block runs three residual units (kernel 7, dilations 1, 3, 9) and then a strided
conv (kernel 2 x stride) that multiplies the channels; the decoder mirrors it with transposed
convs (or nearest upsampling + conv). Activations are SnakeBeta or ELU; every conv is weight
normalised. Module nesting and names follow stable-audio-tools (`layers.<i>.layers.<j>...`),
so its Oobleck state dicts load by key.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .layers import SnakeBeta, wn_conv1d, wn_conv_transpose1d


def _activation(use_snake: bool, channels: int) -> nn.Module:
    return SnakeBeta(channels) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    """x + conv1x1(act(conv7_dilated(act(x)))): length preserved."""

    def __init__(self, channels: int, dilation: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            _activation(use_snake, channels),
            wn_conv1d(channels, channels, kernel_size=7, dilation=dilation,
                      padding=3 * dilation),
            _activation(use_snake, channels),
            wn_conv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def _residual_units(channels: int, use_snake: bool) -> list[nn.Module]:
    return [ResidualUnit(channels, dilation, use_snake) for dilation in (1, 3, 9)]


class EncoderBlock(nn.Module):
    """Residual units, then downsampling by `stride` (length L -> L / stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            *_residual_units(in_channels, use_snake),
            _activation(use_snake, in_channels),
            wn_conv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                      padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    """Upsampling by `stride` (length L -> L x stride), then residual units."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool,
                 use_nearest_upsample: bool):
        super().__init__()
        upsample: nn.Module
        if use_nearest_upsample:
            upsample = nn.Sequential(
                nn.Upsample(scale_factor=stride, mode="nearest"),
                wn_conv1d(in_channels, out_channels, kernel_size=2 * stride, bias=False,
                          padding="same"),
            )
        else:
            upsample = wn_conv_transpose1d(in_channels, out_channels, kernel_size=2 * stride,
                                           stride=stride, padding=math.ceil(stride / 2))
        self.layers = nn.Sequential(
            _activation(use_snake, in_channels),
            upsample,
            *_residual_units(out_channels, use_snake),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    """(B, in_channels, T) -> (B, latent_dim, T / prod(strides)); T a multiple of the hop."""

    def __init__(self, in_channels: int, latent_dim: int, channels: int = 128,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 use_snake: bool = False):
        super().__init__()
        widths = [channels * mult for mult in (1, *c_mults)]
        self.layers = nn.Sequential(
            wn_conv1d(in_channels, widths[0], kernel_size=7, padding=3),
            *(EncoderBlock(widths[i], widths[i + 1], stride, use_snake)
              for i, stride in enumerate(strides)),
            _activation(use_snake, widths[-1]),
            wn_conv1d(widths[-1], latent_dim, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    """(B, latent_dim, L) -> (B, out_channels, L x prod(strides)); strides in encoder order."""

    def __init__(self, out_channels: int, latent_dim: int, channels: int = 128,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 use_snake: bool = False, use_nearest_upsample: bool = False,
                 final_tanh: bool = True):
        super().__init__()
        widths = [channels * mult for mult in (1, *c_mults)]
        blocks = [DecoderBlock(widths[i + 1], widths[i], strides[i], use_snake,
                               use_nearest_upsample)
                  for i in reversed(range(len(strides)))]
        self.layers = nn.Sequential(
            wn_conv1d(latent_dim, widths[-1], kernel_size=7, padding=3),
            *blocks,
            _activation(use_snake, widths[0]),
            wn_conv1d(widths[0], out_channels, kernel_size=7, padding=3, bias=False),
            nn.Tanh() if final_tanh else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
