"""Typed config of conditioners: one section per `type`, and the named set a model holds.

A model's config names its conditioners, `{name: {type: ..., ...}}`; the name is what the
model and the user's inference values refer to, `key` (default: the name) the metadata field an
item's value comes from. The output width (`dim`) is the model's, so it is not set here.
"""
from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from ..config import Section, format_validation_error, validate_by_type
from ..errors import ConfigError


class _ConditionerConfig(Section):
    # The item's metadata field (its manifest `meta`, then its info such as seconds_total);
    # null: the conditioner's own name.
    key: str | None = None
    # Probability that a training item gets this conditioner's null condition (CFG dropout).
    dropout: float = Field(0.0, ge=0.0, le=1.0)


class TextConditionerConfig(_ConditionerConfig):
    """A frozen T5 encoder's last hidden states, projected to the model's width."""

    type: Literal["text"] = "text"
    # A Hugging Face name found in the local cache, or a folder (`//reference/...` resolves).
    model: str = "t5-base"
    # Tokens per text: longer texts are truncated, shorter ones padded (mask False).
    max_length: PositiveInt = 128
    # Builds the text from fields, e.g. "{ensemble} playing {genre} at {bpm} bpm"; replaces
    # `key`. A field is looked up like `key`; a list reads "a, b".
    template: str | None = None
    # The text of an item that lacks the key (or a field of the template); null: an error.
    default: str | None = None
    # Encoder outputs kept for this many distinct texts (least recently used dropped); 0: none.
    cache_size: NonNegativeInt = 0

    @field_validator("template")
    @classmethod
    def _template_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                fields = [name for _, name, _, _ in string.Formatter().parse(value) if name]
            except ValueError as err:
                raise ValueError(f"template {value!r} does not parse ({err})") from None
            if not fields or any(not name.isidentifier() for name in fields):
                raise ValueError(f"template {value!r} needs at least one {{field}}, each a "
                                 "plain name")
        return value

    @model_validator(mode="after")
    def _key_or_template(self) -> TextConditionerConfig:
        if self.key is not None and self.template is not None:
            raise ValueError("set key= or template=, not both (a template names its fields)")
        return self


class NumberConditionerConfig(_ConditionerConfig):
    """A real value normalised to [0, 1] over [min, max] (clamped), learned Fourier features,
    projected: one token."""

    type: Literal["number"] = "number"
    min: float
    max: float
    default: float | None = None
    # Width of the learned Fourier features (even): half sines, half cosines.
    features: PositiveInt = 256

    @model_validator(mode="after")
    def _range(self) -> NumberConditionerConfig:
        if not self.min < self.max:
            raise ValueError(f"min={self.min} must be below max={self.max}")
        if self.features % 2:
            raise ValueError(f"features={self.features} must be even (sines and cosines)")
        return self


class IntConditionerConfig(_ConditionerConfig):
    """An integer in [min, max], one learned embedding per value: one token."""

    type: Literal["int"] = "int"
    min: int
    max: int
    default: int | None = None

    @model_validator(mode="after")
    def _range(self) -> IntConditionerConfig:
        if self.min > self.max:
            raise ValueError(f"min={self.min} must not exceed max={self.max}")
        if self.default is not None and not self.min <= self.default <= self.max:
            raise ValueError(f"default={self.default} lies outside [min={self.min}, "
                             f"max={self.max}]")
        return self


class OptionsConditionerConfig(_ConditionerConfig):
    """One of a fixed list of values (compared as text), one learned embedding each."""

    type: Literal["options"] = "options"
    options: list[str] = Field(min_length=1)
    # The option of an item that lacks the key or holds a value not in `options`.
    default: str | None = None

    @model_validator(mode="after")
    def _options(self) -> OptionsConditionerConfig:
        repeated = sorted({option for option in self.options if self.options.count(option) > 1})
        if repeated:
            raise ValueError(f"options={self.options} repeat {', '.join(repeated)}")
        if self.default is not None and self.default not in self.options:
            raise ValueError(f"default={self.default!r} is not one of options={self.options}")
        return self


class AudioConditionerConfig(_ConditionerConfig):
    """A reference clip through the model's codec: its latent frames, projected."""

    type: Literal["audio"] = "audio"
    # Length of the reference: longer clips are cut, shorter ones padded (mask False).
    seconds: PositiveFloat
    # The audio file of an item that lacks the key; null: an error.
    default: str | None = None


CONDITIONERS: dict[str, type[_ConditionerConfig]] = {
    "text": TextConditionerConfig, "number": NumberConditionerConfig,
    "int": IntConditionerConfig, "options": OptionsConditionerConfig,
    "audio": AudioConditionerConfig}


def _by_type(value: Any) -> Any:
    """`{type: ..., ...}` validated with its type's section (`conditioners.<name>.<key>`)."""
    return validate_by_type(value, CONDITIONERS)


ConditionerConfig = Annotated[
    TextConditionerConfig | NumberConditionerConfig | IntConditionerConfig
    | OptionsConditionerConfig | AudioConditionerConfig, BeforeValidator(_by_type)]


def _plain_names(value: Any) -> Any:
    """Names become module and metric names: identifiers only (no dots)."""
    if isinstance(value, Mapping):
        wrong = [str(name) for name in value if not str(name).isidentifier()]
        if wrong:
            raise ValueError(f"conditioner names {wrong} must be identifiers (letters, digits, _)")
    return value


# What a model's config holds: conditioner name -> its section.
ConditionersConfig = Annotated[dict[str, ConditionerConfig], BeforeValidator(_plain_names)]


def validate_conditioners(section: Mapping[str, Any] | DictConfig,
                          key: str = "conditioners") -> dict[str, ConditionerConfig]:
    """`section` ({name: {type: ...}}) checked; faults are named `<key>.<name>.<field>`."""
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    container = {key: {name: value.model_dump() if isinstance(value, Section) else value
                       for name, value in dict(section).items()}}
    wrapper = create_model("Conditioners", __base__=Section, **{key: (ConditionersConfig, ...)})
    try:
        return getattr(wrapper.model_validate(container), key)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, container, wrapper)) from None
