"""Writing files so that a reader (or a run killed mid-write) never sees them torn: the content
goes to a temporary file beside it, which then becomes the file in one step; and with the
permissions any file the user writes gets."""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import writing


@contextlib.contextmanager
def atomic_path(path: Path, exclusive: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` (its suffix kept: writers pick the format by it) for the
    block to write; then it becomes `path`, replacing it, or with `exclusive` only if `path`
    is still absent (FileExistsError otherwise: a link, unlike a rename, cannot replace). The
    temporary file never stays behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(_temporary_name(path))
    try:
        yield tmp
        umask_mode(tmp)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _temporary_name(path: Path) -> str:
    """`.name.PID.tmp.suffix`; for a name too long to take that (255 bytes is the usual
    limit), its hash stands for it."""
    name = f".{path.name}.{os.getpid()}.tmp{path.suffix}"
    if len(os.fsencode(name)) <= 255:
        return name
    return f".{hashlib.sha1(os.fsencode(path.name)).hexdigest()}.{os.getpid()}.tmp{path.suffix}"


def file_in_the_way(path: Path) -> Path | None:
    """The file that stands where a folder above `path` would have to be (writing
    `notes.txt/x.wav`), else None: the writer's own message would be "Not a directory"."""
    above = next(parent for parent in path.absolute().parents if parent.exists())
    return None if above.is_dir() else above


def remove_temporaries(folder: Path) -> None:
    """Remove what `atomic_path` left in `folder` in a process killed mid-write (SIGKILL runs
    no `finally`): for a writer that owns the folder, e.g. an XP's, which its lock keeps to
    one run."""
    for stale in folder.glob(".*.tmp*"):
        stale.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with writing(path), atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_image_atomic(path: Path, image: Any) -> None:
    """A PIL image (format from the suffix) whole under `path`, or nothing there."""
    with writing(path), atomic_path(path) as tmp:
        image.save(tmp)


def umask_mode(path: Path) -> None:
    """Give `path` the permissions the user's umask gives new files: safetensors writes 0600
    whatever the umask, so a team's shared exports and latents would be unreadable to it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
