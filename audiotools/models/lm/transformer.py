"""The causal transformer of the token LM: pre-norm layers with self-attention, optional
cross-attention to conditioning tokens, a GELU feed-forward, and a static KV cache.

Names follow AudioCraft's `StreamingTransformer` so that its `state_dict` maps onto this one
key for key: `layers[i].self_attn.in_proj_weight` (q, k and v fused, as AudioCraft's
attention stores them), `.self_attn.out_proj`, `.cross_attention.in_proj_weight` (queries from
the first third, keys and values from the rest), `.norm_cross`, `.linear1`, `.linear2`,
`.norm1`, `.norm2`. Positions are sinusoidal (added to the input, AudioCraft's
`create_sin_embedding` layout: cosines then sines, periods up to `max_period`), rotary
(interleaved pairs of each head's channels) or both.

Decoding writes keys and values into buffers allocated once for the whole generation
(`KVCache`) and attends over a view of the positions written so far, so a step allocates no
cache (AudioCraft concatenates its cache at every step) and reads no more of it than it
needs: a batch-1 step streams every key and value it attends from memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import scaled_dot_product_attention


def sinusoidal_embedding(positions: torch.Tensor, dim: int, max_period: float = 10000.0,
                         ) -> torch.Tensor:
    """(S, dim) float32 for positions (S,): cos then sin of position / max_period^(i / (half
    - 1)), the layout AudioCraft's checkpoints were trained with."""
    half = dim // 2
    exponent = torch.arange(half, device=positions.device, dtype=torch.float32) / (half - 1)
    phase = positions.float().unsqueeze(-1) / max_period ** exponent
    return torch.cat([phase.cos(), phase.sin()], dim=-1)


def rotary_tables(positions: torch.Tensor, head_dim: int, max_period: float = 10000.0,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (S, head_dim / 2) of the rotation of each channel pair at `positions`."""
    frequencies = max_period ** (-torch.arange(0, head_dim, 2, device=positions.device,
                                               dtype=torch.float32) / head_dim)
    angles = positions.float().unsqueeze(-1) * frequencies
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, S, D) with channel pairs (2i, 2i + 1) rotated by the angles of each position."""
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


@dataclass
class KVCache:
    """Keys and values of every layer, (layers, B, heads, length, head_dim) each, allocated
    once; a step writes its positions in place."""

    keys: torch.Tensor
    values: torch.Tensor

    @classmethod
    def allocate(cls, layers: int, batch: int, heads: int, length: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype) -> KVCache:
        shape = (layers, batch, heads, length, head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype),
                   torch.zeros(shape, device=device, dtype=dtype))

    @property
    def length(self) -> int:
        return self.keys.shape[3]


class MultiheadAttention(nn.Module):
    """Attention with q, k, v projections fused in one weight; in cross-attention the queries
    come from the sequence (first third of the weight) and keys and values from the
    conditioning tokens (the rest, one matmul)."""

    def __init__(self, dim: int, num_heads: int, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim)) if bias else None
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, n * dim) -> n tensors (B, H, S, D)."""
        return x.unflatten(-1, (-1, self.num_heads, self.dim // self.num_heads)).permute(
            2, 0, 3, 1, 4).unbind(0)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._heads(F.linear(x, self.in_proj_weight, self.in_proj_bias))

    def query(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.in_proj_bias is None else self.in_proj_bias[:self.dim]
        return self._heads(F.linear(x, self.in_proj_weight[:self.dim], bias))[0]

    def key_value(self, source: torch.Tensor) -> tuple[torch.Tensor, ...]:
        bias = None if self.in_proj_bias is None else self.in_proj_bias[self.dim:]
        return self._heads(F.linear(source, self.in_proj_weight[self.dim:], bias))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None, causal: bool = False) -> torch.Tensor:
        """softmax(q k^T / sqrt(D)) v over the keys `mask` allows (bool, True: attend)."""
        out = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))


@dataclass
class Context:
    """What every layer of one forward shares: the positional tables of its positions, the
    self-attention mask (None: causal, or with `causal` False every key), the cache and the
    position this call writes there from (it attends the cache up to its last position), the
    cross-attention source or its precomputed keys and values, and their mask."""

    position_embedding: torch.Tensor | None = None
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    self_mask: torch.Tensor | None = None
    causal: bool = True
    cache: KVCache | None = None
    start: int = 0
    cross_source: torch.Tensor | None = None
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    cross_mask: torch.Tensor | None = None


class TransformerLayer(nn.Module):
    """x + SA(norm1 x), then + CA(norm_cross x, conditions), then + FFN(norm2 x)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, *, cross_attention: bool,
                 bias_attn: bool = False, bias_ff: bool = False, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads, bias_attn, dropout)
        self.cross_attention = (MultiheadAttention(dim, num_heads, bias_attn, dropout)
                                if cross_attention else None)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-5) if cross_attention else None
        self.linear1 = nn.Linear(dim, ffn_dim, bias=bias_ff)
        self.linear2 = nn.Linear(ffn_dim, dim, bias=bias_ff)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: Context, index: int) -> torch.Tensor:
        q, k, v = self.self_attn.qkv(self.norm1(x))
        if context.rotary is not None:
            q, k = (apply_rotary(t, *context.rotary) for t in (q, k))
        if context.cache is not None:
            end = context.start + k.shape[2]
            keys = context.cache.keys[index, :, :, :end]
            values = context.cache.values[index, :, :, :end]
            keys[:, :, context.start:].copy_(k)
            values[:, :, context.start:].copy_(v)
            k, v = keys, values
        x = x + self.dropout(self.self_attn.attend(q, k, v, context.self_mask,
                                                   causal=context.causal))
        if self.cross_attention is not None:
            if context.cross_kv is not None:
                ck, cv = context.cross_kv[index]
            else:
                ck, cv = self.cross_attention.key_value(context.cross_source)
            query = self.cross_attention.query(self.norm_cross(x))
            x = x + self.dropout(self.cross_attention.attend(query, ck, cv, context.cross_mask))
        hidden = self.dropout(F.gelu(self.linear1(self.norm2(x))))
        return x + self.dropout(self.linear2(hidden))


class Transformer(nn.Module):
    """A stack of pre-norm layers with positional information; no parameters besides them."""

    def __init__(self, dim: int, num_heads: int, num_layers: int, ffn_dim: int, *,
                 cross_attention: bool = False, bias_attn: bool = False, bias_ff: bool = False,
                 dropout: float = 0.0, positional_embedding: str = "sin",
                 max_period: float = 10000.0, positional_scale: float = 1.0):
        super().__init__()
        if positional_embedding not in ("sin", "rope", "sin_rope"):
            raise ValueError(f"positional_embedding={positional_embedding!r}: one of sin, "
                             "rope, sin_rope")
        self.dim = dim
        self.num_heads = num_heads
        self.positional_embedding = positional_embedding
        self.max_period = max_period
        self.positional_scale = positional_scale
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, ffn_dim, cross_attention=cross_attention,
                             bias_attn=bias_attn, bias_ff=bias_ff, dropout=dropout)
            for _ in range(num_layers))

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def cross_key_values(self, source: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's cross-attention keys and values of `source` (fixed while decoding)."""
        return [layer.cross_attention.key_value(source) for layer in self.layers]

    def positional(self, positions: torch.Tensor) -> Context:
        """The positional tables of `positions` (S,) int64, in a fresh context."""
        context = Context()
        if self.positional_embedding in ("sin", "sin_rope"):
            context.position_embedding = self.positional_scale * sinusoidal_embedding(
                positions, self.dim, self.max_period)
        if self.positional_embedding in ("rope", "sin_rope"):
            context.rotary = rotary_tables(positions, self.head_dim, self.max_period)
        return context

    def forward(self, x: torch.Tensor, context: Context) -> torch.Tensor:
        """x (B, S, dim) at the positions whose tables `context` holds."""
        if context.position_embedding is not None:
            x = x + context.position_embedding.to(x.dtype)
        for index, layer in enumerate(self.layers):
            x = layer(x, context, index)
        return x


def init_weights(transformer: Transformer) -> None:
    """AudioCraft's MusicGen init (weight_init gaussian, depthwise_init current,
    zero_bias_init): Linear weights truncated normal (3 sigma) of std 1 / sqrt(fan_in) /
    sqrt(2 depth) in layer `depth` (1-based), biases zero. The fused in-projections are not
    Linear modules there and keep PyTorch's Linear default, uniform in +-1 / sqrt(fan_in)."""
    for depth, layer in enumerate(transformer.layers, start=1):
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                truncated_normal(module.weight, module.in_features, depth)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, MultiheadAttention):
                bound = 1 / math.sqrt(module.dim)
                nn.init.uniform_(module.in_proj_weight, -bound, bound)
                if module.in_proj_bias is not None:
                    nn.init.zeros_(module.in_proj_bias)


def truncated_normal(weight: torch.Tensor, fan_in: int, depth: int | None = None) -> None:
    std = 1 / math.sqrt(fan_in) / (math.sqrt(2 * depth) if depth else 1.0)
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std)
