"""What the commands share about their arguments: types, so that a bad value is argparse's
one-line usage error naming the option before any model is loaded, and reading an input file."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

# What a command's MODEL may be (audiotools.load reads each).
MODEL_SOURCES = "exported .safetensors, XP signature or //sig/SIG, XP folder, //recipe/..."


def finite_float(text: str) -> float:
    """A float that is a number: `nan` and `inf` pass every range check the pipelines make
    (NaN compares false) and then give silent audio or a crash."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """A count of 1 or more (0 or less would ask for nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give 1 or more")
    return value


def device(text: str) -> str:
    """cpu, cuda or cuda:N, where the GPU is visible (torch's own error names no option)."""
    from ..errors import ConfigError
    from ..inference.inputs import checked_device
    try:
        return str(checked_device(text))
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("device=")) from None


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device, default="cpu",
                        help="cpu, cuda or cuda:N (default cpu)")


def check_input_file(path: Path) -> Path:
    """`path`, unless it is a folder (an AudioFileError: libsndfile would say "System
    error")."""
    from ..data.audio import AudioFileError
    if path.is_dir():
        raise AudioFileError(f"{path} is a folder; give an audio file.")
    return path


def read_input(path: Path) -> tuple[Any, int]:
    """An input clip (channels, samples) and its rate; a missing, unreadable or empty file is
    an AudioFileError naming it."""
    from ..data.audio import AudioFileError, audio_read
    audio, rate = audio_read(check_input_file(path))
    if audio.shape[-1] == 0:
        raise AudioFileError(f"{path}: the file holds no samples.")
    check_finite(audio, path)
    return audio, rate


def check_finite(audio: Any, path: Path, start: float = 0.0) -> None:
    """A float file's NaN or infinite samples, named with the file (the pipelines' own
    check cannot name it); `start`: the seconds before this block of it."""
    import torch

    from ..data.audio import AudioFileError
    if not torch.isfinite(audio).all():
        after = f" (in the block from {start:.2f} s)" if start else ""
        raise AudioFileError(f"{path}: holds NaN or infinite samples{after}.")
