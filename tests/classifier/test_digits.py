"""The shipped spoken-digits set: what the classifier recipes and docs promise about it."""
from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import soundfile

from audiotools.data.audio_folder import MelSettings, load_audio_folder
from audiotools.data.features import split_by_fold
from audiotools.environment import resolve_path

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ROOT = resolve_path("//datasets/digits")


def _folds() -> dict[str, int]:
    with open(ROOT / "folds.csv", newline="") as handle:
        return {row["group"]: int(row["fold"]) for row in csv.DictReader(handle)}


def test_layout_speakers_takes_and_format():
    assert sorted(p.name for p in ROOT.iterdir() if p.is_dir()) == sorted(DIGITS)
    takes = defaultdict(int)
    size = 0
    for digit in DIGITS:
        for path in (ROOT / digit).iterdir():
            info = soundfile.info(path)
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "OGG"), path
            assert 0.2 < info.duration < 1.0, path
            takes[path.name.split("_")[0], digit] += 1
            size += path.stat().st_size
    speakers = {speaker for speaker, _ in takes}
    assert len(speakers) >= 24
    assert len(takes) == len(speakers) * 10  # every speaker says every digit
    assert min(takes.values()) >= 3
    assert size < 10_000_000


def test_folds_keep_speakers_apart():
    folds = _folds()
    speakers = {p.name.split("_")[0] for p in ROOT.glob("*/*.ogg")}
    assert set(folds) == speakers  # a dict: each speaker has exactly one fold
    per_fold = np.bincount(list(folds.values()))
    assert len(per_fold) == 5 and per_fold.min() >= 5


def test_loads_as_five_speaker_folds(tmp_path):
    arrays = load_audio_folder(ROOT, MelSettings(), classes=DIGITS, folds_file=ROOT / "folds.csv",
                               group_pattern=r"^(?P<group>[^_]+)_", cache_dir=tmp_path)
    assert arrays.features.shape == (960, 64, 101) and arrays.skipped == []
    assert arrays.class_names == DIGITS and np.bincount(arrays.labels).tolist() == [96] * 10
    speakers_in_fold_3 = sum(fold == 3 for fold in _folds().values())
    train, valid = split_by_fold(arrays, 3)
    assert (len(train), len(valid)) == (960 - 30 * speakers_in_fold_3, 30 * speakers_in_fold_3)
