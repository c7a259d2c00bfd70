"""`audiotools generate MODEL --out out.wav`: a clip from a diffusion or musicgen model, from a
prompt or conditioner values, or one clip per line of a prompts file."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import generation_options as options
from .arguments import finite_float

NAME = "generate"
HELP = "Generate audio with a diffusion or musicgen model (exported file or XP)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_model_argument(parser)
    parser.add_argument("--prompts", type=Path, metavar="FILE",
                        help="a batch: one item per non-empty line, a prompt (the text "
                             "conditioner) or a JSON object of conditions ({\"ensemble\": "
                             "\"piano\"}) overriding --condition; --out is then a folder of "
                             "000.wav, 001.wav, ... and item i uses seed SEED+i, alone, so it "
                             "is what `audiotools generate ... --seed SEED+i` gives for it")
    parser.add_argument("--duration", type=finite_float, metavar="S",
                        help="seconds to generate (default: the XP's generate.duration)")
    options.add_options(parser, "output audio file (.wav .flac .ogg .mp3); with --prompts, a "
                                "folder (created)")


def _items(path: Path, infos: list) -> list[dict[str, Any]]:
    """The conditions of each line of a prompts file (they override the command line's)."""
    from ..inference.conditions import checked_values, text_conditioner
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--prompts {path}: cannot read it ({error}).") from None
    items = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        where = f"--prompts {path}:{number}"
        if not line:
            continue
        if not line.startswith("{"):
            items.append({text_conditioner(infos, f"{where} (a prompt)"): line})
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{where}: a line starting with {{ must be one JSON object "
                              f"({error}).") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: expected a JSON object of conditions.")
        items.append(checked_values(values, infos, where))
    if not items:
        raise ConfigError(f"--prompts {path} holds no prompt (every line is empty).")
    return items


def run(args: argparse.Namespace) -> int:
    from ..inference.inputs import SEED_LIMIT
    if args.prompts is not None:
        from ..data.audio import WRITE_FORMATS
        if args.out.is_file() or (args.out.suffix.lower() in WRITE_FORMATS
                                  and not args.out.is_dir()):
            raise ConfigError(f"--out {args.out}: with --prompts, --out is a folder (it "
                              "receives 000.wav, 001.wav, ...).")
        if not args.prompts.is_file():
            raise ConfigError(f"--prompts {args.prompts}: no such file.")
    else:
        options.check_outputs([args.out], args.force)
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration {args.duration:g}: give a length in seconds > 0.")
    generation = options.prepare(args, NAME)
    if args.prompts is None:
        jobs = [(args.out, {}, args.seed)]
    else:
        items = _items(args.prompts, generation.infos)
        jobs = [(args.out / f"{index:03d}.wav", values, args.seed + index)
                for index, values in enumerate(items)]
        options.check_outputs([path for path, _, _ in jobs], args.force)
        last = args.seed + len(items) - 1
        if last >= SEED_LIMIT:  # before any item is written, not at the one that overflows
            raise ConfigError(f"--seed {args.seed}: the {len(items)} items use seeds up to "
                              f"{last}, past 2**63 - 1; give --seed {SEED_LIMIT - len(items)} "
                              "or less.")
    for path, overrides, seed in jobs:
        started = time.perf_counter()
        audio, rate = generation.call("generate", generation.conditions(overrides),
                                      args.duration, seed=seed, label=path.name)
        options.write(path, audio, rate, started, args.force)
    return 0
