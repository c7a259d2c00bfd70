"""A write the disk refuses (full, read-only) is one message naming the file, and leaves no
half file and no temporary file behind: checkpoints, exports, logged media, the XP folder."""
from __future__ import annotations

import errno
import os

import pytest
import torch
from safetensors import SafetensorError

from audiotools.errors import StorageError, storage_message, writing
from audiotools.io import checkpoint


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_writing_names_the_file_the_cause_and_the_space_left(tmp_path):
    with pytest.raises(StorageError, match=(
            rf"^{tmp_path}/x.wav: cannot write it \(No space left on device\); [\d,]+ MB left "
            r"on its disk\. Nothing lost\.$")):
        with writing(tmp_path / "x.wav", "Nothing lost."):
            _full_disk()
    # What torch.save makes of a full disk is a RuntimeError of its own words.
    with pytest.raises(StorageError, match=r"cannot write it \(.*unexpected pos 704 vs 598\)"):
        with writing(tmp_path / "x.th"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 "
                               "vs 598")
    with pytest.raises(FileExistsError):  # the caller's to tell (e.g. export's refusal)
        with writing(tmp_path / "x.safetensors"):
            raise FileExistsError(errno.EEXIST, "File exists")
    with pytest.raises(ValueError):  # not a write failure: a bug keeps its traceback
        with writing(tmp_path / "x.th"):
            raise ValueError("bug")


@pytest.mark.parametrize("error", [
    RecursionError("maximum recursion depth exceeded"),  # a state torch.save cannot pickle
    RuntimeError("CUDA error: device-side assert triggered"),
    SafetensorError("Some tensors share memory, this will lead to duplicate memory on disk"),
    PermissionError(errno.EACCES, "Permission denied", "/elsewhere/source.wav"),  # a read
])
def test_writing_lets_what_is_not_the_disks_refusal_through(tmp_path, error):
    with pytest.raises(type(error)):
        with writing(tmp_path / "out" / "x.tar"):
            raise error


def test_writing_takes_soundfiles_system_error_only(tmp_path):
    import soundfile
    with pytest.raises(StorageError, match=r"x.wav: cannot write it"):
        with writing(tmp_path / "x.wav"):
            raise soundfile.LibsndfileError(2, "Error opening 'x.wav': ")
    with pytest.raises(soundfile.LibsndfileError):  # a format error: the caller's to name
        with writing(tmp_path / "x.wav"):
            raise soundfile.LibsndfileError(1, "Format not recognised.")


def test_a_checkpoint_the_disk_refuses_keeps_the_previous_one(tmp_path, monkeypatch):
    with pytest.raises(StorageError, match=r"cannot write it .*No checkpoint was written"):
        with monkeypatch.context() as full:
            full.setattr(torch, "save", _full_disk)
            checkpoint.save({"epoch": 1}, tmp_path, 1, keep_last=2)
    assert not list(tmp_path.iterdir())
    checkpoint.save({"epoch": 1}, tmp_path, 1, keep_last=2)
    before = (tmp_path / checkpoint.LATEST).read_bytes()

    def half_written(state, handle):
        handle.write(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7 vs 3")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(StorageError, match=r"checkpoint.th: cannot write it .*The previous "
                                           r"checkpoint is kept"):
        checkpoint.save({"epoch": 2}, tmp_path, 2, keep_last=2)
    assert (tmp_path / checkpoint.LATEST).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.th", "checkpoint_1.th"]


def test_logged_media_is_whole_or_absent(tmp_path, monkeypatch):
    import soundfile

    from audiotools.solvers.loggers import LocalFSLogger
    logger = LocalFSLogger(tmp_path, with_media_logging=True)

    def half_written(self, data):  # the header is written, the samples are not
        _full_disk()

    monkeypatch.setattr(soundfile.SoundFile, "write", half_written)
    with pytest.raises(StorageError, match=r"x\.wav: cannot write it \(No space left"):
        logger.log_audio("generate", "x", torch.zeros(1, 160), 16000, step=1)
    monkeypatch.undo()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    logger.log_audio("generate", "x", torch.zeros(1, 160), 16000, step=1)
    logger.log_image("generate", "x", torch.zeros(1, 4, 4), step=1)
    assert sorted(p.suffix for p in tmp_path.rglob("*") if p.is_file()) == [".png", ".wav"]


def test_storage_message_only_for_the_disks_errors_naming_a_file(tmp_path):
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".argv.json"))
    assert storage_message(denied) == f"{tmp_path}/.argv.json: Permission denied."  # no space
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
    assert storage_message(full).startswith(f"{tmp_path}/x: No space left on device; ")
    assert storage_message(full).endswith(" MB left on its disk.")
    assert storage_message(PermissionError(errno.EACCES, "Permission denied")) is None
    assert storage_message(FileNotFoundError(errno.ENOENT, "No such file", "x")) is None


def test_dora_prints_a_refused_write_as_one_line(tmp_path, capsys):
    from audiotools.train import _print_user_errors
    denied = PermissionError(errno.EROFS, "Read-only file system", str(tmp_path / ".argv.json"))
    _print_user_errors(PermissionError, denied, None)  # as Dora creating the XP folder
    assert capsys.readouterr().err == f"error: {tmp_path}/.argv.json: Read-only file system.\n"
