"""The configuration an XP was trained with, kept beside it, and the check that a rerun under
the same signature still computes the same thing.

Dora's signature hashes the command-line delta, not the recipe's content: when a recipe file
changes (the project retunes `autoencoder/base`), `dora run solver=autoencoder/base` lands in
the folder of the run made with the old recipe. Resuming it there would mix two models' weights
or report the old run as the new one's result, so the rerun is refused, naming what changed,
and the old XP is left as it is.

A relative path in the config (`dataset.train.manifest=data/train.jsonl`) is part of the
signature as written, but names other files from another directory: the folder the run started
in is kept too (workdir.txt), and a rerun elsewhere whose relative paths would read other files
is refused (not once that folder is gone: a project moved or renamed has nothing left to
compare with).
"""
from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .io.atomic import write_text_atomic
from .io.checkpoint import LATEST

CONFIG_FILE = "config.json"
WORKDIR_FILE = "workdir.txt"


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        items: dict[str, Any] = {}
        for key, value in tree.items():
            items.update(_flat(value, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: tree}


def trained_config(folder: Path) -> dict[str, Any] | None:
    """The resolved config of the run in `folder`: its config.json, else (XPs older than
    that file) the one its checkpoint records; None before the first checkpoint (a run that
    stopped before training anything commits to nothing)."""
    if not (folder / LATEST).exists():
        return None
    recorded = folder / CONFIG_FILE
    if recorded.exists():
        return json.loads(recorded.read_text())
    from .io import checkpoint
    return checkpoint.load(folder / LATEST).get("xp.cfg")


def config_changes(before: Mapping[str, Any], now: Mapping[str, Any],
                   excluded: Iterable[str]) -> list[str]:
    """`key: old -> new` for every key both configs have whose value differs. Keys a newer
    version of the project added or dropped are not changes of this run's computation, and
    `optim.epochs` may grow or shrink: that is how a finished run is trained further."""
    patterns = [*excluded, "optim.epochs"]
    old, new = _flat(before), _flat(now)
    return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in sorted(old.keys() & new.keys())
            if old[key] != new[key] and not any(fnmatch.fnmatch(key, p) for p in patterns)]


def _is_relative_path(value: Any) -> bool:
    """A string written as a relative path: with a folder or a suffix (`data/train.jsonl`,
    `ae.safetensors`), so that names such as `music` are not taken for one."""
    return (isinstance(value, str) and "://" not in value and "\n" not in value
            and not value.startswith(("/", "~", "pipe:"))
            and ("/" in value or bool(Path(value).suffix)))


# Relative paths that do not decide what the run computes once it has a checkpoint: the
# weights it started from (read only before the first one) and a cache keyed by content.
_NOT_INPUTS = ("continue_from", "dataset.cache_dir")


def moved_paths(config: Mapping[str, Any], started_in: Path, here: Path,
                excluded: Iterable[str] = ()) -> list[str]:
    """`key: path` for each relative path of `config` (outside the `excluded` keys) that names
    an existing file or folder from one of the two directories and another one (or none) from
    the other."""
    patterns = [*excluded, *_NOT_INPUTS]
    moved = []
    for key, value in sorted(_flat(config).items()):
        if any(fnmatch.fnmatch(key, p) for p in patterns):
            continue
        values = value if isinstance(value, list) else [value]
        for item in filter(_is_relative_path, values):
            then, now = started_in / item, here / item
            if (then.exists() or now.exists()) and then.resolve() != now.resolve():
                moved.append(f"{key}: {item!r} was {then}, from here {now}")
    return moved


def check_unchanged(folder: Path, config: Mapping[str, Any], excluded: Iterable[str],
                    command: str) -> None:
    """Refuse to go on in `folder` if the run there was made with another configuration, or
    from a directory where its relative paths named other files."""
    before = trained_config(folder)
    if before is None:
        return
    workdir = folder / WORKDIR_FILE
    if workdir.exists():
        started_in, here = Path(os.fsdecode(workdir.read_bytes().removesuffix(b"\n"))), Path.cwd()
        moved = (moved_paths(config, started_in, here, excluded)
                 if started_in != here and started_in.is_dir() else [])
        if moved:
            raise CheckpointError(
                f"{folder} holds a run started in {started_in}; from {here} its relative "
                f"paths name other files:\n  " + "\n  ".join(moved[:12]) + "\nIt is left "
                f"untouched. Run `{command}` from {started_in} to go on with it; for a run on "
                "the files here, give their absolute paths (another signature).")
    changes = config_changes(before, config, excluded)
    if changes:
        shown = "\n  ".join(changes[:12]) + ("\n  ..." if len(changes) > 12 else "")
        raise CheckpointError(
            f"{folder} holds a run of this signature made with another configuration (the "
            f"recipe changed since):\n  {shown}\nIt is left untouched. To train the recipe as "
            f"it is now, move that folder aside (e.g. `mv {folder} {folder}.old`) or delete it "
            f"by adding --clear to the same `{command}` command, then run again.")


def record(folder: Path, config: Mapping[str, Any]) -> None:
    """Write config.json (and workdir.txt, the directory its relative paths are read from)
    when the XP starts; once it has a checkpoint, they are what it was trained with and stay,
    but for `optim.epochs`, which a recipe may grow to train the XP further (listings read
    the planned epochs from it)."""
    path = folder / CONFIG_FILE
    if not (folder / LATEST).exists() or not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=1, default=str))
        (folder / WORKDIR_FILE).write_bytes(os.fsencode(os.getcwd()) + b"\n")
        return
    recorded = json.loads(path.read_text())
    epochs = (config.get("optim") or {}).get("epochs")
    if isinstance(recorded.get("optim"), dict) and recorded["optim"].get("epochs") != epochs:
        recorded["optim"]["epochs"] = epochs
        write_text_atomic(path, json.dumps(recorded, indent=1, default=str))
