"""Conditioners by `type` (text/T5, number, int, options, audio): item metadata or user values
-> `{name: Conditioning(embeddings (B, T, dim), mask (B, T))}`, with CFG dropout and null or
negative conditions for guidance (docs/conditioning.md). Importing this package does not
import transformers; a text conditioner does when it is built."""
from .base import Conditioner, Conditioning
from .conditioner_set import ConditionerSet, Conditions, build_conditioner
from .config import (
    CONDITIONERS,
    AudioConditionerConfig,
    ConditionerConfig,
    ConditionersConfig,
    IntConditionerConfig,
    NumberConditionerConfig,
    OptionsConditionerConfig,
    TextConditionerConfig,
    validate_conditioners,
)

__all__ = ["CONDITIONERS", "AudioConditionerConfig", "Conditioner", "ConditionerConfig",
           "ConditionerSet", "ConditionersConfig", "Conditioning", "Conditions",
           "IntConditionerConfig", "NumberConditionerConfig", "OptionsConditionerConfig",
           "TextConditionerConfig", "build_conditioner", "validate_conditioners"]
