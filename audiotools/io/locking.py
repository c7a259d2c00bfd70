"""An exclusive `flock` on a file that holds its holder's pid: one process at a time writes what
the lock guards. The OS drops it when the process dies, even by kill -9, so a crash never
leaves a stale lock; the file stays, holding the last holder's pid."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO


class LockHeld(Exception):
    """Another process holds the lock; `holder` is its pid as the file says."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def take_lock(path: Path) -> TextIO:
    """The open, locked file (closing it releases the lock), or LockHeld."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LockHeld(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
