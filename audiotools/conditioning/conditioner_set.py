"""The conditioners of a model: a batch's items (or a user's values) -> {name: Conditioning}.

Training and evaluation read each item's value from its `info` (metadata, templates,
defaults); in training mode each conditioner independently replaces an item's condition by its
null condition with probability `dropout`, and `joint_dropout` (the model's) nulls every
condition of an item at once, the unconditional case classifier-free guidance needs. Inference
takes values by conditioner name (`{"prompt": "...", "seconds_total": 8}`) and builds the null
or negative condition for guidance.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig
from torch import nn

from ..errors import ConfigError
from .base import Conditioner, Conditioning
from .categorical import IntConditioner, OptionsConditioner
from .config import ConditionerConfig, validate_conditioners
from .number import NumberConditioner

if TYPE_CHECKING:
    from ..models.codec import Codec

Conditions = dict[str, Conditioning]
_SIMPLE = {"number": NumberConditioner, "int": IntConditioner, "options": OptionsConditioner}


def build_conditioner(name: str, config: ConditionerConfig, dim: int,
                      codec: Codec | None = None) -> Conditioner:
    """The conditioner a section describes; the text one imports transformers."""
    if config.type == "text":
        from .text import TextConditioner
        return TextConditioner(name, config, dim)
    if config.type == "audio":
        if codec is None:
            raise ConfigError(f"conditioners.{name}: an audio conditioner encodes its reference "
                              "through the model's codec, and this model gives none.")
        from .audio import AudioConditioner
        return AudioConditioner(name, config, dim, codec)
    return _SIMPLE[config.type](name, config, dim)


def _null_where(condition: Conditioning, drop: torch.Tensor) -> Conditioning:
    """Items where `drop` is True become the null condition (zeros, mask False)."""
    keep = ~drop.to(condition.mask.device)
    return Conditioning(condition.embeddings * keep.view(-1, 1, 1).to(condition.embeddings),
                        condition.mask & keep.view(-1, 1))


class ConditionerSet(nn.Module):
    """Named conditioners with one output width `dim` (the model's)."""

    def __init__(self, configs: Mapping[str, Any] | DictConfig, dim: int, *,
                 codec: Codec | None = None, joint_dropout: float = 0.0):
        super().__init__()
        if dim < 1 or not 0.0 <= joint_dropout <= 1.0:
            raise ValueError(f"dim={dim} must be >= 1 and joint_dropout={joint_dropout} in "
                             "[0, 1]")
        self.dim = dim
        self.joint_dropout = joint_dropout
        self.conditioners = nn.ModuleDict()
        for name, config in validate_conditioners(configs).items():
            if hasattr(self.conditioners, name):
                raise ConfigError(f"conditioners.{name}: the name is reserved; choose another.")
            self.conditioners[name] = build_conditioner(name, config, dim, codec)

    def __getitem__(self, name: str) -> Conditioner:
        return self.conditioners[name]

    def names(self) -> list[str]:
        return list(self.conditioners)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What an optimizer should update: projections, embeddings, Fourier frequencies; the
        T5 encoder and the codec are frozen and not parameters of this module."""
        return [parameter for parameter in self.parameters() if parameter.requires_grad]

    def forward(self, info: Sequence[Mapping[str, Any]],
                generator: torch.Generator | None = None) -> Conditions:
        """Conditions of a dataset batch (its `info` list); CFG dropout in training mode."""
        conditions = {}
        for name, conditioner in self.conditioners.items():
            values = [conditioner.prepare_item(item) for item in info]
            conditions[name] = conditioner.condition(values)
        if self.training and info:
            conditions = self._dropout(conditions, len(info), generator)
        return conditions

    def _dropout(self, conditions: Conditions, batch: int,
                 generator: torch.Generator | None) -> Conditions:
        joint = torch.rand(batch, generator=generator) < self.joint_dropout
        dropped = {}
        for name, condition in conditions.items():
            own = torch.rand(batch, generator=generator) < self[name].config.dropout
            dropped[name] = _null_where(condition, own | joint)
        return dropped

    def _items(self, values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
               ) -> list[Mapping[str, Any]]:
        items = [values] if isinstance(values, Mapping) else list(values)
        for index, item in enumerate(items):
            unknown = sorted(set(item) - set(self.conditioners))
            if unknown:
                raise ConfigError(f"values[{index}] name {', '.join(map(repr, unknown))}: no "
                                  f"such conditioner; conditioners: {', '.join(self.names())}.")
        return items

    def _from_values(self, name: str, items: Sequence[Mapping[str, Any]]) -> Conditioning:
        conditioner = self[name]
        prepared = []
        for index, item in enumerate(items):
            value = item.get(name, conditioner.config.default)
            if name not in item and value is None:
                raise ConfigError(f"values[{index}] lack {name!r}, which has no default; give "
                                  f"it (None: the null condition) or set "
                                  f"conditioners.{name}.default.")
            prepared.append(None if value is None else
                            conditioner.prepare_given(value, f"values[{index}][{name!r}]"))
        return conditioner.condition(prepared)

    def encode(self, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Conditions:
        """Conditions from user values by conditioner name, one mapping per item (a single
        mapping: a batch of one). A value None gives that item the null condition; a missing
        name takes the conditioner's default. Templates and keys do not apply."""
        items = self._items(values)
        return {name: self._from_values(name, items) for name in self.conditioners}

    def null(self, batch_size: int) -> Conditions:
        """Every conditioner's null condition: the unconditional branch of guidance."""
        return {name: conditioner.null(batch_size)
                for name, conditioner in self.conditioners.items()}

    def unconditional(self, batch_size: int,
                      negative: Mapping[str, Any] | None = None) -> Conditions:
        """The other branch of guidance: null conditions, except the conditioners `negative`
        names, encoded from its values for every item (a negative prompt,
        `{"prompt": "noisy, low quality"}`, or SAT's way: every value, the prompt negated)."""
        if negative is not None and not isinstance(negative, Mapping):
            raise ConfigError(f"negative={negative!r}: give a mapping of conditioner values "
                              "(one for the whole batch), or None.")
        unknown = sorted(set(negative or ()) - set(self.names()))
        if unknown:
            raise ConfigError(f"negative names {', '.join(map(repr, unknown))}, not a conditioner "
                              f"of this model; its conditioners: "
                              f"{', '.join(self.names()) or 'none'}.")
        conditions = self.null(batch_size)
        if negative:
            items = self._items([negative] * batch_size)
            conditions.update({name: self._from_values(name, items) for name in negative})
        return conditions
