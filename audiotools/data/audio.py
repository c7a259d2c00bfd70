"""Audio file I/O with soundfile (wav, flac, ogg/vorbis, mp3, ...) and on-the-fly conversion to
a model's sample rate and channel count.

`audio_read` seeks and reads only the frames asked for, so drawing a 2 s segment from an hour-long
file costs a 2 s read, not an hour's decode. Resampling uses torchaudio's windowed-sinc resampler
with its kernel cached per rate pair (building the kernel dominates for short segments).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio

from ..errors import AudiotoolsError, ConfigError, writing
from ..io.atomic import atomic_path

AudioSource = str | os.PathLike | BinaryIO

# The suffixes of audio files in common use (soundfile reads more, by content).
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".w64", ".opus")
# Container format and default subtype for each extension audio_write knows.
WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
# libsndfile's mp3 seek restarts the decoder without its bit reservoir: the first ~3 frames
# (3 x 1152 samples) after a seek come out wrong. Seeking this much earlier and dropping the
# pre-roll gives the exact samples (checked against a full decode).
MP3_PREROLL = 4 * 1152


class AudioFileError(AudiotoolsError):
    """A file cannot be read as audio, or its content is unusable (NaN, empty, ...)."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _name(source: AudioSource) -> str:
    return str(source) if isinstance(source, str | os.PathLike) else "<stream>"


def _check_exists(source: AudioSource) -> None:
    """A path that is not there is said so (libsndfile's own message is "System error")."""
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise AudioFileError(f"{source}: no such audio file.")


def audio_info(source: AudioSource) -> AudioInfo:
    """Header facts of a file; raises AudioFileError naming the file when it is not audio."""
    _check_exists(source)
    try:
        with sf.SoundFile(source) as f:
            return AudioInfo(f.samplerate, f.frames, f.channels, f.format, f.subtype)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(f"{_name(source)}: not readable as audio ({err}).") from err


def audio_read(source: AudioSource, seek: float = 0.0, duration: float | None = None,
               sample_rate: int | None = None, channels: int | None = None,
               ) -> tuple[torch.Tensor, int]:
    """Read `duration` seconds (all when None) from `seek` seconds as float32 [C, T], converted to
    `sample_rate`/`channels` when given. Returns (audio, sample_rate). Fewer frames come back when
    the file ends early; the caller pads (see `segments`)."""
    _check_exists(source)
    try:
        with sf.SoundFile(source) as f:
            start = min(max(0, round(seek * f.samplerate)), f.frames)
            preroll = min(start, MP3_PREROLL) if f.format == "MP3" else 0
            frames = -1 if duration is None else math.ceil(duration * f.samplerate) + preroll
            if start:
                f.seek(start - preroll)
            data = f.read(frames, dtype="float32", always_2d=True)[preroll:]
            rate = f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(f"{_name(source)}: not readable as audio ({err}).") from err
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    wav = convert_audio(wav, rate, sample_rate or rate, channels or wav.shape[0])
    if duration is not None and sample_rate is not None:
        wav = wav[:, :math.ceil(duration * sample_rate)]
    return wav, sample_rate or rate


def convert_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """Mono → N repeats, N → mono averages, M → N < M keeps the first N (front left/right of a
    5.1 file). Growing 2 → 6 has no meaningful rule and is refused."""
    src = wav.shape[0]
    if src == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if src == 1:
        return wav.expand(channels, -1).contiguous()
    if src > channels:
        return wav[:channels]
    raise ConfigError(
        f"channels={channels}: cannot make {channels} channels from a {src}-channel file; "
        f"use channels=1, channels<={src}, or mono sources.")


@lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig, new)


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    if orig == new:
        return wav
    if wav.shape[-1] == 0:  # e.g. a read past a file's end; torchaudio cannot reshape it
        return wav.new_zeros(*wav.shape[:-1], 0)
    with torch.no_grad():
        return _resampler(orig, new)(wav)


def convert_audio(wav: torch.Tensor, from_rate: int, to_rate: int, to_channels: int,
                  ) -> torch.Tensor:
    """Convert [C, T] audio to `to_channels` channels at `to_rate` Hz (channels first: fewer
    channels to resample)."""
    return resample(convert_channels(wav, to_channels), from_rate, to_rate)


def audio_write(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int,
                subtype: str | None = None, compression_level: float | None = None,
                exclusive: bool = False) -> Path:
    """Write [C, T] (or [T]) audio; the format follows the extension (.wav .flac .ogg .mp3).
    Integer formats are clipped to [-1, 1]. Written to a temporary name then renamed, so a
    reader never sees half a file; `exclusive`: only if `path` is still absent then (a file
    another process wrote there meanwhile is refused, not replaced)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ConfigError(
            f"{path}: cannot write {suffix or 'no extension'}; use one of {sorted(WRITE_FORMATS)}.")
    fmt, default_subtype = WRITE_FORMATS[suffix]
    data = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else wav
    data = np.atleast_2d(data).T
    subtype = subtype or default_subtype
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        data = np.clip(data, -1.0, 1.0)
    if path.parent.exists() and not path.parent.is_dir():
        raise AudioFileError(f"{path}: cannot write it, {path.parent} is a file.")
    try:
        with writing(path), atomic_path(path, exclusive=exclusive) as tmp:
            try:
                sf.write(tmp, data, sample_rate, format=fmt, subtype=subtype,
                         compression_level=compression_level)
            except sf.LibsndfileError as err:
                if err.code == 2:  # the OS refused it: `writing` says so
                    raise
                reason = str(err).replace(str(tmp), str(path))  # e.g. a rate MP3 cannot take
                raise AudioFileError(f"{path}: cannot write it ({reason}).") from err
    except FileExistsError:
        raise AudioFileError(f"{path} exists (written while this ran); choose another path or "
                             "pass --force to overwrite.") from None
    return path
