"""The preprocessed feature source: formats, class mappings, bad input, fold split, Hub fetch."""
from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiotools.data.features import FeatureDataset, load_features, split_by_fold
from audiotools.errors import ConfigError

N, MELS, FRAMES, CLASSES = 12, 8, 5, 3


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"features": rng.standard_normal((N, MELS, FRAMES)).astype(np.float64),
            "labels": np.arange(N) % CLASSES,
            "folds": np.arange(N) % 4 + 1}


def _write(folder: Path, arrays: dict[str, object], suffix: str = ".npy") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        path = folder / f"{name}{suffix}"
        if suffix == ".npy":
            np.save(path, value)
        elif suffix == ".npz":
            np.savez(path, **{name: value})
        else:
            path.write_bytes(pickle.dumps(value))
    return folder


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pkl"])
@pytest.mark.parametrize("layout", ["plain", "channel_first", "channel_last"])
def test_formats_and_channel_axis(tmp_path, suffix, layout):
    arrays = _arrays()
    expected = arrays["features"].copy()
    if layout == "channel_first":
        arrays["features"] = expected[:, None]
    elif layout == "channel_last":
        arrays["features"] = expected[..., None]
    loaded = load_features(_write(tmp_path, arrays, suffix))
    assert loaded.features.shape == (N, MELS, FRAMES) and loaded.features.dtype == np.float32
    np.testing.assert_allclose(loaded.features, expected, rtol=1e-6)
    assert loaded.labels.dtype == np.int64 and loaded.folds.dtype == np.int64
    assert loaded.class_names == ["0", "1", "2"] and loaded.num_classes == CLASSES
    assert (loaded.n_mels, loaded.num_frames) == (MELS, FRAMES)


def test_npz_holding_one_unnamed_array(tmp_path):
    _write(tmp_path, _arrays())
    (tmp_path / "labels.npy").unlink()
    np.savez(tmp_path / "labels.npz", _arrays()["labels"])  # stored as arr_0
    assert load_features(tmp_path).labels.tolist() == _arrays()["labels"].tolist()


@pytest.mark.parametrize("mapping", [
    ["dog", "cat", "bird"],
    {"dog": 0, "cat": 1, "bird": 2},
    {"0": "dog", "1": "cat", "2": "bird"},
])
@pytest.mark.parametrize("suffix", [".json", ".pkl"])
def test_class_mapping(tmp_path, mapping, suffix):
    _write(tmp_path, _arrays())
    path = tmp_path / f"class_mapping{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(mapping))
    else:
        path.write_bytes(pickle.dumps(mapping))
    assert load_features(tmp_path).class_names == ["dog", "cat", "bird"]


@pytest.mark.parametrize(("mapping", "names"), [
    ({"1": 0, "2": 1, "0": 2}, ["1", "2", "0"]),  # was read as {index: name}: ["2", "0", "1"]
    ({"10": 0, "20": 1, "30": 2}, ["10", "20", "30"]),  # was refused
    ({"2": "dog", "0": "cat", "1": "bird"}, ["cat", "bird", "dog"]),
])
def test_a_mapping_of_numbered_names_reads_its_integers_as_the_indices(tmp_path, mapping,
                                                                      names):
    _write(tmp_path, _arrays())
    (tmp_path / "class_mapping.json").write_text(json.dumps(mapping))
    assert load_features(tmp_path).class_names == names


def test_num_classes_from_config_bounds_labels_and_must_match_mapping(tmp_path):
    _write(tmp_path, _arrays())
    assert load_features(tmp_path, num_classes=5).class_names == ["0", "1", "2", "3", "4"]
    (tmp_path / "class_mapping.json").write_text(json.dumps(["a", "b", "c"]))
    with pytest.raises(ConfigError, match="model.num_classes=4 but .*class_mapping.json names 3"):
        load_features(tmp_path, num_classes=4)


def test_bad_class_mapping(tmp_path):
    _write(tmp_path, _arrays())
    (tmp_path / "class_mapping.json").write_text(json.dumps({"a": 0, "b": 5}))
    with pytest.raises(ConfigError, match="class_mapping.json: expected a list of class names"):
        load_features(tmp_path)


@pytest.mark.parametrize("name", ["labels", "folds"])
def test_length_mismatch(tmp_path, name):
    arrays = _arrays()
    arrays[name] = arrays[name][:-2]
    with pytest.raises(ConfigError, match=rf"{name}.npy has 10 entries but .*features.npy has 12"):
        load_features(_write(tmp_path, arrays))


@pytest.mark.parametrize("bad_label", [-1, CLASSES])
def test_labels_outside_class_range(tmp_path, bad_label):
    arrays = _arrays()
    arrays["labels"][7] = bad_label
    with pytest.raises(ConfigError, match=rf"labels.npy: 1 labels outside the class range "
                                          rf"\[0, 3\), first {bad_label} at index 7"):
        load_features(_write(tmp_path, arrays), num_classes=CLASSES)


def test_labels_outside_the_mapping(tmp_path):
    arrays = _arrays()
    arrays["labels"][4] = 9
    _write(tmp_path, arrays)
    (tmp_path / "class_mapping.json").write_text(json.dumps(["a", "b", "c"]))
    with pytest.raises(ConfigError, match=r"outside the class range \[0, 3\), first 9 at index 4"):
        load_features(tmp_path)


def test_non_integer_labels(tmp_path):
    arrays = _arrays()
    arrays["labels"] = arrays["labels"].astype(float)
    arrays["labels"][3] = 1.5
    with pytest.raises(ConfigError, match="labels.npy holds non-integer values, first 1.5 at "
                                          "index 3"):
        load_features(_write(tmp_path, arrays))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(tmp_path, bad):
    arrays = _arrays()
    arrays["features"][5, 1, 2] = bad
    arrays["features"][9, 0, 0] = bad
    arrays["features"][9, 3, 1] = bad
    with pytest.raises(ConfigError, match="features.npy: 3 NaN/inf values in 2 samples, first at "
                                          "sample index 5"):
        load_features(_write(tmp_path, arrays))


def test_missing_files_name_what_was_expected(tmp_path):
    arrays = _arrays()
    del arrays["folds"]
    with pytest.raises(ConfigError, match=r"has no folds\{.npy,.npz,.pkl\}.*dataset.hf_repo_id"):
        load_features(_write(tmp_path, arrays))
    with pytest.raises(ConfigError, match="has no features"):
        load_features(tmp_path / "nowhere")


def test_two_files_for_one_array_is_ambiguous(tmp_path):
    _write(tmp_path, _arrays())
    _write(tmp_path, {"labels": _arrays()["labels"]}, ".pkl")
    with pytest.raises(ConfigError, match="labels.npy and labels.pkl: keep only one"):
        load_features(tmp_path)


def test_wrong_shapes_and_content(tmp_path):
    arrays = _arrays()
    arrays["features"] = arrays["features"][:, :, :, None, None]
    with pytest.raises(ConfigError, match=r"features.npy holds a float64 array of shape "
                                          r"\(12, 8, 5, 1, 1\): expected"):
        load_features(_write(tmp_path / "a", arrays))
    arrays = _arrays()
    arrays["folds"] = arrays["folds"].reshape(3, 4)
    with pytest.raises(ConfigError, match=r"folds.npy .* shape \(3, 4\): expected integers"):
        load_features(_write(tmp_path / "b", arrays))


def test_npz_with_several_unrelated_arrays(tmp_path):
    _write(tmp_path, _arrays())
    (tmp_path / "folds.npy").unlink()
    np.savez(tmp_path / "folds.npz", a=np.zeros(N), b=np.zeros(N))
    with pytest.raises(ConfigError, match=r"folds.npz holds arrays \['a', 'b'\]"):
        load_features(tmp_path)


def test_npy_objects_are_refused_without_unpickling(tmp_path, monkeypatch):
    arrays = _arrays()
    arrays["labels"] = np.array([{"label": 1}] * N, dtype=object)
    _write(tmp_path, arrays)
    monkeypatch.setattr(pickle, "load", lambda *_: pytest.fail("unpickled a .npy"))
    monkeypatch.setattr(pickle, "loads", lambda *_: pytest.fail("unpickled a .npy"))
    with pytest.raises(ConfigError, match="labels.npy holds Python objects"):
        load_features(tmp_path)


def test_corrupt_file(tmp_path):
    _write(tmp_path, _arrays(), ".pkl")
    (tmp_path / "features.pkl").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ConfigError, match="Cannot read .*features.pkl"):
        load_features(tmp_path)


def test_dataset_items_and_fold_split(tmp_path):
    arrays = load_features(_write(tmp_path, _arrays()))
    train, valid = split_by_fold(arrays, 2)
    assert (len(train), len(valid)) == (9, 3)
    assert not set(train.indices.tolist()) & set(valid.indices.tolist())
    assert set(arrays.folds[valid.indices.numpy()]) == {2}
    features, label = valid[0]
    assert features.shape == (MELS, FRAMES) and features.dtype == torch.float32
    assert label.dtype == torch.int64 and label.dim() == 0
    assert len(FeatureDataset(arrays)) == N
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch[0].shape == (4, MELS, FRAMES) and batch[1].shape == (4,)


def test_fold_with_no_samples(tmp_path):
    arrays = load_features(_write(tmp_path, _arrays()))
    with pytest.raises(ConfigError, match="dataset.fold=0 has no samples. Samples per fold: "
                                          "1: 3, 2: 3, 3: 3, 4: 3"):
        split_by_fold(arrays, 0)
    arrays.folds[:] = 1
    with pytest.raises(ConfigError, match="holds every sample.*at least two folds"):
        split_by_fold(arrays, 1)


def test_missing_files_are_fetched_from_the_hub(tmp_path, monkeypatch):
    calls = []

    def snapshot_download(repo_id, *, repo_type, revision, local_dir):
        calls.append((repo_id, repo_type, revision))
        _write(Path(local_dir), _arrays())

    fake = type(sys)("huggingface_hub")
    fake.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    loaded = load_features(tmp_path / "features", hf_repo_id="me/digits", hf_revision="v1")
    assert calls == [("me/digits", "dataset", "v1")] and len(loaded.labels) == N
    load_features(tmp_path / "features", hf_repo_id="me/digits")  # present now: no fetch
    assert len(calls) == 1


def test_hub_repo_without_the_files(tmp_path, monkeypatch):
    fake = type(sys)("huggingface_hub")
    fake.snapshot_download = lambda *args, **kwargs: None
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    with pytest.raises(ConfigError, match="the Hub repo 'me/empty' fetched into .* has no"):
        load_features(tmp_path, hf_repo_id="me/empty")

