"""The diffusion family's pipeline: generate audio from conditions, inpaint a region of a clip,
continue a clip, and (a diffusion autoencoder) reconstruct one, with a trained model, its
conditioners and the codec it was trained on.

Everything goes through one sampler call (audiotools.sampling.diffusion.sample), from a seed:
the same arguments give the same audio on any device. The solver's generate and evaluate
stages use this pipeline around their live modules, so an XP's samples are what inference of
its export gives. Inpainting keeps the given frames exactly in what the model makes (audio
for a raw-audio model; latents, so the codec's reconstruction of the audio, for a latent one).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..conditioning import ConditionerSet, Conditioning, Conditions
from ..data.audio import convert_audio
from ..errors import CheckpointError, ConfigError
from ..io.codecs import trained_codec
from ..io.export import Export
from ..models.codec import FrozenCodec
from ..models.diffusion import (
    ENCODER_LATENTS,
    DiffusionModel,
    inpaint_conditions,
    keep_mask,
)
from ..sampling.diffusion import sample
from ..sampling.limits import DEFAULT_MAX_DURATION
from .generative import (
    SamplingSettings,
    check_audio_format,
    exported_conditioners,
    sampling_defaults,
)
from .inputs import (
    checked_clip,
    checked_duration,
    checked_number,
    checked_seconds,
    checked_seed,
)

Values = Mapping[str, Any]
# Sampling settings a pipeline takes from its XP's `generate:` section when a call omits them.
SAMPLING_KEYS = ("steps", "sampler", "cfg_scale", "cfg_rescale", "cfg_interval", "duration",
                 "max_duration")


def _check_codec_fits(model: DiffusionModel, codec: FrozenCodec, export: Export) -> None:
    """A codec given in place of the trained one gives the latents the model denoises."""
    fix = "give it the codec it was trained on"
    if export.info.get("codec") is None:
        raise ConfigError(f"{export.label} was trained on audio, not on a codec's latents: "
                          "load it without a codec.")
    if codec.latent_dim != model.io_channels:
        raise ConfigError(f"{export.label} denoises {model.io_channels}-channel latents, but the "
                          f"codec ({codec.source}) gives {codec.latent_dim}: {fix}.")
    check_audio_format(export, codec, fix)


@dataclass
class DiffusionPipeline(SamplingSettings):
    FALLBACK: ClassVar[dict[str, Any]] = {
        "steps": 50, "sampler": "dpmpp_2m", "cfg_scale": 1.0, "cfg_rescale": 0.0,
        "cfg_interval": (0.0, 1.0), "max_duration": DEFAULT_MAX_DURATION}

    model: DiffusionModel
    conditioners: ConditionerSet
    # None: the model works on audio itself.
    codec: FrozenCodec | None
    sample_rate: int
    channels: int
    # Defaults of the sampling settings (SAMPLING_KEYS), from the XP's `generate:` section.
    defaults: dict[str, Any] = field(default_factory=dict)
    export: Export | None = None

    @classmethod
    def from_model(cls, model: torch.nn.Module, export: Export,
                   codec: FrozenCodec | None = None) -> DiffusionPipeline:
        """The pipeline of an exported model; `codec` replaces the one it was trained on."""
        info = export.info
        if not isinstance(model, DiffusionModel) or "conditioners" not in info:
            raise CheckpointError(f"{export.label} is not an exported diffusion model (no "
                                  "conditioners in its metadata).")
        device = next(model.parameters()).device
        if codec is not None:
            _check_codec_fits(model, codec, export)
        codec = codec or trained_codec(info.get("codec"), device, export.label)
        conditioners = exported_conditioners(export, codec, info["conditioning_dim"], device)
        defaults = sampling_defaults(export, SAMPLING_KEYS)
        if "max_duration" not in defaults:  # null, or exported before there was a limit:
            # the export's own duration is never refused
            defaults["max_duration"] = max(DEFAULT_MAX_DURATION, defaults.get("duration", 0))
        return cls(model.eval(), conditioners, codec, int(info["sample_rate"]),
                   int(info["channels"]), defaults, export)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate if self.codec is not None else float(self.sample_rate)

    def frames(self, duration: float) -> int:
        """Model frames for `duration` seconds, rounded up to what the model takes."""
        duration = checked_seconds(duration)
        multiple = self.model.length_multiple
        return math.ceil(math.ceil(duration * self.frame_rate - 1e-6) / multiple) * multiple


    def _to_model(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """(channels, samples) at any rate -> (1, channels, samples) in the model's format."""
        audio, sample_rate = checked_clip(audio, sample_rate)
        return convert_audio(audio, sample_rate, self.sample_rate,
                             self.channels)[None].to(self.device)

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(audio) if self.codec is not None else audio

    def _decode(self, data: torch.Tensor, samples: int) -> torch.Tensor:
        audio = self.codec.decode(data) if self.codec is not None else data
        return audio[..., :samples].float().cpu()

    def _sample(self, values: Sequence[Values], frames: int, seed: int, *,
                known: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                latents: torch.Tensor | None = None, steps: int | None = None,
                sampler: str | None = None, cfg_scale: float | None = None,
                cfg_rescale: float | None = None, cfg_interval: tuple[float, float] | None = None,
                negative: Values | None = None,
                callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Data (B, io_channels, frames) for B value sets. `known` and `keep` (B, 1, frames)
        inpaint (keep 1: given); `latents`: a diffusion autoencoder's encoder latents."""
        model, batch = self.model, len(values)
        own: Conditions = {}
        if model.config.inpainting:
            given = known if known is not None else torch.zeros(
                batch, model.io_channels, frames, device=self.device)
            mask = keep if keep is not None else keep_mask(frames, 0, frames, batch, self.device)
            own.update(inpaint_conditions(given, mask))
        if model.config.encoder is not None:
            if latents is None:
                raise ConfigError("a diffusion autoencoder decodes latents, it does not "
                                  "generate from conditions alone: in Python, "
                                  "audiotools.load(MODEL).reconstruct(audio, sample_rate) "
                                  "encodes a clip and decodes it (no command does yet)")
            real = torch.ones(latents.shape[0], latents.shape[-1], dtype=torch.bool,
                              device=latents.device)
            own[ENCODER_LATENTS] = Conditioning(latents.transpose(1, 2), real)
        scale, negative = self.guidance_scale(cfg_scale, negative)
        cond = model.condition_inputs({**self.conditioners.encode(list(values)), **own})
        uncond = None
        if scale != 1.0:
            uncond = model.condition_inputs(
                {**self.conditioners.unconditional(batch, negative), **own})
        try:
            return sample(model, (batch, model.io_channels, frames), objective=model.objective,
                          steps=self.whole_setting("steps", steps),
                          sampler=str(self.setting("sampler", sampler)),
                          seed=checked_seed(seed), cond=cond, uncond=uncond, cfg_scale=scale,
                          cfg_rescale=self.number_setting("cfg_rescale", cfg_rescale),
                          cfg_interval=self.interval_setting("cfg_interval", cfg_interval),
                          known=known, known_mask=None if keep is None else keep.bool(),
                          shift=model.config.time_shift, device=self.device,
                          callback=callback)
        except ValueError as error:  # a setting out of range (steps=0, cfg_rescale=5, ...)
            raise ConfigError(str(error)) from None

    @torch.no_grad()
    def generate(self, conditions: Values | Sequence[Values] | None = None,
                 duration: float | None = None, *, steps: int | None = None,
                 sampler: str | None = None, cfg_scale: float | None = None, seed: int = 0,
                 cfg_rescale: float | None = None,
                 cfg_interval: tuple[float, float] | None = None,
                 negative: Values | None = None, max_duration: float | None = None,
                 callback: Callable[[int, int], None] | None = None,
                 ) -> tuple[torch.Tensor, int]:
        """(audio, sample_rate): one clip (channels, samples) for a mapping of conditions
        ({conditioner: value}; a missing one takes its default, else its null condition, as
        None does; no conditions: all null), or a batch (B, channels, samples) for a list of
        them, exactly `duration` seconds long (default: the XP's). `negative`: values of the
        unconditional branch of guidance (a negative prompt). `max_duration` bounds `duration` (the
        network's time grows with the square of the length). Settings left None take the
        XP's."""
        values, single = self.value_sets(conditions)
        duration = checked_duration(self.setting("duration", duration), self.sample_rate)
        self.check_length(duration, "duration", max_duration)
        frames = self.frames(duration)
        data = self._sample(values, frames, seed, steps=steps, sampler=sampler,
                            cfg_scale=cfg_scale, cfg_rescale=cfg_rescale,
                            cfg_interval=cfg_interval, negative=negative, callback=callback)
        audio = self._decode(data, round(duration * self.sample_rate))
        return (audio[0] if single else audio), self.sample_rate

    @torch.no_grad()
    def inpaint(self, audio: torch.Tensor, sample_rate: int, mask_start: float,
                mask_end: float, conditions: Values | None = None, *, seed: int = 0,
                **sampling: Any) -> tuple[torch.Tensor, int]:
        """(audio, sample_rate): the clip (channels, samples) at any rate with the seconds
        [mask_start, mask_end) generated anew and the rest kept, in the model's format.
        `sampling`: the keyword settings of `generate`."""
        sampling = dict(self.sampling_keywords("inpaint", sampling))
        limit = sampling.pop("max_duration", None)
        mask_start = checked_number(mask_start, "mask_start")
        mask_end = checked_number(mask_end, "mask_end")
        audio, sample_rate = checked_clip(audio, sample_rate)
        self.check_length(audio.shape[-1] / sample_rate, "the clip", limit)  # before the work
        clip = self._to_model(audio, sample_rate)
        total = clip.shape[-1] / self.sample_rate
        if not 0 <= mask_start < mask_end <= total + 1e-6:
            raise ConfigError(f"mask_start={mask_start}, mask_end={mask_end}: need 0 <= "
                              f"mask_start < mask_end <= {total:g} s (the clip's length).")
        data = self._encode(clip)
        length = data.shape[-1]
        frames = self.frames(length / self.frame_rate)
        known = torch.nn.functional.pad(data, (0, frames - length))
        keep = keep_mask(frames, math.floor(mask_start * self.frame_rate),
                         math.ceil(mask_end * self.frame_rate - 1e-6), 1, self.device)
        keep[..., length:] = 0.0  # padding up to the model's multiple is generated, then cut
        values, single = self.value_sets(conditions)
        if not single:
            raise ConfigError("inpaint and continue_ make one clip: give one mapping of "
                              "conditions (or None), not a list.")
        result = self._sample(values, frames, seed, known=known, keep=keep, **sampling)
        return self._decode(result, clip.shape[-1])[0], self.sample_rate

    @torch.no_grad()
    def continue_(self, audio: torch.Tensor, sample_rate: int, duration: float,
                  conditions: Values | None = None, *, seed: int = 0,
                  **sampling: Any) -> tuple[torch.Tensor, int]:
        """(audio, sample_rate): the clip followed by `duration` new seconds, in the model's
        format. `sampling`: the keyword settings of `generate`."""
        sampling = self.sampling_keywords("continue_", sampling)
        audio, sample_rate = checked_clip(audio, sample_rate)
        duration = checked_duration(duration, self.sample_rate, what="the seconds to add,")
        self.check_length(audio.shape[-1] / sample_rate + duration, "the clip plus duration",
                          sampling.get("max_duration"))
        clip = self._to_model(audio, sample_rate)[0].cpu()
        prompt = clip.shape[-1] / self.sample_rate
        tail = torch.zeros(clip.shape[0], round(duration * self.sample_rate))
        return self.inpaint(torch.cat([clip, tail], dim=-1), self.sample_rate, prompt,
                            prompt + duration, conditions, seed=seed, **sampling)

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, sample_rate: int,
                    conditions: Values | Sequence[Values] | None = None, *, seed: int = 0,
                    **sampling: Any) -> tuple[torch.Tensor, int]:
        """(audio, sample_rate) of a diffusion autoencoder: a clip (channels, samples) or a
        batch (B, channels, samples) at any rate, encoded and decoded by sampling, in the
        model's format. `sampling`: the keyword settings of `generate`."""
        sampling = dict(self.sampling_keywords("reconstruct", sampling))
        limit = sampling.pop("max_duration", None)
        batched = getattr(audio, "ndim", 0) == 3
        clips = audio if batched else [audio]
        values, single = self.value_sets(conditions)
        if single:
            values = values * len(clips)
        elif len(values) != len(clips):
            raise ConfigError(f"{len(values)} value sets of conditions for {len(clips)} clips: "
                              "give one per clip, or one mapping for all.")
        for clip in clips:  # before the work
            clip, rate = checked_clip(clip, sample_rate)
            self.check_length(clip.shape[-1] / rate, "the clip", limit)
        batch = torch.cat([self._to_model(clip, sample_rate) for clip in clips])
        data = self._encode(batch)
        frames = self.frames(data.shape[-1] / self.frame_rate)
        data = torch.nn.functional.pad(data, (0, frames - data.shape[-1]))
        latents = self.model.encode(data).latents
        result = self._decode(self._sample(values, frames, seed, latents=latents, **sampling),
                              batch.shape[-1])
        return (result if batched else result[0]), self.sample_rate
