"""Typed schema of the `model:` section of diffusion recipes.

    model:
      objective: v                    # v (cosine schedule) | rectified_flow
      cross_attention_cond_ids: [prompt, seconds_start, seconds_total]
      global_cond_ids: [seconds_start, seconds_total]
      prepend_cond_ids: []
      input_concat_ids: []
      time_shift: null                # {base_shift, max_shift, min_length, max_length}
      network: {type: dit | unet | adp_unet, io_channels: 64, ...}
      encoder: null                   # diffusion autoencoder: {latent_dim, encoder, bottleneck}

The `*_ids` name the conditioners (of the solver's ConditionerSet) that feed each input of the
network, as stable-audio-tools' diffusion section does: cross-attention tokens are
concatenated along the sequence, global vectors along the features, prepended tokens along
the sequence, input-concat conditions along the channels. The objective and the time shift are
part of the model because sampling an exported model needs them.

Besides conditioners, `input_concat_ids` may name the conditions a model makes itself
(OWN_CONDITIONS, stable-audio-tools' names): `inpaint_mask` (1 channel, 1 where the data is
given) and `inpaint_masked_input` (the data times that mask) for inpainting, and
`encoder_latents` (the `encoder`'s latents) for a diffusion autoencoder.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from ...config import Section, validate_by_type, validate_section
from ...errors import ConfigError
from ..autoencoder.config import (
    ENCODERS,
    EncoderConfig,
    NoBottleneckConfig,
    TanhBottleneckConfig,
    VAEBottleneckConfig,
    check_encoder_fits,
)

# Conditions a diffusion model makes itself, by the name its `input_concat_ids` give them.
INPAINT_MASK = "inpaint_mask"
INPAINT_MASKED_INPUT = "inpaint_masked_input"
ENCODER_LATENTS = "encoder_latents"
OWN_CONDITIONS = (INPAINT_MASK, INPAINT_MASKED_INPUT, ENCODER_LATENTS)


class DiTConfig(Section):
    """Stable Audio's diffusion transformer; defaults are stable-audio-tools' DiT defaults."""

    type: Literal["dit"] = "dit"
    io_channels: PositiveInt
    embed_dim: PositiveInt = 768
    depth: PositiveInt = 12
    num_heads: PositiveInt = 8
    # Frames per token; the input length must be a multiple of it.
    patch_size: PositiveInt = 1
    # Width of the cross-attention tokens (0: no cross-attention).
    cond_token_dim: NonNegativeInt = 0
    # Project the tokens to embed_dim (else keys/values have cond_token_dim / head_dim heads).
    project_cond_tokens: bool = True
    global_cond_dim: NonNegativeInt = 0
    project_global_cond: bool = True
    # Width of prepended conditioning tokens (0: none).
    prepend_cond_dim: NonNegativeInt = 0
    # Extra input channels (0: none).
    input_concat_dim: NonNegativeInt = 0
    # Global condition + timestep as a prepended token, or adaptive layer-norm modulation.
    global_cond_type: Literal["prepend", "adaLN"] = "prepend"
    timestep_features_dim: PositiveInt = 256
    ff_mult: PositiveFloat = 4.0
    # Attend only to real conditioning tokens; false reproduces stable-audio-tools, whose DiT
    # ignores the mask (and whose weights were trained that way).
    mask_cross_attention: bool = True

    @field_validator("timestep_features_dim")
    @classmethod
    def _even_features(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"timestep_features_dim={value} must be even (cos and sin halves)")
        return value

    @model_validator(mode="after")
    def _dimensions_fit(self) -> DiTConfig:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim={self.embed_dim} is not a multiple of "
                             f"num_heads={self.num_heads}")
        head = self.embed_dim // self.num_heads
        if self.cond_token_dim and not self.project_cond_tokens and (
                self.cond_token_dim % head or self.num_heads % (self.cond_token_dim // head)):
            raise ValueError(f"cond_token_dim={self.cond_token_dim} unprojected must be a "
                             f"multiple of the head size {head} giving a number of key/value "
                             f"heads that divides num_heads={self.num_heads}; or set "
                             "project_cond_tokens: true")
        if self.global_cond_dim and not self.project_global_cond and (
                self.global_cond_dim != self.embed_dim):
            raise ValueError(f"global_cond_dim={self.global_cond_dim} unprojected must equal "
                             f"embed_dim={self.embed_dim}; or set project_global_cond: true")
        return self

    @property
    def hop_length(self) -> int:
        """Input lengths must be multiples of this."""
        return self.patch_size


def _check_levels(config: UNetConfig | ADPUNetConfig) -> None:
    """A U-Net's per-level lists agree: multipliers one per resolution, factors and num_blocks
    one per level, attentions one per level and the middle's; an even kernel multiplier."""
    levels = len(config.multipliers) - 1
    if len(config.factors) != levels or len(config.num_blocks) != levels:
        raise ValueError(f"{levels + 1} multipliers make {levels} levels: factors "
                         f"{config.factors} and num_blocks {config.num_blocks} need {levels} "
                         "entries each")
    if len(config.attentions) != levels + 1:
        raise ValueError(f"attentions {config.attentions} needs {levels + 1} entries: one per "
                         "level and one for the middle")
    if config.kernel_multiplier_downsample % 2:
        raise ValueError(f"kernel_multiplier_downsample={config.kernel_multiplier_downsample} "
                         "must be even")


class UNetConfig(Section):
    """A 1-D U-Net (audio-diffusion-pytorch style); `multipliers` has one entry per resolution
    (levels + 1), `factors` and `num_blocks` one per level, `attentions` one per level plus
    one for the middle (transformer blocks there; 0: none)."""

    type: Literal["unet"] = "unet"
    io_channels: PositiveInt
    channels: PositiveInt = 128
    multipliers: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4, 4], min_length=2)
    factors: list[PositiveInt] = Field(default_factory=lambda: [4, 4, 4], min_length=1)
    num_blocks: list[PositiveInt] = Field(default_factory=lambda: [2, 2, 2], min_length=1)
    attentions: list[NonNegativeInt] = Field(default_factory=lambda: [0, 1, 1, 1], min_length=2)
    attention_heads: PositiveInt = 8
    resnet_groups: PositiveInt = 8
    # Downsampling conv kernel = factor x this + 1 (even).
    kernel_multiplier_downsample: PositiveInt = 2
    use_nearest_upsample: bool = False
    use_skip_scale: bool = True
    # Width of the time/global mapping = channels x this.
    mapping_multiplier: PositiveInt = 4
    patch_size: PositiveInt = 1
    cond_token_dim: NonNegativeInt = 0
    global_cond_dim: NonNegativeInt = 0
    input_concat_dim: NonNegativeInt = 0
    timestep_features_dim: PositiveInt = 256
    ff_mult: PositiveFloat = 2.0

    @model_validator(mode="after")
    def _levels_fit(self) -> UNetConfig:
        _check_levels(self)
        if self.timestep_features_dim % 2:
            raise ValueError(f"timestep_features_dim={self.timestep_features_dim} must be even")
        odd = [factor for factor in self.factors if factor > 1 and factor % 2]
        if odd and not self.use_nearest_upsample:
            raise ValueError(f"factors {self.factors}: odd factors {odd} need "
                             "use_nearest_upsample: true (transposed convolutions take even ones)")
        for multiplier in self.multipliers:
            width = self.channels * multiplier
            if width % self.resnet_groups:
                raise ValueError(f"channels x multiplier = {width} is not a multiple of "
                                 f"resnet_groups={self.resnet_groups}")
            if any(self.attentions) and width % self.attention_heads:
                raise ValueError(f"channels x multiplier = {width} is not a multiple of "
                                 f"attention_heads={self.attention_heads}")
        return self

    @property
    def hop_length(self) -> int:
        """Input lengths must be multiples of this."""
        return self.patch_size * math.prod(self.factors)


class ADPUNetConfig(Section):
    """stable-audio-tools' ADP U-Net (its `adp_cfg_1d`, `adp_1d`, `adp_uncond_1d` networks), with
    the same arguments and parameter names so that SAT's weights load one to one.

    `multipliers` has one entry per resolution (levels + 1), `factors` and `num_blocks` one per
    level, `attentions` one per level plus the middle's (transformer blocks; 0: none). An
    attention has `attention_heads` heads of `attention_features` dimensions (either one given:
    the other is the width divided by it) and a GELU feed-forward `attention_multiplier` wide.
    The time (Fourier features of t, `use_context_time`) and the global condition
    (`global_cond_dim`, SAT's `context_features`) are summed into a mapping
    `channels x context_features_multiplier` wide that scales and shifts every resnet block.
    `null_embedding_length` > 0 (SAT's `context_embedding_max_length`, adp_cfg_1d) gives a
    learned null embedding of that many tokens that replaces the cross-attention tokens of an
    item whose condition is null (CFG dropout and the unconditional branch of guidance)."""

    type: Literal["adp_unet"] = "adp_unet"
    io_channels: PositiveInt
    channels: PositiveInt
    multipliers: list[PositiveInt] = Field(min_length=2)
    factors: list[PositiveInt] = Field(min_length=1)
    num_blocks: list[PositiveInt] = Field(min_length=1)
    attentions: list[NonNegativeInt] = Field(min_length=2)
    attention_heads: PositiveInt | None = None
    attention_features: PositiveInt | None = None
    attention_multiplier: PositiveInt | None = None
    patch_size: PositiveInt = 1
    resnet_groups: PositiveInt = 8
    use_context_time: bool = True
    # Downsampling conv kernel = factor x this + 1 (even).
    kernel_multiplier_downsample: PositiveInt = 2
    use_nearest_upsample: bool = False
    use_skip_scale: bool = True
    context_features_multiplier: PositiveInt = 4
    # Cross-attention token width (SAT's context_embedding_features; 0: no cross-attention).
    cond_token_dim: NonNegativeInt = 0
    null_embedding_length: NonNegativeInt = 0
    # Global condition width (SAT's context_features; 0: none).
    global_cond_dim: NonNegativeInt = 0
    # Channels joined to the input (SAT's context_channels[0]; 0: none).
    input_concat_dim: NonNegativeInt = 0

    def attention_shape(self, width: int) -> tuple[int, int]:
        """(heads, features per head) of an attention over `width` channels (SAT's rule)."""
        heads, features = self.attention_heads, self.attention_features
        if heads is None:
            heads = width // features  # type: ignore[operator]
        if features is None:
            features = width // heads
        return heads, features

    @model_validator(mode="after")
    def _levels_fit(self) -> ADPUNetConfig:
        _check_levels(self)
        if self.channels % 2 and self.use_context_time:
            raise ValueError(f"channels={self.channels} must be even (the time's Fourier "
                             "features are channels / 2 sines and cosines)")
        if (self.channels * self.multipliers[0]) % self.patch_size:
            raise ValueError(f"channels x multipliers[0] = {self.channels * self.multipliers[0]}"
                             f" is not a multiple of patch_size={self.patch_size}")
        if self.null_embedding_length and not self.cond_token_dim:
            raise ValueError("null_embedding_length > 0 replaces cross-attention tokens: set "
                             "cond_token_dim > 0 (or null_embedding_length: 0)")
        for width in (self.channels * multiplier for multiplier in self.multipliers):
            if width % self.resnet_groups:
                raise ValueError(f"channels x multiplier = {width} is not a multiple of "
                                 f"resnet_groups={self.resnet_groups}")
        self._attentions_fit()
        return self

    def _attentions_fit(self) -> None:
        widths = [self.channels * multiplier for multiplier in self.multipliers[1:]]
        attended = [width for width, blocks in zip([*widths, widths[-1]], self.attentions,
                                                   strict=True) if blocks]
        if not attended:
            return
        if self.attention_multiplier is None or (self.attention_heads is None
                                                 and self.attention_features is None):
            raise ValueError("attentions > 0 need attention_multiplier and attention_heads or "
                             "attention_features")
        for width in attended:
            heads, features = self.attention_shape(width)
            if width % 32 or heads < 1 or features < 1:
                raise ValueError(f"an attention over {width} channels needs a multiple of 32 "
                                 "channels (its group norm has 32 groups) and at least one "
                                 f"head (attention_heads={self.attention_heads}, "
                                 f"attention_features={self.attention_features})")

    @property
    def hop_length(self) -> int:
        """Input lengths must be multiples of this."""
        return self.patch_size * math.prod(self.factors)


class TimeShiftConfig(Section):
    """stable-audio-tools' length-dependent time shift (`distribution_shift_options`): t ->
    s t / (1 + (s - 1) t) with log s rising linearly from base_shift at min_length frames to
    max_shift at max_length (extrapolated beyond), for training times and sampling grids."""

    base_shift: float = 0.5
    max_shift: float = 1.15
    min_length: PositiveInt = 256
    max_length: PositiveInt = 4096

    @model_validator(mode="after")
    def _lengths_ordered(self) -> TimeShiftConfig:
        if self.max_length <= self.min_length:
            raise ValueError(f"max_length={self.max_length} must exceed "
                             f"min_length={self.min_length}")
        return self


class TimestepsConfig(Section):
    """How training draws t in [0, 1] (stable-audio-tools' `timestep_sampler`)."""

    # uniform: scrambled Sobol points; logit_normal: sigmoid(N(mean, std²));
    # trunc_logit_normal: SAT's truncated logit-normal, rescaled and flipped.
    type: Literal["uniform", "logit_normal", "trunc_logit_normal"] = "uniform"
    mean: float = 0.0
    std: PositiveFloat = 1.0
    truncation: float = Field(0.075, gt=0.0, lt=1.0)


NETWORKS: dict[str, type[Section]] = {"dit": DiTConfig, "unet": UNetConfig,
                                      "adp_unet": ADPUNetConfig}
NetworkConfig = DiTConfig | UNetConfig | ADPUNetConfig
# Continuous bottlenecks only: the latents condition a network, they are not tokens.
ENCODER_BOTTLENECKS: dict[str, type[Section]] = {
    "vae": VAEBottleneckConfig, "tanh": TanhBottleneckConfig, "none": NoBottleneckConfig}


class DiffusionEncoderConfig(Section):
    """The encoder of a diffusion autoencoder (stable-audio-tools' `diffusion_autoencoder`): an
    autoencoder encoder (the autoencoder family's networks) and a continuous bottleneck, trained
    with the diffusion loss; its latents reach the network as the `encoder_latents`
    input-concat condition, stretched to the data's length."""

    latent_dim: PositiveInt
    encoder: EncoderConfig
    bottleneck: VAEBottleneckConfig | TanhBottleneckConfig | NoBottleneckConfig = (
        NoBottleneckConfig())
    # The encoder's initial parameters times this: stable-audio-tools' diffusion autoencoder
    # halves them, so that its latents do not start saturated.
    init_scale: PositiveFloat = 1.0

    @field_validator("encoder", mode="before")
    @classmethod
    def _encoder_type(cls, value: Any) -> Any:
        return validate_by_type(value, ENCODERS)

    @field_validator("bottleneck", mode="before")
    @classmethod
    def _bottleneck_type(cls, value: Any) -> Any:
        return validate_by_type(value, ENCODER_BOTTLENECKS)

    @model_validator(mode="after")
    def _latent_dim_fits(self) -> DiffusionEncoderConfig:
        check_encoder_fits(self.encoder, self.bottleneck, self.latent_dim)
        return self

    @property
    def hop_length(self) -> int:
        """Data frames per latent frame."""
        return self.encoder.hop_length


class DiffusionModelConfig(Section):
    objective: Literal["v", "rectified_flow"] = "v"
    cross_attention_cond_ids: list[str] = Field(default_factory=list)
    global_cond_ids: list[str] = Field(default_factory=list)
    prepend_cond_ids: list[str] = Field(default_factory=list)
    input_concat_ids: list[str] = Field(default_factory=list)
    time_shift: TimeShiftConfig | None = None
    network: NetworkConfig
    encoder: DiffusionEncoderConfig | None = None

    @field_validator("network", mode="before")
    @classmethod
    def _network_type(cls, value: Any) -> Any:
        return validate_by_type(value, NETWORKS)

    @model_validator(mode="after")
    def _own_conditions_fit(self) -> DiffusionModelConfig:
        elsewhere = [name for ids in (self.cross_attention_cond_ids, self.global_cond_ids,
                                      self.prepend_cond_ids)
                     for name in ids if name in OWN_CONDITIONS]
        if elsewhere:
            raise ValueError(f"{', '.join(elsewhere)} can only be input_concat_ids")
        concat = set(self.input_concat_ids)
        if len(concat & {INPAINT_MASK, INPAINT_MASKED_INPUT}) == 1:
            raise ValueError(f"input_concat_ids {self.input_concat_ids}: an inpainting model "
                             f"takes both {INPAINT_MASK} and {INPAINT_MASKED_INPUT}")
        if (ENCODER_LATENTS in concat) != (self.encoder is not None):
            raise ValueError(f"a diffusion autoencoder has an `encoder` and {ENCODER_LATENTS} in "
                             f"input_concat_ids; this section has only one of them")
        return self

    @model_validator(mode="after")
    def _inputs_exist(self) -> DiffusionModelConfig:
        widths = {"cross_attention_cond_ids": "cond_token_dim",
                  "global_cond_ids": "global_cond_dim", "prepend_cond_ids": "prepend_cond_dim",
                  "input_concat_ids": "input_concat_dim"}
        for ids, width in widths.items():
            if not getattr(self, ids) or getattr(self.network, width, 0):
                continue
            if not hasattr(self.network, width):
                raise ValueError(f"{ids} {getattr(self, ids)}: a {self.network.type} network "
                                 "takes no prepended tokens (a DiT does)")
            raise ValueError(f"{ids} {getattr(self, ids)} feed an input the {self.network.type} "
                             f"network lacks: set network.{width} > 0")
        return self

    @property
    def io_channels(self) -> int:
        return self.network.io_channels

    @property
    def length_multiple(self) -> int:
        """Data lengths must be multiples of this: what the network takes and, for a diffusion
        autoencoder, the encoder's hop, so that its latents stretch to the data by whole
        frames (stable-audio-tools pads to its hop too; its encoder drops a partial frame)."""
        hop = self.network.hop_length
        return hop if self.encoder is None else math.lcm(hop, self.encoder.hop_length)

    @property
    def inpainting(self) -> bool:
        """Whether the network reads an inpainting mask and the masked data."""
        return INPAINT_MASK in self.input_concat_ids

    def own_widths(self) -> dict[str, int]:
        """Channels of each condition the model makes itself (OWN_CONDITIONS)."""
        widths = {INPAINT_MASK: 1, INPAINT_MASKED_INPUT: self.io_channels}
        if self.encoder is not None:
            widths[ENCODER_LATENTS] = self.encoder.latent_dim
        return widths

    def width_faults(self, dim: int) -> list[str]:
        """How the network's input widths differ from what conditioners of width `dim` (and the
        model's own conditions) give: `network.<key>=N (expected M)` each; empty when they fit."""
        own = self.own_widths()
        expected = {"cond_token_dim": dim if self.cross_attention_cond_ids else 0,
                    "global_cond_dim": dim * len(self.global_cond_ids),
                    "prepend_cond_dim": dim if self.prepend_cond_ids else 0,
                    "input_concat_dim": sum(own.get(name, dim) for name in self.input_concat_ids)}
        return [f"network.{key}={getattr(self.network, key, 0)} (expected {width})"
                for key, width in expected.items() if getattr(self.network, key, 0) != width]


# Stable Audio Open 1.0 / Stable Audio 2.0 (stable-audio-tools' stable_audio_2_0.json and SAO's
# model_config.json): a 1.06 B-parameter DiT on 64-channel VAE latents, T5 (768) tokens with
# the two timing tokens in cross-attention, the timing pair (2 x 768) as the global condition.
STABLE_AUDIO: dict[str, Any] = {
    "objective": "v",
    "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
    "global_cond_ids": ["seconds_start", "seconds_total"],
    "network": {
        "type": "dit", "io_channels": 64, "embed_dim": 1536, "depth": 24, "num_heads": 24,
        "cond_token_dim": 768, "project_cond_tokens": False, "global_cond_dim": 1536,
        "global_cond_type": "prepend", "patch_size": 1,
        # The released weights were trained attending to padding tokens.
        "mask_cross_attention": False,
    },
}
PRESETS: dict[str, dict[str, Any]] = {"stable_audio": STABLE_AUDIO}


def validate_diffusion_config(config: Mapping[str, Any] | BaseModel) -> DiffusionModelConfig:
    """The validated `model:` section; ConfigError listing every fault otherwise."""
    return validate_section(config, DiffusionModelConfig, "model")  # type: ignore[return-value]


def preset(name: str) -> DiffusionModelConfig:
    """A named model section (PRESETS); an unknown name lists the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"no diffusion preset {name!r}; presets: {', '.join(PRESETS)}")
    return validate_diffusion_config(PRESETS[name])
