"""Checkpoint files: atomic writes, safe loads, pruning, and the RNG states that make resume exact.

Everything saved is tensors, numbers, strings, lists and dicts, so checkpoints load with
`torch.load(weights_only=True)`: opening one never runs code from the file.
"""
from __future__ import annotations

import contextlib
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, writing

LATEST = "checkpoint.th"
_EPOCH_FILE = re.compile(r"^checkpoint_(\d+)\.th$")
# What Dora and the solver write in every XP folder (beside checkpoints).
XP_FOLDER_MARKERS = (".argv.json", "history.json", ".hydra")


def epoch_path(folder: Path, epoch: int) -> Path:
    return folder / f"checkpoint_{epoch}.th"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(state: dict[str, Any], folder: Path, epoch: int, keep_last: int) -> Path:
    """Write `checkpoint.th` atomically (temp file, fsync, rename): a kill at any moment leaves
    either the previous checkpoint or the new one, never a torn file. With `keep_last > 0`
    the same file is also linked as `checkpoint_<epoch>.th` and older ones beyond N are pruned."""
    latest = folder / LATEST
    for stale in folder.glob(f".{LATEST}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    tmp = folder / f".{LATEST}.{os.getpid()}.tmp"
    try:
        kept = ("The previous checkpoint is kept: once the disk takes it (room, "
                "permissions), the same command goes on from it." if latest.exists() else
                "No checkpoint was written: once the disk takes it (room, permissions), run "
                "the same command again.")
        with writing(latest, kept):
            with open(tmp, "wb") as handle:
                torch.save(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            if keep_last > 0:
                numbered = epoch_path(folder, epoch)
                numbered.unlink(missing_ok=True)
                os.link(tmp, numbered)
            os.replace(tmp, latest)
    finally:  # on a filesystem gone read-only even this fails: the error above is the news
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    _fsync_dir(folder)
    prune(folder, keep_last)
    return latest


def numbered_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for path in folder.glob("checkpoint_*.th"):
        match = _EPOCH_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune(folder: Path, keep_last: int) -> None:
    """Remove numbered checkpoints beyond the newest `keep_last`; checkpoint.th always stays."""
    numbered = numbered_checkpoints(folder)
    for _, path in numbered[:max(0, len(numbered) - keep_last)]:
        path.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; any failure names the file and the ways out."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint {path} does not exist.") from None
    except Exception as error:  # torch raises many types for torn or foreign files
        raise CheckpointError(_corrupt_message(path, error)) from None
    if not isinstance(state, dict):
        raise CheckpointError(_corrupt_message(path, TypeError(f"holds a {type(state)}")))
    return state


def in_xp_folder(path: Path) -> bool:
    """Whether `path` is an XP's own checkpoint (checkpoint.th or checkpoint_N.th in a folder
    Dora made): only then is restarting the XP, which deletes that folder, a way out."""
    if path.name != LATEST and not _EPOCH_FILE.match(path.name):
        return False
    return is_xp_folder(path.parent)


def is_xp_folder(folder: Path) -> bool:
    """Whether `folder` is one Dora made for an XP (`dora run --clear` deletes it whole)."""
    return any((folder / marker).exists() for marker in XP_FOLDER_MARKERS)


def _reason(error: Exception) -> str:
    """What went wrong in one line: torch's weights_only refusal spans a dozen lines of advice
    that does not apply here (audiotools never loads checkpoints with weights_only=False)."""
    text = str(error)
    if "Weights only load failed" in text:
        detail = text.partition("WeightsUnpickler error:")[2].strip().splitlines()
        text = "not a torch file audiotools wrote" + (f": {detail[0]}" if detail else "")
    else:
        text = " ".join(text.split())
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(error).__name__}: {text}"


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def _corrupt_message(path: Path, error: Exception) -> str:
    message = f"Cannot read checkpoint {path} ({_reason(error)}). It is not overwritten; "
    if not in_xp_folder(path):
        return message + ("it is not the checkpoint of an XP folder `dora run` made: give an XP "
                          "(SIG, //sig/SIG, its folder) or its checkpoint.th.")
    folder = path.parent
    # Numbered checkpoints are hard links: the newest may be this very (damaged) file.
    older = [p.name for _, p in numbered_checkpoints(folder) if not _same_file(p, path)]
    ways = [f"restart this XP from scratch with `dora run --clear ...` (deletes {folder})"]
    if older:
        ways.insert(0, f"restore an earlier checkpoint: cp {folder / older[-1]} {path}")
    return message + "ways out: " + "; or ".join(ways) + "."


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may draw from, as plain tensors and numbers."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["gauss"]))
    random.setstate(_python_state_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple) -> dict[str, Any]:
    version, internal, gauss = state
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _python_state_from_plain(state: dict[str, Any]) -> tuple:
    return (state["version"], tuple(state["internal"]), state["gauss"])
