"""Render held-out music: music21 corpus pieces that no shipped dataset uses, 16 kHz mono WAV.

A codec trained on music_small or music_ensembles is measured here on music it never heard: the
pieces are corpus scores outside every shipped manifest and outside both generating scripts'
lists (spares included; a multi-tune file is left out whole), and the ensembles are new ones
that mix General MIDI programs the shipped sets never use (clean and muted guitars, piccolo,
English horn, recorder, voice and choir pads, clavinet, koto, sitar, ...) with familiar ones.
The seed shuffles the corpus folders (one piece a folder, round robin, so a few hundred Bach
chorales or Palestrina masses do not crowd out the rest), the pieces within them, the
ensembles and the tempi. Clips are WAV, not Ogg: a lossy reference would blur the codec's own
error. Rendering reuses scripts/make_music_set.py and scripts/make_music_ensembles.py (a
worker process killed after 30 s per score, FluidSynth under a 30 s timeout, notes without
duration dropped, pieces more than a third near-silence skipped).

    <out>/<nn>_<piece>.wav   S seconds, 16 kHz mono PCM-16, peak 0.89 (+ <same>.json: metadata)
    <out>/manifest.jsonl     relative paths, peak/rms, metadata (`audiotools manifest` format)
    <out>/README.md          what each clip is

Needs: `pip install -e ".[datagen]"` (music21), Debian `fluidsynth fluid-soundfont-gm`.
Run: python scripts/make_heldout_music.py OUT_DIR [--pieces 12] [--seconds 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import make_music_ensembles as ensembles
import make_music_set as music

from audiotools.data.audio import audio_write
from audiotools.data.manifest import read_manifest, scan_tree, write_manifest
from audiotools.environment import DATASETS_DIR

# Ensembles of General MIDI programs, top voice first, none of them a shipped set's; every
# program is in FluidR3_GM's bank 0.
ENSEMBLES: dict[str, list[int]] = {
    "guitar ensemble": [27, 24, 28, 34],        # clean, nylon, muted guitar, picked bass
    "recorder consort": [74, 74, 74, 74],
    "woodwind choir": [72, 69, 71, 70],         # piccolo, English horn, clarinet, bassoon
    "choir pads": [53, 54, 91, 89],             # voice oohs, synth voice, space voice, warm pad
    "harpsichord and recorder": [6, 74, 6, 43],  # harpsichord, recorder, contrabass
    "string orchestra": [48, 48, 49, 43],       # strings, slow strings, contrabass
    "pizzicato strings": [45, 45, 45, 45],
    "brass choir": [61, 59, 60, 58],            # brass section, muted trumpet, horn, tuba
    "funk keys": [7, 16, 18, 35],               # clavinet, drawbar and rock organ, fretless
    "celesta and bells": [8, 9, 10, 14],        # celesta, glockenspiel, music box, bells
    "east asian strings": [107, 104, 106, 15],  # koto, sitar, shamisen, dulcimer
    "folk band": [110, 75, 23, 34],             # fiddle, pan flute, bandoneon, picked bass
    "synth strings": [50, 51, 94, 39],          # synth strings 1 and 2, halo pad, synth bass
    "honky-tonk piano": [3, 3, 3, 3],
    "flute and nylon guitar": [73, 24, 24, 43],
    "steel drums": [114, 114, 114, 32],
}
# Corpus folders of test files and theory exercises, not pieces of music.
NOT_MUSIC = {"demos", "theoryExercises"}


def check_tools() -> None:
    """Stop with the install command for whatever renderer part is missing."""
    missing = []
    if shutil.which("fluidsynth") is None:
        missing.append("FluidSynth: apt-get install -y fluidsynth")
    if not music.SOUNDFONT.exists():
        missing.append(f"{music.SOUNDFONT}: apt-get install -y fluid-soundfont-gm")
    if importlib.util.find_spec("music21") is None:
        missing.append('music21: pip install -e ".[datagen]"')
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))


def shipped_pieces() -> set[str]:
    """Corpus paths (without extension) of every piece the shipped manifests name or the two
    generating scripts list."""
    used = {music.stem(path) for path, *_ in music.PIECES + ensembles.PIECES}
    for manifest in DATASETS_DIR.rglob("*.jsonl"):
        for entry in read_manifest(manifest):
            source = entry.get("meta", {}).get("source", "")
            if source.startswith("music21:"):
                used.add(music.stem(source.removeprefix("music21:")))
    return used


def candidates(rng: random.Random, exclude: set[str]) -> list[str]:
    """Corpus score paths outside `exclude`, shuffled, taking one folder after another."""
    from music21 import common, corpus

    root = Path(common.getCorpusFilePath())
    folders: dict[str, list[str]] = defaultdict(list)
    for file in sorted(corpus.getCorePaths()):
        path = Path(file).relative_to(root).as_posix()
        # stem() strips only score extensions: analyses (.rntxt) stay as they are.
        if music.stem(path) != path and music.stem(path) not in exclude:
            folders[path.split("/")[0]].append(path)
    queues = [rng.sample(paths, len(paths)) for folder, paths in sorted(folders.items())
              if folder not in NOT_MUSIC]
    rng.shuffle(queues)
    return [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]


def _write_midi(corpus_path: str, programs: list[int], bpm: int, bars: int, midi_path: str,
                ) -> tuple[str, str, list[str]]:
    """(title, composer, instrument names): the first `bars` bars of a score as MIDI; run in
    a worker that can be killed."""
    excerpt, title, composer = music.excerpt_score(corpus_path, None, bars=bars,
                                                     drop_zero_length=True)
    return title, composer, music.write_midi(excerpt, programs, bpm, midi_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="an empty or new folder")
    parser.add_argument("--pieces", type=int, default=12, help="clips, one piece each")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a clip")
    parser.add_argument("--seed", type=int, default=0,
                        help="draws the pieces, ensembles and tempi")
    args = parser.parse_args()
    check_tools()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty; give a new folder")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    rng = random.Random(args.seed)
    pool = rng.sample(sorted(ENSEMBLES), len(ENSEMBLES))
    # Two bars a second is twice what the fastest tempo (136 bpm) in 2/4 needs.
    bars = max(ensembles.BARS, math.ceil(2 * args.seconds))
    seen_programs = {p for programs in music.ENSEMBLES.values() for p in programs}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in candidates(rng, shipped_pieces()):
            if len(rows) == args.pieces:
                break
            ensemble, bpm = pool[len(rows) % len(pool)], rng.randrange(72, 140, 4)
            programs = ENSEMBLES[ensemble]
            midi, wav = Path(tmp, "piece.mid"), Path(tmp, "render.wav")
            try:
                title, composer, names = ensembles._bounded(
                    _write_midi, (path, programs, bpm, bars, str(midi)), music.TIMEOUT)
                audio = music.render(midi, wav, max_seconds=args.seconds,
                                     min_seconds=args.seconds)
                if ensembles.silent_fraction(audio) > ensembles.MAX_SILENT:
                    raise ValueError(f"{ensembles.silent_fraction(audio):.0%} near-silence")
            except Exception as err:  # music21 raises many kinds; a bad score is just skipped
                print(f"skipped {path}: {type(err).__name__}: {err}", flush=True)
                continue
            name = f"{len(rows):02d}_{ensembles.piece_name(path, None)}"
            audio_write(args.out / f"{name}.wav", audio, music.SAMPLE_RATE)
            played = [programs[min(i, len(programs) - 1)] for i in range(len(names))]
            meta = {
                "title": title, "composer": composer, "ensemble": ensemble,
                "instruments": names, "programs": played,
                "unseen_programs": sorted(set(played) - seen_programs), "bpm": bpm,
                "source": f"music21:{path}", "seed": args.seed,
                "description": f"{title} by {composer}, played by {ensemble} at {bpm} bpm",
            }
            (args.out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
            rows.append((name, meta))
            print(f"{name}: {meta['description']}, {', '.join(names)}", flush=True)
    if len(rows) < args.pieces:
        raise SystemExit(f"only {len(rows)} of {args.pieces} pieces rendered")
    entries, rejected = scan_tree(args.out, workers=1, amplitude=True, suffixes={".wav"})
    if rejected:
        raise SystemExit(f"rendered files rejected: {rejected}")
    write_manifest(entries, args.out / "manifest.jsonl", relative=True)
    lines = [f"# Held-out music ({len(rows)} clips, {args.seconds:g} s, 16 kHz mono)", "",
             f"`python scripts/make_heldout_music.py OUT --pieces {args.pieces} --seconds "
             f"{args.seconds:g} --seed {args.seed}`: music21 corpus pieces no shipped dataset "
             "uses, rendered by FluidSynth (FluidR3 GM).", "",
             "| clip | piece | composer | ensemble | instruments | bpm |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {m['title']} (`{m['source']}`) | {m['composer']} | {m['ensemble']} | "
              f"{', '.join(m['instruments'])} | {m['bpm']} |" for name, m in rows]
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    for entry in entries:
        print(f"{Path(entry['path']).name}: {entry['duration']:.2f} s, {entry['sample_rate']} Hz, "
              f"{entry['channels']} ch, rms {entry['rms']:.3f}, peak {entry['peak']:.2f}")
    print(f"{len(entries)} clips in {time.monotonic() - start:.0f} s → {args.out}")


if __name__ == "__main__":
    main()
