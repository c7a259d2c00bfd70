"""Writing files so that a reader (or a run killed mid-write) never sees them torn: the content
goes to a temporary file beside it, which then replaces the file in one rename; and with the
permissions any file the user writes gets."""
from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def umask_mode(path: Path) -> None:
    """Give `path` the permissions the user's umask gives new files: safetensors writes 0600
    whatever the umask, so a team's shared exports and latents would be unreadable to it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
