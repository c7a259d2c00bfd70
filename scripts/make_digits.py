#!/usr/bin/env python3
"""Generate the shipped spoken-digits dataset with espeak-ng and sox.

Each "speaker" is an English accent combined with a voice variant; each speaker says the ten
digits in several takes with a seeded speed and pitch. Audio is trimmed of silence, resampled
to 16 kHz mono and written as Ogg/Vorbis, one subfolder per class (the audio-folder layout):

    <out>/<digit>/<speaker>_<take>.ogg      e.g. seven/en-gb-scotland-f2_1.ogg
    <out>/folds.csv                         group,fold: each speaker in exactly one fold

Speaker ids contain no `_`, so the group rule `^(?P<group>[^_]+)_` recovers them from a name.
The output is deterministic for a given seed and espeak-ng/sox version (sox runs with -R).

    python scripts/make_digits.py [--out audiotools/datasets/digits] [--seed 0]

Needs the Debian packages espeak-ng and sox; nothing else (no Python dependencies).
"""
from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import sys
from pathlib import Path

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# espeak-ng's own English accents (`espeak-ng --voices=en`, the gmw/ voices; no MBROLA needed).
ACCENTS = ["en", "en-us", "en-us-nyc", "en-029", "en-gb-scotland", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-gb-x-rp"]
# Voice variants (`espeak-ng --voices=variant`): two male, two female formant sets.
VARIANTS = ["m1", "m3", "f2", "f4"]
SPEED_RANGE = (120, 200)  # words per minute (espeak -s)
PITCH_RANGE = (25, 75)    # 0-99 (espeak -p)
SAMPLE_RATE = 16000
NUM_FOLDS = 5
TIMEOUT_S = 20
# Trim leading/trailing silence, then keep 50 ms of it on each side.
TRIM = ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
        "pad", "0.05", "0.05"]


def speaker_id(accent: str, variant: str) -> str:
    return f"{accent}-{variant}"


def render(text: str, voice: str, speed: int, pitch: int, path: Path) -> None:
    """Speak `text` with espeak-ng and convert it with sox, both bounded by a timeout."""
    speech = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True, check=True, timeout=TIMEOUT_S)
    subprocess.run(
        ["sox", "-R", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-C", "0",
         str(path), *TRIM],
        input=speech.stdout, capture_output=True, check=True, timeout=TIMEOUT_S)


def assign_folds(speakers: list[str], num_folds: int, seed: int) -> dict[str, int]:
    """Shuffle speakers with the seed and deal them round-robin: balanced, disjoint folds."""
    order = sorted(speakers)
    random.Random(seed).shuffle(order)
    return {speaker: index % num_folds for index, speaker in enumerate(order)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("audiotools/datasets/digits"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--takes", type=int, default=3)
    args = parser.parse_args(argv)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install espeak-ng sox", file=sys.stderr)
            return 1

    if args.out.exists():
        shutil.rmtree(args.out)
    rng = random.Random(args.seed)
    speakers = [speaker_id(accent, variant) for accent in ACCENTS for variant in VARIANTS]
    count = 0
    for digit in DIGITS:
        (args.out / digit).mkdir(parents=True)
        for accent in ACCENTS:
            for variant in VARIANTS:
                for take in range(args.takes):
                    speed, pitch = rng.randint(*SPEED_RANGE), rng.randint(*PITCH_RANGE)
                    path = args.out / digit / f"{speaker_id(accent, variant)}_{take}.ogg"
                    render(digit, f"{accent}+{variant}", speed, pitch, path)
                    count += 1

    folds = assign_folds(speakers, NUM_FOLDS, args.seed)
    with open(args.out / "folds.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "fold"])
        writer.writerows(sorted(folds.items()))
    print(f"{count} files, {len(speakers)} speakers, {NUM_FOLDS} folds in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
