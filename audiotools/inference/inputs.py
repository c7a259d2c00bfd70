"""Checks of what a caller hands the pipelines (and the commands, which reuse them): a clip,
its sample rate, a length in seconds, a seed, a device. Each bad value is one error naming it
and what would be valid, before torch or torchaudio meet it (their own errors name neither,
and NaN samples or integer PCM would otherwise come out as NaN or unscaled audio)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

# More channels than this in a clip means it was given as (samples, channels).
MAX_CHANNELS = 64
SEED_LIMIT = 2 ** 63


def checked_rate(sample_rate: Any) -> int:
    """A sample rate: a whole number of Hz above 0 (16000.0 is taken as 16000)."""
    if isinstance(sample_rate, (float, np.floating)) and float(sample_rate).is_integer():
        sample_rate = int(sample_rate)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate <= 0:
        raise ConfigError(f"sample_rate={sample_rate!r}: give the clip's rate in Hz, a whole "
                          "number above 0.")
    return int(sample_rate)


def checked_clip(audio: Any, sample_rate: Any) -> tuple[torch.Tensor, int]:
    """One clip as float32 (channels, samples) and its rate; a numpy array is taken too."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(audio)
    if not isinstance(audio, torch.Tensor):
        raise ConfigError(f"audio: a {type(audio).__name__}; give a tensor (or numpy array) "
                          "of shape (channels, samples).")
    if audio.dim() != 2:
        raise ConfigError(f"Expected one clip as (channels, samples); got shape "
                          f"{tuple(audio.shape)}.")
    if not audio.is_floating_point():
        raise ConfigError(f"audio: {audio.dtype} samples; give float audio in [-1, 1] (int16 "
                          "PCM: audio.float() / 32768).")
    channels, samples = audio.shape
    if channels == 0 or samples == 0:
        raise ConfigError(f"audio: shape {tuple(audio.shape)} holds no samples.")
    if channels > MAX_CHANNELS:
        raise ConfigError(f"audio: {channels} channels of {samples} samples; give (channels, "
                          "samples): a (samples, channels) array is audio.T.")
    if not torch.isfinite(audio).all():
        raise ConfigError("audio: holds NaN or infinite samples.")
    return audio.float(), checked_rate(sample_rate)


def is_real_number(value: Any) -> bool:
    """A finite real number: not a bool, not text, not NaN or infinite."""
    return (not isinstance(value, bool) and isinstance(value, (int, float, np.number))
            and math.isfinite(value))


def checked_seconds(value: Any, name: str = "duration", what: str = "a length in seconds"
                    ) -> float:
    """A finite number of seconds above 0."""
    if not is_real_number(value) or value <= 0:
        raise ConfigError(f"{name}={value}: give {what} > 0.")
    return float(value)


def checked_duration(value: Any, sample_rate: int, name: str = "duration",
                     what: str = "a length in seconds") -> float:
    """Seconds above 0 that hold at least one sample at `sample_rate` (fewer gave an empty
    clip, or a continuation that added nothing)."""
    seconds = checked_seconds(value, name, what)
    if round(seconds * sample_rate) < 1:
        raise ConfigError(f"{name}={value}: less than one sample at {sample_rate} Hz "
                          f"(at least {1 / sample_rate:.3g} s).")
    return seconds


def checked_number(value: Any, name: str) -> float:
    """A finite real number (not a bool, not text)."""
    if not is_real_number(value):
        raise ConfigError(f"{name}={value!r}: give a finite number.")
    return float(value)


def checked_latents(latents: Any, latent_dim: int) -> torch.Tensor:
    """One clip's latents (latent_dim, frames) as float32, as `encode` gives them."""
    if isinstance(latents, np.ndarray):
        latents = torch.from_numpy(latents)
    expected = f"give one clip's latents as a float tensor (latent_dim={latent_dim}, frames)"
    if not isinstance(latents, torch.Tensor):
        raise ConfigError(f"latents: a {type(latents).__name__}; {expected}.")
    if latents.dim() != 2 or latents.shape[0] != latent_dim or latents.shape[1] == 0:
        raise ConfigError(f"latents: shape {tuple(latents.shape)}; {expected}.")
    if not latents.is_floating_point():
        raise ConfigError(f"latents: {latents.dtype} values; {expected} (an RVQ or FSQ "
                          "codec's tokens are not its latents).")
    if not torch.isfinite(latents).all():
        raise ConfigError("latents: hold NaN or infinite values.")
    return latents.float()


def checked_seed(seed: Any) -> int:
    """A seed torch takes: a whole number in [0, 2**63)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"seed={seed!r}: give a whole number from 0 to 2**63 - 1.")
    return int(seed)


def checked_finite(key: str, value: Any) -> Any:
    """A sampling setting that is a number must be a finite one (NaN passes every range
    check: it compares false)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value}: give a finite number.")
    return value


def checked_device(device: Any) -> str | torch.device:
    """cpu, cuda or cuda:N (a torch.device too), where that GPU is visible."""
    text = str(device)
    kind, _, index = text.partition(":")
    if kind == "cpu" and not index:
        return device
    if kind != "cuda" or (index and not index.isdigit()):
        raise ConfigError(f"device={text!r}: use cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise ConfigError(f"device={text}: no CUDA device is visible here; use cpu "
                          "(docs/installation.md says which NVIDIA driver the installed torch "
                          "needs).")
    if index and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"device={text}: this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s), cuda:0 .. cuda:{torch.cuda.device_count() - 1}.")
    return device
