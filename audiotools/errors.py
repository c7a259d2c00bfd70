"""Errors a user can cause. Each carries a message that names the key or file and the way out;
the entry points print that message alone (no traceback) and exit non-zero."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


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
