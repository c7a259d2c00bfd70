"""Typed schema of the `model:` section of autoencoder recipes (config/model/autoencoder/*.yaml).

    model:
      sample_rate: 16000
      channels: 1              # audio channels in and out (1 mono, 2 stereo, N)
      latent_dim: 32           # channels of the latents the decoder reads
      patch_size: 1            # samples folded into channels around the networks
      encoder: {type: oobleck | seanet | stft, ...}
      decoder: {type: oobleck | seanet | istft, ...}
      bottleneck: {type: vae | tanh | rvq | fsq | none, ...}

Strides and ratios are written in encoder (downsampling) order for the encoder and the
decoder alike; the decoder upsamples through them in reverse. `encoder.latent_dim` and
`decoder.latent_dim` may be left null: they follow from `latent_dim` and the bottleneck (a VAE
encoder outputs 2 x latent_dim: mean and scale). Given, they are checked.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)
from torch import nn

from ...config import Section, validate_by_type, validate_section


class _OobleckConfig(Section):
    """Stable Audio 2.0's VAE network (stable-audio-tools' OobleckEncoder/Decoder)."""

    channels: PositiveInt = 128
    c_mults: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1)
    strides: list[PositiveInt] = Field(default_factory=lambda: [2, 4, 8, 8], min_length=1)
    use_snake: bool = False
    latent_dim: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_stride_per_block(self) -> _OobleckConfig:
        if len(self.c_mults) != len(self.strides):
            raise ValueError(f"oobleck needs one stride per channel multiplier: c_mults "
                             f"{self.c_mults} has {len(self.c_mults)}, strides {self.strides} "
                             f"has {len(self.strides)}")
        return self

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)


class OobleckEncoderConfig(_OobleckConfig):
    type: Literal["oobleck"] = "oobleck"


class OobleckDecoderConfig(_OobleckConfig):
    type: Literal["oobleck"] = "oobleck"
    # Nearest-neighbour upsampling + conv instead of transposed convolutions.
    use_nearest_upsample: bool = False
    final_tanh: bool = True

    @model_validator(mode="after")
    def _transposed_strides_even(self) -> OobleckDecoderConfig:
        odd = [stride for stride in self.strides if stride % 2]
        if odd and not self.use_nearest_upsample:
            raise ValueError(f"oobleck decoder strides {self.strides}: odd strides {odd} lose "
                             "one sample per frame in the transposed convolution; use even "
                             "strides or use_nearest_upsample: true")
        return self


def _check_activation(name: str | None) -> str | None:
    if name is not None and not (isinstance(getattr(nn, name, None), type)
                                 and issubclass(getattr(nn, name), nn.Module)):
        raise ValueError(f"{name!r} is not a torch.nn activation (e.g. ELU, LeakyReLU, Tanh)")
    return name


class _SEANetConfig(Section):
    """EnCodec's SEANet network; defaults are those of the `encodec` package's SEANet."""

    n_filters: PositiveInt = 32
    n_residual_layers: NonNegativeInt = 1
    ratios: list[PositiveInt] = Field(default_factory=lambda: [2, 4, 5, 8], min_length=1)
    activation: str = "ELU"
    activation_params: dict[str, float] = Field(default_factory=lambda: {"alpha": 1.0})
    norm: Literal["weight_norm", "none"] = "weight_norm"
    kernel_size: PositiveInt = 7
    last_kernel_size: PositiveInt = 7
    residual_kernel_size: PositiveInt = 3
    dilation_base: PositiveInt = 2
    causal: bool = False
    pad_mode: Literal["reflect", "constant", "replicate"] = "reflect"
    # Identity skip in residual blocks (else a 1x1 conv).
    true_skip: bool = False
    # Residual branch width = channels // compress.
    compress: PositiveInt = 2
    # LSTM layers at the bottleneck side (0: none).
    lstm: NonNegativeInt = 2
    latent_dim: PositiveInt | None = None

    _activation_exists = field_validator("activation")(_check_activation)

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)


class SEANetEncoderConfig(_SEANetConfig):
    type: Literal["seanet"] = "seanet"


class SEANetDecoderConfig(_SEANetConfig):
    type: Literal["seanet"] = "seanet"
    # A torch.nn activation applied to the output (e.g. Tanh); null: none.
    final_activation: str | None = None

    _final_activation_exists = field_validator("final_activation")(_check_activation)


class _SpectralConfig(Section):
    """A frame-rate network around an STFT (audiotools/models/autoencoder/spectral.py): one
    STFT frame per latent frame, `depth` ConvNeXt blocks `channels` wide in between."""

    n_fft: PositiveInt = 1024
    # Samples per frame: the latent frame rate is sample_rate / hop_length.
    hop_length: PositiveInt = 256
    channels: PositiveInt = 256
    depth: PositiveInt = 6
    # Hidden width of each block's MLP, as a multiple of `channels`.
    mlp_ratio: float = Field(3.0, gt=0.0)
    kernel_size: PositiveInt = 7
    latent_dim: PositiveInt | None = None
    # Where STFT phases are measured from: frame (each frame's start, as torch.stft gives
    # them) or time (the signal's start: a steady partial keeps its phase from frame to
    # frame, which frame-rate convolutions can read and produce; audiotools/models/
    # autoencoder/spectral.py's _phase_advance says why).
    phase: Literal["frame", "time"] = "frame"

    @model_validator(mode="after")
    def _framing_fits(self) -> _SpectralConfig:
        if self.n_fft <= self.hop_length or (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"n_fft={self.n_fft}, hop_length={self.hop_length}: n_fft must "
                             "exceed hop_length (Hann frames must overlap to be inverted) and "
                             "differ from it by an even number (e.g. n_fft = 4 x hop_length)")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={self.kernel_size} must be odd (same-length "
                             "convolutions)")
        return self


class STFTEncoderConfig(_SpectralConfig):
    type: Literal["stft"] = "stft"
    # What the encoder reads of each STFT frame: complex (compressed real and imaginary
    # parts: the phase too) or magnitude (|X|^0.3 only: latents that stay put on a steady
    # note; the decoder then invents the phase).
    features: Literal["complex", "magnitude"] = "complex"


class ISTFTDecoderConfig(_SpectralConfig):
    type: Literal["istft"] = "istft"
    # complex: real and imaginary parts (the waveform loss reaches the phase directly);
    # polar: log-magnitude and phase angle (Vocos' head).
    head: Literal["complex", "polar"] = "complex"


class _BottleneckConfig(Section):
    def input_dim(self, latent_dim: int) -> int:
        """Channels the encoder must output for `latent_dim` latents."""
        return latent_dim


class NoBottleneckConfig(_BottleneckConfig):
    type: Literal["none"] = "none"


class TanhBottleneckConfig(_BottleneckConfig):
    type: Literal["tanh"] = "tanh"
    # latents = scale * tanh(x / scale)
    scale: float = Field(1.0, gt=0.0)


class VAEBottleneckConfig(_BottleneckConfig):
    type: Literal["vae"] = "vae"

    def input_dim(self, latent_dim: int) -> int:
        return 2 * latent_dim


class RVQBottleneckConfig(_BottleneckConfig):
    """Residual VQ with EMA codebooks (vector-quantize-pytorch); defaults as stable-audio-tools."""

    type: Literal["rvq"] = "rvq"
    num_quantizers: PositiveInt = 8
    codebook_size: int = Field(1024, ge=2)
    decay: float = Field(0.99, gt=0.0, lt=1.0)
    kmeans_init: bool = True
    kmeans_iters: PositiveInt = 50
    # Codes used less than this (EMA count) are replaced by batch vectors; 0 never.
    threshold_ema_dead_code: float = Field(2.0, ge=0.0)
    # In training, keep a random number of quantizers (at least min_quantizers) per batch.
    quantizer_dropout: bool = False
    min_quantizers: PositiveInt = 1
    # Gradients through the codes by the rotation trick (Fifty et al. 2024: the encoder
    # output is rotated onto its code, so the encoder learns where in the cell it landed)
    # instead of the straight-through copy; off as stable-audio-tools trains.
    rotation_trick: bool = False
    # Codes looked up in a learned projection of this many dimensions (factorised codes, as
    # DAC's): fewer to match per code, projected back to the latent; null: the latent's own.
    codebook_dim: PositiveInt | None = None

    @model_validator(mode="after")
    def _min_within_range(self) -> RVQBottleneckConfig:
        if self.min_quantizers > self.num_quantizers:
            raise ValueError(f"rvq min_quantizers={self.min_quantizers} exceeds "
                             f"num_quantizers={self.num_quantizers}")
        return self


class FSQBottleneckConfig(_BottleneckConfig):
    """Finite scalar quantization (vector-quantize-pytorch FSQ); one index per codebook."""

    type: Literal["fsq"] = "fsq"
    # Quantization levels per dimension; codebook size = their product.
    levels: list[int] = Field(default_factory=lambda: [8, 5, 5, 5], min_length=1)
    num_codebooks: PositiveInt = 1

    @field_validator("levels")
    @classmethod
    def _levels_at_least_three(cls, levels: list[int]) -> list[int]:
        if any(level < 3 for level in levels):
            raise ValueError(f"fsq levels {levels}: every level must be >= 3")
        return levels


ENCODERS: dict[str, type[Section]] = {"oobleck": OobleckEncoderConfig,
                                      "seanet": SEANetEncoderConfig,
                                      "stft": STFTEncoderConfig}
DECODERS: dict[str, type[Section]] = {"oobleck": OobleckDecoderConfig,
                                      "seanet": SEANetDecoderConfig,
                                      "istft": ISTFTDecoderConfig}
BOTTLENECKS: dict[str, type[Section]] = {"vae": VAEBottleneckConfig, "tanh": TanhBottleneckConfig,
                                         "rvq": RVQBottleneckConfig, "fsq": FSQBottleneckConfig,
                                         "none": NoBottleneckConfig}

EncoderConfig = OobleckEncoderConfig | SEANetEncoderConfig | STFTEncoderConfig
DecoderConfig = OobleckDecoderConfig | SEANetDecoderConfig | ISTFTDecoderConfig
BottleneckConfig = (VAEBottleneckConfig | TanhBottleneckConfig | RVQBottleneckConfig
                    | FSQBottleneckConfig | NoBottleneckConfig)


def check_encoder_fits(encoder: Any, bottleneck: Any, latent_dim: int) -> None:
    """Refuse an encoder whose output channels are not what the bottleneck takes in."""
    wanted = bottleneck.input_dim(latent_dim)
    if encoder.latent_dim not in (None, wanted):
        raise ValueError(
            f"encoder.latent_dim={encoder.latent_dim} does not fit: the {bottleneck.type} "
            f"bottleneck takes {wanted} channels for latent_dim={latent_dim}; set "
            f"encoder.latent_dim to {wanted} or null")


class AutoencoderConfig(Section):
    sample_rate: int = Field(ge=1000)
    channels: PositiveInt
    latent_dim: PositiveInt
    # Consecutive samples folded into channels before the encoder and unfolded after the
    # decoder (stable-audio-tools' "patched" pretransform): the networks run at
    # sample_rate / patch_size on channels x patch_size channels, which turns the costly
    # narrow full-rate convolutions into fewer, wider ones.
    patch_size: PositiveInt = 1
    encoder: EncoderConfig
    decoder: DecoderConfig
    bottleneck: BottleneckConfig = NoBottleneckConfig()

    @field_validator("encoder", mode="before")
    @classmethod
    def _encoder_type(cls, value: Any) -> Any:
        return validate_by_type(value, ENCODERS)

    @field_validator("decoder", mode="before")
    @classmethod
    def _decoder_type(cls, value: Any) -> Any:
        return validate_by_type(value, DECODERS)

    @field_validator("bottleneck", mode="before")
    @classmethod
    def _bottleneck_type(cls, value: Any) -> Any:
        return validate_by_type(value, BOTTLENECKS)

    @model_validator(mode="after")
    def _parts_fit(self) -> AutoencoderConfig:
        check_encoder_fits(self.encoder, self.bottleneck, self.latent_dim)
        if self.decoder.latent_dim not in (None, self.latent_dim):
            raise ValueError(
                f"decoder.latent_dim={self.decoder.latent_dim} differs from "
                f"latent_dim={self.latent_dim}; set it to {self.latent_dim} or null")
        if self.encoder.hop_length != self.decoder.hop_length:
            raise ValueError(
                f"the encoder downsamples by {self.encoder.hop_length} but the decoder "
                f"upsamples by {self.decoder.hop_length}; their strides/ratios must have the "
                "same product")
        spectral = [part.type for part in (self.encoder, self.decoder)
                    if part.type in ("stft", "istft")]
        if spectral and self.patch_size != 1:
            raise ValueError(f"patch_size={self.patch_size} with a {spectral[0]} network: the "
                             "STFT networks frame the audio themselves; use patch_size: 1")
        return self

    @property
    def encoder_dim(self) -> int:
        """Channels of the encoder output (the bottleneck input)."""
        return self.bottleneck.input_dim(self.latent_dim)

    @property
    def hop_length(self) -> int:
        """Input samples per latent frame."""
        return self.patch_size * self.encoder.hop_length

    @property
    def network_channels(self) -> int:
        """Channels the encoder reads and the decoder writes (audio channels x patch_size)."""
        return self.channels * self.patch_size


def validate_autoencoder_config(config: Mapping[str, Any] | BaseModel) -> AutoencoderConfig:
    """The validated `model:` section; ConfigError listing every fault otherwise."""
    return validate_section(config, AutoencoderConfig, "model")  # type: ignore[return-value]
