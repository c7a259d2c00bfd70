"""Audio file I/O with soundfile (wav, flac, ogg/vorbis, mp3, ...) and on-the-fly conversion to
a model's sample rate and channel count.

`audio_read` seeks and reads only the frames asked for, so drawing a 2 s segment from an hour-long
file costs a 2 s read, not an hour's decode. Resampling uses torchaudio's windowed-sinc resampler
with its kernel cached per rate pair (building the kernel dominates for short segments).
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio

from ..errors import AudiotoolsError, ConfigError, writing
from ..io.atomic import atomic_path, file_in_the_way

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


def audio_blocks(source: str | os.PathLike, frames: int) -> Iterator[torch.Tensor]:
    """The file's audio as consecutive float32 [C, `frames`] blocks (the last one shorter),
    read one at a time: a long file is never held whole."""
    _check_exists(source)
    try:
        with sf.SoundFile(source) as f:
            while True:
                data = f.read(frames, dtype="float32", always_2d=True)
                if not len(data):
                    return
                yield torch.from_numpy(np.ascontiguousarray(data.T))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(f"{_name(source)}: not readable as audio ({err}).") from err


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


def resampler_reach(orig: int, new: int) -> int:
    """Input samples past an output's own position that `resample` reads to make it (none at
    the same rate): a prefix of this much more input gives a prefix of the output exactly."""
    if orig == new:
        return 0
    transform = _resampler(orig, new)
    return 2 * (transform.orig_freq // transform.gcd + transform.width)


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    if orig == new:
        return wav
    if wav.shape[-1] == 0:  # e.g. a read past a file's end; torchaudio cannot reshape it
        return wav.new_zeros(*wav.shape[:-1], 0)
    with torch.no_grad():
        return _resampler(orig, new)(wav)


class StreamResampler:
    """`resample` of a signal given in consecutive blocks, each output sample as soon as its
    window of input has come: the blocks' outputs joined equal the whole signal's resampling
    (the same kernel over the same samples, the signal's start and end padded as torchaudio
    pads them), while only a kernel's width of input is kept between blocks."""

    def __init__(self, orig: int, new: int):
        self._same = orig == new
        if not self._same:
            transform = _resampler(orig, new)
            self._kernel, self._width = transform.kernel, transform.width
            divisor = math.gcd(orig, new)
            self._orig, self._new = orig // divisor, new // divisor
        self._kept: torch.Tensor | None = None  # input from sample `_start` - width on
        self._start = 0  # the first input sample of the next output group (a multiple of orig)
        self._received = 0
        self._empty = torch.zeros(0, 0)  # (channels, 0) once a block came

    def push(self, wav: torch.Tensor) -> torch.Tensor:
        """[C, T] input -> the [C, T'] output it completes."""
        return self._resampled(wav, last=False)

    def finish(self) -> torch.Tensor:
        """The output left once the input has ended."""
        return self._resampled(None, last=True)

    def _resampled(self, wav: torch.Tensor | None, last: bool) -> torch.Tensor:
        if wav is not None:
            self._empty = wav[:, :0]
        if self._same:
            return wav if wav is not None else self._empty
        if wav is not None:
            self._received += wav.shape[-1]
            if self._kept is None:  # the signal's start: zeros before it, as torchaudio pads
                self._kept = wav.new_zeros(wav.shape[0], self._width)
            self._kept = torch.cat([self._kept, wav], dim=-1)
        if self._kept is None:
            return self._empty
        span = self._orig + 2 * self._width  # the input one group of outputs reads
        if last:  # zeros after the end, as torchaudio pads, and no output past its length
            groups = -(-(self._received - self._start) // self._orig)
            needed = (groups - 1) * self._orig + span
            kept = torch.nn.functional.pad(self._kept, (0, max(0, needed - self._kept.shape[-1])))
        else:
            groups = max(0, (self._kept.shape[-1] - span) // self._orig + 1)
            kept = self._kept
        if groups <= 0:
            return self._empty
        with torch.no_grad():
            out = torch.nn.functional.conv1d(
                kept[:, None, :(groups - 1) * self._orig + span].to(self._kernel.dtype),
                self._kernel, stride=self._orig)
        out = out.transpose(1, 2).reshape(kept.shape[0], -1)
        if last:
            total = math.ceil(self._new * self._received / self._orig)
            out = out[:, :total - self._start // self._orig * self._new]
        self._start += groups * self._orig
        self._kept = self._kept[:, groups * self._orig:]
        return out


def converted_blocks(blocks: Iterable[torch.Tensor], from_rate: int, to_rate: int,
                     to_channels: int) -> Iterator[torch.Tensor]:
    """`convert_audio` of consecutive [C, T] blocks, block by block: the outputs joined equal
    the whole signal's conversion (empty outputs are left out; the resampler's rest last)."""
    resampler = StreamResampler(from_rate, to_rate)
    for block in blocks:
        converted = resampler.push(convert_channels(block, to_channels))
        if converted.shape[-1]:
            yield converted
    rest = resampler.finish()
    if rest.shape[-1]:
        yield rest


def convert_audio(wav: torch.Tensor, from_rate: int, to_rate: int, to_channels: int,
                  ) -> torch.Tensor:
    """Convert [C, T] audio to `to_channels` channels at `to_rate` Hz (channels first: fewer
    channels to resample)."""
    return resample(convert_channels(wav, to_channels), from_rate, to_rate)


def _write_format(path: Path, subtype: str | None) -> tuple[str, str]:
    suffix = path.suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ConfigError(
            f"{path}: cannot write {suffix or 'no extension'}; use one of {sorted(WRITE_FORMATS)}.")
    fmt, default_subtype = WRITE_FORMATS[suffix]
    return fmt, subtype or default_subtype


class AudioWriter:
    """Blocks [C, T] appended to an open sound file; integer formats clipped to [-1, 1]."""

    def __init__(self, handle: sf.SoundFile, path: Path, clip: bool):
        self._handle, self._path, self._clip = handle, path, clip

    def write(self, wav: torch.Tensor | np.ndarray) -> None:
        data = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else wav
        data = np.atleast_2d(data).T
        with writing(self._path):
            self._handle.write(np.clip(data, -1.0, 1.0) if self._clip else data)


@contextlib.contextmanager
def audio_writer(path: str | os.PathLike, sample_rate: int, channels: int,
                 subtype: str | None = None, compression_level: float | None = None,
                 exclusive: bool = False) -> Iterator[AudioWriter]:
    """A file written block by block (`.write([C, T])`), the format following the extension
    (.wav .flac .ogg .mp3): a long output never has to be held whole. It goes to a temporary
    name, renamed when the block ends, so a reader never sees half a file (a process killed
    meanwhile leaves that `.NAME.PID.tmp.SUFFIX` beside it); `exclusive`: only if `path` is
    still absent then (a file another process wrote there meanwhile is refused, not
    replaced). Only the file's own writes are read as the disk's refusals, not what the
    block's other code raises."""
    path = Path(path)
    fmt, subtype = _write_format(path, subtype)
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise AudioFileError(f"{path}: cannot write it, {blocking} is a file.")
    done = False
    try:
        with atomic_path(path, exclusive=exclusive) as tmp:
            with writing(path):
                handle = _opened_for_writing(tmp, path, sample_rate, channels, subtype, fmt,
                                             compression_level)
            try:
                yield AudioWriter(handle, path, clip=not subtype.startswith(("FLOAT", "DOUBLE")))
            finally:
                with writing(path):
                    handle.close()
            done = True
    except FileExistsError:
        if not done:  # not the exclusive rename: the block's own
            raise
        raise AudioFileError(f"{path} exists (written while this ran); choose another path or "
                             "pass --force to overwrite.") from None


def _opened_for_writing(tmp: Path, path: Path, sample_rate: int, channels: int, subtype: str,
                        fmt: str, compression_level: float | None) -> sf.SoundFile:
    try:
        return sf.SoundFile(tmp, "w", sample_rate, channels, subtype, format=fmt,
                            compression_level=compression_level)
    except sf.LibsndfileError as err:
        if err.code == 2:  # the OS refused it: `writing` says so
            raise
        reason = str(err).replace(str(tmp), str(path))  # e.g. a rate MP3 cannot take
        raise AudioFileError(f"{path}: cannot write it ({reason}).") from err


def audio_write(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int,
                subtype: str | None = None, compression_level: float | None = None,
                exclusive: bool = False) -> Path:
    """Write [C, T] (or [T]) audio at once (`audio_writer` has the formats and guarantees)."""
    channels = 1 if wav.ndim == 1 else wav.shape[0]
    with audio_writer(path, sample_rate, channels, subtype, compression_level,
                      exclusive) as writer:
        writer.write(wav)
    return Path(path)
