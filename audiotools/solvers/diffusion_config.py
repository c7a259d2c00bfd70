"""Schema of the diffusion solver's config: the model, how training draws noise levels and
inpainting masks, the valid noise levels, the sampler of generate and evaluate, and the keys
every generative family shares (generative_config). Kept apart from the solver so a config is
checked without importing the training stack."""
from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ..config import EveryConfig, Section
from ..models.diffusion import (
    OWN_CONDITIONS,
    DiffusionModelConfig,
    InpaintMaskConfig,
    TimestepsConfig,
)
from ..sampling.diffusion import SAMPLERS
from ..sampling.limits import MAX_STEPS
from .generative_config import GenerateConfig, GenerativeSolverConfig

DEFAULT_NOISE_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


class DiffusionValidConfig(EveryConfig):
    # Noise levels t of the valid loss (each logged as loss_t<t>, with fixed noise per batch
    # so epochs compare); `loss`, their mean, decides the best state.
    noise_levels: list[float] = Field(default_factory=lambda: list(DEFAULT_NOISE_LEVELS),
                                      min_length=1)

    @field_validator("noise_levels")
    @classmethod
    def _levels_in_range(cls, levels: list[float]) -> list[float]:
        wrong = [level for level in levels if not 0.0 < level <= 1.0]
        if wrong:
            raise ValueError(f"noise levels {wrong} lie outside (0, 1]")
        return levels


class DiffusionGenerateConfig(GenerateConfig):
    # ddim | euler | heun | dpmpp_2m | dpmpp_2m_sde (audiotools.sampling.diffusion); evaluate
    # samples with these settings too.
    sampler: str = "dpmpp_2m"
    steps: int = Field(50, ge=1, le=MAX_STEPS)
    # CFG rescale toward the conditional output's std (0: off), and the noise levels sigma
    # in [low, high] where guidance applies.
    cfg_rescale: float = Field(0.0, ge=0.0, le=1.0)
    cfg_interval: tuple[float, float] = (0.0, 1.0)

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, sampler: str) -> str:
        if sampler not in SAMPLERS:
            raise ValueError(f"use one of {', '.join(SAMPLERS)}")
        return sampler

    @field_validator("cfg_interval")
    @classmethod
    def _interval(cls, interval: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= interval[0] <= interval[1] <= 1.0:
            raise ValueError(f"{list(interval)} needs 0 <= low <= high <= 1")
        return interval


class DiffusionLossesConfig(Section):
    # Weight of a diffusion autoencoder's bottleneck KL term (model.encoder.bottleneck: vae).
    kl: float = Field(1e-4, ge=0.0)


class DiffusionSolverConfig(GenerativeSolverConfig):
    model: DiffusionModelConfig
    # How training draws noise levels (uniform Sobol, logit-normal, truncated logit-normal).
    timesteps: TimestepsConfig = TimestepsConfig()
    # Training masks of an inpainting model (inpaint_mask in model.input_concat_ids).
    inpainting: InpaintMaskConfig = InpaintMaskConfig()
    losses: DiffusionLossesConfig = DiffusionLossesConfig()
    valid: DiffusionValidConfig = DiffusionValidConfig()
    generate: DiffusionGenerateConfig = DiffusionGenerateConfig()

    @model_validator(mode="after")
    def _conditions_fit_the_model(self) -> DiffusionSolverConfig:
        model = self.model
        names = set(self.conditioners)
        reserved = sorted(names & set(OWN_CONDITIONS))
        if reserved:
            raise ValueError(f"conditioners {reserved}: these names are the model's own "
                             "conditions; choose others")
        used: set[str] = set()
        for key in ("cross_attention_cond_ids", "global_cond_ids", "prepend_cond_ids",
                    "input_concat_ids"):
            ids = getattr(model, key)
            used.update(ids)
            missing = [name for name in ids if name not in names and name not in OWN_CONDITIONS]
            if missing:
                raise ValueError(f"model.{key} name {missing}, which are not conditioners "
                                 f"(conditioners: {sorted(names) or 'none'})")
        unused = sorted(names - used)
        if unused:
            raise ValueError(f"conditioners {unused} feed no input of the model: name them in "
                             "model.cross_attention_cond_ids, global_cond_ids, prepend_cond_ids "
                             "or input_concat_ids, or remove them")
        faults = model.width_faults(self.conditioning.dim)
        if faults:
            raise ValueError(f"conditioning.dim={self.conditioning.dim} does not fit the model: "
                             + "; ".join(f"model.{fault}" for fault in faults))
        if model.encoder is not None and self.generate.conditions:
            raise ValueError("generate.conditions: a diffusion autoencoder reconstructs the "
                             "generate split's audio; leave generate.conditions empty")
        if model.encoder is not None and self.generate.every and self.dataset.generate is None:
            raise ValueError("a diffusion autoencoder reconstructs the generate split's audio: "
                             "define dataset.generate, or set generate.every=0")
        return self
