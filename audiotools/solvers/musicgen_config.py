"""Schema of the MusicGen solver's config: the token LM (`model:`, audiotools.models.lm), how
generate and evaluate sample tokens, and the keys every generative family shares
(generative_config). Kept apart from the solver so a config is checked without importing the
training stack."""
from __future__ import annotations

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, model_validator

from ..models.lm import LMConfig
from .generative_config import GenerateConfig, GenerativeSolverConfig


class MusicGenGenerateConfig(GenerateConfig):
    # Token sampling (evaluate samples with these too): softmax temperature (0: greedy),
    # the top_k most likely tokens (0: all), then the nucleus holding top_p of the
    # probability (1: off). MusicGen's defaults: 1.0, 250, off.
    temperature: NonNegativeFloat = 1.0
    top_k: NonNegativeInt = 250
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # Besides each sample from nothing, one continuing the first `prompt_fraction` of the
    # item's real segment (AudioCraft's quarter); 0: none. Needs items from data (the
    # generate split), not `conditions`.
    prompt_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    # The longest audio (prompt included) inference generates, in seconds.
    max_duration: PositiveFloat = 30.0


class MusicGenSolverConfig(GenerativeSolverConfig):
    model: LMConfig
    generate: MusicGenGenerateConfig = MusicGenGenerateConfig()

    @model_validator(mode="after")
    def _tokens_and_conditions_fit_the_model(self) -> MusicGenSolverConfig:
        if self.codec is None:
            raise ValueError("a token LM models the tokens of a discrete codec: set "
                             "codec.source (//recipe/autoencoder/NAME, //sig/SIG, an export, a "
                             "stable-audio-tools RVQ/FSQ autoencoder)")
        if self.codec.normalize or self.codec.scale != 1.0:
            raise ValueError("codec.normalize / codec.scale scale continuous latents; a token "
                             "LM reads tokens: set codec.normalize=false, codec.scale=1.0")
        model, names = self.model, set(self.conditioners)
        fused = model.fuser.methods()
        unknown = sorted(set(fused) - names)
        if unknown:
            raise ValueError(f"model.fuser names {unknown}, which are not conditioners "
                             f"(conditioners: {sorted(names) or 'none'})")
        unused = sorted(names - set(fused))
        if unused:
            raise ValueError(f"conditioners {unused} feed nothing: name them in "
                             "model.fuser.cross, prepend or sum, or remove them")
        if names and self.conditioning.dim != model.dim:
            raise ValueError(f"conditioning.dim={self.conditioning.dim}: the LM fuses "
                             f"conditions at its width, model.dim={model.dim}; set "
                             f"conditioning.dim={model.dim}")
        return self
