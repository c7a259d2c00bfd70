"""`number`: a real value (seconds_start, seconds_total, bpm) as one token.

The value is normalised to [0, 1] over the configured [min, max] and clamped (a 600 s file with
max 512 reads as 512), then mapped through *learned* Fourier features (random frequencies
trained with the model, as stable-audio-tools' number conditioner does) and projected to dim.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .base import Conditioner, Conditioning
from .config import NumberConditionerConfig


class FourierFeatures(nn.Module):
    """x in [0, 1] -> [x, sin(2 pi w x), cos(2 pi w x)] with learned frequencies w."""

    def __init__(self, features: int):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(features // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * x.unsqueeze(-1) * self.frequencies
        return torch.cat([x.unsqueeze(-1), angles.sin(), angles.cos()], dim=-1)


def real_number(value: Any, where: str, conditioner: str) -> float:
    """A finite float from metadata (a number, or text that reads as one)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"conditioner {conditioner!r}: {where} holds {value!r}, not a finite "
                          "number.") from None
    return number


class NumberConditioner(Conditioner):
    config: NumberConditionerConfig
    length = 1

    def __init__(self, name: str, config: NumberConditionerConfig, dim: int):
        super().__init__(name, config, dim)
        self.fourier = FourierFeatures(config.features)
        self.proj = nn.Linear(config.features + 1, dim)

    def prepare(self, value: Any, where: str) -> float:
        return real_number(value, where, self.name)

    def prepare_given(self, value: Any, where: str) -> float:
        """A value a caller asks for lies in [min, max]: clamped, it would be quietly
        another (seconds_total=30 on a model trained to 16 is asked for as 16)."""
        number = self.prepare(value, where)
        low, high = self.config.min, self.config.max
        if not low <= number <= high:
            raise ConfigError(f"conditioner {self.name!r}: {where} holds {value!r}, outside "
                              f"[min={low:g}, max={high:g}], the range it was trained on.")
        return number

    def normalised(self, values: Sequence[float]) -> torch.Tensor:
        """The values in [0, 1] (clamped), on this conditioner's device."""
        x = torch.tensor(values, dtype=torch.float32, device=self.device)
        return ((x - self.config.min) / (self.config.max - self.config.min)).clamp(0.0, 1.0)

    def embed(self, values: Sequence[float]) -> Conditioning:
        embeddings = self.proj(self.fourier(self.normalised(values))).unsqueeze(1)
        return Conditioning(embeddings, torch.ones(len(values), 1, dtype=torch.bool,
                                                   device=embeddings.device))
