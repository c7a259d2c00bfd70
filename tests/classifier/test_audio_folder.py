"""The audio-folder source: decoding any rate/channels, log-mels, cache, folds, bad input."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audiotools.data import audio_folder
from audiotools.data.audio_folder import MelSettings, load_audio_folder
from audiotools.data.features import split_by_fold
from audiotools.errors import ConfigError

MEL = MelSettings(sample_rate=8000, n_fft=256, hop_length=80, n_mels=16, num_frames=20)
CLASSES = {"hum": 220.0, "beep": 880.0, "chirp": 1760.0}
SPEAKERS = [f"spk{index}" for index in range(6)]
# (suffix, sample rate, channels): every file format and layout the source must take.
FORMATS = [(".wav", 8000, 1), (".flac", 22050, 2), (".ogg", 16000, 1)]


def _tone(path: Path, frequency: float, rate: int, channels: int, seconds: float = 0.15):
    time = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * frequency * time)
    soundfile.write(path, np.repeat(wave[:, None], channels, axis=1), rate)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """3 classes x 6 speakers x 3 formats, named <speaker>_<take>.<ext>. Shared: do not modify."""
    folder = tmp_path_factory.mktemp("shared") / "audio"
    for name, frequency in CLASSES.items():
        (folder / name).mkdir(parents=True)
        for speaker in SPEAKERS:
            for take, (suffix, rate, channels) in enumerate(FORMATS):
                _tone(folder / name / f"{speaker}_{take}{suffix}", frequency, rate, channels)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """Feature cache shared by the tests that read `root`, so each setting is computed once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def own_root(root, tmp_path) -> Path:
    """A copy of `root` that a test may modify."""
    return Path(shutil.copytree(root, tmp_path / "audio"))


def _load(root: Path, cache_dir: Path, **kwargs):
    kwargs = {"group_pattern": r"^(?P<group>[^_]+)_", "num_folds": 3, **kwargs}
    return load_audio_folder(root, MEL, cache_dir=cache_dir, **kwargs)


def test_features_labels_and_class_order(root, cache):
    arrays = _load(root, cache)
    assert arrays.features.shape == (54, 16, 20) and arrays.features.dtype == np.float32
    assert np.isfinite(arrays.features).all()
    assert arrays.class_names == ["beep", "chirp", "hum"]
    assert np.bincount(arrays.labels).tolist() == [18, 18, 18]
    assert arrays.skipped == []
    # The tone's mel band is the loudest one whatever the file's rate and channel count.
    peaks = arrays.features[:, :, :5].mean(axis=2).argmax(axis=1)
    for label in range(3):
        assert len(set(peaks[arrays.labels == label])) == 1
    ordered = _load(root, cache, classes=["hum", "beep", "chirp"])
    assert ordered.class_names == ["hum", "beep", "chirp"]
    np.testing.assert_array_equal(ordered.features[ordered.labels == 0],
                                  arrays.features[arrays.labels == 2])


def test_sidecar_metadata_is_not_audio(own_root, tmp_path):
    (own_root / "hum" / "spk0_0.json").write_text('{"ensemble": "hum"}')
    arrays = _load(own_root, tmp_path / "cache")
    assert arrays.features.shape[0] == 54 and arrays.skipped == []


def test_pad_and_crop_to_a_fixed_number_of_frames(tmp_path):
    (tmp_path / "audio" / "a").mkdir(parents=True)
    for index, seconds in enumerate([0.05, 0.5]):  # shorter and longer than 20 frames of 10 ms
        _tone(tmp_path / "audio" / "a" / f"s{index}_0.wav", 440.0, 8000, 1, seconds)
    arrays = _load(tmp_path / "audio", tmp_path / "cache", num_folds=2)
    assert arrays.features.shape == (2, 16, 20)
    assert arrays.features[0, :, -1].max() == pytest.approx(np.log(audio_folder.LOG_EPS))


def test_classes_must_name_every_folder(root, cache):
    with pytest.raises(ConfigError, match=r"dataset.classes=\['hum', 'beep'\] does not match"):
        _load(root, cache, classes=["hum", "beep"])


def test_cache_is_reused_and_invalidated(own_root, tmp_path, monkeypatch):
    first = _load(own_root, tmp_path / "cache")
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz"  # no temporary file left behind
    calls = []
    compute = audio_folder._compute
    monkeypatch.setattr(audio_folder, "_compute", lambda *a: calls.append(1) or compute(*a))
    np.testing.assert_array_equal(_load(own_root, tmp_path / "cache").features, first.features)
    assert calls == []
    touched = own_root / "hum" / "spk0_0.wav"
    os.utime(touched, ns=(1, 1))
    _load(own_root, tmp_path / "cache")
    assert calls == [1]
    load_audio_folder(own_root, MelSettings(**{**MEL.__dict__, "n_mels": 12}), num_folds=3,
                      group_pattern=r"^(?P<group>[^_]+)_", cache_dir=tmp_path / "cache")
    assert calls == [1, 1]
    assert len(list((tmp_path / "cache").iterdir())) == 3
    assert all((path.stat().st_mode & 0o777) == 0o666 & ~_umask()
               for path in (tmp_path / "cache").iterdir())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_a_cache_that_cannot_be_read_is_computed_again(own_root, tmp_path, caplog):
    first = _load(own_root, tmp_path / "cache")
    (cached,) = (tmp_path / "cache").iterdir()
    cached.write_bytes(b"not a zip")  # damaged (or another user's 0600 file)
    with caplog.at_level(logging.WARNING):
        again = _load(own_root, tmp_path / "cache")
    np.testing.assert_array_equal(again.features, first.features)
    assert f"Features cache {cached} not read" in caplog.text


def test_a_cache_that_cannot_be_written_is_a_warning(own_root, tmp_path, caplog):
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    with caplog.at_level(logging.WARNING):
        features = _load(own_root, tmp_path / "cache" / "features")
    assert len(features.labels) > 0
    assert "Features not cached:" in caplog.text and "dataset.cache_dir" in caplog.text


def test_folds_from_a_grouping_rule(root, cache):
    arrays = _load(root, cache)
    assert np.bincount(arrays.folds).tolist() == [18, 18, 18]  # 2 speakers x 9 files each
    # The same groups in any order and with any repetition get the same folds.
    forward = audio_folder._deal_folds(SPEAKERS, 3)
    backward = audio_folder._deal_folds(SPEAKERS[::-1] * 2, 3)
    assert forward.tolist() == backward[:6][::-1].tolist()


def test_groups_never_span_two_folds(root, cache):
    speakers = [p.name.split("_")[0] for name in sorted(CLASSES) for p in
                sorted((root / name).iterdir())]
    arrays = _load(root, cache)
    fold_of = {}
    for speaker, fold in zip(speakers, arrays.folds, strict=True):
        assert fold_of.setdefault(speaker, fold) == fold


def test_group_pattern_without_named_group_uses_the_first_group(root, cache):
    named = _load(root, cache)
    unnamed = _load(root, cache, group_pattern=r"^([^_]+)_")
    np.testing.assert_array_equal(named.folds, unnamed.folds)


def test_without_a_pattern_each_file_is_its_own_group(root, cache):
    arrays = _load(root, cache, group_pattern=None, num_folds=5)
    assert np.bincount(arrays.folds).tolist() == [11, 11, 11, 11, 10]


def test_folds_from_csv_and_json(root, cache, tmp_path):
    mapping = {speaker: index % 2 for index, speaker in enumerate(SPEAKERS)}
    csv_file = tmp_path / "folds.csv"
    csv_file.write_text("group,fold\n" + "".join(f"{g},{f}\n" for g, f in mapping.items()))
    json_file = tmp_path / "folds.json"
    json_file.write_text(json.dumps(mapping))
    from_csv = _load(root, cache, folds_file=csv_file)
    from_json = _load(root, cache, folds_file=json_file)
    np.testing.assert_array_equal(from_csv.folds, from_json.folds)
    assert np.bincount(from_csv.folds).tolist() == [27, 27]
    train, valid = split_by_fold(from_csv, 1)
    assert (len(train), len(valid)) == (27, 27)
    assert train[0][0].shape == (16, 20)


def test_fold_file_errors(root, cache, tmp_path):
    partial = tmp_path / "folds.json"
    partial.write_text(json.dumps({"spk0": 0}))
    with pytest.raises(ConfigError, match=r"no fold for 5 groups, e.g. 'spk1' \(from .*spk1_0"):
        _load(root, cache, folds_file=partial)
    columns = tmp_path / "folds.csv"
    columns.write_text("speaker,split\nspk0,0\n")
    with pytest.raises(ConfigError, match="expected columns 'group' and 'fold'"):
        _load(root, cache, folds_file=columns)
    with pytest.raises(ConfigError, match="dataset.folds_file=.*missing.csv"):
        _load(root, cache, folds_file=tmp_path / "missing.csv")


def test_a_fold_with_no_samples(root, cache, tmp_path):
    with pytest.raises(ConfigError, match="6 groups cannot fill dataset.num_folds=8 folds"):
        _load(root, cache, num_folds=8)
    mapping = tmp_path / "folds.json"
    mapping.write_text(json.dumps({speaker: 0 if speaker < "spk3" else 2 for speaker in SPEAKERS}))
    arrays = _load(root, cache, folds_file=mapping)
    with pytest.raises(ConfigError, match="dataset.fold=1 has no samples"):
        split_by_fold(arrays, 1)


def test_pattern_that_does_not_match(root, cache):
    with pytest.raises(ConfigError, match=r"group_pattern='\^speaker-' does not match the file"):
        _load(root, cache, group_pattern="^speaker-")


def test_empty_class_folder(own_root, tmp_path):
    (own_root / "silence").mkdir()
    (own_root / "silence" / ".DS_Store").write_text("")
    with pytest.raises(ConfigError, match=r"Class folder .*silence is empty"):
        _load(own_root, tmp_path / "cache")


def test_missing_root_and_root_without_classes(tmp_path):
    with pytest.raises(ConfigError, match="dataset.root=.*nowhere is not a folder"):
        _load(tmp_path / "nowhere", tmp_path / "cache")
    (tmp_path / "flat").mkdir()
    _tone(tmp_path / "flat" / "x_0.wav", 440.0, 8000, 1)
    with pytest.raises(ConfigError, match="has no class subfolders"):
        _load(tmp_path / "flat", tmp_path / "cache")


def test_unreadable_files_are_reported_and_skipped(own_root, tmp_path, caplog):
    (own_root / "hum" / "spk0_9.wav").write_bytes(b"RIFF not really a wave file")
    (own_root / "beep" / "notes.txt").write_text("recorded in a hurry")
    with caplog.at_level(logging.WARNING):
        arrays = _load(own_root, tmp_path / "cache")
    assert len(arrays.labels) == 54 and len(arrays.skipped) == 2
    for name in ("spk0_9.wav", "notes.txt"):
        assert name in caplog.text
        assert any(str(own_root) in line and name in line for line in arrays.skipped)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        # From the cache, and still reported.
        assert _load(own_root, tmp_path / "cache").skipped == arrays.skipped
    assert "spk0_9.wav" in caplog.text


def test_non_finite_samples_loose_files_broken_links_and_a_bad_pattern_are_said(
        own_root, tmp_path, caplog):
    """A file with inf samples made NaN features and a non-finite loss that blamed the
    learning rate; files beside the class folders and broken links were passed over in
    silence; an invalid group_pattern raised re.error."""
    samples = np.full(1200, 0.1, dtype=np.float32)
    samples[5] = np.inf
    soundfile.write(own_root / "hum" / "spk0_9.wav", samples, 8000, subtype="FLOAT")
    _tone(own_root / "loose_0.wav", 440.0, 8000, 1)
    (own_root / "beep" / "gone.wav").symlink_to(own_root / "nowhere.wav")
    with caplog.at_level(logging.WARNING):
        arrays = _load(own_root, tmp_path / "cache")
    assert np.isfinite(arrays.features).all() and len(arrays.labels) == 54
    assert any("spk0_9.wav: non-finite samples (NaN/inf)" in line for line in arrays.skipped)
    assert "holds 1 audio file(s) outside the class folders, which are not read" in caplog.text
    assert "Skipped 1 broken link(s)" in caplog.text and "gone.wav" in caplog.text
    with pytest.raises(ConfigError, match=r"dataset.group_pattern='\(\[' is not a regular "
                                          r"expression"):
        _load(own_root, tmp_path / "cache2", group_pattern="([")


def test_class_with_no_readable_file(tmp_path):
    for name in ("good", "bad"):
        (tmp_path / "audio" / name).mkdir(parents=True)
    _tone(tmp_path / "audio" / "good" / "a_0.wav", 440.0, 8000, 1)
    (tmp_path / "audio" / "bad" / "a_0.wav").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"Class folder .*bad \(bad\): none of its 1 files"):
        _load(tmp_path / "audio", tmp_path / "cache", num_folds=1)


def test_one_file_gives_the_training_features(root, cache):
    arrays = _load(root, cache)
    path = root / "beep" / "spk0_1.flac"  # first beep file after spk0_0.wav
    index = np.flatnonzero(arrays.labels == 0)[1]
    np.testing.assert_allclose(audio_folder.file_features(path, MEL), arrays.features[index],
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="Cannot read audio file .*missing.wav"):
        audio_folder.file_features(root / "missing.wav", MEL)


@pytest.mark.parametrize("rate", [44100, 16000, 8000])
def test_a_long_files_features_read_only_what_is_heard(tmp_path, monkeypatch, rate):
    """`audiotools classify` hears a file's first num_frames: it read and resampled the
    whole file for them (0.36 GB for 10 minutes). Only the start is read now, and the
    features are those of the whole file's start; a NaN past it is not heard."""
    import torch
    mel = MelSettings(16000, 512, 160, 64, 101)
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((rate * 20, 2)) * 0.1).astype(np.float32)
    audio[rate * 10] = np.nan  # well past the first second
    path = tmp_path / "long.wav"
    soundfile.write(path, audio, rate, subtype="FLOAT")
    clean = np.nan_to_num(audio.T[:, :rate * 5])
    expected = audio_folder.audio_features(torch.from_numpy(clean), rate, mel)
    read = soundfile.read
    frames = []
    monkeypatch.setattr(soundfile, "read", lambda *a, **k: frames.append(k["frames"])
                        or read(*a, **k))
    # Compared as power: above an 8 kHz file's 4 kHz the log reads float32 rounding.
    np.testing.assert_allclose(np.exp(audio_folder.file_features(path, mel)), np.exp(expected),
                               rtol=1e-4, atol=1e-7)
    assert 0 < frames[0] < rate * 1.2
