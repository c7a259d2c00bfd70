"""What every conditioner gives, and the part of its work that does not depend on its type.

A condition is `Conditioning(embeddings (B, T, dim), mask (B, T) bool)`, embeddings zero
wherever the mask is False. The **null condition** of a conditioner (what CFG dropout and the
unconditional branch of guidance use) is all-zero embeddings with an all-False mask, of the same
shape as a real one: each conditioner has a fixed length T, so real and null conditions of a
batch stack and concatenate.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import ConditionerConfig
from .values import MissingValue, item_name, lookup, missing_error


@dataclass
class Conditioning:
    embeddings: torch.Tensor    # (B, T, dim)
    mask: torch.Tensor          # (B, T) bool, True on real positions

    def __post_init__(self) -> None:
        if (self.embeddings.dim() != 3 or self.mask.shape != self.embeddings.shape[:2]
                or self.mask.dtype != torch.bool):
            raise ValueError(f"Conditioning needs embeddings (B, T, dim) and a bool mask (B, T); "
                             f"got {tuple(self.embeddings.shape)} and {tuple(self.mask.shape)} "
                             f"{self.mask.dtype}")


def masked(embeddings: torch.Tensor, mask: torch.Tensor) -> Conditioning:
    """A condition whose embeddings are zero where the mask is False."""
    return Conditioning(embeddings * mask.unsqueeze(-1).to(embeddings.dtype), mask)


class Conditioner(nn.Module):
    """One named conditioner. A subclass says how many tokens it gives (`length`), checks and
    converts one raw value (`prepare`), and embeds prepared values (`embed`); values and nulls,
    CFG and errors are handled here and in ConditionerSet."""

    length: int

    def __init__(self, name: str, config: ConditionerConfig, dim: int):
        super().__init__()
        self.name = name
        self.config = config
        self.dim = dim

    @property
    def key(self) -> str:
        return self.config.key or self.name

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def item_value(self, info: Mapping[str, Any]) -> Any:
        """The raw value of a dataset item (its metadata), or the configured default."""
        try:
            return lookup(info, self.key)
        except MissingValue as missing:
            if self.config.default is None:
                raise missing_error(self.name, info, missing.key) from None
            return self.config.default

    def prepare(self, value: Any, where: str) -> Any:
        """`value` checked and converted for `embed`; a ConfigError names `where`."""
        raise NotImplementedError

    def prepare_item(self, info: Mapping[str, Any]) -> Any:
        """A dataset item's value, prepared; errors name the item and the key."""
        return self.prepare(self.item_value(info), f"item {item_name(info)} ({self.key})")

    def check_item(self, info: Mapping[str, Any]) -> None:
        """Raise now what `prepare_item` would raise for this item at some batch of some
        epoch (a conditioner whose `prepare` reads files checks less, more cheaply)."""
        self.prepare_item(info)

    def prepare_given(self, value: Any, where: str) -> Any:
        """A value a caller gives (not metadata) checked and converted: `prepare`, unless a
        conditioner is stricter with what a user asks for than with what a dataset holds."""
        return self.prepare(value, where)

    def embed(self, values: Sequence[Any]) -> Conditioning:
        """(B, length, dim) from B prepared values, on this conditioner's device."""
        raise NotImplementedError

    def null(self, batch_size: int) -> Conditioning:
        return Conditioning(torch.zeros(batch_size, self.length, self.dim, device=self.device),
                            torch.zeros(batch_size, self.length, dtype=torch.bool,
                                        device=self.device))

    def condition(self, values: Sequence[Any]) -> Conditioning:
        """Prepared values, None for an item that gets the null condition."""
        present = [index for index, value in enumerate(values) if value is not None]
        if not present:  # all null, or an empty batch (collate_segments drops failed items)
            return self.null(len(values))
        if len(present) == len(values):
            return self.embed(values)
        out = self.null(len(values))
        real = self.embed([values[index] for index in present])
        index = torch.tensor(present, device=out.mask.device)
        return Conditioning(out.embeddings.index_copy(0, index, real.embeddings),
                            out.mask.index_copy(0, index, real.mask))
