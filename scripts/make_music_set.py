"""Render the shipped `music_small` set: real music from the music21 corpus played by FluidSynth
with the FluidR3 General MIDI soundfont, ~10 minutes at 16 kHz mono, Ogg Vorbis.

Each clip takes the first bars of one corpus piece, sets a General MIDI ensemble and a tempo, and
is rendered with a timeout (some scores expand for ever). Every clip gets a sidecar JSON with its
metadata (description, genre, instruments, bpm, ...) for conditioning; the manifests (train,
valid, evaluate) are built by the same scanner as `audiotools manifest`, with relative paths.

Needs: `pip install music21`, Debian `fluidsynth fluid-soundfont-gm`.
Run: python scripts/make_music_set.py [--out audiotools/datasets/music_small]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from audiotools.data.audio import audio_read, audio_write
from audiotools.data.manifest import scan_tree, write_manifest

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 16000
MAX_SECONDS = 16.0
MIN_SECONDS = 8.0
BARS = 12
TIMEOUT = 30
CLIPS = 40

# Ensembles of General MIDI programs, top voice first (a piece with fewer parts takes the first).
ENSEMBLES: dict[str, list[int]] = {
    "string quartet": [40, 40, 41, 42],
    "woodwind quartet": [73, 68, 71, 70],
    "brass quartet": [56, 56, 60, 57],
    "saxophone quartet": [64, 65, 66, 67],
    "church organ": [19, 19, 19, 19],
    "choir": [52, 52, 52, 52],
    "synthesizers": [80, 81, 88, 38],
    "mallets": [13, 12, 11, 32],
    "jazz combo": [65, 0, 26, 32],
    "guitars": [24, 25, 24, 32],
    "piano": [0, 0, 0, 0],
    "electric piano": [4, 4, 4, 4],
    "harpsichord": [6, 6, 6, 6],
    "harp": [46, 46, 46, 46],
    "kalimba and bass": [108, 108, 33, 33],
    "flute and piano": [73, 0, 0, 0],
    "violin and guitar": [40, 24, 24, 24],
    "trumpet and organ": [56, 19, 19, 19],
    "harmonica and banjo": [22, 105, 105, 32],
    "accordion": [21, 21, 21, 21],
}

# (corpus path, score number within an opus or None, genre, ensemble).
PIECES: list[tuple[str, int | None, str, str]] = [
    ("bach/bwv66.6", None, "chorale", "string quartet"),
    ("bach/bwv7.7", None, "chorale", "church organ"),
    ("bach/bwv10.7", None, "chorale", "brass quartet"),
    ("bach/bwv26.6", None, "chorale", "choir"),
    ("bach/bwv40.8", None, "chorale", "woodwind quartet"),
    ("bach/bwv57.8", None, "chorale", "saxophone quartet"),
    ("bach/bwv67.7", None, "chorale", "synthesizers"),
    ("bach/bwv269", None, "chorale", "mallets"),
    ("bach/bwv86.6", None, "chorale", "accordion"),
    ("bach/bwv153.1", None, "chorale", "guitars"),
    ("beethoven/opus18no1/movement1.mxl", None, "classical string quartet", "string quartet"),
    ("beethoven/opus59no2/movement3.mxl", None, "classical string quartet", "woodwind quartet"),
    ("haydn/opus74no1/movement1.mxl", None, "classical string quartet", "string quartet"),
    ("haydn/opus1no1/movement1.mxl", None, "classical string quartet", "brass quartet"),
    ("mozart/k80/movement1.mxl", None, "classical string quartet", "saxophone quartet"),
    ("mozart/k155/movement1.mxl", None, "classical string quartet", "string quartet"),
    ("mozart/k458/movement1.mxl", None, "classical string quartet", "jazz combo"),
    ("schumann_robert/opus41no1/movement1.mxl", None, "romantic string quartet", "synthesizers"),
    ("joplin/maple_leaf_rag.mxl", None, "ragtime", "piano"),
    ("mozart/k545/movement1_exposition.mxl", None, "classical piano sonata", "harpsichord"),
    ("chopin/mazurka06-2.krn", None, "romantic piano", "piano"),
    ("schumann_clara/polonaise_op1n1.mxl", None, "romantic piano", "electric piano"),
    ("cpebach/h186.mxl", None, "baroque keyboard", "harpsichord"),
    ("schoenberg/opus19/movement2.mxl", None, "modern piano", "harp"),
    ("schubert/Lindenbaum.xml", None, "art song", "flute and piano"),
    ("verdi/laDonnaEMobile.mxl", None, "opera aria", "trumpet and organ"),
    ("handel/rinaldo/Lascia_chio_pianga.mxl", None, "baroque aria", "violin and guitar"),
    ("liliuokalani/aloha_oe.mxl", None, "hawaiian song", "kalimba and bass"),
    ("beach/prayer_of_a_tired_child.musicxml", None, "romantic song", "electric piano"),
    ("johnson_j_r/lift_every_voice.mxl", None, "hymn", "choir"),
    ("corelli/opus3no1/1grave.xml", None, "baroque trio sonata", "string quartet"),
    ("monteverdi/madrigal.3.1.mxl", None, "renaissance madrigal", "woodwind quartet"),
    ("palestrina/Agnus_01.krn", None, "renaissance mass", "choir"),
    ("monteverdi/madrigal.4.1.mxl", None, "renaissance madrigal", "brass quartet"),
    ("airdsAirs/book1.abc", 1, "scottish folk tune", "harmonica and banjo"),
    ("airdsAirs/book2.abc", 3, "scottish folk tune", "accordion"),
    ("nottingham-dataset/reelsa-c.abc", 2, "folk reel", "violin and guitar"),
    ("miscFolk/americanfifeopus.abc", 5, "american fife tune", "flute and piano"),
    ("oneills1850/0001-0050.abc", 7, "irish folk tune", "guitars"),
    ("leadSheet/fosterBrownHair.mxl", None, "american song", "jazz combo"),
    # Spares, used when a piece above fails or times out.
    ("essenFolksong/altdeu10.abc", 1, "german folk song", "mallets"),
    ("mozart/k156/movement1.mxl", None, "classical string quartet", "guitars"),
    ("haydn/opus74no1/movement3.mxl", None, "classical string quartet", "accordion"),
    ("beethoven/opus59no1/movement1.mxl", None, "classical string quartet", "brass quartet"),
]


def _build_midi(corpus_path: str, number: int | None, programs: list[int], bpm: int,
                midi_path: str) -> tuple[str, str, list[str]]:
    """Parse, keep the first bars, set instruments and tempo, write MIDI. Runs in a worker
    process so a score that hangs music21 can be abandoned."""
    excerpt, title, composer = excerpt_score(corpus_path, number)
    return title, composer, write_midi(excerpt, programs, bpm, midi_path)


def excerpt_score(corpus_path: str, number: int | None, bars: int = BARS,
                  drop_zero_length: bool = False) -> tuple[Any, str, str]:
    """(first `bars` bars of a corpus score, title, composer). Slow for long scores: call it in
    a worker process that can be abandoned.

    `drop_zero_length` removes notes without duration (grace notes, chord symbols): their
    note-on and note-off share a tick, FluidSynth can take them in the wrong order, and a
    sustained instrument then never stops (the render runs until its timeout). music_small was
    made without it, so its default keeps that set reproducible."""
    from music21 import bar, corpus, repeat, spanner

    score = corpus.parse(corpus_path, number=number) if number else corpus.parse(corpus_path)
    if hasattr(score, "scores"):  # an Opus of tunes
        score = score.scores[0]
    folder, _, work = stem(corpus_path).partition("/")
    title = ((score.metadata.title if score.metadata else None)
             or work.replace("/", " ").replace("_", " "))
    composer = (score.metadata.composer if score.metadata else None) or (
        "traditional" if corpus_path.endswith(".abc") else folder.replace("_", " ").title())
    excerpt = score.measures(1, bars)
    # Repeats cut by the excerpt cannot be expanded: play the bars once, as written.
    for kind in (bar.Repeat, repeat.RepeatExpression, spanner.RepeatBracket):
        for element in list(excerpt.recurse().getElementsByClass(kind)):
            element.activeSite.remove(element)
    if drop_zero_length:
        for element in list(excerpt.recurse().notes):
            if element.duration.quarterLength == 0:
                element.activeSite.remove(element)
    return excerpt, " ".join(str(title).split()), " ".join(str(composer).split())


def write_midi(excerpt: Any, programs: list[int], bpm: int, midi_path: str) -> list[str]:
    """Give part i the General MIDI program `programs[i]` (the last one for extra parts), set
    the tempo, write MIDI; returns the instrument names. Replaces what an earlier call set, so
    one excerpt can be written for several ensembles."""
    from music21 import instrument, tempo

    names = []
    for index, part in enumerate(excerpt.parts):
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        new = instrument.instrumentFromMidiProgram(programs[min(index, len(programs) - 1)])
        part.insert(0, new)
        names.append(new.instrumentName or "instrument")
    for mark in list(excerpt.recurse().getElementsByClass(tempo.MetronomeMark)):
        mark.activeSite.remove(mark)
    excerpt.parts[0].insert(0, tempo.MetronomeMark(number=bpm))
    excerpt.write("midi", fp=midi_path)
    return names


def stem(corpus_path: str) -> str:
    """The corpus path without its score extension."""
    return re.sub(r"\.(mxl|xml|musicxml|krn|abc)$", "", corpus_path)


def render(midi_path: Path, wav_path: Path, max_seconds: float = MAX_SECONDS,
           min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Mono audio from the first note, at most `max_seconds`, faded out, peak 0.89; a piece
    shorter than `min_seconds` is an error. FluidSynth runs under a timeout."""
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-F", str(wav_path),
         str(SOUNDFONT), str(midi_path)],
        check=True, timeout=TIMEOUT, capture_output=True)
    wav, _ = audio_read(wav_path, sample_rate=SAMPLE_RATE, channels=1)
    audio = wav[0].numpy() - float(wav.mean())
    start = int(np.argmax(np.abs(audio) > 1e-3))
    audio = audio[start:start + int(max_seconds * SAMPLE_RATE)]
    if len(audio) < min_seconds * SAMPLE_RATE:
        raise ValueError(f"only {len(audio) / SAMPLE_RATE:.1f} s of music")
    fade = min(len(audio), SAMPLE_RATE // 2)
    audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return audio / max(1e-4, float(np.abs(audio).max())) * 0.89


def _split(index: int) -> str:
    return {8: "valid", 9: "evaluate"}.get(index % 10, "train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("audiotools/datasets/music_small"))
    args = parser.parse_args()
    audio_dir = args.out / "audio"
    shutil.rmtree(audio_dir, ignore_errors=True)
    audio_dir.mkdir(parents=True)
    rng = random.Random(1234)
    splits: dict[str, list[str]] = {"train": [], "valid": [], "evaluate": []}
    with tempfile.TemporaryDirectory() as tmp, multiprocessing.Pool(2) as pool:
        jobs = []
        for index, (path, number, genre, ensemble) in enumerate(PIECES):
            bpm = rng.randrange(72, 140, 4)
            midi = Path(tmp, f"{index:02d}.mid")
            job = pool.apply_async(_build_midi, (path, number, ENSEMBLES[ensemble], bpm, str(midi)))
            jobs.append((index, path, genre, ensemble, bpm, midi, job))
        for index, path, genre, ensemble, bpm, midi, job in jobs:
            if sum(map(len, splits.values())) == CLIPS:
                break
            try:
                title, composer, names = job.get(timeout=TIMEOUT)
                audio = render(midi, Path(tmp, f"{index:02d}.wav"))
            except Exception as err:  # music21 raises many kinds; a bad score is just skipped
                print(f"skipped {path}: {type(err).__name__}: {err}", flush=True)
                continue
            name = f"{index:02d}_{stem(path).replace('/', '_').replace('.', '-')}"
            audio_write(audio_dir / f"{name}.ogg", audio, SAMPLE_RATE, compression_level=0.6)
            meta = {
                "title": title, "composer": composer, "genre": genre, "ensemble": ensemble,
                "instruments": sorted(set(names)), "bpm": bpm, "source": f"music21:{path}",
                "description": f"{title} by {composer}, {genre}, played by {ensemble} at {bpm} bpm",
            }
            (audio_dir / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
            splits[_split(sum(map(len, splits.values())))].append(name)
            print(f"{name}: {len(audio) / SAMPLE_RATE:.1f} s, {meta['description']}", flush=True)
    entries, rejected = scan_tree(audio_dir, workers=2, amplitude=True)
    if rejected:
        raise SystemExit(f"rendered files rejected: {rejected}")
    for split, names in splits.items():
        chosen = [e for e in entries if Path(e["path"]).stem in names]
        write_manifest(chosen, args.out / f"{split}.jsonl", relative=True)
    total = sum(e["duration"] for e in entries)
    print(f"{len(entries)} clips, {total / 60:.1f} min → {args.out}")


if __name__ == "__main__":
    main()
