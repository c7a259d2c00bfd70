"""`audiotools classify MODEL FILE...`: the predicted class and its probability for each file,
with a classifier exported by `audiotools export` (class names and feature settings embedded)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import MODEL_SOURCES, positive_int

if TYPE_CHECKING:
    from ..data.audio_folder import MelSettings

NAME = "classify"
HELP = "Predict the class of audio files with an exported classifier."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help=f"a classifier: {MODEL_SOURCES}")
    parser.add_argument("files", type=Path, nargs="+", help="audio files (any rate, channels)")
    parser.add_argument("--top", type=positive_int, default=1, metavar="K",
                        help="print the K (1 or more) most likely classes")


def run(args: argparse.Namespace) -> int:
    from ..errors import AudiotoolsError, ConfigError
    from ..io.loading import load_pipeline
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:  # a typo, found before the model loads; a file that does not decode is its own line
        raise ConfigError(f"{', '.join(missing)}: no such audio file.")
    classifier = load_pipeline(args.model, family="classifier")
    failures = 0
    for path in args.files:
        try:
            ranking = classifier.classify_file(path)
        except AudiotoolsError as error:
            print(f"{path}\terror: {error}", file=sys.stderr)
            failures += 1
            continue
        shown = "\t".join(f"{name}\t{probability:.4f}"
                          for name, probability in ranking[:args.top])
        print(f"{path}\t{shown}")
        _note_unheard(path, classifier.mel)
    return 1 if failures else 0


def _note_unheard(path: Path, mel: MelSettings) -> None:
    """Say so on stderr when the file is longer than the model's window, whose first
    seconds alone it hears (as it was trained: clips cropped from their start)."""
    from ..data.audio import audio_info
    window, duration = mel.num_samples / mel.sample_rate, audio_info(path).duration
    if duration > window + 1 / mel.sample_rate:
        print(f"{path}\tnote: classified its first {window:.2f} s of {duration:.2f} s (the "
              "model's window; the rest is not heard)", file=sys.stderr)
