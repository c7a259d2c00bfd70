"""Precomputed features for the classifier: loading, validation and the per-fold split.

The original trainer's preprocessed format is a folder holding

    features.{npy,npz,pkl}      (N, n_mels, T); (N, 1, n_mels, T) and (N, n_mels, T, 1) too
    labels.{npy,npz,pkl}        (N,) integers in [0, num_classes)
    folds.{npy,npz,pkl}         (N,) integers: the cross-validation fold of each sample
    class_mapping.{json,pkl}    optional: class names, as a list or a name <-> index dict

A `.npz` holds one array, or an array named like the file. `.npy`/`.npz` files are read with
`allow_pickle=False`. **Loading a `.pkl` runs code stored in the file**: pickles are only read
from the folder the user configured (`dataset.features_dir`, or the files fetched from the Hub
repo they configured in `dataset.hf_repo_id`); never point it at files you do not trust.

Both data sources (this one and `audio_folder`) produce a `FeatureArrays`; `split_by_fold`
turns it into the training and held-out `FeatureDataset`s of one fold.
"""
from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..environment import resolve_path
from ..errors import ConfigError

logger = logging.getLogger(__name__)

ARRAY_NAMES = ("features", "labels", "folds")
ARRAY_SUFFIXES = (".npy", ".npz", ".pkl")
MAPPING_NAME = "class_mapping"
MAPPING_SUFFIXES = (".json", ".pkl")


@dataclass
class FeatureArrays:
    """Every sample's features with its label and fold; what each data source produces."""

    features: np.ndarray  # (N, n_mels, T) float32
    labels: np.ndarray    # (N,) int64
    folds: np.ndarray     # (N,) int64
    class_names: list[str]
    # "path: reason" of each input that was skipped (audio-folder source).
    skipped: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_mels(self) -> int:
        return self.features.shape[1]

    @property
    def num_frames(self) -> int:
        return self.features.shape[2]


class FeatureDataset(Dataset):
    """Samples `indices` of a `FeatureArrays` as (features float32 [n_mels, T], label int64)."""

    def __init__(self, arrays: FeatureArrays, indices: np.ndarray | None = None):
        self.features = torch.from_numpy(arrays.features)
        self.labels = torch.from_numpy(arrays.labels)
        if indices is None:
            indices = np.arange(len(arrays.labels))
        self.indices = torch.as_tensor(indices, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.indices[index]
        return self.features[sample], self.labels[sample]


def split_by_fold(arrays: FeatureArrays, fold: int) -> tuple[FeatureDataset, FeatureDataset]:
    """(train, valid): fold `fold` is held out for validation, all other folds train."""
    present, counts = np.unique(arrays.folds, return_counts=True)
    summary = ", ".join(f"{value}: {count}" for value, count in zip(present, counts, strict=True))
    held_out = arrays.folds == fold
    if not held_out.any():
        raise ConfigError(f"dataset.fold={fold} has no samples. Samples per fold: {summary}.")
    if held_out.all():
        raise ConfigError(f"dataset.fold={fold} holds every sample, nothing is left to train on: "
                          "the data needs at least two folds.")
    return (FeatureDataset(arrays, np.flatnonzero(~held_out)),
            FeatureDataset(arrays, np.flatnonzero(held_out)))


def load_features(features_dir: str | Path, *, num_classes: int | None = None,
                  hf_repo_id: str | None = None, hf_revision: str | None = None,
                  hf_repo_type: str = "dataset") -> FeatureArrays:
    """Load and check the feature folder `features_dir` (a configured path).

    When files are missing and `hf_repo_id` is set they are first fetched from the Hub into
    that folder. `num_classes`, when given, must match the class mapping and bounds the labels;
    otherwise it comes from the mapping, or from the largest label.
    """
    folder = resolve_path(features_dir)
    files = _find(folder, ARRAY_NAMES, ARRAY_SUFFIXES)
    missing = [name for name in ARRAY_NAMES if name not in files]
    if missing and hf_repo_id:
        from .hub import fetch_features
        logger.info("%s lacks %s: fetching %s from the Hugging Face Hub.",
                    folder, ", ".join(missing), hf_repo_id)
        fetch_features(hf_repo_id, folder, revision=hf_revision, repo_type=hf_repo_type)
        files = _find(folder, ARRAY_NAMES, ARRAY_SUFFIXES)
        missing = [name for name in ARRAY_NAMES if name not in files]
    if missing:
        wanted = ", ".join(f"{name}{{{','.join(ARRAY_SUFFIXES)}}}" for name in missing)
        where = f"the Hub repo {hf_repo_id!r} fetched into {folder}" if hf_repo_id else str(folder)
        hint = "" if hf_repo_id else " Or set dataset.hf_repo_id to fetch them from the Hub."
        raise ConfigError(f"dataset.features_dir: {where} has no {wanted}. Expected "
                          f"{', '.join(ARRAY_NAMES)} files as .npy, .npz or .pkl.{hint}")

    features = _squeeze_channel(np.asarray(_load(files["features"])), files["features"])
    labels = _as_integers(np.asarray(_load(files["labels"])), files["labels"])
    folds = _as_integers(np.asarray(_load(files["folds"])), files["folds"])
    mapping = _find(folder, (MAPPING_NAME,), MAPPING_SUFFIXES).get(MAPPING_NAME)
    class_names = _class_names(mapping, num_classes, labels)

    for path, array in ((files["labels"], labels), (files["folds"], folds)):
        if len(array) != len(features):
            raise ConfigError(f"{path} has {len(array)} entries but {files['features']} has "
                              f"{len(features)} samples; both must describe the same samples.")
    _check_labels(labels, len(class_names), files["labels"])
    _check_finite(features, files["features"])
    return FeatureArrays(features.astype(np.float32, copy=False), labels, folds, class_names)


def _find(folder: Path, names: tuple[str, ...], suffixes: tuple[str, ...]) -> dict[str, Path]:
    """The one file of each name in `folder`, whichever suffix it has."""
    found = {}
    for name in names:
        candidates = [folder / f"{name}{suffix}" for suffix in suffixes
                      if (folder / f"{name}{suffix}").is_file()]
        if len(candidates) > 1:
            raise ConfigError(f"{folder} holds {' and '.join(p.name for p in candidates)}: "
                              f"keep only one {name} file so it is clear which one is used.")
        if candidates:
            found[name] = candidates[0]
    return found


def _read_pickle(path: Path) -> Any:
    """Unpickle `path`. This runs code from the file: call it only on configured paths."""
    with open(path, "rb") as handle:
        return pickle.load(handle)


def _load(path: Path) -> Any:
    """The content of a .npy/.npz/.pkl/.json file; any failure is a ConfigError naming it."""
    try:
        if path.suffix == ".pkl":
            logger.info("Loading pickle %s (pickles run code: only load files you trust).", path)
            return _read_pickle(path)
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if path.suffix == ".npz":
            return _npz_array(path)
        return np.load(path, allow_pickle=False)
    except ConfigError:
        raise
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise ConfigError(f"Cannot read {path}: {exc}") from exc
        raise ConfigError(f"{path} holds Python objects, which .npy/.npz files are not loaded "
                          "with (that would run code from the file): save a numeric array, or "
                          "a .pkl if you trust it.") from exc
    except Exception as exc:  # corrupt files raise anything from EOFError to UnpicklingError
        raise ConfigError(f"Cannot read {path}: {type(exc).__name__}: {exc}") from exc


def _npz_array(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if path.stem in keys:
            return archive[path.stem]
        if len(keys) == 1:
            return archive[keys[0]]
    raise ConfigError(f"{path} holds arrays {keys}: expected one array, or one named "
                      f"{path.stem!r}.")


def _squeeze_channel(features: np.ndarray, path: Path) -> np.ndarray:
    """(N, 1, n_mels, T) and (N, n_mels, T, 1) -> (N, n_mels, T)."""
    if features.ndim == 4 and features.shape[1] == 1:
        features = features[:, 0]
    elif features.ndim == 4 and features.shape[3] == 1:
        features = features[..., 0]
    if features.ndim != 3 or not np.issubdtype(features.dtype, np.number):
        raise ConfigError(f"{path} holds a {features.dtype} array of shape {features.shape}: "
                          "expected numbers shaped (N, n_mels, T), (N, 1, n_mels, T) or "
                          "(N, n_mels, T, 1).")
    return features


def _as_integers(values: np.ndarray, path: Path) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise ConfigError(f"{path} holds a {values.dtype} array of shape {values.shape}: "
                          "expected integers shaped (N,).")
    integers = values.astype(np.int64)
    if not np.array_equal(integers, values):
        bad = int(np.flatnonzero(integers != values)[0])
        raise ConfigError(f"{path} holds non-integer values, first {values[bad]} at index "
                          f"{bad}: expected integers.")
    return integers


def _class_names(mapping_path: Path | None, num_classes: int | None,
                 labels: np.ndarray) -> list[str]:
    """Class names by label index, from the mapping file or numbered 0..num_classes-1."""
    if mapping_path is None:
        if num_classes is None:
            num_classes = int(labels.max()) + 1 if len(labels) else 0
        return [str(index) for index in range(num_classes)]
    names = _names_by_index(_load(mapping_path), mapping_path)
    if num_classes is not None and num_classes != len(names):
        raise ConfigError(f"model.num_classes={num_classes} but {mapping_path} names "
                          f"{len(names)} classes; set model.num_classes=null or {len(names)}.")
    return names


def _names_by_index(mapping: Any, path: Path) -> list[str]:
    """A list of names, {name: index} or {index: name} -> names ordered by index. Integer
    values make it {name: index}, whatever the names: JSON keys are text, so the digits of
    {"1": 0, "2": 1} are names (read as indices, they named each class another's name)."""
    if isinstance(mapping, dict):
        by_name = all(isinstance(value, int | np.integer) and not isinstance(value, bool)
                      for value in mapping.values())
        pairs = [(value, key) if by_name else (key, value)
                 for key, value in mapping.items()]  # (index, name)
        if all(_is_index(index) for index, _ in pairs):
            by_index = {int(index): str(name) for index, name in pairs}
            if sorted(by_index) == list(range(len(mapping))):
                return [by_index[index] for index in range(len(mapping))]
    elif isinstance(mapping, list | tuple | np.ndarray):
        return [str(name) for name in mapping]
    raise ConfigError(f"{path}: expected a list of class names or a dict between names and the "
                      f"indices 0..K-1, got {type(mapping).__name__}: {str(mapping)[:200]}")


def _is_index(value: Any) -> bool:
    return isinstance(value, int | np.integer) or (isinstance(value, str) and value.isdigit())


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(outside):
        raise ConfigError(f"{path}: {len(outside)} labels outside the class range "
                          f"[0, {num_classes}), first {labels[outside[0]]} at index "
                          f"{outside[0]}. Fix the labels, or the class mapping / "
                          "model.num_classes.")


def _check_finite(features: np.ndarray, path: Path) -> None:
    bad = ~np.isfinite(features)
    if bad.any():
        samples = np.flatnonzero(bad.reshape(len(features), -1).any(axis=1))
        raise ConfigError(f"{path}: {int(bad.sum())} NaN/inf values in {len(samples)} samples, "
                          f"first at sample index {samples[0]}. Recompute or drop those "
                          "samples.")
