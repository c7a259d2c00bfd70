"""Errors a user can cause. Each carries a message that names the key or file and the way out;
the entry points print that message alone (no traceback) and exit non-zero."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError


class AudiotoolsError(Exception):
    """Base of all user-facing errors."""


class ConfigError(AudiotoolsError):
    """The composed configuration, a team file or a configured path is invalid."""


@contextlib.contextmanager
def building(section: str) -> Iterator[None]:
    """A ValueError raised while a model or conditioner is built from its settings (a
    network's own check of its arguments, ours or a researcher's) as a ConfigError naming
    the config section: one line, as the schema's own refusals are."""
    try:
        yield
    except ValueError as error:
        raise ConfigError(f"{section}: {error}") from None


class StorageError(AudiotoolsError):
    """A file could not be written: its disk is full or read-only, or the folder not ours."""


# What the machine, not the program, makes of a write: a full disk or quota, a read-only or
# another user's folder.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def storage_message(error: OSError) -> str | None:
    """`file: reason; N MB left on its disk.` for such an error naming its file, else None."""
    if error.errno not in STORAGE_ERRNOS or not error.filename:
        return None
    return f"{error.filename}: {error.strerror}{_space_left(Path(error.filename), error)}."


def _space_left(path: Path, error: BaseException) -> str:
    """`; N MB left on its disk` unless the error says the disk is not full (permissions, a
    read-only filesystem); torch's and soundfile's words for a failed write do not say."""
    if isinstance(error, OSError) and error.errno not in (errno.ENOSPC, errno.EDQUOT, None):
        return ""
    folder = next((p for p in (path, *path.parents) if p.exists()), None)
    if folder is None:
        return ""
    return f"; {shutil.disk_usage(folder).free / 2**20:,.0f} MB left on its disk"


# What torch.save and safetensors say of a write the disk refused, in their own words.
_TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "inline_container")
_SAFETENSORS_WRITE_FAILURES = ("I/O error", "os error")


def _disk_refusal(error: BaseException, target: Path) -> str | None:
    """The cause to report when `error` is the disk refusing to write `target` (its folder,
    the temporary file beside it), else None: a file read elsewhere, a format a writer does
    not take, a tensor it cannot store or a device error are not the disk's."""
    if isinstance(error, FileExistsError):
        return None
    if isinstance(error, OSError):
        folder = target.parent.resolve()
        named = Path(os.fsdecode(error.filename)).resolve() if error.filename else None
        if named is not None and named.parent != folder and not folder.is_relative_to(named):
            return None
        return error.strerror or str(error)
    text = str(error)
    if isinstance(error, SafetensorError):
        return text if any(words in text for words in _SAFETENSORS_WRITE_FAILURES) else None
    if isinstance(error, RuntimeError):
        import soundfile
        if isinstance(error, soundfile.LibsndfileError):
            return text if error.code == 2 else None  # SFE_SYSTEM: the OS refused it
        return text if any(words in text for words in _TORCH_WRITE_FAILURES) else None
    return None


@contextlib.contextmanager
def writing(path: os.PathLike | str, kept: str = "") -> Iterator[None]:
    """A write of `path` the disk refuses (full, read-only, another user's folder) as a
    StorageError naming the file, the cause and the space left, then `kept` (what is still
    there): an OSError, or what torch.save, soundfile and safetensors make of one (torch
    says "unexpected pos 704 vs 598" of a full disk). Any other error passes unchanged."""
    try:
        yield
    except (OSError, RuntimeError, SafetensorError) as error:
        cause = _disk_refusal(error, Path(path))
        if cause is None:
            raise
        raise StorageError(f"{path}: cannot write it ({cause}){_space_left(Path(path), error)}."
                           f"{' ' + kept if kept else ''}") from error


class CheckpointError(AudiotoolsError):
    """A checkpoint or exported model cannot be read or does not fit."""


class XPLockedError(AudiotoolsError):
    """Another process is already running this XP."""

    @classmethod
    def held(cls, sig: str, holder: str, lock: os.PathLike | str) -> XPLockedError:
        """The refusal that names the XP, the pid holding its lock and the lock file."""
        return cls(f"XP {sig} is already running (pid {holder} holds {lock}). Wait for it to "
                   "finish or stop it; two runs of one XP would overwrite each other.")


class NonFiniteLossError(AudiotoolsError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
