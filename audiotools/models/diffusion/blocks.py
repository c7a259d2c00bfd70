"""Layers the diffusion networks share: timestep Fourier features, rotary positions, attention
(audiotools/models/attention.py) with key masks, a gated feed-forward, and the checks of what a
network is given.

Attribute names (`weight` of the Fourier features, `to_qkv`/`to_q`/`to_kv`/`to_out` of an
attention) are stable-audio-tools' so that its checkpoints map onto these layers by key.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import scaled_dot_product_attention


class FourierFeatures(nn.Module):
    """(B, in_features) -> (B, out_features): [cos, sin] of 2 pi x W^T with random W ~ N(0, std²)
    (trained with the model, as in stable-audio-tools' timestep features)."""

    def __init__(self, in_features: int, out_features: int, std: float = 1.0):
        super().__init__()
        if out_features % 2:
            raise ValueError(f"FourierFeatures out_features={out_features} must be even")
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * x @ self.weight.T
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


def rotary_dim(head_dim: int) -> int:
    """Head dimensions rotated by the rotary embedding: half of each head but at least 32 (SAT's
    choice), never more than the head, and even."""
    dim = min(head_dim, max(head_dim // 2, 32))
    return dim - dim % 2


class RotaryEmbedding(nn.Module):
    """Rotary position angles for the first `dim` dimensions of each attention head."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"rotary dim={dim} must be even and >= 2")
        # Not persistent: derived from `dim`, so a checkpoint need not carry it. SAT's float32
        # expression, so that the frequencies (and a double model's angles) are its own.
        self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, dim, 2).float() / dim),
                             persistent=False)

    def forward(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each (length, dim / 2): the angle of each pair at positions
        0..length-1, in float32 (float64 in a model made double, as SAT's)."""
        dtype = torch.promote_types(self.inv_freq.dtype, torch.float32)
        positions = torch.arange(length, device=self.inv_freq.device, dtype=dtype)
        angles = torch.outer(positions, self.inv_freq.to(dtype))
        return angles.cos(), angles.sin()


def _rotate_halves(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x with dimension i < h turned with i + h by the angles (cos, sin), h = cos.shape[-1];
    the dimensions from 2h on copied. The turn is computed in the angles' dtype: a bf16 x
    (q and k under autocast) is turned in float32 and rounded once, which is also twice as
    fast as mixing the two dtypes in every product."""
    half = cos.shape[-1]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    source = x[..., :2 * half].to(cos.dtype)
    in_place = source.dtype == x.dtype
    turned = out[..., :2 * half] if in_place else torch.empty_like(source)
    first, second = source[..., :half], source[..., half:]
    out_first, out_second = turned[..., :half], turned[..., half:]
    torch.mul(first, cos, out=out_first)
    out_first.addcmul_(second, sin, value=-1)
    torch.mul(second, cos, out=out_second)
    out_second.addcmul_(first, sin)
    if not in_place:
        out[..., :2 * half] = turned
    out[..., 2 * half:] = x[..., 2 * half:]
    return out


class _RotaryHalves(torch.autograd.Function):
    """The rotation in one pass each way (its transpose is the rotation by minus the angles).
    Written with chunk, neg, cat, multiply and add it took eight passes over q and k forward
    and as many backward: about 5% of a small DiT's training step on CPU."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate_halves(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return _rotate_halves(grad, cos, -sin), None, None


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first 2 * cos.shape[-1] dimensions of x (..., N, D) by position (halves
    layout: dimension i pairs with i + cos.shape[-1]); cos and sin (N, dim / 2) broadcast
    against x's leading dimensions."""
    return _RotaryHalves.apply(x, cos, sin)


class Attention(nn.Module):
    """Multi-head attention: self-attention (fused `to_qkv`) or cross-attention to a context of
    width `context_dim` (`to_q`, `to_kv`).

    A cross-attention has `kv_heads` key/value heads (default num_heads), each shared by a group
    of query heads when fewer (grouped-query attention). stable-audio-tools' DiT takes
    context_dim / head_dim of them: a 768-wide context under 64-wide heads gives 12."""

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None,
                 kv_heads: int | None = None, zero_init_output: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.kv_heads = kv_heads or num_heads
        if dim % num_heads or num_heads % self.kv_heads:
            raise ValueError(f"attention dim={dim} needs a multiple of num_heads={num_heads}, "
                             f"itself a multiple of kv_heads={self.kv_heads}")
        self.head_dim = dim // num_heads
        if context_dim is None:
            self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        else:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(context_dim, 2 * self.kv_heads * self.head_dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        if zero_init_output:
            nn.init.zeros_(self.to_out.weight)

    def _heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x (B, N, dim); context (B, S, context_dim) for cross-attention; `mask` (B, S or N)
        True on the keys that may be attended. An item whose keys are all masked gets zeros
        (no information), not the NaN a fully masked softmax gives."""
        if context is None:
            q, k, v = (self._heads(part, self.num_heads)
                       for part in self.to_qkv(x).chunk(3, dim=-1))
        else:
            q = self._heads(self.to_q(x), self.num_heads)
            k, v = (self._heads(part, self.kv_heads)
                    for part in self.to_kv(context).chunk(2, dim=-1))
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if self.kv_heads != self.num_heads:
            group = self.num_heads // self.kv_heads
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        attend = empty = None
        if mask is not None:
            empty = ~mask.any(dim=-1)
            attend = (mask | empty.unsqueeze(-1))[:, None, None, :]
        out = scaled_dot_product_attention(q, k, v, attn_mask=attend)
        if empty is not None:
            out = out * (~empty).view(-1, 1, 1, 1).to(out.dtype)
        batch, _, length, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(batch, length, -1))


class FeedForward(nn.Module):
    """SwiGLU: proj_in to 2 x inner (first half the value, second half the SiLU gate, SAT's
    order), proj_out back; proj_out starts at zero so a residual branch starts as identity."""

    def __init__(self, dim: int, mult: float = 4.0, zero_init_output: bool = True):
        super().__init__()
        inner = int(dim * mult)
        self.proj_in = nn.Linear(dim, 2 * inner)
        self.proj_out = nn.Linear(inner, dim)
        if zero_init_output:
            nn.init.zeros_(self.proj_out.weight)
            nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * F.silu(gate))


def check_unbuilt_conditions(network: str, widths: Mapping[str, int],
                             given: Mapping[str, torch.Tensor | None]) -> None:
    """A condition given to a `network` built without it (its width 0) is an error naming
    both, rather than an input silently ignored."""
    for name, width in widths.items():
        if given[name] is not None and not width:
            raise ValueError(f"{network} got {name} but was built without it ({name}'s width "
                             "in the config is 0)")


def check_unet_input(network: str, x: torch.Tensor, io_channels: int, hop_length: int) -> None:
    """x must be (batch, io_channels, length) with length a multiple of the U-Net's total
    downsampling (`hop_length` = patch_size x prod(factors))."""
    if x.dim() != 3 or x.shape[1] != io_channels:
        raise ValueError(f"{network} expects x (batch, io_channels={io_channels}, length); "
                         f"got {tuple(x.shape)}")
    if x.shape[-1] % hop_length:
        raise ValueError(f"{network} input length {x.shape[-1]} is not a multiple of "
                         f"patch_size x prod(factors) = {hop_length}; pad or crop it")
