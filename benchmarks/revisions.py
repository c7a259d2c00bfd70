"""Another git revision of this repository beside the working tree, so that a benchmark
measures a change as a ratio against the code before it, in the same run on the same machine."""
from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def worktree(rev: str, folder: Path) -> Iterator[Path]:
    """A detached worktree of `rev` at `folder` for the block (put it first on PYTHONPATH to
    import that revision's audiotools), removed afterwards."""
    added = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder),
                            rev], capture_output=True, text=True)
    if added.returncode:
        raise SystemExit(f"--before {rev}: no worktree of it could be made (is it a revision of "
                         f"this repository?): {added.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)],
                       capture_output=True)
