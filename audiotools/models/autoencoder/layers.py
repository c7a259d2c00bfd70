"""Layers shared by the autoencoder networks: weight-normalised convolutions and SnakeBeta.

Weight norm uses torch's parametrization (`parametrizations.weight.original0/1`); its load hook
also accepts the older `weight_g`/`weight_v` names that stable-audio-tools and EnCodec
checkpoints carry, so their state dicts load without renaming these keys.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def wn_conv1d(*args, **kwargs) -> nn.Conv1d:
    """A weight-normalised `nn.Conv1d` (norm over all dims but the first, as torch's default)."""
    return weight_norm(nn.Conv1d(*args, **kwargs))


def wn_conv_transpose1d(*args, **kwargs) -> nn.ConvTranspose1d:
    """A weight-normalised `nn.ConvTranspose1d` (dim 0, as stable-audio-tools)."""
    return weight_norm(nn.ConvTranspose1d(*args, **kwargs))


class SnakeBeta(nn.Module):
    """x + 1/beta * sin(alpha * x)^2 per channel, with alpha and beta stored as logarithms.

    Log-scale parameters initialised at 0 (alpha = beta = 1) are what stable-audio-tools'
    Oobleck uses; the parameter names and shapes (`alpha`, `beta`: (channels,)) match it.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.exp()[None, :, None]
        beta = self.beta.exp()[None, :, None]
        return x + torch.sin(x * alpha).pow(2) / (beta + 1e-9)

