"""Layers the diffusion networks share: timestep Fourier features, rotary positions, attention
through `scaled_dot_product_attention` with key masks, and a gated feed-forward.

Attribute names (`weight` of the Fourier features, `to_qkv`/`to_q`/`to_kv`/`to_out` of an
attention) are stable-audio-tools' so that its checkpoints map onto these layers by key.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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
        # Not persistent: derived from `dim`, so a checkpoint need not carry it.
        self.register_buffer("inv_freq", base ** -(torch.arange(0, dim, 2).float() / dim),
                             persistent=False)

    def forward(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each (length, dim), for positions 0..length-1 (float32)."""
        positions = torch.arange(length, device=self.inv_freq.device, dtype=torch.float32)
        angles = torch.outer(positions, self.inv_freq.float())
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first cos.shape[-1] dimensions of x (B, H, N, D) by position (halves layout:
    dimension i pairs with i + dim/2)."""
    dim = cos.shape[-1]
    rotated, rest = x[..., :dim].float(), x[..., dim:]
    first, second = rotated.chunk(2, dim=-1)
    turned = torch.cat([-second, first], dim=-1)
    out = rotated * cos + turned * sin
    return torch.cat([out.to(x.dtype), rest], dim=-1)


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
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
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
