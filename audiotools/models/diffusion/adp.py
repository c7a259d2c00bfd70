"""stable-audio-tools' ADP U-Net (audio-diffusion-pytorch v0.0.94, as SAT's `adp_cfg_1d`,
`adp_1d` and `adp_uncond_1d` networks build it), written here with the same module and
parameter names, so that a SAT state dict (its `model.model.*` tensors) loads one to one.

    to_time, to_features -> to_mapping      the time's Fourier features and the global
                                            condition, summed, through an MLP: the "mapping"
    to_in (Patcher)                         resnet block, then `patch_size` frames folded
    downsamples[i]                          strided conv, resnet blocks, transformer (skips)
    bottleneck                              resnet, transformer, resnet
    upsamples[k] (deepest level first)      resnet blocks on [x, skip], transformer, upsample
    to_out (Unpatcher)                      frames unfolded, resnet block

Each resnet block's second norm is scaled and shifted by the mapping. A transformer block is
self-attention, cross-attention to the conditioning tokens, and a GELU feed-forward, each
pre-normed. Where SAT's behaviour is unusual it is kept, since its weights expect it:
- the keys and values of padding tokens are zeroed (not masked out of the softmax), so they
  still take a share of the attention;
- self-attention normalises its queries and its keys/values with two separate layer norms;
- every parameter starts at half of PyTorch's initialisation (SAT's wrappers halve them).

What is not SAT's: CFG is the sampler's (audiotools.sampling), not the network's; the learned
null embedding (`null_embedding_length`) replaces the tokens of an item whose condition is null
and attends to all of its rows (SAT keeps the conditional item's mask on it: the same output
where the mask has no padding, as with number, int and CLAP conditions). SAT's STFT mode,
`use_xattn_time`, context channels below the first level and causal convolutions are not
implemented (a migrated config using them is refused).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import scaled_dot_product_attention
from .blocks import check_unbuilt_conditions, check_unet_input
from .config import ADPUNetConfig

# SAT's transformer input norm has this many groups whatever the width.
_TRANSFORMER_GROUPS = 32
# SAT's ADP wrappers multiply every initial parameter by this.
_INIT_SCALE = 0.5


def _same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """(left, right) zero padding giving ceil(length / stride) frames: kernel - stride in all,
    the odd one on the left, plus what completes the last window on the right."""
    total = kernel - stride
    frames = math.ceil((length - kernel + total) / stride + 1)
    extra = (frames - 1) * stride + kernel - total - length
    return total - total // 2, total // 2 + extra


class Conv(nn.Conv1d):
    """A conv that pads itself to `ceil(length / stride)` frames (SAT's Conv1d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, _same_padding(x.shape[-1], self.kernel_size[0],
                                                      self.stride[0])))


class TransposedConv(nn.ConvTranspose1d):
    """Exactly `length x stride` frames: the transposed conv's kernel - stride extra frames
    trimmed, the odd one on the left (SAT's ConvTranspose1d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        total = self.kernel_size[0] - self.stride[0]
        return y[..., total - total // 2:y.shape[-1] - total // 2]


class ChannelsLast(nn.Module):
    """(B, C, T) <-> (B, T, C); a parameter-free step, kept so that the layers around it have
    SAT's indices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class ConvBlock(nn.Module):
    """Group norm (then the mapping's scale and shift), SiLU, conv."""

    def __init__(self, channels_in: int, channels_out: int, groups: int, kernel: int = 3):
        super().__init__()
        self.groupnorm = nn.GroupNorm(groups, channels_in)
        self.project = Conv(channels_in, channels_out, kernel)

    def forward(self, x: torch.Tensor,
                scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.groupnorm(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.project(F.silu(x))


class MappingToScaleShift(nn.Module):
    def __init__(self, mapping_dim: int, channels: int):
        super().__init__()
        self.to_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(mapping_dim, 2 * channels))

    def forward(self, mapping: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = self.to_scale_shift(mapping).unsqueeze(-1).chunk(2, dim=1)
        return scale, shift


class ResnetBlock(nn.Module):
    """Two conv blocks, the second modulated by the mapping (when the network has one), plus
    the input (1x1 conv when the width changes)."""

    def __init__(self, channels_in: int, channels_out: int, groups: int,
                 mapping_dim: int | None):
        super().__init__()
        self.block1 = ConvBlock(channels_in, channels_out, groups)
        if mapping_dim is not None:
            self.to_scale_shift = MappingToScaleShift(mapping_dim, channels_out)
        self.block2 = ConvBlock(channels_out, channels_out, groups)
        self.to_out = (Conv(channels_in, channels_out, 1) if channels_in != channels_out
                       else nn.Identity())

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None) -> torch.Tensor:
        scale_shift = self.to_scale_shift(mapping) if mapping is not None else None
        return self.block2(self.block1(x), scale_shift) + self.to_out(x)


class Patcher(nn.Module):
    """Resnet block at full resolution, then each `patch` frames folded into channels."""

    def __init__(self, channels_in: int, channels_out: int, patch: int, mapping_dim: int | None):
        super().__init__()
        self.patch = patch
        self.block = ResnetBlock(channels_in, channels_out // patch, 1, mapping_dim)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None) -> torch.Tensor:
        x = self.block(x, mapping)
        batch, channels, length = x.shape
        return (x.reshape(batch, channels, length // self.patch, self.patch).transpose(2, 3)
                .reshape(batch, channels * self.patch, length // self.patch))


class Unpatcher(nn.Module):
    """Channels unfolded into `patch` frames each, then a resnet block."""

    def __init__(self, channels_in: int, channels_out: int, patch: int,
                 mapping_dim: int | None):
        super().__init__()
        self.patch = patch
        self.block = ResnetBlock(channels_in // patch, channels_out, 1, mapping_dim)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None) -> torch.Tensor:
        batch, channels, length = x.shape
        x = (x.reshape(batch, channels // self.patch, self.patch, length).transpose(2, 3)
             .reshape(batch, channels // self.patch, length * self.patch))
        return self.block(x, mapping)


class HeadsAttention(nn.Module):
    """Scaled dot-product attention over heads, then the output projection."""

    def __init__(self, heads: int, head_features: int, dim_out: int):
        super().__init__()
        self.heads = heads
        self.to_out = nn.Linear(heads * head_features, dim_out)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        batch = q.shape[0]
        q, k, v = (part.reshape(batch, part.shape[1], self.heads, -1).transpose(1, 2)
                   for part in (q, k, v))
        out = scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(batch, out.shape[2], -1))


class Attention(nn.Module):
    """Pre-normed attention of x (B, N, dim) to itself or to a context (B, S, context_dim)."""

    def __init__(self, dim: int, heads: int, head_features: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_features
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim or dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * inner, bias=False)
        self.attention = HeadsAttention(heads, head_features, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask` (B, S) True on real context tokens: the others' keys and values are zeroed
        (SAT's masking)."""
        source = x if context is None else context
        k, v = self.to_kv(self.norm_context(source)).chunk(2, dim=-1)
        if mask is not None:
            keep = mask.unsqueeze(-1).to(k.dtype)
            k, v = k * keep, v * keep
        return self.attention(self.to_q(self.norm(x)), k, v)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_features: int, multiplier: int,
                 context_dim: int | None):
        super().__init__()
        self.attention = Attention(dim, heads, head_features)
        if context_dim:
            self.cross_attention = Attention(dim, heads, head_features, context_dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, dim * multiplier), nn.GELU(),
                                          nn.Linear(dim * multiplier, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None,
                mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attention(x)
        if hasattr(self, "cross_attention"):
            x = x + self.cross_attention(x, context, mask)
        return x + self.feed_forward(x)


class Transformer(nn.Module):
    """(B, C, T) -> (B, C, T): group norm and a 1x1 conv in, transformer blocks over the T
    positions (no positional encoding: the convolutions locate them), a 1x1 conv out."""

    def __init__(self, depth: int, width: int, config: ADPUNetConfig):
        super().__init__()
        heads, features = config.attention_shape(width)
        self.to_in = nn.Sequential(nn.GroupNorm(_TRANSFORMER_GROUPS, width, eps=1e-6),
                                   Conv(width, width, 1), ChannelsLast())
        self.blocks = nn.ModuleList(
            TransformerBlock(width, heads, features, config.attention_multiplier or 1,
                             config.cond_token_dim or None) for _ in range(depth))
        self.to_out = nn.Sequential(ChannelsLast(), Conv(width, width, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None,
                mask: torch.Tensor | None) -> torch.Tensor:
        x = self.to_in(x)
        for block in self.blocks:
            x = block(x, context, mask)
        return self.to_out(x)


def _transformer(depth: int, width: int, config: ADPUNetConfig) -> Transformer | None:
    return Transformer(depth, width, config) if depth else None


def _attend(transformer: Transformer | None, x: torch.Tensor, context: torch.Tensor | None,
            mask: torch.Tensor | None) -> torch.Tensor:
    return x if transformer is None else transformer(x, context, mask)


class DownLevel(nn.Module):
    """Downsample, resnet blocks, transformer; every block's output is a skip."""

    def __init__(self, channels_in: int, channels: int, level: int, config: ADPUNetConfig,
                 mapping_dim: int | None):
        super().__init__()
        factor = config.factors[level]
        self.downsample = Conv(channels_in, channels,
                               factor * config.kernel_multiplier_downsample + 1, stride=factor)
        self.blocks = nn.ModuleList(
            ResnetBlock(channels, channels, config.resnet_groups, mapping_dim)
            for _ in range(config.num_blocks[level]))
        self.transformer = _transformer(config.attentions[level], channels, config)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None,
                context: torch.Tensor | None,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.downsample(x)
        skips = []
        for block in self.blocks:
            x = block(x, mapping)
            skips.append(x)
        if self.transformer is not None:
            x = self.transformer(x, context, mask)
            skips.append(x)
        return x, skips


class Middle(nn.Module):
    def __init__(self, channels: int, config: ADPUNetConfig, mapping_dim: int | None):
        super().__init__()
        self.pre_block = ResnetBlock(channels, channels, config.resnet_groups, mapping_dim)
        self.transformer = _transformer(config.attentions[-1], channels, config)
        self.post_block = ResnetBlock(channels, channels, config.resnet_groups, mapping_dim)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None,
                context: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        x = _attend(self.transformer, self.pre_block(x, mapping), context, mask)
        return self.post_block(x, mapping)


def _upsample(channels_in: int, channels: int, factor: int, nearest: bool) -> nn.Module:
    if factor == 1:
        return Conv(channels_in, channels, 3)
    if nearest:
        return nn.Sequential(nn.Upsample(scale_factor=factor, mode="nearest"),
                             Conv(channels_in, channels, 3))
    return TransposedConv(channels_in, channels, 2 * factor, stride=factor)


class UpLevel(nn.Module):
    """Resnet blocks each on [x, a skip of the matching down level] (one more block when that
    level had a transformer), transformer, upsample."""

    def __init__(self, channels: int, channels_out: int, level: int, config: ADPUNetConfig,
                 mapping_dim: int | None):
        super().__init__()
        self.skip_scale = 2 ** -0.5 if config.use_skip_scale else 1.0
        count = config.num_blocks[level] + (1 if config.attentions[level] else 0)
        self.blocks = nn.ModuleList(
            ResnetBlock(2 * channels, channels, config.resnet_groups, mapping_dim)
            for _ in range(count))
        self.transformer = _transformer(config.attentions[level], channels, config)
        self.upsample = _upsample(channels, channels_out, config.factors[level],
                                  config.use_nearest_upsample)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], mapping: torch.Tensor | None,
                context: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(torch.cat([x, skips.pop() * self.skip_scale], dim=1), mapping)
        return self.upsample(_attend(self.transformer, x, context, mask))


class FourierTime(nn.Module):
    """t (B,) -> (B, dim + 1): t itself, then sin and cos of 2 pi t w for dim / 2 learned
    frequencies w."""

    def __init__(self, dim: int):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t.unsqueeze(-1)
        angles = t * self.weights * 2 * math.pi
        return torch.cat([t, angles.sin(), angles.cos()], dim=-1)


class NullEmbedding(nn.Module):
    """The learned tokens that stand for "no condition": row i for token i."""

    def __init__(self, length: int, features: int):
        super().__init__()
        self.embedding = nn.Embedding(length, features)

    def forward(self, length: int) -> torch.Tensor:
        if length > self.embedding.num_embeddings:
            raise ValueError(f"{length} cross-attention tokens, but the null embedding has "
                             f"{self.embedding.num_embeddings} (null_embedding_length)")
        return self.embedding.weight[:length]


class ADPUNet(nn.Module):
    """x (B, io_channels, T), t (B,) or scalar in [0, 1] -> model output (B, io_channels, T);
    T must be a multiple of patch_size x prod(factors)."""

    def __init__(self, config: ADPUNetConfig):
        super().__init__()
        self.config = config
        self.io_channels = config.io_channels
        self.hop_length = config.hop_length
        widths = [config.channels * multiplier for multiplier in config.multipliers]
        mapping_dim = None
        if config.use_context_time or config.global_cond_dim:
            mapping_dim = config.channels * config.context_features_multiplier
            self.to_mapping = nn.Sequential(
                nn.Linear(mapping_dim, mapping_dim), nn.GELU(),
                nn.Linear(mapping_dim, mapping_dim), nn.GELU())
        if config.use_context_time:
            self.to_time = nn.Sequential(
                nn.Sequential(FourierTime(config.channels),
                              nn.Linear(config.channels + 1, mapping_dim)), nn.GELU())
        if config.global_cond_dim:
            self.to_features = nn.Sequential(nn.Linear(config.global_cond_dim, mapping_dim),
                                             nn.GELU())
        self.to_in = Patcher(config.io_channels + config.input_concat_dim, widths[0],
                             config.patch_size, mapping_dim)
        levels = range(len(config.factors))
        self.downsamples = nn.ModuleList(
            DownLevel(widths[i], widths[i + 1], i, config, mapping_dim) for i in levels)
        self.bottleneck = Middle(widths[-1], config, mapping_dim)
        self.upsamples = nn.ModuleList(
            UpLevel(widths[i + 1], widths[i], i, config, mapping_dim) for i in reversed(levels))
        self.to_out = Unpatcher(widths[0], config.io_channels, config.patch_size, mapping_dim)
        if config.null_embedding_length:
            self.fixed_embedding = NullEmbedding(config.null_embedding_length,
                                                 config.cond_token_dim)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.mul_(_INIT_SCALE)

    def _check(self, x: torch.Tensor, **given: torch.Tensor | None) -> None:
        check_unet_input("ADP U-Net", x, self.io_channels, self.hop_length)
        widths = {"cross_attn_cond": self.config.cond_token_dim,
                  "global_cond": self.config.global_cond_dim,
                  "input_concat_cond": self.config.input_concat_dim}
        check_unbuilt_conditions("ADP U-Net", widths, given)
        for name, width in widths.items():
            if given[name] is None and width:
                raise ValueError(f"ADP U-Net was built with {name} (width {width}) and needs it")

    def _mapping(self, t: torch.Tensor, global_cond: torch.Tensor | None,
                 like: torch.Tensor) -> torch.Tensor | None:
        """The time's and global condition's sum through to_mapping (None: neither)."""
        parts = []
        if self.config.use_context_time:
            parts.append(self.to_time(t.to(like.dtype).reshape(-1).expand(like.shape[0])))
        if global_cond is not None:
            parts.append(self.to_features(global_cond))
        return self.to_mapping(sum(parts)) if parts else None

    def _context(self, tokens: torch.Tensor | None, mask: torch.Tensor | None,
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The tokens with the null embedding (every row attended) for items whose condition
        is null (no real token), when the network has one."""
        if tokens is None or mask is None or not self.config.null_embedding_length:
            return tokens, mask
        null = ~mask.any(dim=-1)
        rows = self.fixed_embedding(tokens.shape[1]).to(tokens.dtype)
        return (torch.where(null[:, None, None], rows, tokens), mask | null[:, None])

    def forward(self, x: torch.Tensor, t: torch.Tensor, *,
                cross_attn_cond: torch.Tensor | None = None,
                cross_attn_mask: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None,
                input_concat_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Arguments as the DiT's (audiotools.models.diffusion.dit); no prepended tokens."""
        self._check(x, cross_attn_cond=cross_attn_cond, global_cond=global_cond,
                    input_concat_cond=input_concat_cond)
        mapping = self._mapping(t, global_cond, x)
        context, mask = self._context(cross_attn_cond, cross_attn_mask)
        if input_concat_cond is not None:
            if input_concat_cond.shape[-1] != x.shape[-1]:
                input_concat_cond = F.interpolate(input_concat_cond, size=x.shape[-1],
                                                  mode="nearest")
            x = torch.cat([x, input_concat_cond], dim=1)
        h = self.to_in(x, mapping)
        skips: list = [h]
        for level in self.downsamples:
            h, level_skips = level(h, mapping, context, mask)
            skips.append(level_skips)
        h = self.bottleneck(h, mapping, context, mask)
        for level in self.upsamples:
            h = level(h, skips.pop(), mapping, context, mask)
        return self.to_out(h + skips.pop(), mapping)
