"""The configuration an XP was trained with, kept beside it, and the check that a rerun under
the same signature still computes the same thing.

Dora's signature hashes the command-line delta, not the recipe's content: when a recipe file
changes (the project retunes `autoencoder/base`), `dora run solver=autoencoder/base` lands in
the folder of the run made with the old recipe. Resuming it there would mix two models' weights
or report the old run as the new one's result, so the rerun is refused, naming what changed,
and the old XP is left as it is.
"""
from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .io.checkpoint import LATEST

CONFIG_FILE = "config.json"


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


def check_unchanged(folder: Path, config: Mapping[str, Any], excluded: Iterable[str],
                    command: str) -> None:
    """Refuse to go on in `folder` if the run there was made with another configuration."""
    before = trained_config(folder)
    if before is None:
        return
    changes = config_changes(before, config, excluded)
    if changes:
        shown = "\n  ".join(changes[:12]) + ("\n  ..." if len(changes) > 12 else "")
        raise CheckpointError(
            f"{folder} holds a run of this signature made with another configuration (the "
            f"recipe changed since):\n  {shown}\nIt is left untouched. To train the recipe as "
            f"it is now, move that folder aside (e.g. `mv {folder} {folder}.old`) or delete it "
            f"by adding --clear to the same `{command}` command, then run again.")


def record(folder: Path, config: Mapping[str, Any]) -> None:
    """Write config.json when the XP starts; once it has a checkpoint, the file is what it was
    trained with and stays."""
    path = folder / CONFIG_FILE
    if not (folder / LATEST).exists() or not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=1, default=str))
