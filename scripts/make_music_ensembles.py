"""Render the shipped `music_ensembles` set: 40 music21 corpus pieces, each played by the same six
General MIDI ensembles, 8 s clips at 16 kHz mono Ogg Vorbis. It exists to train conditional
models on an ensemble label and to judge them with a classifier of that label.

Every piece is rendered by all six ensembles at one tempo (a piece that fails for one ensemble is
left out for all), so melody, harmony and tempo say nothing about the label: only timbre does.
The pieces are corpus scores that scripts/make_music_set.py does not list (music_small's pieces
and spares). The clips, their metadata and the manifests come from the functions of that script
and the scanner of `audiotools manifest`. One layout serves the manifests and the classifier's
`audio_folder` source (root/<class>/<files>):

    <out>/<ensemble>/<piece>_<ensemble-slug>.ogg   (+ <same>.json: the sidecar metadata)
    <out>/{train,valid,evaluate}.jsonl             relative paths, peak/rms, metadata
    <out>/folds.csv                                group (the piece),fold

Folds are by piece (5 folds of 8 pieces); fold 0 is the valid and evaluate pieces (4 each) and
folds 1-4 are the train pieces, so the fold-0 classifier never heard a valid or evaluate piece.

Needs: `pip install music21` (the `datagen` extra), Debian `fluidsynth fluid-soundfont-gm`.
Run: python scripts/make_music_ensembles.py [--out audiotools/datasets/music_ensembles]
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import random
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import make_music_set as music
import numpy as np

from audiotools.data.audio import audio_write
from audiotools.data.manifest import scan_tree, write_manifest

# Six timbre families a listener tells apart at once: bowed strings, brass, organ pipes (steady,
# no attack), hammered strings (struck, decaying), electronic oscillators, struck bars.
ENSEMBLES = ("string quartet", "brass quartet", "church organ", "piano", "synthesizers",
             "mallets")
SECONDS = 8.0
BARS = 16  # 12 bars of a fast 2/4 tune last less than 8 s
NUM_PIECES = 40
NUM_FOLDS = 5
# Vorbis quality 0.2 (libsndfile: quality = 1 - level): ~34 kbit/s keeps the set near 8 MB;
# music_small's 0.6 would make it 10 MB.
COMPRESSION = 0.8
# A piece is left out when a clip of it is more than this fraction near-silence (100 ms frames
# under -50 dBFS): long notes on fast-decaying instruments (xylophone) leave gaps.
MAX_SILENT = 1 / 3
# A file's piece, for the classifier's folds: the name up to the first underscore.
GROUP_PATTERN = r"^(?P<group>[^_]+)_"

# (corpus path, score number within an opus or None, genre), in the order they are tried; the
# first NUM_PIECES that render for every ensemble are kept, the last ones are spares.
PIECES: list[tuple[str, int | None, str]] = [
    ("bach/bwv1.6", None, "chorale"),
    ("bach/bwv101.7", None, "chorale"),
    ("bach/bwv102.7", None, "chorale"),
    ("bach/bwv103.6", None, "chorale"),
    ("bach/bwv104.6", None, "chorale"),
    ("bach/bwv108.6", None, "chorale"),
    ("bach/bwv11.6", None, "chorale"),
    ("bach/bwv110.7", None, "chorale"),
    ("bach/bwv111.6", None, "chorale"),
    ("haydn/opus1no1/movement2.mxl", None, "classical string quartet"),
    ("haydn/opus1no1/movement4.mxl", None, "classical string quartet"),
    ("haydn/opus74no1/movement2.mxl", None, "classical string quartet"),
    ("haydn/opus74no1/movement4.mxl", None, "classical string quartet"),
    ("mozart/k155/movement2.mxl", None, "classical string quartet"),
    ("mozart/k156/movement2.mxl", None, "classical string quartet"),
    ("mozart/k458/movement2.mxl", None, "classical string quartet"),
    ("mozart/k458/movement3.mxl", None, "classical string quartet"),
    ("mozart/k80/movement2.mxl", None, "classical string quartet"),
    ("mozart/k80/movement3.mxl", None, "classical string quartet"),
    ("beethoven/opus18no1/movement2.mxl", None, "classical string quartet"),
    ("beethoven/opus18no1/movement3.mxl", None, "classical string quartet"),
    ("schumann_robert/opus41no1/movement2.mxl", None, "romantic string quartet"),
    ("schumann_clara/polonaise_op1n2.mxl", None, "romantic piano"),
    ("schumann_clara/polonaise_op1n3.mxl", None, "romantic piano"),
    ("schumann_clara/polonaise_op1n4.mxl", None, "romantic piano"),
    ("schumann_clara/opus17/movement3.xml", None, "romantic piano trio"),
    ("schumann_robert/dichterliebe_no2.xml", None, "art song"),
    ("weber/concertino_clarinet.mxl", None, "romantic concertino"),
    ("monteverdi/madrigal.3.2.mxl", None, "renaissance madrigal"),
    ("monteverdi/madrigal.3.3.mxl", None, "renaissance madrigal"),
    ("monteverdi/madrigal.4.2.mxl", None, "renaissance madrigal"),
    ("monteverdi/madrigal.4.3.mxl", None, "renaissance madrigal"),
    ("monteverdi/madrigal.5.1.mxl", None, "renaissance madrigal"),
    ("lusitano/allor_che_ignuda.mxl", None, "renaissance madrigal"),
    ("palestrina/Kyrie_00.krn", None, "renaissance mass"),
    ("palestrina/Kyrie_04.krn", None, "renaissance mass"),
    ("luca/gloria.xml", None, "medieval mass"),
    ("essenFolksong/ballad10.abc", 1, "german folk song"),
    ("ryansMammoth/ArkansasTravellerReel.abc", None, "american reel"),
    ("miscFolk/northumbrianminstrelsyopus.abc", 1, "northumbrian folk tune"),
    # Spares, used when a piece above fails or times out.
    ("bach/bwv113.8", None, "chorale"),
    ("bach/bwv114.7", None, "chorale"),
    ("bach/bwv115.6", None, "chorale"),
    ("bach/bwv116.6", None, "chorale"),
    ("bach/bwv117.4", None, "chorale"),
]


def piece_name(corpus_path: str, number: int | None) -> str:
    """A file-name stem for a piece without underscores, so GROUP_PATTERN finds it."""
    name = re.sub(r"[^a-z0-9]+", "-", music.stem(corpus_path).lower()).strip("-")
    return f"{name}-{number}" if number else name


def split_of(index: int) -> str:
    """The split of the index-th kept piece: fold 0 (every 5th) alternates valid, evaluate."""
    if index % NUM_FOLDS:
        return "train"
    return "valid" if index // NUM_FOLDS % 2 == 0 else "evaluate"


def silent_fraction(audio: np.ndarray) -> float:
    """The fraction of 100 ms frames of `audio` under -50 dBFS (rms)."""
    frame = music.SAMPLE_RATE // 10
    frames = audio[:len(audio) // frame * frame].reshape(-1, frame)
    return float((np.sqrt(np.square(frames).mean(axis=1)) < 10 ** (-50 / 20)).mean())


def _write_midis(corpus_path: str, number: int | None, bpm: int, folder: str,
                 ) -> tuple[str, str, dict[str, list[str]]]:
    """(title, composer, instrument names per ensemble); one MIDI file per ensemble from one
    parse of the score."""
    excerpt, title, composer = music.excerpt_score(corpus_path, number, bars=BARS,
                                                     drop_zero_length=True)
    names = {ensemble: music.write_midi(excerpt, music.ENSEMBLES[ensemble], bpm,
                                        str(Path(folder, f"{ensemble}.mid")))
             for ensemble in ENSEMBLES}
    return title, composer, names


def _bounded(function: Callable[..., Any], args: tuple, timeout: float) -> Any:
    """`function(*args)` in a worker process that is killed at `timeout` (some scores make
    music21 run for ever)."""
    with multiprocessing.Pool(1) as pool:
        return pool.apply_async(function, args).get(timeout=timeout)


def _render_piece(corpus_path: str, number: int | None, bpm: int, tmp: Path,
                  ) -> tuple[str, str, dict[str, tuple[list[str], np.ndarray]]]:
    """(title, composer, {ensemble: (instrument names, 8 s of audio)}); raises if any
    ensemble fails or leaves gaps."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    title, composer, names = _bounded(_write_midis, (corpus_path, number, bpm, str(tmp)),
                                      music.TIMEOUT)
    clips = {ensemble: (names[ensemble],
                        music.render(tmp / f"{ensemble}.mid", tmp / "render.wav",
                                     max_seconds=SECONDS, min_seconds=SECONDS))
             for ensemble in ENSEMBLES}
    for ensemble, (_, audio) in clips.items():
        if silent_fraction(audio) > MAX_SILENT:
            raise ValueError(f"{ensemble}: {silent_fraction(audio):.0%} of the clip is silent")
    return title, composer, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("audiotools/datasets/music_ensembles"))
    args = parser.parse_args()
    reused = {path for path, *_ in music.PIECES} & {path for path, *_ in PIECES}
    if reused:
        raise SystemExit(f"pieces of music_small listed again: {sorted(reused)}")
    if len({piece_name(path, number) for path, number, _ in PIECES}) < len(PIECES):
        raise SystemExit("two pieces have the same file name")
    for ensemble in ENSEMBLES:
        shutil.rmtree(args.out / ensemble, ignore_errors=True)
        (args.out / ensemble).mkdir(parents=True)
    rng = random.Random(1234)
    splits: dict[str, str] = {}  # piece name -> split
    folds: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path, number, genre in PIECES:
            bpm = rng.randrange(72, 140, 4)  # drawn for every piece: a failure shifts no tempo
            if len(splits) == NUM_PIECES:
                break
            try:
                title, composer, clips = _render_piece(path, number, bpm, Path(tmp, "piece"))
            except Exception as err:  # music21 raises many kinds; a bad score is just skipped
                print(f"skipped {path}: {type(err).__name__}: {err}", flush=True)
                continue
            piece = piece_name(path, number)
            for ensemble, (names, audio) in clips.items():
                name = f"{piece}_{ensemble.replace(' ', '-')}"
                audio_write(args.out / ensemble / f"{name}.ogg", audio, music.SAMPLE_RATE,
                            compression_level=COMPRESSION)
                meta = {
                    "title": title, "composer": composer, "genre": genre, "ensemble": ensemble,
                    "instruments": sorted(set(names)), "bpm": bpm, "source": f"music21:{path}",
                    "description": f"{title} by {composer}, {genre}, played by {ensemble} at "
                                   f"{bpm} bpm",
                }
                (args.out / ensemble / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
            folds[piece] = len(splits) % NUM_FOLDS
            splits[piece] = split_of(len(splits))
            print(f"{piece}: {splits[piece]}, fold {folds[piece]}, {title} by {composer}, "
                  f"{bpm} bpm", flush=True)
    if len(splits) < NUM_PIECES:
        raise SystemExit(f"only {len(splits)} of {NUM_PIECES} pieces rendered; add spares")
    entries, rejected = scan_tree(args.out, workers=1, amplitude=True, suffixes={".ogg"})
    if rejected:
        raise SystemExit(f"rendered files rejected: {rejected}")
    for split in ("train", "valid", "evaluate"):
        chosen = [e for e in entries
                  if splits[re.match(GROUP_PATTERN, Path(e["path"]).name)["group"]] == split]
        write_manifest(chosen, args.out / f"{split}.jsonl", relative=True)
        counts = Counter(e["meta"]["ensemble"] for e in chosen)
        print(f"{split}: {len(chosen)} clips, {dict(sorted(counts.items()))}")
    with open(args.out / "folds.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["group", "fold"])
        writer.writerows(sorted(folds.items()))
    size = sum(f.stat().st_size for f in args.out.rglob("*.ogg"))
    peaks, rms = [e["peak"] for e in entries], [e["rms"] for e in entries]
    print(f"{len(entries)} clips, {sum(e['duration'] for e in entries) / 60:.1f} min, "
          f"{size / 1e6:.2f} MB of Ogg; peak {min(peaks):.2f}..{max(peaks):.2f}, "
          f"rms {min(rms):.3f}..{max(rms):.3f} → {args.out}")


if __name__ == "__main__":
    main()
