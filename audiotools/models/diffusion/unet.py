"""A 1-D U-Net denoiser in the manner of audio-diffusion-pytorch (stable-audio-tools' `adp_1d` /
`adp_cfg_1d`), for raw audio or latents.

Level i downsamples by `factors[i]` to `channels x multipliers[i + 1]` channels, runs
`num_blocks[i]` resnet blocks (group norm, SiLU, conv; the second norm scaled and shifted by
the time/global mapping) and `attentions[i]` transformer blocks (self-attention, cross-attention
to the conditioning tokens with their mask, SwiGLU), keeping each output as a skip; the middle
runs resnet, `attentions[-1]` transformer blocks, resnet; the way up mirrors it, concatenating
the skips (scaled by 1/sqrt 2 with `use_skip_scale`). Attention is used where `attentions` asks,
usually only at the low resolutions where sequences are short. Input-concat conditioning
joins the input as extra channels; the output convolution starts at zero.

This is a network of the same family, not a copy of ADP's modules: its state dicts do not map
onto SAT's `adp_*` checkpoints (network type `adp_unet`, adp.py, is SAT's ADP U-Net).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (
    Attention,
    FeedForward,
    FourierFeatures,
    check_unbuilt_conditions,
    check_unet_input,
)
from .config import UNetConfig


class ResnetBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, groups: int, mapping_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels_in)
        self.conv1 = nn.Conv1d(channels_in, channels, 3, padding=1)
        self.to_scale_shift = nn.Linear(mapping_dim, 2 * channels)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)
        self.skip = (nn.Conv1d(channels_in, channels, 1) if channels_in != channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor, mapping: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.to_scale_shift(F.silu(mapping)).unsqueeze(-1).chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return h + self.skip(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, context_dim: int | None, ff_mult: float):
        super().__init__()
        self.self_attn_norm = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads)
        if context_dim is not None:
            self.cross_attn_norm = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, num_heads, context_dim=context_dim)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None,
                context_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_norm(x))
        if context is not None and hasattr(self, "cross_attn"):
            x = x + self.cross_attn(self.cross_attn_norm(x), context=context, mask=context_mask)
        return x + self.ff(self.ff_norm(x))


class Transformer1d(nn.Module):
    """(B, C, T) -> (B, C, T): transformer blocks over the T positions (the convolutions
    around it locate them, so no positional embedding)."""

    def __init__(self, depth: int, dim: int, num_heads: int, context_dim: int | None,
                 ff_mult: float):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerBlock(dim, num_heads, context_dim, ff_mult) for _ in range(depth))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None,
                context_mask: torch.Tensor | None) -> torch.Tensor:
        tokens = x.transpose(1, 2)
        for layer in self.layers:
            tokens = layer(tokens, context, context_mask)
        return tokens.transpose(1, 2)


class Level(nn.Module):
    """Resnet blocks then (optionally) attention, at one resolution."""

    def __init__(self, channels_in: int, channels: int, blocks: int, attention: int,
                 config: UNetConfig, mapping_dim: int, skip_channels: int = 0):
        super().__init__()
        groups = config.resnet_groups
        self.skip_scale = 2 ** -0.5 if config.use_skip_scale else 1.0
        self.blocks = nn.ModuleList(
            ResnetBlock((channels_in if index == 0 else channels) + skip_channels, channels,
                        groups, mapping_dim) for index in range(blocks))
        self.transformer = None
        if attention:
            self.transformer = Transformer1d(attention, channels, config.attention_heads,
                                             config.cond_token_dim or None, config.ff_mult)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor, context: torch.Tensor | None,
                context_mask: torch.Tensor | None,
                skips: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outputs = []
        for block in self.blocks:
            if skips is not None:
                x = torch.cat([x, skips.pop() * self.skip_scale], dim=1)
            x = block(x, mapping)
            outputs.append(x)
        if self.transformer is not None:
            x = self.transformer(x, context, context_mask)
            outputs[-1] = x
        return x, outputs


def _downsample(channels_in: int, channels: int, factor: int, kernel_multiplier: int) -> nn.Module:
    """Strided conv of kernel factor x multiplier + 1: exactly length / factor frames."""
    kernel = factor * kernel_multiplier + 1
    return nn.Conv1d(channels_in, channels, kernel, stride=factor, padding=kernel // 2)


def _upsample(channels_in: int, channels: int, factor: int, nearest: bool) -> nn.Module:
    """Exactly length x factor frames: nearest + conv, or a transposed conv (even factors)."""
    if factor == 1:
        return nn.Conv1d(channels_in, channels, 3, padding=1)
    if nearest:
        return nn.Sequential(nn.Upsample(scale_factor=factor, mode="nearest"),
                             nn.Conv1d(channels_in, channels, 3, padding=1))
    return nn.ConvTranspose1d(channels_in, channels, 2 * factor, stride=factor,
                              padding=factor // 2)


class UNet1d(nn.Module):
    """x (B, io_channels, T), t (B,) or scalar in [0, 1] -> model output (B, io_channels, T);
    T must be a multiple of patch_size x prod(factors)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        self.io_channels = config.io_channels
        self.patch_size = config.patch_size
        self.hop_length = config.hop_length
        widths = [config.channels * multiplier for multiplier in config.multipliers]
        mapping_dim = config.channels * config.mapping_multiplier
        self.timestep_features = FourierFeatures(1, config.timestep_features_dim)
        self.to_timestep_embed = nn.Sequential(
            nn.Linear(config.timestep_features_dim, mapping_dim), nn.SiLU(),
            nn.Linear(mapping_dim, mapping_dim))
        if config.global_cond_dim:
            self.to_global_embed = nn.Sequential(
                nn.Linear(config.global_cond_dim, mapping_dim), nn.SiLU(),
                nn.Linear(mapping_dim, mapping_dim))
        if config.cond_token_dim:
            self.to_cond_embed = nn.Sequential(
                nn.Linear(config.cond_token_dim, config.cond_token_dim, bias=False), nn.SiLU(),
                nn.Linear(config.cond_token_dim, config.cond_token_dim, bias=False))
        patch = config.patch_size
        self.to_in = nn.Conv1d((config.io_channels + config.input_concat_dim) * patch, widths[0],
                               3, padding=1)
        self.downsamples = nn.ModuleList(
            _downsample(widths[i], widths[i + 1], factor, config.kernel_multiplier_downsample)
            for i, factor in enumerate(config.factors))
        self.down = nn.ModuleList(
            Level(widths[i + 1], widths[i + 1], blocks, config.attentions[i], config, mapping_dim)
            for i, blocks in enumerate(config.num_blocks))
        self.mid_in = ResnetBlock(widths[-1], widths[-1], config.resnet_groups, mapping_dim)
        self.mid_attention = None
        if config.attentions[-1]:
            self.mid_attention = Transformer1d(config.attentions[-1], widths[-1],
                                               config.attention_heads,
                                               config.cond_token_dim or None, config.ff_mult)
        self.mid_out = ResnetBlock(widths[-1], widths[-1], config.resnet_groups, mapping_dim)
        self.up = nn.ModuleList(
            Level(widths[i + 1], widths[i + 1], blocks, config.attentions[i], config, mapping_dim,
                  skip_channels=widths[i + 1])
            for i, blocks in enumerate(config.num_blocks))
        self.upsamples = nn.ModuleList(
            _upsample(widths[i + 1], widths[i], factor, config.use_nearest_upsample)
            for i, factor in enumerate(config.factors))
        self.out_norm = nn.GroupNorm(config.resnet_groups, widths[0])
        self.to_out = nn.Conv1d(widths[0], config.io_channels * patch, 3, padding=1)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def _check(self, x: torch.Tensor, cross_attn_cond: torch.Tensor | None,
               global_cond: torch.Tensor | None, input_concat_cond: torch.Tensor | None) -> None:
        check_unet_input("U-Net", x, self.io_channels, self.hop_length)
        check_unbuilt_conditions(
            "U-Net", {"cross_attn_cond": self.config.cond_token_dim,
                      "global_cond": self.config.global_cond_dim,
                      "input_concat_cond": self.config.input_concat_dim},
            {"cross_attn_cond": cross_attn_cond, "global_cond": global_cond,
             "input_concat_cond": input_concat_cond})
        if self.config.input_concat_dim and input_concat_cond is None:
            raise ValueError(f"U-Net was built with input_concat_dim="
                             f"{self.config.input_concat_dim} and needs input_concat_cond")

    def forward(self, x: torch.Tensor, t: torch.Tensor, *,
                cross_attn_cond: torch.Tensor | None = None,
                cross_attn_mask: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None,
                input_concat_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Arguments as the DiT's (audiotools.models.diffusion.dit); no prepended tokens."""
        self._check(x, cross_attn_cond, global_cond, input_concat_cond)
        batch, _, length = x.shape
        times = t.to(x.dtype).reshape(-1).expand(batch).unsqueeze(-1)
        mapping = self.to_timestep_embed(self.timestep_features(times))
        if global_cond is not None:
            mapping = mapping + self.to_global_embed(global_cond)
        context = self.to_cond_embed(cross_attn_cond) if cross_attn_cond is not None else None
        if input_concat_cond is not None:
            if input_concat_cond.shape[-1] != length:
                input_concat_cond = F.interpolate(input_concat_cond, size=length, mode="nearest")
            x = torch.cat([x, input_concat_cond], dim=1)
        if self.patch_size > 1:  # fold consecutive frames into channels
            x = (x.reshape(batch, x.shape[1], length // self.patch_size, self.patch_size)
                 .transpose(2, 3).reshape(batch, -1, length // self.patch_size))
        h = self.to_in(x)
        first = h
        skips: list[list[torch.Tensor]] = []
        for downsample, level in zip(self.downsamples, self.down, strict=True):
            h, outputs = level(downsample(h), mapping, context, cross_attn_mask)
            skips.append(outputs)
        h = self.mid_in(h, mapping)
        if self.mid_attention is not None:
            h = self.mid_attention(h, context, cross_attn_mask)
        h = self.mid_out(h, mapping)
        for index in reversed(range(len(self.up))):
            h, _ = self.up[index](h, mapping, context, cross_attn_mask, skips=skips[index])
            h = self.upsamples[index](h)
        out = self.to_out(F.silu(self.out_norm(h + first)))
        if self.patch_size > 1:
            out = (out.reshape(batch, self.io_channels, self.patch_size, -1)
                   .transpose(2, 3).reshape(batch, self.io_channels, length))
        return out
