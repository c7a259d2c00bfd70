"""Scaled dot-product attention for every family's transformer: torch's fused kernels, except
where a CPU runs them slowly.

Under CPU bf16 autocast (what `precision: auto` picks on a CPU with AVX-512 BF16), torch's
flash kernel for the CPU is slower than spelling the attention out: for one DiT layer's 4 x 4
heads x 257 tokens x 64 it took 20 ms forward and backward against 8.6 ms for two bf16 batched
matmuls around a softmax (1 thread, Zen 4). The spelt-out form is what autocast makes of a
hand-written attention (bf16 matmuls, softmax accumulated in float32); rounding the scores to
bf16 costs accuracy: its error against float64 attention of the same bf16 inputs was 0.4 %
for unit-variance q and k and 1.2 % for q and k three times larger (flash: 0.2 %). It
materialises the (B, H, L, S) scores, so it is taken only while they stay small; everywhere
else (float32, any GPU, long sequences) attention goes through
`F.scaled_dot_product_attention`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Scores (B * H * L * S) up to this many elements go the spelt-out way: 32 MB of bf16 scores
# and as much of weights per call, which the backward keeps per layer.
SPELT_OUT_MAX_SCORES = 1 << 24


def spelt_out(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether attention of q (..., L, D) to k (..., S, D) is computed by `_spelt_out`."""
    scores = q.shape[:-1].numel() * k.shape[-2]
    return (q.device.type == "cpu" and q.dtype == torch.bfloat16
            and scores <= SPELT_OUT_MAX_SCORES)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False
                                 ) -> torch.Tensor:
    """`F.scaled_dot_product_attention`'s contract (q (..., L, D), k and v (..., S, D), a bool
    `attn_mask` True where a query may attend, `is_causal` aligned top-left), by the faster
    route for these inputs on this device."""
    if not spelt_out(q, k):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                              dropout_p=dropout_p, is_causal=is_causal)
    return _spelt_out(q, k, v, attn_mask, dropout_p, is_causal)


def _spelt_out(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               attn_mask: torch.Tensor | None, dropout_p: float, is_causal: bool
               ) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v in q's dtype: the bf16 matmuls accumulate in float32, and so
    does torch's CPU softmax of bf16 (it equals the float32 softmax rounded to bf16)."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if is_causal:
        length, source = scores.shape[-2:]
        causal = torch.ones(length, source, dtype=torch.bool, device=q.device).tril()
        attn_mask = causal if attn_mask is None else attn_mask & causal
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    if attn_mask is not None:  # a query that may attend nothing gets zeros, as from SDPA
        weights = weights.masked_fill(~attn_mask, 0.0)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return weights @ v
