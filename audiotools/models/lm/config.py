"""Typed schema of the token LM's `model:` section, its builder, and the MusicGen-small preset.

    model:
      num_codebooks: 4          # K, the tokenizer's codebooks
      cardinality: 2048         # codes per codebook
      dim: 1024
      num_heads: 16
      num_layers: 24
      ffn_dim: 4096
      pattern: {type: delay, delays: [0, 1, 2, 3]}   # delay | parallel | unroll | coarse_first
      fuser: {cross: [description], prepend: [], sum: []}

Conditions arrive at the model's width from a `ConditionerSet(conditioners, dim)`: the
projection of T5's states (AudioCraft's `output_proj`) is the text conditioner's `proj`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, PositiveInt, model_validator

from ...conditioning.config import TextConditionerConfig
from ...config import Section, validate_by_type, validate_section
from .lm import LMModel
from .patterns import (
    CoarseFirstPattern,
    DelayPattern,
    ParallelPattern,
    Pattern,
    UnrollPattern,
)


class DelayPatternConfig(Section):
    type: Literal["delay"] = "delay"
    # Steps codebook q lags behind (one per codebook); null: 0, 1, ..., K - 1 (MusicGen).
    delays: list[Annotated[int, Field(ge=0)]] | None = None


class ParallelPatternConfig(Section):
    type: Literal["parallel"] = "parallel"
    # No delays; null is taken, as the default recipe's `delays: null` merges into any type.
    delays: None = None


class UnrollPatternConfig(Section):
    type: Literal["unroll"] = "unroll"
    delays: None = None  # as for parallel


class CoarseFirstPatternConfig(Section):
    type: Literal["coarse_first"] = "coarse_first"
    # Delays of codebooks 1..K-1 after all of codebook 0; null: all 0.
    delays: list[Annotated[int, Field(ge=0)]] | None = None


_PATTERN_CONFIGS: dict[str, type[Section]] = {
    "delay": DelayPatternConfig, "parallel": ParallelPatternConfig,
    "unroll": UnrollPatternConfig, "coarse_first": CoarseFirstPatternConfig}

PatternConfig = Annotated[
    DelayPatternConfig | ParallelPatternConfig | UnrollPatternConfig
    | CoarseFirstPatternConfig,
    BeforeValidator(lambda value: validate_by_type(value, _PATTERN_CONFIGS))]


class FuserConfig(Section):
    """Which conditions (ConditionerSet names) are fused how (AudioCraft's `fuser:`)."""

    cross: list[str] = []
    prepend: list[str] = []
    sum: list[str] = []
    # Cross-attention ignores padded condition tokens; false attends them as zero vectors,
    # as AudioCraft does (what its checkpoints were trained with).
    cross_mask: bool = True

    @model_validator(mode="after")
    def _once_each(self) -> FuserConfig:
        names = self.cross + self.prepend + self.sum
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"conditions {repeated} are fused more than once; name each in "
                             "one of cross, prepend, sum")
        return self

    def methods(self) -> dict[str, str]:
        """Condition name -> fuse method."""
        return {name: method for method in ("cross", "prepend", "sum")
                for name in getattr(self, method)}


class LMConfig(Section):
    num_codebooks: PositiveInt = 4
    cardinality: PositiveInt = 2048
    dim: PositiveInt = 1024
    num_heads: PositiveInt = 16
    num_layers: PositiveInt = 24
    # Hidden width of the feed-forward (AudioCraft: hidden_scale x dim).
    ffn_dim: PositiveInt = 4096
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bias_attn: bool = False
    bias_ff: bool = False
    bias_proj: bool = False
    # sin: added to the input; rope: rotary in self-attention; sin_rope: both.
    positional_embedding: Literal["sin", "rope", "sin_rope"] = "sin"
    max_period: float = Field(10000.0, gt=1.0)
    # Scale of the sinusoidal embedding.
    positional_scale: float = Field(1.0, ge=0.0)
    # random: AudioCraft's init of the output heads; embeddings: each head starts as its
    # codebook's input embedding (tied at the start, trained apart), so an untrained model
    # already favours every codebook's previous code, which tokens that hold still on a
    # steady note repeat (audiotools/models/lm/lm.py, _init_weights).
    heads_init: Literal["random", "embeddings"] = "random"
    pattern: PatternConfig = DelayPatternConfig()
    fuser: FuserConfig = FuserConfig()

    @model_validator(mode="after")
    def _shapes(self) -> LMConfig:
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise ValueError(f"dim={self.dim} must split into num_heads={self.num_heads} "
                             "heads of an even width")
        delays = getattr(self.pattern, "delays", None)
        expected = (self.num_codebooks - 1 if self.pattern.type == "coarse_first"
                    else self.num_codebooks)
        if delays is not None and len(delays) != expected:
            raise ValueError(f"pattern.delays={delays} needs {expected} delays for "
                             f"num_codebooks={self.num_codebooks} ({self.pattern.type})")
        return self


def build_pattern(config: LMConfig) -> Pattern:
    pattern, codebooks = config.pattern, config.num_codebooks
    if pattern.type == "delay":
        return DelayPattern(codebooks, pattern.delays)
    if pattern.type == "coarse_first":
        return CoarseFirstPattern(codebooks, pattern.delays)
    return {"parallel": ParallelPattern, "unroll": UnrollPattern}[pattern.type](codebooks)


def validate_lm_config(config: Mapping[str, Any] | BaseModel) -> LMConfig:
    """The validated `model:` section; ConfigError naming every fault otherwise."""
    return validate_section(config, LMConfig, "model")


def build_lm(config: Mapping[str, Any] | BaseModel) -> LMModel:
    """The LM of a `model:` section (a mapping or a validated LMConfig)."""
    config = validate_lm_config(config)
    return LMModel(
        config.num_codebooks, config.cardinality, config.dim, config.num_heads,
        config.num_layers, config.ffn_dim, pattern=build_pattern(config),
        fuse=config.fuser.methods(), cross_mask=config.fuser.cross_mask,
        bias_attn=config.bias_attn, bias_ff=config.bias_ff, bias_proj=config.bias_proj,
        dropout=config.dropout, positional_embedding=config.positional_embedding,
        max_period=config.max_period, positional_scale=config.positional_scale,
        heads_init=config.heads_init)


def musicgen_small() -> LMConfig:
    """AudioCraft's MusicGen small LM (config/model/lm/default.yaml, model_scale/small.yaml,
    musicgen_lm.yaml; fuser of conditioner/text2music.yaml): 24 layers of width 1024, 16
    heads, feed-forward 4096, no biases, sinusoidal positions, 4 x 2048 codebooks in the
    delay pattern 0, 1, 2, 3, cross-attention to the `description` (T5-base) tokens.
    Its conditioner is `musicgen_small_conditioners()`. AudioCraft's training also drops the
    whole condition with probability 0.3 (ConditionerSet joint_dropout) and 30 % of the
    prompt's words; its inference guidance scale is 3."""
    return LMConfig(num_codebooks=4, cardinality=2048, dim=1024, num_heads=16, num_layers=24,
                    ffn_dim=4096, bias_attn=False, bias_ff=False, bias_proj=False,
                    positional_embedding="sin", pattern=DelayPatternConfig(delays=[0, 1, 2, 3]),
                    fuser=FuserConfig(cross=["description"]))


def musicgen_small_conditioners() -> dict[str, TextConditionerConfig]:
    """The conditioners of `musicgen_small`: the prompt through frozen T5-base (768-dim states,
    projected to the LM's 1024 by the conditioner)."""
    return {"description": TextConditionerConfig(model="t5-base")}
