"""A folder of audio files, one subfolder per class, as classifier features.

    root/<class>/<any/depth/>file.<anything soundfile reads>

Each file is read at any rate and channel count, mixed to mono, resampled, padded with silence
or cropped (from the start) to a fixed number of frames and turned into a log-mel spectrogram.
The features are cached under `cache_dir`, keyed by the file list (paths, sizes, modification
times) and the feature settings, so a changed file or setting recomputes them.

Folds keep groups apart (e.g. speakers): a file's group is the `group` (or first) capture of
`group_pattern` searched in its file name, or its path relative to `root` without a pattern.
Groups map to folds through `folds_file` (CSV with `group,fold` columns, or a JSON object
{group: fold}), or are dealt to `num_folds` folds in a fixed hash order: balanced, deterministic
and never one group in two folds.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from ..environment import resolve_path
from ..errors import ConfigError, StorageError, writing
from ..io.atomic import atomic_path
from .audio import AUDIO_SUFFIXES, resample, resampler_reach
from .features import FeatureArrays

logger = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: files with non-finite samples are skipped
LOG_EPS = 1e-6


@dataclass(frozen=True)
class MelSettings:
    """How a file becomes features; part of the cache key."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    num_frames: int = 101  # 1 s at 16 kHz with a 10 ms hop

    @property
    def num_samples(self) -> int:
        """Samples that give exactly `num_frames` frames with a centered STFT."""
        return self.hop_length * (self.num_frames - 1)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "audiotools" / "features"


def load_audio_folder(root: str | Path, mel: MelSettings = MelSettings(), *,
                      classes: Sequence[str] | None = None, folds_file: str | Path | None = None,
                      group_pattern: str | None = None, num_folds: int = 5,
                      cache_dir: str | Path | None = None) -> FeatureArrays:
    """Log-mel features, labels and folds of every readable file under `root`.

    Labels follow `classes` when given (it must name every class folder), else folder names
    in sorted order.

    Unreadable files are logged with their path and reason and listed in `skipped`; an empty
    class folder, or one with no readable file, is an error.
    """
    root = resolve_path(root)
    scanned = _scan(root, classes)
    files = [path for _, paths in scanned for path in paths]
    labels = np.array([label for label, (_, paths) in enumerate(scanned) for _ in paths])
    cache = (resolve_path(cache_dir) if cache_dir else default_cache_dir()) / (
        f"{root.name}-{_cache_key(root, files, mel)}.npz")
    cached = _read_cache(cache)
    if cached is not None:
        features, kept, skipped = cached
        for line in skipped:
            logger.warning("Skipped unreadable audio file %s", line)
    else:
        features, kept, skipped = _compute(files, mel)
        _save_cache(cache, features=features, kept=kept, skipped=np.array(skipped, dtype=str))
    _check_classes(scanned, labels[kept], skipped)

    kept_files = [files[index] for index in np.flatnonzero(kept)]
    groups = [_group(path, root, group_pattern) for path in kept_files]
    if folds_file:
        folds = _folds_from_file(resolve_path(folds_file), groups, kept_files)
        found = len(np.unique(folds))
        if found != num_folds:  # the file decides (docs/solvers/classifier.md); say so
            logger.warning("dataset.num_folds=%d is not used: dataset.folds_file=%s assigns "
                           "%d fold(s), which are the folds%s; dataset.folds_file=null deals "
                           "the groups to num_folds folds.", num_folds, folds_file, found,
                           f" (dataset.num_folds={found} says so)" if found >= 2 else "")
    else:
        folds = _deal_folds(groups, num_folds)
    return FeatureArrays(features, labels[kept].astype(np.int64), folds,
                         [name for name, _ in scanned], skipped)


def _scan(root: Path, names: Sequence[str] | None) -> list[tuple[str, list[Path]]]:
    """(class name, sorted files) of each class subfolder, in the order of `names`."""
    if not root.is_dir():
        raise ConfigError(f"dataset.root={root} is not a folder; expected one subfolder of "
                          "audio files per class.")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if names is not None and sorted(names) != found:
        raise ConfigError(f"dataset.classes={list(names)} does not match the class folders of "
                          f"{root}: {found}. List each folder once, or set dataset.classes=null.")
    loose = sorted(p.name for p in root.iterdir()
                   if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir())
    if loose:
        logger.warning("dataset.root=%s holds %d audio file(s) outside the class folders, "
                       "which are not read (e.g. %s): each class is a subfolder.", root,
                       len(loose), loose[0])
    classes = []
    for folder in (root / name for name in (found if names is None else names)):
        broken = sorted(p for p in folder.rglob("*") if p.is_symlink() and not p.exists())
        if broken:
            logger.warning("Skipped %d broken link(s) in %s, e.g. %s.", len(broken), folder,
                           broken[0])
        files = sorted(p for p in folder.rglob("*")  # sidecar metadata is not audio
                       if p.is_file() and p.suffix != ".json"
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        if not files:
            raise ConfigError(f"Class folder {folder} is empty: add audio files to it or remove "
                              "it (every subfolder of dataset.root is a class).")
        classes.append((folder.name, files))
    if not classes:
        raise ConfigError(f"dataset.root={root} has no class subfolders; expected "
                          "root/<class>/<audio files>.")
    return classes


def _cache_key(root: Path, files: list[Path], mel: MelSettings) -> str:
    listing = [(str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns)
               for path, stat in ((path, path.stat()) for path in files)]
    payload = json.dumps([CACHE_VERSION, str(root), asdict(mel), listing])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _compute(files: list[Path], mel: MelSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features of readable files, kept mask over `files`, "path: reason" of the others)."""
    waves, kept, skipped = [], np.zeros(len(files), dtype=bool), []
    for index, path in enumerate(files):
        try:
            wave = _read_mono(path, mel.sample_rate)
        except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
            skipped.append(f"{path}: {exc}")
            logger.warning("Skipped unreadable audio file %s", skipped[-1])
            continue
        waves.append(_fit(wave, mel))
        kept[index] = True
    return _log_mel(waves, mel), kept, skipped


def file_features(path: str | Path, mel: MelSettings) -> np.ndarray:
    """(n_mels, num_frames) log-mel of one file, computed exactly as for training."""
    if not Path(path).is_file():  # libsndfile would say "System error"
        raise ConfigError(f"Cannot read audio file {path}: "
                          f"{'a folder' if Path(path).is_dir() else 'no such file'}.")
    try:
        wave = _read_mono(Path(path), mel.sample_rate, mel.num_samples)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise ConfigError(f"Cannot read audio file {path}: {exc}") from exc
    return _log_mel([_fit(wave, mel)], mel)[0]


def audio_features(audio: torch.Tensor, sample_rate: int, mel: MelSettings) -> np.ndarray:
    """(n_mels, num_frames) log-mel of a clip (channels, samples) at `sample_rate`, mixed to
    mono and resampled as files are for training."""
    wave = audio.float().mean(dim=0) if audio.dim() == 2 else audio.float()
    wave = resample(wave, sample_rate, mel.sample_rate)
    return _log_mel([_fit(wave, mel)], mel)[0]


def _fit(wave: torch.Tensor, mel: MelSettings) -> torch.Tensor:
    """Crop from the start, or pad with silence at the end, to `mel.num_samples`."""
    return torch.nn.functional.pad(wave[:mel.num_samples],
                                   (0, max(0, mel.num_samples - len(wave))))


def _log_mel(waves: list[torch.Tensor], mel: MelSettings, chunk: int = 128) -> np.ndarray:
    """(N, n_mels, num_frames) float32; batched, as one small STFT at a time is slow on CPU."""
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=mel.sample_rate, n_fft=mel.n_fft, hop_length=mel.hop_length,
        n_mels=mel.n_mels)
    features = np.zeros((len(waves), mel.n_mels, mel.num_frames), dtype=np.float32)
    for start in range(0, len(waves), chunk):
        batch = torch.stack(waves[start:start + chunk])
        features[start:start + chunk] = torch.log(transform(batch) + LOG_EPS).numpy()
    return features


def _read_mono(path: Path, sample_rate: int, samples: int | None = None) -> torch.Tensor:
    """Mono float32 samples of `path` at `sample_rate`; with `samples`, only the start of
    the file that gives the first `samples` of them exactly (a 10-minute file read whole to
    hear its first second took 0.36 GB)."""
    frames = -1
    if samples is not None:
        rate = soundfile.info(str(path)).samplerate
        frames = math.ceil(samples * rate / sample_rate) + resampler_reach(rate, sample_rate)
    data, rate = soundfile.read(path, frames=frames, dtype="float32", always_2d=True)
    if len(data) == 0:
        raise ValueError("no audio frames")
    if not np.isfinite(data).all():
        raise ValueError("non-finite samples (NaN/inf)")
    wave = torch.from_numpy(data).mean(dim=1)
    return resample(wave, rate, sample_rate)


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(features, kept, skipped) from the cache, or None to compute them: absent, or not
    readable (another user's file, a damaged one), which costs only the time to compute."""
    try:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            cached = stored["features"], stored["kept"], stored["skipped"].tolist()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        logger.warning("Features cache %s not read (%s): they are computed again.", path, error)
        return None
    logger.info("Audio-folder features from cache %s.", path)
    return cached


def _save_cache(path: Path, **arrays: np.ndarray) -> None:
    """Write the .npz through a temporary file (a crash never leaves half a cache), with the
    permissions of the user's umask. A cache that cannot be written costs only the time to
    compute the features again: a warning, not a failed run."""
    try:
        with writing(path), atomic_path(path) as tmp, open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
    except (StorageError, OSError) as error:
        logger.warning("Features not cached: %s They are computed again next time; "
                       "dataset.cache_dir can name another folder.", error)


def _check_classes(classes: list[tuple[str, list[Path]]], kept_labels: np.ndarray,
                   skipped: list[str]) -> None:
    counts = np.bincount(kept_labels, minlength=len(classes))
    for (name, paths), count in zip(classes, counts, strict=True):
        if count == 0:
            raise ConfigError(f"Class folder {paths[0].parent} ({name}): none of its "
                              f"{len(paths)} files could be read (see the skipped files above; "
                              f"{len(skipped)} in all).")


def _group(path: Path, root: Path, pattern: str | None) -> str:
    if pattern is None:
        return str(path.relative_to(root))
    try:
        match = re.search(pattern, path.name)
    except re.error as error:
        raise ConfigError(f"dataset.group_pattern={pattern!r} is not a regular expression "
                          f"({error}).") from None
    if match is None:
        raise ConfigError(f"dataset.group_pattern={pattern!r} does not match the file name "
                          f"{path.name!r} ({path}).")
    named = match.groupdict()
    return named["group"] if "group" in named else match.group(1 if match.re.groups else 0)


def _folds_from_file(path: Path, groups: list[str], files: list[Path]) -> np.ndarray:
    mapping = _read_fold_mapping(path)
    missing = sorted({group for group in groups if group not in mapping})
    if missing:
        example = files[groups.index(missing[0])]
        raise ConfigError(f"dataset.folds_file={path} has no fold for {len(missing)} groups, "
                          f"e.g. {missing[0]!r} (from {example}). Add them, or check "
                          "dataset.group_pattern.")
    return np.array([mapping[group] for group in groups], dtype=np.int64)


def _read_fold_mapping(path: Path) -> dict[str, int]:
    """{group: fold} from a JSON object or a CSV with `group` and `fold` columns."""
    try:
        if path.suffix == ".json":
            mapping = json.loads(path.read_text())
            if not isinstance(mapping, dict):
                raise ValueError(f"expected an object {{group: fold}}, got {type(mapping)}")
            return {str(group): int(fold) for group, fold in mapping.items()}
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and not {"group", "fold"} <= set(rows[0]):
            raise ValueError(f"expected columns 'group' and 'fold', got {list(rows[0])}")
        return {row["group"]: int(row["fold"]) for row in rows}
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"dataset.folds_file={path}: {exc}") from exc


def _deal_folds(groups: list[str], num_folds: int) -> np.ndarray:
    """Deal the groups, in order of their SHA-1, round-robin to `num_folds` folds."""
    unique = sorted(set(groups), key=lambda group: hashlib.sha1(group.encode()).hexdigest())
    if len(unique) < num_folds:
        raise ConfigError(f"{len(unique)} groups cannot fill dataset.num_folds={num_folds} folds: "
                          "some folds would have no samples. Lower num_folds or check "
                          "dataset.group_pattern.")
    fold_of = {group: index % num_folds for index, group in enumerate(unique)}
    return np.array([fold_of[group] for group in groups], dtype=np.int64)
