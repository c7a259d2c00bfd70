"""`audiotools inpaint MODEL in.wav --start S --end E --out out.wav`: the seconds [S, E) of a
clip generated anew by a diffusion model, the rest kept."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import ConfigError
from . import generation_options as options
from .arguments import finite_float, read_input

NAME = "inpaint"
HELP = "Regenerate a region of an audio file with a diffusion model (exported file or XP)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_model_argument(parser, musicgen=False)
    parser.add_argument("input", type=Path, help="the audio to inpaint (any rate, channels)")
    parser.add_argument("--start", type=finite_float, required=True, metavar="S",
                        help="start of the region to regenerate, in seconds")
    parser.add_argument("--end", type=finite_float, required=True, metavar="E",
                        help="end of the region (excluded), in seconds")
    options.add_options(parser, "output audio file (.wav .flac .ogg .mp3), in the model's "
                                "format", families=("diffusion",))


def run(args: argparse.Namespace) -> int:
    options.check_outputs([args.out], args.force, args.input)
    audio, rate = read_input(args.input)
    seconds = audio.shape[-1] / rate
    if not 0 <= args.start < args.end <= seconds + 1e-6:
        raise ConfigError(f"--start {args.start:g} --end {args.end:g}: need 0 <= start < end "
                          f"<= {seconds:g} (the length of {args.input} in seconds).")
    generation = options.prepare(args, NAME, families=("diffusion",))
    started = time.perf_counter()
    output, out_rate = generation.call("inpaint", audio, rate, args.start, args.end,
                                       generation.conditions(), seed=args.seed,
                                       label=args.out.name)
    options.write(args.out, output, out_rate, started, args.force)
    return 0
