"""Schema of the autoencoder solver's config: losses, adversarial training, data and model.

Kept apart from the solver so a config is checked (and a finished XP recognised) without
importing the training stack."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..config import EveryConfig, Section, SolverConfig
from ..data.builders import AudioDataConfig
from ..losses.adversarial import GAN_KINDS
from ..losses.stft import WINDOWS
from ..models.autoencoder.config import AutoencoderConfig


class SpectralLossConfig(Section):
    """Multi-resolution STFT loss (auraloss / stable-audio-tools `mrstft`)."""

    fft_sizes: list[int] = Field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64, 32])
    hop_sizes: list[int] = Field(default_factory=lambda: [512, 256, 128, 64, 32, 16, 8])
    win_lengths: list[int] = Field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64, 32])
    # null: linear-frequency STFT bins; mel: `n_bins` mel bands.
    scale: Literal["mel"] | None = None
    # Mel bands: one number, or one per resolution.
    n_bins: int | list[int] = 128
    perceptual_weighting: bool = False
    # auraloss' window and term weights: spectral convergence, log and linear magnitudes.
    window: str = "hann_window"
    w_sc: float = Field(1.0, ge=0.0)
    w_log_mag: float = Field(1.0, ge=0.0)
    w_lin_mag: float = Field(0.0, ge=0.0)

    @field_validator("window")
    @classmethod
    def _known_window(cls, window: str) -> str:
        if window not in WINDOWS:
            raise ValueError(f"use one of {', '.join(WINDOWS)}")
        return window

    @model_validator(mode="after")
    def _one_resolution_per_entry(self) -> SpectralLossConfig:
        if not len(self.fft_sizes) == len(self.hop_sizes) == len(self.win_lengths):
            raise ValueError("losses.spectral.fft_sizes, hop_sizes and win_lengths need one "
                             f"entry per resolution (got {len(self.fft_sizes)}, "
                             f"{len(self.hop_sizes)}, {len(self.win_lengths)})")
        return self


class ComplexLossConfig(Section):
    """Compressed complex spectrum loss (audiotools/losses/complex.py)."""

    fft_sizes: list[int] = Field(default_factory=lambda: [512])
    hop_sizes: list[int] = Field(default_factory=lambda: [128])
    # Magnitudes are compressed as |X|^power before the distance.
    power: float = Field(0.3, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_hop_per_size(self) -> ComplexLossConfig:
        if len(self.fft_sizes) != len(self.hop_sizes):
            raise ValueError("losses.complex.fft_sizes and hop_sizes need one entry per "
                             f"resolution (got {len(self.fft_sizes)}, {len(self.hop_sizes)})")
        return self


class LossWeights(Section):
    """Weight of each term of the generator loss; 0 turns a term off."""

    spectral: float = Field(1.0, ge=0.0)
    l1: float = Field(0.0, ge=0.0)
    complex: float = Field(0.0, ge=0.0)
    kl: float = Field(1e-4, ge=0.0)
    commitment: float = Field(1.0, ge=0.0)
    adversarial: float = Field(0.1, ge=0.0)
    feature_matching: float = Field(5.0, ge=0.0)


class LossesConfig(Section):
    weights: LossWeights = LossWeights()
    spectral: SpectralLossConfig = SpectralLossConfig()
    complex: ComplexLossConfig = ComplexLossConfig()


class AdversarialConfig(Section):
    """EnCodec's multi-scale STFT discriminator with a GAN loss and feature matching."""

    # hinge | least_squares | relativistic (RpGAN)
    loss: str = "hinge"
    # Feature-matching L1 of each layer divided by the mean |real feature| (EnCodec); false:
    # plain L1.
    relative_feature_matching: bool = True
    # Generator updates before the adversarial and feature-matching terms (and the
    # discriminator updates) start.
    warmup_steps: int = Field(0, ge=0)
    # Discriminator learning rate; null = optim.lr.
    lr: float | None = Field(3e-4, gt=0.0)
    filters: int = Field(32, ge=1)
    n_ffts: list[int] = Field(default_factory=lambda: [2048, 1024, 512, 256, 128])
    hop_lengths: list[int] = Field(default_factory=lambda: [512, 256, 128, 64, 32])
    win_lengths: list[int] = Field(default_factory=lambda: [2048, 1024, 512, 256, 128])
    # (time, frequency) stride of the dilated convs: EnCodec's [1, 2] halves the frequency
    # axis at each; stable-audio-tools' discriminator uses [1, 1] (3.4x the FLOPs).
    stride: tuple[PositiveInt, PositiveInt] = (1, 2)

    @model_validator(mode="after")
    def _one_scale_per_entry(self) -> AdversarialConfig:
        if not len(self.n_ffts) == len(self.hop_lengths) == len(self.win_lengths):
            raise ValueError("adversarial.n_ffts, hop_lengths and win_lengths need one entry "
                             "per scale")
        if self.loss not in GAN_KINDS:
            raise ValueError(f"adversarial.loss={self.loss!r}; use one of {list(GAN_KINDS)}")
        return self


class GenerateConfig(EveryConfig):
    # Audio format of the files written under <xp>/samples/<epoch>/.
    format: Literal["wav", "flac", "ogg"] = "wav"


class AutoencoderSolverConfig(SolverConfig):
    model: AutoencoderConfig
    dataset: AudioDataConfig
    losses: LossesConfig = LossesConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    generate: GenerateConfig = GenerateConfig()

    @model_validator(mode="after")
    def _data_matches_model(self) -> AutoencoderSolverConfig:
        """Every split delivers audio at the model's sample rate and channel count."""
        data = self.dataset
        for split in ("train", "valid", "evaluate", "generate"):
            own = getattr(data, split)
            if own is None:
                continue
            if (own.source or data.source) == "pre_encoded":
                raise ValueError(f"dataset.source=pre_encoded (split {split}): the autoencoder "
                                 "trains on audio; pre-encoded latents are for latent and token "
                                 "models")
            for key in ("sample_rate", "channels"):
                value = getattr(own, key) or getattr(data, key)
                expected = getattr(self.model, key)
                if value is not None and value != expected:
                    raise ValueError(f"dataset.{key}={value} (split {split}) but "
                                     f"model.{key}={expected}; make them agree")
        return self
