"""`audiotools reconstruct MODEL in.wav out.wav`: encode and decode a file through an
autoencoder, whatever its length, sample rate and channel count."""
from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .arguments import (
    MODEL_SOURCES,
    add_device_argument,
    check_finite,
    check_input_file,
    finite_float,
    read_input,
)
from .generation_options import check_outputs

NAME = "reconstruct"
HELP = "Encode and decode an audio file through an autoencoder (exported file or XP)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help=f"{MODEL_SOURCES}, or a stable-audio-tools checkpoint "
                                      "(.ckpt/.safetensors)")
    parser.add_argument("input", type=Path, help="audio file (any rate and channel count)")
    parser.add_argument("output", type=Path, help="output audio file (.wav .flac .ogg .mp3)")
    parser.add_argument("--chunk-seconds", type=finite_float, default=10.0,
                        help="encode/decode in overlapping chunks of this length (default 10; "
                             "0 = the whole file at once)")
    parser.add_argument("--model-rate", action="store_true",
                        help="write at the model's sample rate and channel count instead of "
                             "the input's")
    add_device_argument(parser)
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    parser.add_argument("--sat-model-config", type=Path,
                        help="the stable-audio-tools model config JSON of a SAT checkpoint "
                             "(unless the checkpoint embeds it)")


def run(args: argparse.Namespace) -> int:
    from ..data.audio import AudioFileError, audio_info, audio_write
    from ..io.loading import load_pipeline
    if args.chunk_seconds < 0:
        raise ConfigError(f"--chunk-seconds={args.chunk_seconds} must be >= 0.")
    # Before the model loads: what would otherwise fail after it, or after the work.
    info = audio_info(check_input_file(args.input))
    if info.frames == 0:
        raise AudioFileError(f"{args.input}: the file holds no samples.")
    check_outputs([args.output], args.force, args.input, name="OUTPUT")
    options = {"sat_model_config": args.sat_model_config} if args.sat_model_config else {}
    autoencoder = load_pipeline(args.model, args.device, family="autoencoder", **options)
    start = time.perf_counter()
    if args.chunk_seconds:
        seconds = _reconstruct_streamed(autoencoder, args, info)
    else:
        audio, rate = read_input(args.input)
        output, out_rate = autoencoder.reconstruct(audio, rate, None,
                                                   keep_format=not args.model_rate)
        audio_write(args.output, output, out_rate, exclusive=not args.force)
        seconds = audio.shape[-1] / rate
    elapsed = time.perf_counter() - start
    print(f"Reconstructed {args.input} ({seconds:.2f} s) to {args.output} in {elapsed:.2f} s "
          f"({seconds / max(elapsed, 1e-9):.1f}x real time).")
    return 0


def _reconstruct_streamed(autoencoder: Any, args: argparse.Namespace, info: Any) -> float:
    """Read, reconstruct and write block by block (a window of `--chunk-seconds` at a
    time), so that a file of any length takes a couple of windows' memory; the seconds read."""
    from ..data.audio import audio_blocks, audio_writer
    from .progress import progress
    rate, channels = ((autoencoder.sample_rate, autoencoder.channels) if args.model_rate
                      else (info.sample_rate, info.channels))
    # Blocks of at most 10 s are read: the windows gather what they need.
    block = max(1, round(min(args.chunk_seconds, 10.0) * info.sample_rate))
    read = 0
    with progress("reconstruct") as callback, \
            audio_writer(args.output, rate, channels, exclusive=not args.force) as writer:
        def blocks() -> Iterator[Any]:
            nonlocal read
            for audio in audio_blocks(args.input, block):
                check_finite(audio, args.input, read / info.sample_rate)
                read += audio.shape[-1]
                if callback is not None:
                    callback(min(read, info.frames), info.frames)
                yield audio
        for piece in autoencoder.reconstruct_blocks(blocks(), info.sample_rate,
                                                    args.chunk_seconds,
                                                    keep_format=not args.model_rate):
            writer.write(piece)
    return read / info.sample_rate
