"""SEANet encoder and decoder: the convolutional network of EnCodec.

Residual conv stacks with growing dilation, strided convs that double the channels per
stage, an optional LSTM at the bottleneck side, weight norm, and "streamable" padding: the
convolutions pad themselves (symmetrically, or all on the left when causal) so that an input
of T samples gives ceil(T / hop) frames and the decoder returns frames x hop samples.
Module nesting follows EnCodec (`model.<i>.conv.conv`, `.block`, `.shortcut`, `.lstm`), so
its SEANet state dicts load by key.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _extra_padding(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Right padding that makes the last window full, so no input sample is dropped."""
    frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(frames) - 1) * stride + (kernel_size - padding_total)
    return ideal_length - length


def _pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """F.pad that also reflects inputs shorter than the padding (zero-extended first)."""
    length = x.shape[-1]
    if mode == "reflect" and length <= max(left, right):
        extra = max(left, right) - length + 1
        padded = F.pad(F.pad(x, (0, extra)), (left, right), mode)
        return padded[..., :padded.shape[-1] - extra]
    return F.pad(x, (left, right), mode)


class NormConv1d(nn.Module):
    """The conv (weight-normalised or not) as `.conv`: EnCodec's nesting level."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class NormConvTranspose1d(nn.Module):
    """The transposed conv as `.convtr`: EnCodec's nesting level."""

    def __init__(self, convtr: nn.ConvTranspose1d):
        super().__init__()
        self.convtr = convtr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convtr(x)


def _normed(module: nn.Module, norm: str) -> nn.Module:
    return weight_norm(module) if norm == "weight_norm" else module


class SConv1d(nn.Module):
    """Conv1d padded to keep ceil(T / stride) frames: centred, or causal (all on the left)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, norm: str = "weight_norm", causal: bool = False,
                 pad_mode: str = "reflect"):
        super().__init__()
        self.conv = NormConv1d(_normed(nn.Conv1d(in_channels, out_channels, kernel_size, stride,
                                                 dilation=dilation), norm))
        self.causal = causal
        self.pad_mode = pad_mode
        self.effective_kernel = (kernel_size - 1) * dilation + 1
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding_total = self.effective_kernel - self.stride
        extra = _extra_padding(x.shape[-1], self.effective_kernel, self.stride, padding_total)
        if self.causal:
            left, right = padding_total, 0
        else:
            right = padding_total // 2
            left = padding_total - right
        return self.conv(_pad1d(x, left, right + extra, self.pad_mode))


class SConvTranspose1d(nn.Module):
    """ConvTranspose1d trimmed to exactly L x stride samples (causal: trimmed on the right)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 norm: str = "weight_norm", causal: bool = False):
        super().__init__()
        self.convtr = NormConvTranspose1d(_normed(
            nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride), norm))
        self.causal = causal
        self.padding_total = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        right = self.padding_total if self.causal else self.padding_total // 2
        left = self.padding_total - right
        return y[..., left:y.shape[-1] - right]


class SEANetResnetBlock(nn.Module):
    """shortcut(x) + [act, conv k (dilated), act, conv 1] with a compressed hidden width."""

    def __init__(self, dim: int, dilation: int, kernel_size: int, compress: int,
                 true_skip: bool, activation: type[nn.Module],
                 activation_params: Mapping[str, float], **conv: object):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            activation(**activation_params),
            SConv1d(dim, hidden, kernel_size, dilation=dilation, **conv),
            activation(**activation_params),
            SConv1d(hidden, dim, 1, **conv),
        )
        self.shortcut = nn.Identity() if true_skip else SConv1d(dim, dim, 1, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class SLSTM(nn.Module):
    """LSTM over time with a skip connection, on (B, C, T) tensors."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = x.permute(2, 0, 1)
        y, _ = self.lstm(sequence)
        return (y + sequence).permute(1, 2, 0)


class _SEANetStack:
    """The settings encoder and decoder share, and factories of their layers (not a module)."""

    def __init__(self, n_filters: int, n_residual_layers: int, ratios: Sequence[int],
                 activation: str, activation_params: Mapping[str, float], norm: str,
                 kernel_size: int, last_kernel_size: int, residual_kernel_size: int,
                 dilation_base: int, causal: bool, pad_mode: str, true_skip: bool,
                 compress: int, lstm: int):
        self.n_filters = n_filters
        self.ratios = list(ratios)
        self.kernel_size = kernel_size
        self.last_kernel_size = last_kernel_size
        self.lstm = lstm
        self.act = getattr(nn, activation)
        self.activation_params = dict(activation_params)
        self.conv = {"norm": norm, "causal": causal, "pad_mode": pad_mode}
        self.n_residual_layers = n_residual_layers
        self.residual = {"kernel_size": residual_kernel_size, "compress": compress,
                         "true_skip": true_skip, "activation": self.act,
                         "activation_params": self.activation_params}
        self.dilation_base = dilation_base

    def activation(self) -> nn.Module:
        return self.act(**self.activation_params)

    def residual_blocks(self, dim: int) -> list[nn.Module]:
        return [SEANetResnetBlock(dim, self.dilation_base ** j, **self.residual, **self.conv)
                for j in range(self.n_residual_layers)]

    def sconv(self, in_channels: int, out_channels: int, kernel_size: int,
              stride: int = 1) -> SConv1d:
        return SConv1d(in_channels, out_channels, kernel_size, stride, **self.conv)

    def sconv_transpose(self, in_channels: int, out_channels: int,
                        stride: int) -> SConvTranspose1d:
        return SConvTranspose1d(in_channels, out_channels, 2 * stride, stride,
                                norm=self.conv["norm"], causal=self.conv["causal"])


class SEANetEncoder(nn.Module):
    """(B, channels, T) -> (B, latent_dim, ceil(T / prod(ratios))); ratios in encoder order."""

    def __init__(self, channels: int, latent_dim: int, **settings):
        super().__init__()
        stack = _SEANetStack(**settings)
        width = stack.n_filters
        model: list[nn.Module] = [stack.sconv(channels, width, stack.kernel_size)]
        for ratio in stack.ratios:
            model += stack.residual_blocks(width)
            model += [stack.activation(), stack.sconv(width, 2 * width, 2 * ratio, ratio)]
            width *= 2
        if stack.lstm:
            model.append(SLSTM(width, stack.lstm))
        model += [stack.activation(), stack.sconv(width, latent_dim, stack.last_kernel_size)]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """(B, latent_dim, L) -> (B, channels, L x prod(ratios)); upsamples in reverse ratio order."""

    def __init__(self, channels: int, latent_dim: int, final_activation: str | None = None,
                 **settings):
        super().__init__()
        stack = _SEANetStack(**settings)
        width = stack.n_filters * 2 ** len(stack.ratios)
        model: list[nn.Module] = [stack.sconv(latent_dim, width, stack.kernel_size)]
        if stack.lstm:
            model.append(SLSTM(width, stack.lstm))
        for ratio in reversed(stack.ratios):
            model += [stack.activation(), stack.sconv_transpose(width, width // 2, ratio)]
            width //= 2
            model += stack.residual_blocks(width)
        model += [stack.activation(), stack.sconv(width, channels, stack.last_kernel_size)]
        if final_activation is not None:
            model.append(getattr(nn, final_activation)())
        self.model = nn.Sequential(*model)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
