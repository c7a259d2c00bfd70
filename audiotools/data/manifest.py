"""Manifests: one JSON line per usable audio file (path, duration, sample_rate, channels, frames,
optional peak/rms and sidecar metadata), built once by scanning a tree.

Every file is decoded in full at scan time, so truncated data, NaN/inf samples and files too
short to use are found here, reported with the reason, and never reach training. Paths may be
stored relative to the manifest file, which keeps a shipped dataset valid in any checkout.
"""
from __future__ import annotations

import errno
import gzip
import json
import math
import os
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..errors import ConfigError, writing
from ..io.atomic import atomic_path, write_text_atomic
from .audio import AudioFileError, audio_info

REQUIRED_KEYS = ("path", "duration", "sample_rate", "channels")
ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "path": str, "duration": (int, float), "sample_rate": int, "channels": int}
BLOCK_FRAMES = 1 << 18


@dataclass(frozen=True)
class Rejection:
    path: str
    reason: str


def _open_text(path: Path, mode: str, gz: bool):
    if gz:
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def sidecar_path(path: Path) -> Path | None:
    """`song.wav.json` or `song.json` beside `song.wav`, whichever exists (in that order). For
    a file whose name has room for no `.json` more (255 bytes), the first cannot exist."""
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        try:
            if candidate.is_file():
                return candidate
        except OSError as error:
            if error.errno != errno.ENAMETOOLONG:
                raise
    return None


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    sidecar = sidecar_path(path)
    if sidecar is None:
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AudioFileError(f"sidecar {sidecar.name} is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise AudioFileError(f"sidecar {sidecar.name} must hold a JSON object")
    return meta


def _decode_stats(path: Path, amplitude: bool) -> tuple[int, float, float]:
    """Decode the whole file: (frames, peak, rms). Raises AudioFileError on non-finite samples
    or a decode failure mid-file."""
    frames, peak, energy = 0, 0.0, 0.0
    try:
        with sf.SoundFile(path) as f:
            for block in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    at = (frames + int(np.argmin(np.isfinite(block).all(axis=1)))) / f.samplerate
                    raise AudioFileError(f"non-finite samples (NaN/inf) at {at:.3f} s")
                if amplitude:
                    peak = max(peak, float(np.abs(block).max(initial=0.0)))
                    energy += float(np.square(block, dtype=np.float64).sum())
                frames += block.shape[0]
            channels = f.channels
    except (sf.LibsndfileError, RuntimeError) as err:
        # Decoded in blocks of BLOCK_FRAMES: a file that fails in its first block is "cut
        # short or damaged", whatever part of that block did decode.
        where = f"after {frames} frames" if frames else "in its first block"
        raise AudioFileError(f"decoding failed {where}: cut short or damaged ({err})") from err
    rms = math.sqrt(energy / max(1, frames * channels))
    return frames, peak, rms


def scan_file(path: Path, amplitude: bool = False, min_frames: int = 16,
              ) -> dict[str, Any] | Rejection:
    """A manifest entry for `path` (absolute path), or the reason it cannot be used."""
    if path.is_symlink() and not path.exists():
        return Rejection(str(path), f"a broken link (to {os.readlink(path)})")
    try:
        if path.stat().st_size == 0:
            return Rejection(str(path), "empty file (0 bytes)")
        info = audio_info(path)
        frames, peak, rms = _decode_stats(path, amplitude)
        if frames < min_frames:
            return Rejection(str(path), f"too short: {frames} frames (minimum {min_frames})")
        entry: dict[str, Any] = {
            "path": str(path), "duration": frames / info.sample_rate,
            "sample_rate": info.sample_rate, "channels": info.channels, "frames": frames}
        if amplitude:
            entry.update(peak=peak, rms=rms)
        meta = _read_sidecar(path)
        if meta is not None:
            entry["meta"] = meta
        return entry
    except AudioFileError as err:
        return Rejection(str(path), str(err).removeprefix(f"{path}: "))
    except OSError as err:
        return Rejection(str(path), f"cannot read: {err.strerror or err}")


def candidate_files(root: Path, exclude: Iterable[Path] = (),
                    suffixes: Collection[str] | None = None) -> list[Path]:
    """Every non-hidden file under root except JSON sidecars and `exclude` (only those with
    one of `suffixes`, lower-cased, when given), sorted, each once. Links are followed, but a
    folder reached a second way (a link back up the tree, or a second link to it) is not read
    again, and a file reached by two names is listed once, by its target; a broken link keeps
    its own name, for its rejection to name it."""
    skip = {p.resolve() for p in exclude}
    found: set[Path] = set()
    folders_read: set[Path] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = Path(folder).resolve()
        if real in folders_read:
            dirs[:] = []
            continue
        folders_read.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            link = Path(folder, name)
            path = link.resolve() if link.exists() else link.absolute()
            if suffixes is not None and path.suffix.lower() not in suffixes:
                continue
            if not name.startswith(".") and path.suffix != ".json" and path not in skip:
                found.add(path)
    return sorted(found)


def scan_tree(root: str | os.PathLike, workers: int = 8, amplitude: bool = False,
              min_frames: int = 16, exclude: Iterable[Path] = (),
              suffixes: Collection[str] | None = None,
              ) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Scan every file under root (with one of `suffixes` when given) with a thread pool
    (soundfile releases the GIL while decoding). Returns (entries, rejections), both in path
    order."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory; give the root folder of the audio files.")
    files = candidate_files(root, exclude, suffixes)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda p: scan_file(p, amplitude, min_frames), files))
    entries = [r for r in results if not isinstance(r, Rejection)]
    return entries, [r for r in results if isinstance(r, Rejection)]


def write_manifest(entries: Iterable[dict[str, Any]], out: str | os.PathLike,
                   relative: bool = False, exclusive: bool = False) -> Path:
    """Write JSON lines (gzip when `out` ends in .gz); `relative` stores paths relative to the
    manifest's folder; `exclusive`: refused if `out` appeared while this ran."""
    out = Path(out)
    try:
        with (writing(out), atomic_path(out, exclusive=exclusive) as tmp,
              _open_text(tmp, "w", gz=out.suffix == ".gz") as f):
            for entry in entries:
                if relative:
                    entry = {**entry, "path": os.path.relpath(entry["path"], out.parent.resolve())}
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    except FileExistsError:
        raise ConfigError(f"{out} exists (written while this ran); choose another OUT or pass "
                          "--force to replace it.") from None
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with _open_text(path, "r", gz=path.suffix == ".gz") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line


def _entry(path: Path, number: int, line: str) -> dict[str, Any]:
    """Line `number` of manifest `path` as an entry, its path made absolute."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{number}: not valid JSON ({err}).") from err
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}:{number}: not a JSON object; each line is one file's entry.")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise ConfigError(f"{path}:{number}: missing {', '.join(missing)}; each line needs "
                          f"{', '.join(REQUIRED_KEYS)}.")
    wrong = [f"{key}={entry[key]!r}" for key, kinds in ENTRY_TYPES.items()
             if not isinstance(entry[key], kinds) or isinstance(entry[key], bool)
             or (key != "path" and not entry[key] > 0)]
    if wrong:
        raise ConfigError(f"{path}:{number}: {', '.join(wrong)}; path is a string, duration a "
                          "positive number of seconds, sample_rate and channels positive "
                          "integers.")
    entry["path"] = str((path.parent / entry["path"]).resolve())
    return entry


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Entries of a manifest with absolute paths (relative ones are taken from the manifest's
    folder). Raises ConfigError naming the file and line of anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"manifest {path} {'is a folder' if path.is_dir() else 'does not exist'}"
                          "; build one with `audiotools manifest ROOT OUT.jsonl`.")
    try:
        entries = [_entry(path, number, line) for number, line in _lines(path)]
    except (UnicodeDecodeError, OSError) as err:  # audio, an archive, a .gz that is not gzip
        raise ConfigError(f"{path} is not a manifest (JSON lines of text: {err}); build one "
                          "with `audiotools manifest ROOT OUT.jsonl`.") from err
    if not entries:
        raise ConfigError(f"manifest {path} lists no files.")
    return entries


def rejection_report_path(out: str | os.PathLike) -> Path:
    """`x.jsonl[.gz]` → `x.rejected.tsv`, beside the manifest."""
    out = Path(out)
    stem = out.name.removesuffix(".gz").removesuffix(".jsonl")
    return out.with_name(f"{stem}.rejected.tsv")


def other_manifest(out: str | os.PathLike) -> Path:
    """`x.jsonl` ↔ `x.jsonl.gz`: the manifest that shares `out`'s rejection report."""
    out = Path(out)
    if out.name.endswith(".gz"):
        return out.with_name(out.name.removesuffix(".gz"))
    return out.with_name(out.name + ".gz")


def write_rejections(rejections: list[Rejection], report: Path) -> Path:
    lines = ["path\treason"] + [f"{r.path}\t{r.reason}" for r in rejections]
    write_text_atomic(report, "\n".join(lines) + "\n")
    return report
