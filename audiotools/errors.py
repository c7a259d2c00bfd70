"""Errors a user can cause. Each carries a message that names the key or file and the way out;
the entry points print that message alone (no traceback) and exit non-zero."""


class AudiotoolsError(Exception):
    """Base of all user-facing errors."""


class ConfigError(AudiotoolsError):
    """The composed configuration, a team file or a configured path is invalid."""


class CheckpointError(AudiotoolsError):
    """A checkpoint or exported model cannot be read or does not fit."""


class XPLockedError(AudiotoolsError):
    """Another process is already running this XP."""


class NonFiniteLossError(AudiotoolsError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
