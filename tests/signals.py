"""Deterministic test signals for losses and metrics (no RNG, so values are reproducible
across torch versions and match values measured with other implementations)."""
from __future__ import annotations

import math

import torch

SAMPLE_RATE = 16000


def stereo_pair(seconds: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(estimate, reference), each (1, 2, T): a chirp + tone on the left, a decaying tone on
    the right; the estimate is 0.8 x reference plus a 5 kHz tone."""
    t = torch.arange(round(seconds * SAMPLE_RATE), dtype=torch.float64) / SAMPLE_RATE
    left = (0.5 * torch.sin(2 * math.pi * (220 * t + 300 * t ** 2))
            + 0.1 * torch.sin(2 * math.pi * 3000 * t))
    right = 0.4 * torch.sin(2 * math.pi * 440 * t) * torch.exp(-t)
    reference = torch.stack([left, right]).unsqueeze(0).float()
    estimate = (0.8 * reference + 0.05 * torch.sin(2 * math.pi * 5000 * t).float()).float()
    return estimate, reference


def noise(*shape: int, std: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Gaussian noise from a private generator."""
    generator = torch.Generator().manual_seed(seed)
    return std * torch.randn(*shape, generator=generator)
