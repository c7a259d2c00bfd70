"""A rerun under the same signature refuses a run made with another configuration."""
from __future__ import annotations

import json
import os

import pytest

from audiotools.errors import CheckpointError
from audiotools.xp_config import (
    CONFIG_FILE,
    WORKDIR_FILE,
    check_unchanged,
    config_changes,
    record,
)


def run(*overrides: str):
    """One XP through audiotools.train.train, as `dora run` runs it."""
    from audiotools.train import main
    from audiotools.train import train as train_xp
    xp = main.get_xp(list(overrides))
    main.init_xp(xp)
    with xp.enter():
        train_xp(xp.cfg)
    return xp


def test_changes_list_differing_keys_both_have_except_excluded_and_epochs():
    before = {"model": {"latent_dim": 64, "old": 1}, "device": "cpu", "optim": {"epochs": 3}}
    now = {"model": {"latent_dim": 128, "new": 2}, "device": "cuda", "optim": {"epochs": 9}}
    assert config_changes(before, now, ["device"]) == ["model.latent_dim: 64 -> 128"]


def test_record_until_the_first_checkpoint_then_check(tmp_path):
    record(tmp_path, {"lr": 0.5})
    record(tmp_path, {"lr": 1.0})  # nothing trained yet: the newer config replaces it
    check_unchanged(tmp_path, {"lr": 3.0}, [], "dora run")  # no checkpoint: nothing to keep
    (tmp_path / "checkpoint.th").write_bytes(b"")
    record(tmp_path, {"lr": 2.0})  # trained: the record stays
    assert json.loads((tmp_path / CONFIG_FILE).read_text()) == {"lr": 1.0}
    check_unchanged(tmp_path, {"lr": 1.0}, [], "dora run")
    with pytest.raises(CheckpointError, match=r"(?s)lr: 1.0 -> 2.0.*left untouched"):
        check_unchanged(tmp_path, {"lr": 2.0}, [], "dora run")


def test_a_trained_record_follows_only_the_epochs(tmp_path):
    record(tmp_path, {"optim": {"lr": 1.0, "epochs": 2}})
    (tmp_path / "checkpoint.th").write_bytes(b"")
    record(tmp_path, {"optim": {"lr": 3.0, "epochs": 3}})  # the recipe grew: trained further
    assert json.loads((tmp_path / CONFIG_FILE).read_text()) == {"optim": {"lr": 1.0,
                                                                          "epochs": 3}}


def test_nothing_recorded_yet_is_no_change(tmp_path):
    check_unchanged(tmp_path, {"lr": 2.0}, [], "dora run")


def test_a_changed_recipe_is_refused_and_the_xp_kept(dora_dir):
    args = ["solver=toy/debug", "optim.epochs=1"]
    xp = run(*args)
    recorded = xp.folder / CONFIG_FILE
    config = json.loads(recorded.read_text())
    config["optim"]["lr"] = config["optim"]["lr"] * 10  # as if the recipe had said so
    recorded.write_text(json.dumps(config))
    checkpoint = (xp.folder / "checkpoint.th").read_bytes()
    with pytest.raises(CheckpointError, match="optim.lr"):
        run(*args)
    assert (xp.folder / "checkpoint.th").read_bytes() == checkpoint
    assert (run(args[0], "optim.epochs=2").folder / "checkpoint.th").exists()


def test_a_rerun_where_relative_paths_name_other_files_is_refused(tmp_path, monkeypatch):
    first, second, xp = tmp_path / "first", tmp_path / "second", tmp_path / "xp"
    for where in (first, second):
        (where / "data").mkdir(parents=True)
        (where / "data" / "train.jsonl").write_text("{}\n")
    config = {"dataset": {"manifest": "data/train.jsonl", "name": "data"},
              "logging": {"dir": "data/logs"}, "model": {"codec": "/abs/ae.safetensors"}}
    monkeypatch.chdir(first)
    record(xp, config)
    assert (xp / WORKDIR_FILE).read_text() == f"{first}\n"
    (xp / "checkpoint.th").write_bytes(b"")
    check_unchanged(xp, config, [], "dora run")  # where it started: goes on
    monkeypatch.chdir(second)
    with pytest.raises(CheckpointError, match=(
            rf"(?s)started in {first}.*dataset.manifest: 'data/train.jsonl' was "
            rf"{first}/data/train.jsonl, from here {second}/data/train.jsonl.*"
            rf"from {first} to go on")) as refused:
        check_unchanged(xp, config, ["logging.*"], "dora run")
    assert "dataset.name" not in str(refused.value) and "logging.dir" not in str(refused.value)
    (second / "data" / "train.jsonl").unlink()  # named nothing here: still other files
    with pytest.raises(CheckpointError, match="dataset.manifest"):
        check_unchanged(xp, config, ["logging.*"], "dora run")
    (first / "data" / "train.jsonl").unlink()  # names nothing from either: nothing to tell
    check_unchanged(xp, config, ["logging.*"], "dora run")


def test_the_start_weights_a_cache_and_a_vanished_start_folder_are_not_checked(
        tmp_path, monkeypatch):
    first, second, xp = tmp_path / "first", tmp_path / "second", tmp_path / "xp"
    for where in (first, second):
        (where / "cache").mkdir(parents=True)
        (where / "init.th").write_bytes(b"")
    config = {"continue_from": "init.th", "dataset": {"cache_dir": "cache/features"}}
    monkeypatch.chdir(first)
    record(xp, config)
    (xp / "checkpoint.th").write_bytes(b"")
    monkeypatch.chdir(second)
    check_unchanged(xp, config, [], "dora run")  # read before the first checkpoint, or cached
    moved = {"dataset": {"manifest": "cache/m.jsonl"}}
    (second / "cache" / "m.jsonl").write_text("{}\n")
    with pytest.raises(CheckpointError, match="dataset.manifest"):
        check_unchanged(xp, moved, [], "dora run")
    first.rename(tmp_path / "renamed")  # the project moved: nothing left to compare with
    check_unchanged(xp, moved, [], "dora run")


def test_a_start_folder_whose_name_is_not_utf8_is_kept_as_it_is(tmp_path, monkeypatch):
    odd = tmp_path / "caf\udce9"  # the byte 0xe9, as Python names it
    odd.mkdir()
    monkeypatch.chdir(odd)
    record(tmp_path / "xp", {"lr": 1.0})
    assert (tmp_path / "xp" / WORKDIR_FILE).read_bytes().endswith(b"caf\xe9\n")
    (tmp_path / "xp" / "checkpoint.th").write_bytes(b"")
    check_unchanged(tmp_path / "xp", {"lr": 1.0, "data": "x/y.jsonl"}, [], "dora run")


def test_a_run_refused_by_the_lock_records_nothing(dora_dir, tmp_path, monkeypatch):
    """Two starts of one XP at once from two directories: the refused one rewrote workdir.txt
    before the lock refused it, and the XP then named the other directory."""
    from audiotools.errors import XPLockedError
    from audiotools.io.locking import take_lock
    from audiotools.train import main
    args = ["solver=toy/debug", "optim.epochs=1"]
    folder = main.get_xp(args).folder
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with take_lock(folder / "lock"), pytest.raises(XPLockedError):
        run(*args)
    assert not (folder / WORKDIR_FILE).exists() and not (folder / CONFIG_FILE).exists()
    assert (run(*args).folder / WORKDIR_FILE).read_bytes() == os.fsencode(str(tmp_path)) + b"\n"
