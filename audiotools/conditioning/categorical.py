"""`int` and `options`: a value from a fixed set as one token, one learned embedding each."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .base import Conditioner, Conditioning
from .config import IntConditionerConfig, OptionsConditionerConfig


class _TableConditioner(Conditioner):
    """Embeds a row index; `prepare` turns a value into its row."""

    length = 1

    def __init__(self, name: str, config: Any, dim: int, rows: int):
        super().__init__(name, config, dim)
        self.table = nn.Embedding(rows, dim)

    def embed(self, values: Sequence[int]) -> Conditioning:
        rows = torch.tensor(values, dtype=torch.long, device=self.device)
        return Conditioning(self.table(rows).unsqueeze(1),
                            torch.ones(len(values), 1, dtype=torch.bool, device=self.device))


class IntConditioner(_TableConditioner):
    """An integer in [min, max]; outside it is an error (the table has no row for it)."""

    config: IntConditionerConfig

    def __init__(self, name: str, config: IntConditionerConfig, dim: int):
        super().__init__(name, config, dim, config.max - config.min + 1)

    def prepare(self, value: Any, where: str) -> int:
        low, high = self.config.min, self.config.max
        integral = (isinstance(value, int) and not isinstance(value, bool)
                    or isinstance(value, float) and value.is_integer())
        if not integral or not low <= value <= high:
            raise ConfigError(f"conditioner {self.name!r}: {where} holds {value!r}, not an "
                              f"integer in [min={low}, max={high}].")
        return int(value) - low


class OptionsConditioner(_TableConditioner):
    """One of `options`, compared as text (bpm 100 matches option "100"); an unknown value
    takes `default` when one is configured."""

    config: OptionsConditionerConfig

    def __init__(self, name: str, config: OptionsConditionerConfig, dim: int):
        super().__init__(name, config, dim, len(config.options))
        self.rows = {option: row for row, option in enumerate(config.options)}

    def prepare(self, value: Any, where: str) -> int:
        if isinstance(value, list | tuple | dict):
            raise ConfigError(f"conditioner {self.name!r}: {where} holds {value!r}; an options "
                              "conditioner takes one value.")
        row = self.rows.get(str(value))
        if row is None and self.config.default is not None:
            row = self.rows[self.config.default]
        if row is None:
            raise ConfigError(f"conditioner {self.name!r}: {where} holds {value!r}, not one of "
                              f"the options {self.config.options}; add it to "
                              f"conditioners.{self.name}.options or set "
                              f"conditioners.{self.name}.default.")
        return row
