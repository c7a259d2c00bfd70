"""Diffusion solver: the stable-audio-tools diffusion family (unconditional, conditional,
inpainting, diffusion autoencoder), on audio or on the latents of a frozen codec (latent
diffusion), on the generative base (codec, conditioners, data, generate and evaluate).

Training draws a noise level per item (`timesteps`, then the model's time shift), noises the
data and regresses the objective's target (v or rectified-flow velocity) with a mean squared
error over the real frames; the conditions get CFG dropout, an inpainting model gets a random
mask (`inpainting`) and the masked data, a diffusion autoencoder its encoder's latents (and
its bottleneck's KL, weighted by `losses.kl`). Valid evaluates the loss at fixed noise levels
with fixed noise (`valid.noise_levels`), so the curves of `loss_t<level>` and of their mean
`loss` (the best-state metric) compare across epochs. Generate and evaluate sample through
DiffusionPipeline with the `generate:` settings, as inference does.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..conditioning import Conditioning, Conditions
from ..config import unread_settings
from ..errors import ConfigError
from ..inference.diffusion import DiffusionPipeline
from ..models.diffusion import (
    ENCODER_LATENTS,
    DiffusionModel,
    build_diffusion_model,
    inpaint_conditions,
    random_keep_masks,
    sample_timesteps,
)
from .diffusion_config import DiffusionSolverConfig
from .generative import GenerativeSolver, Item

# Seeds of the valid stage's noise: batch `idx` draws from VALID_SEED + idx (plus the XP seed).
VALID_SEED = 1_000_003


# What each timestep sampler reads of `timesteps:` (models/diffusion/objectives.py).
TIMESTEP_KEYS = {"uniform": (), "logit_normal": ("mean", "std"),
                 "trunc_logit_normal": ("truncation",)}


class DiffusionSolver(GenerativeSolver):
    config_schema = DiffusionSolverConfig
    best_metric = "loss"
    best_mode = "min"
    settings: DiffusionSolverConfig
    model: DiffusionModel

    def check_settings(self) -> None:
        """Also: the `timesteps` keys the chosen sampler does not read are said."""
        super().check_settings()
        timesteps = self.settings.timesteps
        read = ("type", *TIMESTEP_KEYS[timesteps.type])
        self.say_unread(unread_settings(timesteps, read, "timesteps"),
                        f"timesteps.type={timesteps.type} does not use them")

    def build_generative_model(self) -> DiffusionModel:
        model = build_diffusion_model(self.settings.model)
        if model.io_channels != self.data_channels:
            what = ("the codec's latent_dim" if self.codec is not None
                    else "the audio's channels (dataset.channels)")
            raise ConfigError(f"model.network.io_channels={model.io_channels} but the model "
                              f"reads {self.data_channels} channels ({what}); set "
                              f"model.network.io_channels={self.data_channels}.")
        return model

    def length_multiple(self) -> tuple[int, str]:
        model = self.settings.model
        network = model.network
        why = (f"model.network.patch_size={network.patch_size}" if network.type == "dit" else
               f"model.network.patch_size x prod(factors) = {network.hop_length}")
        if model.encoder is not None:
            why += f", and the hop of model.encoder.encoder, {model.encoder.hop_length}"
        return model.length_multiple, why

    @property
    def pipeline(self) -> DiffusionPipeline:
        """Inference around the live modules (the stage's weights are swapped in)."""
        generate = self.settings.generate
        defaults = {"steps": generate.steps, "sampler": generate.sampler,
                    "cfg_rescale": generate.cfg_rescale, "cfg_interval": generate.cfg_interval,
                    "max_duration": self.max_duration}
        return DiffusionPipeline(self.model, self.conditioners, self.codec, self.sample_rate,
                                 self.channels, defaults)

    # ------------------------------------------------------------------ steps
    def _own_conditions(self, data: torch.Tensor, mask: torch.Tensor,
                        generator: torch.Generator) -> tuple[Conditions, dict[str, torch.Tensor]]:
        """The conditions the model makes itself (an inpainting mask and the masked data, a
        diffusion autoencoder's latents) and the losses they bring."""
        config = self.model.config
        own: Conditions = {}
        losses: dict[str, torch.Tensor] = {}
        if config.inpainting:
            keep = random_keep_masks(mask, self.settings.inpainting, generator)
            own.update(inpaint_conditions(data, keep))
        if config.encoder is not None:
            encoded = self.model.encode(data)
            real = torch.ones(data.shape[0], encoded.latents.shape[-1], dtype=torch.bool,
                              device=data.device)
            own[ENCODER_LATENTS] = Conditioning(encoded.latents.transpose(1, 2), real)
            losses.update(encoded.losses)
        return own, losses

    def _denoising_loss(self, data: torch.Tensor, mask: torch.Tensor, conditions: Conditions,
                        t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Mean squared error to the objective's target over the real frames."""
        model = self.model
        noised, target = model.objective.training_pair(data, noise, t)
        output = model(noised, t, **model.condition_inputs(conditions))
        error = (output.float() - target.float()).pow(2).mean(dim=1)
        weights = mask.to(error.dtype)
        return (error * weights).sum() / weights.sum().clamp_min(1)

    def run_step(self, idx: int, batch: Any, metrics: dict[str, Any]) -> dict[str, Any]:
        data, mask = self.data_batch(batch)
        if self.is_training:
            # One generator per step seeded from the global RNG (which checkpoints restore).
            generator = torch.Generator().manual_seed(int(torch.randint(2 ** 62, ())))
        else:
            generator = torch.Generator().manual_seed(self.settings.seed + VALID_SEED + idx)
        own, losses = self._own_conditions(data, mask, generator)
        conditions = {**self.conditions(batch["info"]), **own}
        noise = torch.randn(data.shape, generator=generator).to(self.device, data.dtype)
        if not self.is_training:
            levels = {f"loss_t{level:g}": self._denoising_loss(
                data, mask, conditions, torch.full((data.shape[0],), level, device=self.device),
                noise) for level in self.settings.valid.noise_levels}
            return {**levels, "loss": torch.stack(list(levels.values())).mean()}
        t = sample_timesteps(self.settings.timesteps, data.shape[0], generator,
                             shift=self.model.config.time_shift, length=data.shape[-1])
        diffusion = self._denoising_loss(data, mask, conditions, t.to(self.device), noise)
        loss = diffusion + sum(getattr(self.settings.losses, name) * value
                               for name, value in losses.items())
        return {"loss": loss, "diffusion": diffusion, **losses}

    # ------------------------------------------------------------------ sampling
    def generate_audio(self, values: Sequence[Mapping[str, Any]], items: Sequence[Item] | None,
                       duration: float, seed: int, cfg_scale: float) -> torch.Tensor:
        pipeline = self.pipeline
        if self.model.config.encoder is not None:
            assert items is not None, "a diffusion autoencoder reconstructs data items"
            clips = self.real_audio(items, duration)
            samples = round(duration * self.sample_rate)
            batch = torch.stack([torch.nn.functional.pad(clip, (0, samples - clip.shape[-1]))
                                 for clip in clips])
            audio, _ = pipeline.reconstruct(batch, self.sample_rate, list(values), seed=seed,
                                            cfg_scale=cfg_scale)
            return audio
        audio, _ = pipeline.generate(list(values), duration, seed=seed, cfg_scale=cfg_scale)
        return audio

    def sampling_record(self) -> dict[str, Any]:
        generate = self.settings.generate
        return {"sampler": generate.sampler, "steps": generate.steps,
                "cfg_rescale": generate.cfg_rescale, "cfg_interval": list(generate.cfg_interval)}
