"""The shipped ensemble set: what conditional models are trained on and judged with. The label
(meta.ensemble) must be the only thing that tells its classes apart, so every piece is played by
every ensemble, splits and folds never share a piece, and none of its pieces is in music_small."""
from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import soundfile
from omegaconf import OmegaConf

from audiotools.data.builders import build_audio_datasets
from audiotools.data.manifest import read_manifest
from audiotools.environment import resolve_path
from audiotools.families import validate_config
from audiotools.train import main

REPO = Path(__file__).resolve().parents[2]
SET = REPO / "audiotools" / "datasets" / "music_ensembles"
MUSIC_SMALL = REPO / "audiotools" / "datasets" / "music_small"
SPLITS = ("train", "valid", "evaluate")
ENSEMBLES = {"brass quartet", "church organ", "mallets", "piano", "string quartet",
             "synthesizers"}
META_KEYS = {"title", "composer", "genre", "ensemble", "instruments", "bpm", "source",
             "description"}


def _piece(path: str) -> str:
    return Path(path).name.split("_")[0]


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict]]:
    return {split: read_manifest(SET / f"{split}.jsonl") for split in SPLITS}


@pytest.fixture(scope="module")
def recipe():
    return main.get_xp(["solver=classifier/ensembles"]).cfg


def test_six_ensembles_of_40_clips_of_8_s_at_16_khz_mono(manifests):
    every = [entry for split in manifests.values() for entry in split]
    assert Counter(e["meta"]["ensemble"] for e in every) == {name: 40 for name in ENSEMBLES}
    assert len({e["path"] for e in every}) == 240
    for entry in every:
        info = soundfile.info(entry["path"])  # the file itself, not only what the manifest says
        assert (info.format, info.samplerate, info.channels, info.frames) == (
            "OGG", 16000, 1, 128000), entry["path"]
        assert entry["duration"] == 8.0 and entry["frames"] == 128000
        # Listening proxies: no clipping, never silent (music_small's floor is 0.02).
        assert entry["peak"] < 1.0 and entry["rms"] > 0.03, entry["path"]
        assert entry["meta"].keys() == META_KEYS, entry["path"]
        assert Path(entry["path"]).parent.name == entry["meta"]["ensemble"]
        assert entry["meta"]["ensemble"] in entry["meta"]["description"]


def test_splits_are_stratified_and_disjoint_by_piece(manifests):
    counts = {split: Counter(e["meta"]["ensemble"] for e in entries)
              for split, entries in manifests.items()}
    assert counts == {"train": {name: 32 for name in ENSEMBLES},
                      "valid": {name: 4 for name in ENSEMBLES},
                      "evaluate": {name: 4 for name in ENSEMBLES}}
    pieces = {split: {_piece(e["path"]) for e in entries} for split, entries in manifests.items()}
    sources = {split: {e["meta"]["source"] for e in entries}
               for split, entries in manifests.items()}
    for one, other in (("train", "valid"), ("train", "evaluate"), ("valid", "evaluate")):
        assert not pieces[one] & pieces[other] and not sources[one] & sources[other]
    # Same piece, same tempo, every ensemble: melody and tempo say nothing about the label.
    by_piece: dict[str, list[dict]] = defaultdict(list)
    for entries in manifests.values():
        for entry in entries:
            by_piece[_piece(entry["path"])].append(entry)
    assert len(by_piece) == 40
    for piece, entries in by_piece.items():
        assert {e["meta"]["ensemble"] for e in entries} == ENSEMBLES, piece
        assert len({(e["meta"]["source"], e["meta"]["bpm"]) for e in entries}) == 1, piece


def test_no_piece_of_music_small(manifests):
    small = {e["meta"]["source"] for split in SPLITS
             for e in read_manifest(MUSIC_SMALL / f"{split}.jsonl")}
    ours = {e["meta"]["source"] for entries in manifests.values() for e in entries}
    assert len(small) == 40 and len(ours) == 40
    assert not small & ours


def test_folds_group_by_piece_and_fold_0_is_valid_and_evaluate(manifests, recipe):
    with open(SET / "folds.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    fold_of = {row["group"]: int(row["fold"]) for row in rows}
    assert len(rows) == len(fold_of) == 40  # one fold per piece
    assert Counter(fold_of.values()) == {fold: 8 for fold in range(5)}
    pattern = re.compile(recipe.dataset.group_pattern)
    files = sorted(SET.glob("*/*.ogg"))
    assert len(files) == 240
    groups = {path: pattern.search(path.name)["group"] for path in files}
    assert set(groups.values()) == set(fold_of)
    for fold in range(5):
        held_out = {g for g in groups.values() if fold_of[g] == fold}
        trained = {g for g in groups.values() if fold_of[g] != fold}
        assert held_out and not held_out & trained
    pieces = {split: {_piece(e["path"]) for e in entries} for split, entries in manifests.items()}
    assert {g for g, fold in fold_of.items() if fold == 0} == pieces["valid"] | pieces["evaluate"]


def test_ensembles_recipe_validates_on_the_shipped_folder(recipe):
    settings = validate_config(recipe)
    data = settings.dataset
    root = resolve_path(data.root)
    assert root == SET.resolve() and resolve_path(data.folds_file) == (SET / "folds.csv").resolve()
    assert set(data.classes) == ENSEMBLES == {p.name for p in root.iterdir() if p.is_dir()}
    # The features fit in a clip: nothing is padded with silence.
    assert data.mel().num_samples <= 128000


def test_dset_config_builds_every_split():
    datasets = build_audio_datasets(OmegaConf.load(REPO / "config/dset/music_ensembles.yaml"),
                                    seed=1)
    assert {split: len(datasets[split]) for split in (*SPLITS, "generate")} == {
        "train": 192, "valid": 24, "evaluate": 24, "generate": 6}
    generated = [datasets["generate"][index] for index in range(6)]
    assert all(item["audio"].shape == (1, 128000) for item in generated)
    # generate conditions on every ensemble once, with one piece.
    assert {item["info"]["meta"]["ensemble"] for item in generated} == ENSEMBLES
    assert len({item["info"]["meta"]["source"] for item in generated}) == 1
