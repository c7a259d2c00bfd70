"""`audiotools reconstruct MODEL in.wav out.wav`: encode and decode a file through an
autoencoder, whatever its length, sample rate and channel count."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import ConfigError
from .arguments import MODEL_SOURCES, add_device_argument, finite_float, read_input

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
    from ..data.audio import audio_write
    from ..io.loading import load_pipeline
    if args.output.exists() and not args.force:
        raise ConfigError(f"{args.output} exists; choose another path or pass --force.")
    if args.chunk_seconds < 0:
        raise ConfigError(f"--chunk-seconds={args.chunk_seconds} must be >= 0.")
    options = {"sat_model_config": args.sat_model_config} if args.sat_model_config else {}
    autoencoder = load_pipeline(args.model, args.device, family="autoencoder", **options)
    audio, rate = read_input(args.input)
    start = time.perf_counter()
    output, out_rate = autoencoder.reconstruct(audio, rate, args.chunk_seconds or None,
                                               keep_format=not args.model_rate)
    elapsed = time.perf_counter() - start
    audio_write(args.output, output, out_rate, exclusive=not args.force)
    seconds = audio.shape[-1] / rate
    print(f"Reconstructed {args.input} ({seconds:.2f} s) to {args.output} in {elapsed:.2f} s "
          f"({seconds / max(elapsed, 1e-9):.1f}x real time).")
    return 0
