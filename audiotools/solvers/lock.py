"""The XP lock: one process at a time trains an XP, since two would overwrite each other's
checkpoints and history.

An exclusive `flock` on `<xp>/lock` (io/locking.py), held by rank 0 (the other ranks of a DDP
run belong to the same run). The file holds the pid of the holder, for the error message.
"""
from __future__ import annotations

from pathlib import Path
from typing import TextIO

from .. import distributed
from ..errors import XPLockedError
from ..io.locking import LockHeld, take_lock


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
        try:
            return take_lock(self.path)
        except LockHeld as held:
            raise XPLockedError.held(sig, held.holder, self.path) from None

    def release(self) -> None:
        """Let the next run of this XP start; safe to call more than once."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
