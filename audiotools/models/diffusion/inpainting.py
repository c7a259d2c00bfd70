"""Inpainting masks and the conditions an inpainting model reads.

A mask here is a `keep` tensor (B, 1, T) of 0.0 / 1.0: 1 where the data is given, 0 where the
model generates (stable-audio-tools' convention). An inpainting model reads it and the data
times it as its `inpaint_mask` and `inpaint_masked_input` input-concat conditions.

Training draws one mask per item as stable-audio-tools' `random_inpaint_mask` does, with the
kinds weighted by `InpaintMaskConfig`, over the item's real frames (its padding mask):

    random_segments  1 to max_segments gaps, each up to (real frames / gaps) long, anywhere
    full             everything generated: the model also learns plain generation
    causal           a prefix of 0 to all real frames kept, the rest of the real frames
                     generated: continuation

Draws come from a torch.Generator only, so a resumed run draws the masks it would have drawn.
"""
from __future__ import annotations

import math

import torch
from pydantic import Field, PositiveInt, model_validator

from ...conditioning import Conditioning
from ...config import Section
from .config import INPAINT_MASK, INPAINT_MASKED_INPUT

MASK_KINDS = ("random_segments", "full", "causal")


class InpaintMaskConfig(Section):
    """How often each kind of training mask is drawn (stable-audio-tools' defaults)."""

    random_segments: float = Field(0.1, ge=0.0, le=1.0)
    full: float = Field(0.8, ge=0.0, le=1.0)
    causal: float = Field(0.1, ge=0.0, le=1.0)
    # Most gaps of a random_segments mask.
    max_segments: PositiveInt = 10

    @model_validator(mode="after")
    def _probabilities_sum_to_one(self) -> InpaintMaskConfig:
        total = self.random_segments + self.full + self.causal
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"random_segments + full + causal = {total:g}; the mask kinds' "
                             "probabilities must sum to 1")
        return self

    def probabilities(self) -> torch.Tensor:
        return torch.tensor([getattr(self, kind) for kind in MASK_KINDS], dtype=torch.float64)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """An integer in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def random_keep_masks(padding_mask: torch.Tensor, config: InpaintMaskConfig,
                      generator: torch.Generator) -> torch.Tensor:
    """(B, 1, T) keep masks for items whose real frames are `padding_mask` (B, T) bool (real
    frames first, padding after). Frames of padding stay 1 except under a full mask."""
    batch, length = padding_mask.shape
    keep = torch.ones(batch, 1, length)
    kinds = torch.multinomial(config.probabilities(), batch, replacement=True,
                              generator=generator)
    for row, kind in enumerate(MASK_KINDS[int(k)] for k in kinds):
        real = int(padding_mask[row].sum())
        if kind == "full":
            keep[row] = 0.0
        elif real and kind == "random_segments":
            gaps = _randint(1, config.max_segments, generator)
            longest = max(1, real // gaps)
            for _ in range(gaps):
                size = _randint(1, longest, generator)
                start = _randint(0, real - size, generator)
                keep[row, :, start:start + size] = 0.0
        elif real:
            keep[row, :, _randint(0, real, generator):real] = 0.0
    return keep.to(padding_mask.device)


def keep_mask(length: int, start: int, end: int, batch: int = 1,
              device: torch.device | str | None = None) -> torch.Tensor:
    """(batch, 1, length): generate frames [start, end), keep the others."""
    keep = torch.ones(batch, 1, length, device=device)
    keep[..., max(0, start):max(0, end)] = 0.0
    return keep


def inpaint_conditions(x: torch.Tensor, keep: torch.Tensor) -> dict[str, Conditioning]:
    """The inpainting model's own conditions for data x (B, C, T) and keep masks (B, 1, T),
    as (B, T, channels) conditions (every position real) that `condition_inputs` concatenates
    along the channels."""
    keep = keep.to(x.dtype).expand(x.shape[0], 1, x.shape[-1])
    real = torch.ones(x.shape[0], x.shape[-1], dtype=torch.bool, device=x.device)
    return {INPAINT_MASK: Conditioning(keep.transpose(1, 2), real),
            INPAINT_MASKED_INPUT: Conditioning((x * keep).transpose(1, 2), real)}
