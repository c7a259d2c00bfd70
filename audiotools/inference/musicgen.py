"""The MusicGen family's pipeline: audio from conditions, or the continuation of an audio
prompt, by a token LM over the tokens of the frozen discrete codec it was trained on.

Everything goes through one token sampler call (audiotools.sampling.tokens.generate) from a
seed: the same arguments give the same tokens. The solver's generate and evaluate stages use
this pipeline around their live modules, so an XP's samples are what inference of its export
gives.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..conditioning import ConditionerSet
from ..data.audio import convert_audio
from ..errors import CheckpointError, ConfigError
from ..io.codecs import trained_codec
from ..io.export import Export
from ..models.codec import FrozenCodec, is_discrete
from ..models.lm import LMModel
from ..sampling.tokens import generate as generate_tokens
from .generative import (
    SamplingSettings,
    check_audio_format,
    exported_conditioners,
    sampling_defaults,
)
from .inputs import checked_clip, checked_duration, checked_seconds, checked_seed

Values = Mapping[str, Any]
# Sampling settings a pipeline takes from its XP's `generate:` section when a call omits them.
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "cfg_scale", "duration", "max_duration")


def check_codec_fits(model: LMModel, codec: FrozenCodec | None, where: str,
                     fix: str | None = None) -> FrozenCodec:
    """The codec, if its tokens are what the LM models (discrete, same codebooks and
    cardinality); else one error naming `where`, the key and the codec, and `fix` (default:
    set the key, as a config to train can)."""
    if codec is None or not is_discrete(codec):
        source = "none" if codec is None else codec.source
        raise ConfigError(f"{where}: a token LM needs a discrete codec (bottleneck rvq or fsq); "
                          f"got {source}.")
    for key in ("num_codebooks", "cardinality"):
        value, expected = getattr(model, key), getattr(codec, key)
        if value != expected:
            raise ConfigError(f"{where}: model.{key}={value} but the codec ({codec.source}) "
                              f"has {key} {expected}: {fix or f'set model.{key}={expected}'}.")
    return codec


@dataclass
class MusicGenPipeline(SamplingSettings):
    FALLBACK: ClassVar[dict[str, Any]] = {
        "temperature": 1.0, "top_k": 250, "top_p": 1.0, "cfg_scale": 1.0, "max_duration": 30.0}

    model: LMModel
    conditioners: ConditionerSet
    codec: FrozenCodec
    # Defaults of the sampling settings (SAMPLING_KEYS), from the XP's `generate:` section.
    defaults: dict[str, Any] = field(default_factory=dict)
    export: Export | None = None

    @classmethod
    def from_model(cls, model: torch.nn.Module, export: Export,
                   codec: FrozenCodec | None = None) -> MusicGenPipeline:
        """The pipeline of an exported LM; `codec` replaces the one it was trained on."""
        info = export.info
        if not isinstance(model, LMModel) or "conditioners" not in info:
            raise CheckpointError(f"{export.label} is not an exported token LM (no "
                                  "conditioners in its metadata).")
        device = next(model.parameters()).device
        codec = codec or trained_codec(info.get("codec"), device, export.label)
        if codec is None:
            raise CheckpointError(f"{export.label} records no codec; pass its tokenizer: "
                                  "MusicGenPipeline.from_model(model, export, "
                                  "codec=load_codec(PATH, discrete=True)).")
        fix = "give it the codec it was trained on"
        check_codec_fits(model, codec, export.label, fix)
        check_audio_format(export, codec, fix)
        conditioners = exported_conditioners(export, codec, model.dim, device)
        defaults = sampling_defaults(export, SAMPLING_KEYS)
        return cls(model.eval(), conditioners, codec, defaults, export)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.codec.channels

    def frames(self, duration: float) -> int:
        """Codec frames that cover `duration` seconds."""
        duration = checked_seconds(duration)
        return math.ceil(duration * self.codec.frame_rate - 1e-6)


    @torch.no_grad()
    def generate_tokens(self, conditions: Values | Sequence[Values] | None, frames: int, *,
                        prompt: torch.Tensor | None = None, temperature: float | None = None,
                        top_k: int | None = None, top_p: float | None = None,
                        cfg_scale: float | None = None, max_duration: float | None = None,
                        seed: int = 0, negative: Values | None = None,
                        callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Tokens (B, K, frames): `prompt`'s (B, K, P) as given, then sampled ones, one item
        per value set (a single mapping with a batch prompt applies to every item); no more
        frames than `max_duration` (None: the XP's) covers."""
        if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 1:
            raise ConfigError(f"frames={frames!r}: give a whole number of codec frames >= 1 "
                              f"({self.codec.frame_rate:g} a second; pipeline.frames(seconds) "
                              "counts them).")
        limit = self.duration_limit(max_duration)
        # A continuation samples at least one frame past its prompt's last (part) frame.
        allowed = self.frames(limit) + (prompt is not None)
        if frames > allowed:
            raise ConfigError(f"frames={frames} ({frames / self.codec.frame_rate:g} s) is more "
                              f"than max_duration={limit:g} s holds ({allowed}); "
                              "max_duration=S raises it, at a cost that grows with the square "
                              "of the length.")
        if isinstance(prompt, np.ndarray):
            prompt = torch.from_numpy(prompt)
        if prompt is not None and not isinstance(prompt, torch.Tensor):
            raise ConfigError(f"prompt: give codes (B, K, frames) as a tensor or an array, as "
                              f"encode() gives them, not {type(prompt).__name__}.")
        values, _ = self.value_sets(conditions)
        if prompt is not None and len(values) == 1 < prompt.shape[0]:
            values = values * prompt.shape[0]
        scale, negative = self.guidance_scale(cfg_scale, negative)
        cond = self.conditioners.encode(values) if self.conditioners.names() else None
        uncond = (self.conditioners.unconditional(len(values), negative)
                  if scale != 1.0 else None)
        generator = torch.Generator(self.device).manual_seed(checked_seed(seed))
        try:
            return generate_tokens(
                self.model, None, None if prompt is None else prompt.to(self.device), frames,
                cond, unconditional=uncond, cfg_scale=scale,
                temperature=self.number_setting("temperature", temperature),
                top_k=self.whole_setting("top_k", top_k),
                top_p=self.number_setting("top_p", top_p), generator=generator,
                batch_size=len(values), callback=callback)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def decode(self, tokens: torch.Tensor, samples: int) -> torch.Tensor:
        """Audio (B, channels, samples) of tokens, cut or padded to exactly `samples`."""
        audio = self.codec.decode_tokens(tokens)[..., :samples].float().cpu()
        return torch.nn.functional.pad(audio, (0, samples - audio.shape[-1]))

    @torch.no_grad()
    def generate(self, conditions: Values | Sequence[Values] | None = None,
                 duration: float | None = None, *, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None,
                 cfg_scale: float | None = None, max_duration: float | None = None,
                 seed: int = 0, negative: Values | None = None,
                 callback: Callable[[int, int], None] | None = None,
                 ) -> tuple[torch.Tensor, int]:
        """(audio, sample_rate): one clip (channels, samples) for a mapping of conditions
        ({conditioner: value}; a missing one takes its default, else its null condition, as
        None does; no conditions: all null), or a batch (B, channels, samples) for a list of
        them, exactly `duration` seconds long (default: the XP's). `negative`: values of the
        unconditional branch of guidance. `max_duration` bounds `duration` (a transformer's
        time grows with the square of the length). Settings left None take the XP's;
        callback(step, steps)."""
        values, single = self.value_sets(conditions)
        duration = checked_duration(self.setting("duration", duration), self.sample_rate)
        self.check_length(duration, "duration", max_duration)
        tokens = self.generate_tokens(values, self.frames(duration), temperature=temperature,
                                      top_k=top_k, top_p=top_p, cfg_scale=cfg_scale,
                                      max_duration=max_duration, seed=seed, negative=negative,
                                      callback=callback)
        audio = self.decode(tokens, round(duration * self.sample_rate))
        return (audio[0] if single else audio), self.sample_rate

    def encode(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Tokens (B, K, frames) of a clip (channels, samples) or a batch (B, channels,
        samples) at any rate and channel count."""
        clips = audio if getattr(audio, "ndim", 0) == 3 else [audio]
        checked = [checked_clip(clip, sample_rate) for clip in clips]
        batch = torch.stack([convert_audio(clip, rate, self.sample_rate, self.channels)
                             for clip, rate in checked])
        return self.codec.encode_to_tokens(batch.to(self.device))

    @torch.no_grad()
    def continue_(self, audio: torch.Tensor, sample_rate: int, duration: float,
                  conditions: Values | None = None, *, seed: int = 0,
                  **sampling: Any) -> tuple[torch.Tensor, int]:
        """(audio, sample_rate): the prompt clip (channels, samples, any rate), as the codec
        reconstructs its tokens, followed by `duration` new seconds, in the model's format.
        The prompt's tokens are kept as given; `sampling`: the keyword settings of
        `generate`."""
        sampling = dict(self.sampling_keywords("continue_", sampling))
        limit = sampling.pop("max_duration", None)
        audio, sample_rate = checked_clip(audio, sample_rate)
        duration = checked_duration(duration, self.sample_rate, what="the seconds to add,")
        prompt_seconds = audio.shape[-1] / sample_rate
        self.check_length(prompt_seconds, "the prompt", limit)
        self.check_length(prompt_seconds + duration, "the prompt plus duration", limit)
        prompt = self.encode(audio, sample_rate)
        frames = self.frames(prompt_seconds + duration)
        tokens = self.generate_tokens(conditions, max(frames, prompt.shape[-1] + 1),
                                      prompt=prompt, max_duration=limit, seed=seed, **sampling)
        samples = round(prompt_seconds * self.sample_rate) + round(duration * self.sample_rate)
        return self.decode(tokens, samples)[0], self.sample_rate
