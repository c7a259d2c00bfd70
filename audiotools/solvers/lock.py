"""The XP lock: one process at a time trains an XP, since two would overwrite each other's
checkpoints and history.

An exclusive `flock` on `<xp>/lock`, held by rank 0 (the other ranks of a DDP run belong to the
same run); the OS drops it when the process dies, even by kill -9, so a crash never leaves a
stale lock behind. The file holds the pid of the holder, for the error message.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

from .. import distributed
from ..errors import XPLockedError


class XPLock:
    """Takes the lock of the XP in `folder` (rank 0 only) or raises XPLockedError naming the
    holder's pid; `release` lets it go."""

    def __init__(self, folder: Path, sig: str):
        self.path = Path(folder) / "lock"
        self._handle: TextIO | None = None
        if distributed.is_rank_zero():
            self._handle = self._acquire(sig)

    @property
    def held(self) -> bool:
        return self._handle is not None

    def _acquire(self, sig: str) -> TextIO:
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise XPLockedError.held(sig, holder, self.path) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def release(self) -> None:
        """Let the next run of this XP start; safe to call more than once."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
