"""The diffusion transformer of Stable Audio Open / 2.0 (stable-audio-tools' `DiffusionTransformer`
with its `continuous_transformer`).

Latents (B, C, T), optionally with input-concat channels, pass a zero-initialised 1x1 residual
conv, are folded into tokens of `patch_size` frames, projected to `embed_dim`, and run through
pre-norm blocks (self-attention with rotary positions, cross-attention to the conditioning
tokens, SwiGLU feed-forward), then back. The timestep's Fourier features go through an MLP and,
added to the projected global condition, either become one more prepended token (`prepend`)
or modulate every block (`adaLN`: scale, shift and gate of the self-attention and feed-forward
branches). Prepended conditioning tokens come before it and are dropped from the output.

State-dict keys follow SAT's `DiffusionTransformer` (in a SAT diffusion checkpoint: under
`model.model.`), except:

    SAT key                                        here
    transformer.layers.N.{pre_norm,cross_attend_norm,ff_norm}.gamma   ....weight
    transformer.layers.N.{...}_norm.beta  (zero buffers)               (none: bias-free norms)
    transformer.layers.N.ff.ff.0.proj.{weight,bias}                    ....ff.proj_in.{...}
    transformer.layers.N.ff.ff.2.{weight,bias}                         ....ff.proj_out.{...}
    transformer.rotary_pos_emb.inv_freq  (buffer)                      (none: not persistent)

Behaviour that differs from SAT:
- cross-attention honours `cross_attn_mask` (SAT drops the mask and attends to the zeroed
  padding tokens); `mask_cross_attention: false` reproduces SAT, which its weights expect.
  Prepended tokens honour `prepend_cond_mask` (SAT ignores it).
- `transformer.project_out` starts at zero, so an untrained model outputs exactly zero (SAT
  initialises it randomly); loaded weights replace it.
- the rotary embedding never rotates more dimensions than a head has (SAT: max(head/2, 32),
  which fails for heads under 32 wide); identical for SAT's configurations.
- no CFG inside the model: guidance is the sampler's (audiotools.sampling), for every network.
- SAT's `timestep_cond_type: input_concat`, memory tokens, conformer, qk-norm, differential
  attention and layer-scale options are not implemented.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (
    Attention,
    FeedForward,
    FourierFeatures,
    RotaryEmbedding,
    check_unbuilt_conditions,
    rotary_dim,
)
from .config import DiTConfig

# Per-block adaLN parameters: scale, shift, gate of the self-attention, then of the ff.
_MODULATIONS = 6


def _mlp(dim_in: int, dim_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out, bias=bias), nn.SiLU(),
                         nn.Linear(dim_out, dim_out, bias=bias))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, context_dim: int | None, ff_mult: float,
                 ada_ln: bool):
        super().__init__()
        self.pre_norm = nn.LayerNorm(dim, bias=False)
        self.self_attn = Attention(dim, num_heads)
        if context_dim is not None:
            self.cross_attend_norm = nn.LayerNorm(dim, bias=False)
            # SAT's layout: context_dim / head_dim key/value heads.
            self.cross_attn = Attention(dim, num_heads, context_dim=context_dim,
                                        kv_heads=context_dim * num_heads // dim)
        self.ff_norm = nn.LayerNorm(dim, bias=False)
        self.ff = FeedForward(dim, ff_mult)
        if ada_ln:
            # Per-block offsets added to the shared modulation (SAT's init: N(0, 1/dim)).
            self.to_scale_shift_gate = nn.Parameter(torch.randn(_MODULATIONS * dim) / dim ** 0.5)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
                self_mask: torch.Tensor | None, context: torch.Tensor | None,
                context_mask: torch.Tensor | None,
                modulation: torch.Tensor | None) -> torch.Tensor:
        if modulation is not None:
            (scale_attn, shift_attn, gate_attn, scale_ff, shift_ff,
             gate_ff) = (self.to_scale_shift_gate + modulation).unsqueeze(1).chunk(6, dim=-1)
            branch = self.pre_norm(x) * (1 + scale_attn) + shift_attn
            x = x + self.self_attn(branch, mask=self_mask, rotary=rotary) * torch.sigmoid(
                1 - gate_attn)
        else:
            x = x + self.self_attn(self.pre_norm(x), mask=self_mask, rotary=rotary)
        if context is not None and hasattr(self, "cross_attn"):
            x = x + self.cross_attn(self.cross_attend_norm(x), context=context, mask=context_mask)
        if modulation is not None:
            branch = self.ff_norm(x) * (1 + scale_ff) + shift_ff
            return x + self.ff(branch) * torch.sigmoid(1 - gate_ff)
        return x + self.ff(self.ff_norm(x))


class ContinuousTransformer(nn.Module):
    """Tokens (B, N, dim_in) -> (B, N + prepended, dim_out); the prepended tokens (already at
    `dim`) come first and take rotary positions like the others."""

    def __init__(self, dim: int, depth: int, num_heads: int, dim_in: int, dim_out: int,
                 context_dim: int | None, ff_mult: float, ada_ln: bool):
        super().__init__()
        self.project_in = nn.Linear(dim_in, dim, bias=False)
        self.project_out = nn.Linear(dim, dim_out, bias=False)
        nn.init.zeros_(self.project_out.weight)
        self.rotary_pos_emb = RotaryEmbedding(rotary_dim(dim // num_heads))
        if ada_ln:
            self.global_cond_embedder = nn.Sequential(
                nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, _MODULATIONS * dim))
        self.layers = nn.ModuleList(
            TransformerBlock(dim, num_heads, context_dim, ff_mult, ada_ln) for _ in range(depth))

    def forward(self, x: torch.Tensor, prepend: torch.Tensor | None = None,
                prepend_mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project_in(x)
        self_mask = None
        if prepend is not None:
            x = torch.cat([prepend, x], dim=1)
            if prepend_mask is not None:
                own = prepend_mask.new_ones(x.shape[0], x.shape[1] - prepend.shape[1])
                self_mask = torch.cat([prepend_mask, own], dim=1)
        rotary = self.rotary_pos_emb(x.shape[1])
        modulation = None
        if global_cond is not None and hasattr(self, "global_cond_embedder"):
            modulation = self.global_cond_embedder(global_cond)
        for layer in self.layers:
            x = layer(x, rotary, self_mask, context, context_mask, modulation)
        return self.project_out(x)


class DiffusionTransformer(nn.Module):
    """x (B, io_channels, T), t (B,) or scalar in [0, 1] -> model output (B, io_channels, T)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        self.io_channels = config.io_channels
        self.patch_size = config.patch_size
        embed = config.embed_dim
        self.timestep_features = FourierFeatures(1, config.timestep_features_dim)
        self.to_timestep_embed = nn.Sequential(
            nn.Linear(config.timestep_features_dim, embed), nn.SiLU(), nn.Linear(embed, embed))
        context_dim = None
        if config.cond_token_dim:
            context_dim = embed if config.project_cond_tokens else config.cond_token_dim
            self.to_cond_embed = _mlp(config.cond_token_dim, context_dim, bias=False)
        if config.global_cond_dim:
            width = embed if config.project_global_cond else config.global_cond_dim
            self.to_global_embed = _mlp(config.global_cond_dim, width, bias=False)
        if config.prepend_cond_dim:
            self.to_prepend_embed = _mlp(config.prepend_cond_dim, embed, bias=False)
        dim_in = config.io_channels + config.input_concat_dim
        self.transformer = ContinuousTransformer(
            embed, config.depth, config.num_heads, dim_in * config.patch_size,
            config.io_channels * config.patch_size, context_dim, config.ff_mult,
            ada_ln=config.global_cond_type == "adaLN")
        # Zero-initialised residual 1x1 convs around the transformer (identity at init).
        self.preprocess_conv = nn.Conv1d(dim_in, dim_in, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(config.io_channels, config.io_channels, 1, bias=False)
        nn.init.zeros_(self.preprocess_conv.weight)
        nn.init.zeros_(self.postprocess_conv.weight)

    def _check(self, x: torch.Tensor, **given: torch.Tensor | None) -> None:
        if x.dim() != 3 or x.shape[1] != self.io_channels:
            raise ValueError(f"DiT expects x (batch, io_channels={self.io_channels}, length); "
                             f"got {tuple(x.shape)}")
        if x.shape[-1] % self.patch_size:
            raise ValueError(f"DiT input length {x.shape[-1]} is not a multiple of patch_size "
                             f"{self.patch_size}; pad or crop it to a multiple of "
                             f"{self.patch_size}")
        check_unbuilt_conditions("DiT", {"cross_attn_cond": self.config.cond_token_dim,
                                         "global_cond": self.config.global_cond_dim,
                                         "prepend_cond": self.config.prepend_cond_dim,
                                         "input_concat_cond": self.config.input_concat_dim},
                                 given)
        if self.config.input_concat_dim and given["input_concat_cond"] is None:
            raise ValueError(f"DiT was built with input_concat_dim={self.config.input_concat_dim}"
                             " and needs input_concat_cond")

    def forward(self, x: torch.Tensor, t: torch.Tensor, *,
                cross_attn_cond: torch.Tensor | None = None,
                cross_attn_mask: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None,
                prepend_cond: torch.Tensor | None = None,
                prepend_cond_mask: torch.Tensor | None = None,
                input_concat_cond: torch.Tensor | None = None) -> torch.Tensor:
        """cross_attn_cond (B, S, cond_token_dim) with mask (B, S) True on real tokens;
        global_cond (B, global_cond_dim); prepend_cond (B, P, prepend_cond_dim) with mask;
        input_concat_cond (B, input_concat_dim, T') (resampled to T, nearest, if T' != T)."""
        self._check(x, cross_attn_cond=cross_attn_cond, global_cond=global_cond,
                    prepend_cond=prepend_cond, input_concat_cond=input_concat_cond)
        batch, _, length = x.shape
        context = None
        if cross_attn_cond is not None:
            context = self.to_cond_embed(cross_attn_cond)
        if not self.config.mask_cross_attention:
            cross_attn_mask = None
        times = t.to(x.dtype).reshape(-1).expand(batch).unsqueeze(-1)
        embed = self.to_timestep_embed(self.timestep_features(times))
        if global_cond is not None:
            embed = embed + self.to_global_embed(global_cond)
        prepend = None if prepend_cond is None else self.to_prepend_embed(prepend_cond)
        prepend_mask = None if prepend_cond is None else prepend_cond_mask
        ada_ln = self.config.global_cond_type == "adaLN"
        if not ada_ln:
            token = embed.unsqueeze(1)
            prepend = token if prepend is None else torch.cat([prepend, token], dim=1)
            if prepend_mask is not None:
                prepend_mask = torch.cat([prepend_mask, prepend_mask.new_ones(batch, 1)], dim=1)
        if input_concat_cond is not None:
            if input_concat_cond.shape[-1] != length:
                input_concat_cond = F.interpolate(input_concat_cond, size=length, mode="nearest")
            x = torch.cat([x, input_concat_cond], dim=1)
        x = self.preprocess_conv(x) + x
        # (B, C, T) -> tokens (B, T / p, C x p), channel-major within a token (SAT's layout).
        tokens = (x.reshape(batch, x.shape[1], length // self.patch_size, self.patch_size)
                  .permute(0, 2, 1, 3).reshape(batch, length // self.patch_size, -1))
        out = self.transformer(tokens, prepend=prepend, prepend_mask=prepend_mask,
                               context=context, context_mask=cross_attn_mask,
                               global_cond=embed if ada_ln else None)
        if prepend is not None:
            out = out[:, prepend.shape[1]:]
        out = (out.reshape(batch, length // self.patch_size, self.io_channels, self.patch_size)
               .permute(0, 2, 1, 3).reshape(batch, self.io_channels, length))
        return self.postprocess_conv(out) + out
