"""`audiotools continue MODEL in.wav --duration S --out out.wav`: a clip followed by new
seconds, from a diffusion model (inpainting of the appended part) or a musicgen model (the
clip's tokens as prompt)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import ConfigError
from . import generation_options as options
from .arguments import finite_float, read_input

NAME = "continue"
HELP = "Continue an audio file with a diffusion or musicgen model (exported file or XP)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_model_argument(parser)
    parser.add_argument("input", type=Path, help="the audio to continue (any rate, channels)")
    parser.add_argument("--duration", type=finite_float, required=True, metavar="S",
                        help="seconds to add after the input")
    options.add_options(parser, "output audio file (.wav .flac .ogg .mp3): the input, in the "
                                "model's format, then the new seconds")


def run(args: argparse.Namespace) -> int:
    options.check_outputs([args.out], args.force, args.input)
    if args.duration <= 0:
        raise ConfigError(f"--duration {args.duration:g}: give the seconds to add, > 0.")
    audio, rate = read_input(args.input)
    generation = options.prepare(args, NAME)
    started = time.perf_counter()
    output, out_rate = generation.call("continue_", audio, rate, args.duration,
                                       generation.conditions(), seed=args.seed,
                                       label=args.out.name)
    options.write(args.out, output, out_rate, started, args.force)
    return 0
