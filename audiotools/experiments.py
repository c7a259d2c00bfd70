"""A dora dir read for people: which XPs there are, what they ran, how far they got, their best
metrics and their samples.

Meant for listings and plots (`audiotools plot`, a web UI) while runs go on, so it only reads:
it imports neither torch nor the training stack at import time, and it tells whether an XP is
running without ever taking (or waiting for) its lock.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigError

ARGV_FILE = ".argv.json"
HISTORY_FILE = "history.json"
CONFIG_FILE = "config.json"
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
LOCK_FILE = "lock"
SAMPLES_DIR = "samples"
CHECKPOINT_FILE = "checkpoint.th"
# What makes a folder under xps/ an XP folder (anything else there is skipped silently).
XP_MARKERS = (ARGV_FILE, HISTORY_FILE, CONFIG_FILE, ".hydra", CHECKPOINT_FILE, LOCK_FILE)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3"})
# Stages in the order a solver runs them; metric names list them in this order.
STAGES = ("train", "valid", "evaluate", "generate")
# Filesystems whose flocks /proc/locks lists completely. On any other (NFS, Lustre, GPFS...)
# the holder may be a run on another node, visible only by asking the lock itself.
LOCAL_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs",
                               "overlay", "ramfs", "bcachefs"})
# Signatures an unknown-XP error lists.
KNOWN_SHOWN = 8


@dataclass
class XPSummary:
    """One XP as a listing shows it."""

    sig: str
    folder: Path
    # The `solver=` argument of `dora run` (the recipe), None if it was not given.
    recipe: str | None
    # The other `dora run` arguments.
    overrides: list[str]
    # "running", "done", "stopped at epoch k of N", "not started" or "unreadable history".
    state: str
    epochs_done: int
    # `optim.epochs` of its config; None when no config can be read.
    epochs: int | None
    # The best `valid.<best metric>` and the latest `evaluate.*` metrics.
    best: dict[str, float] = field(default_factory=dict)
    # The epoch (1-based) the best valid metric comes from.
    best_epoch: int | None = None
    # mtime of history.json (else of the folder), for sorting.
    updated: float = 0.0

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def label(self) -> str:
        """`SIG recipe overrides...`: how a legend or a list names the XP."""
        return " ".join([self.sig, *([self.recipe] if self.recipe else []), *self.overrides])


# ------------------------------------------------------------------------ reading files
def read_argv(folder: Path) -> list[str]:
    """The `dora run` arguments of the XP in `folder` ([] without a readable .argv.json)."""
    try:
        argv = json.loads((folder / ARGV_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [str(arg) for arg in argv] if isinstance(argv, list) else []


def split_argv(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(the `solver=` recipe or None, the other arguments)."""
    recipe = None
    overrides = []
    for arg in argv:
        if arg.startswith("solver=") and recipe is None:
            recipe = arg[len("solver="):]
        else:
            overrides.append(arg)
    return recipe, overrides


def load_history(folder: Path) -> list[dict[str, dict[str, Any]]]:
    """The finished epochs of the XP in `folder`, one {stage: {metric: value}} each; [] before
    the first. A file that is not such a list is a ConfigError naming it."""
    path = Path(folder) / HISTORY_FILE
    if not path.exists():
        return []
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: unreadable history ({error}).") from None
    if not isinstance(history, list) or not all(
            isinstance(epoch, dict) and all(isinstance(m, dict) for m in epoch.values())
            for epoch in history):
        raise ConfigError(f"{path}: expected a list of {{stage: {{metric: value}}}} per epoch, "
                          f"got {type(history).__name__} of another shape.")
    return history


def metric_names(history: Sequence[Mapping[str, Mapping[str, Any]]],
                 durations: bool = False) -> list[str]:
    """Every "stage.metric" of `history`, stages in run order, metrics in order of appearance.

    Stage durations are left out unless asked for: they measure the machine, not the model,
    and would otherwise crowd every "all metrics" plot with four timing curves."""
    names: dict[str, None] = {}
    for epoch in history:
        for stage, metrics in epoch.items():
            for metric, value in metrics.items():
                if (metric != "duration" or durations) and _is_number(value):
                    names[f"{stage}.{metric}"] = None

    def order(name: str) -> int:
        stage = name.partition(".")[0]
        return STAGES.index(stage) if stage in STAGES else len(STAGES)
    return sorted(names, key=order)


def metric_values(history: Sequence[Mapping[str, Mapping[str, Any]]],
                  name: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of "stage.metric" over `history`, epochs 1-based, only where it was
    measured (evaluate stages run every few epochs)."""
    stage, _, metric = name.partition(".")
    epochs, values = [], []
    for index, epoch in enumerate(history, start=1):
        value = (epoch.get(stage) or {}).get(metric)
        if _is_number(value):
            epochs.append(index)
            values.append(float(value))
    return epochs, values


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_config(folder: Path) -> dict[str, Any] | None:
    """The XP's config: config.json (resolved), else .hydra/config.yaml as written (older XPs;
    not resolved, so an interpolation stays a string), else None."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        if isinstance(config, dict):
            return config
    except (OSError, ValueError):
        pass
    path = folder / HYDRA_CONFIG
    if path.exists():
        from omegaconf import OmegaConf
        try:
            config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except Exception:  # noqa: BLE001 - a broken file is "no config" in a listing
            return None
        return config if isinstance(config, dict) else None
    return None


def _epochs_of(config: Mapping[str, Any] | None) -> int | None:
    epochs = ((config or {}).get("optim") or {}).get("epochs")
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def samples(folder: Path) -> list[Path]:
    """The audio files under `<xp>/samples/`, by epoch number (its `samples/<epoch>/` folder),
    then by path; files outside a numbered folder come last."""
    root = Path(folder) / SAMPLES_DIR
    if not root.is_dir():
        return []

    def key(path: Path) -> tuple[int, int, str]:
        parts = path.relative_to(root).parts
        if len(parts) > 1 and parts[0].isdigit():
            return 0, int(parts[0]), "/".join(parts[1:])
        return 1, 0, "/".join(parts)
    files = [p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
             and not p.name.startswith(".")]  # a temporary file of a killed write
    return sorted(files, key=key)


# ------------------------------------------------------------------------ is it running
def is_running(folder: Path) -> bool:
    """Whether a live run holds the XP's lock (solvers/lock.py), found without taking it.

    On Linux the kernel lists every flock in /proc/locks: a lock on this file's inode means a
    run on this machine holds it, and looking never touches the lock. On a network filesystem
    a run on another node holds it there, so the lock itself is asked (a shared lock taken
    without waiting and dropped at once); that is also the way where /proc/locks is missing."""
    path = Path(folder) / LOCK_FILE
    try:
        stat = path.stat()
    except OSError:
        return False
    local = _flocks_held()
    if local is not None:
        if (os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino) in local:
            return True
        if _filesystem_type(path) in LOCAL_FILESYSTEMS:
            return False
    return _probe_lock(path)


def _flocks_held() -> set[tuple[int, int, int]] | None:
    """(major, minor, inode) of every file a flock is held on, from /proc/locks; None where
    the file does not exist (not Linux)."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    held = set()
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 2756 fe:00:2146912 0 EOF" ("->" marks a waiter).
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            held.add((int(major, 16), int(minor, 16), int(inode)))
        except ValueError:
            continue
    return held


def _filesystem_type(path: Path) -> str | None:
    """The type of the filesystem `path` is on (the longest mount point above it)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, kind = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def _probe_lock(path: Path) -> bool:
    """Ask the lock: a shared flock taken without blocking and released at once."""
    try:
        handle = open(path)  # never "a": looking must not create or change the file
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


# ------------------------------------------------------------------------ best metrics
@cache
def _best_metric_of(solver: str) -> tuple[str, str]:
    """(best_metric, best_mode) of a config's `solver:` value, importing its solver class
    once; ("loss", "min") when it cannot be imported (a solver of a package not installed)."""
    try:
        from .families import solver_class
        cls = solver_class(solver)
        metric, mode = str(cls.best_metric), str(cls.best_mode)
    except Exception:  # noqa: BLE001 - any failure means "unknown solver": use the default
        return "loss", "min"
    return metric, mode if mode in ("min", "max") else "min"


def _solver_name(config: Mapping[str, Any] | None, recipe: str | None) -> str | None:
    solver = (config or {}).get("solver")
    if isinstance(solver, str) and solver and "${" not in solver:
        return solver
    # No config: the recipe `family/name` names the family.
    return recipe.partition("/")[0] if recipe and "/" in recipe else None


def best_metrics(history: Sequence[Mapping[str, Mapping[str, Any]]],
                 solver: str | None) -> tuple[dict[str, float], int | None]:
    """({"valid.<best metric>": best value, "evaluate.<m>": latest value...}, best epoch).

    The best metric is the solver's own (what its best state was chosen by); valid.loss
    (lower is better) when the solver is unknown or never reported it. Evaluate metrics
    are those of the latest epoch that ran the evaluate stage."""
    metric, mode = _best_metric_of(solver) if solver else ("loss", "min")
    epochs, values = metric_values(history, f"valid.{metric}")
    if not values and (metric, mode) != ("loss", "min"):
        metric, mode = "loss", "min"
        epochs, values = metric_values(history, "valid.loss")
    best: dict[str, float] = {}
    best_epoch = None
    finite = [(value, epoch) for epoch, value in zip(epochs, values, strict=True)
              if math.isfinite(value)]
    if finite:
        chosen = min(finite) if mode == "min" else max(finite, key=lambda item: item[0])
        best[f"valid.{metric}"], best_epoch = chosen
    for epoch in reversed(history):
        evaluate = epoch.get("evaluate")
        if evaluate:
            best.update({f"evaluate.{name}": float(value) for name, value in evaluate.items()
                         if name != "duration" and _is_number(value)})
            break
    return best, best_epoch


# ------------------------------------------------------------------------ listing
def is_xp_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / marker).exists() for marker in XP_MARKERS)


def summarize(folder: Path) -> XPSummary:
    """What a listing says about the XP in `folder`; never raises for a damaged XP."""
    folder = Path(folder)
    recipe, overrides = split_argv(read_argv(folder))
    config = read_config(folder)
    epochs = _epochs_of(config)
    history_path = folder / HISTORY_FILE
    try:
        updated = (history_path if history_path.exists() else folder).stat().st_mtime
    except OSError:
        updated = 0.0
    running = is_running(folder)
    try:
        history = load_history(folder)
    except ConfigError:
        state = "running" if running else "unreadable history"
        return XPSummary(folder.name, folder, recipe, overrides, state, 0, epochs,
                         updated=updated)
    done = len(history)
    if running:
        state = "running"
    elif done == 0:
        state = "not started"
    elif epochs is not None and done >= epochs:
        state = "done"
    else:
        state = f"stopped at epoch {done} of {epochs}" if epochs else f"stopped at epoch {done}"
    best, best_epoch = best_metrics(history, _solver_name(config, recipe))
    return XPSummary(folder.name, folder, recipe, overrides, state, done, epochs, best,
                     best_epoch, updated)


def xps_dir(dora_dir: Path | None = None) -> Path:
    if dora_dir is None:
        from .environment import dora_dir as configured
        dora_dir = configured()
    return Path(dora_dir) / "xps"


def find_xps(dora_dir: Path | None = None) -> list[XPSummary]:
    """Every XP of the dora dir (default: the configured one), most recently updated first."""
    root = xps_dir(dora_dir)
    if not root.is_dir():
        return []
    summaries = [summarize(folder) for folder in root.iterdir() if is_xp_folder(folder)]
    return sorted(summaries, key=lambda xp: (-xp.updated, xp.sig))


def known_signatures(dora_dir: Path | None = None) -> list[str]:
    """Signatures of the XPs of the dora dir, most recently updated first (cheap: no history
    or config is read)."""
    root = xps_dir(dora_dir)
    if not root.is_dir():
        return []

    def updated(folder: Path) -> float:
        history = folder / HISTORY_FILE
        return (history if history.exists() else folder).stat().st_mtime
    folders = [folder for folder in root.iterdir() if is_xp_folder(folder)]
    return [folder.name for folder in sorted(folders, key=updated, reverse=True)]


def resolve_xp(source: str, dora_dir: Path | None = None) -> Path:
    """`SIG`, `//sig/SIG` or an XP folder path -> the XP folder; an unknown one is a
    ConfigError naming it and a few signatures that exist."""
    from .environment import SIG_PREFIX
    text = str(source)
    if text.startswith(SIG_PREFIX):
        sig = text[len(SIG_PREFIX):].strip("/")
        if not sig or "/" in sig:
            raise ConfigError(f"{text!r}: expected //sig/SIG (an XP signature).")
        candidate = xps_dir(dora_dir) / sig
    elif "/" in text or text in (".", "..") or text.startswith("~"):
        candidate = Path(text).expanduser()
    else:
        candidate = xps_dir(dora_dir) / text
    if is_xp_folder(candidate):
        return candidate.resolve()
    if candidate.is_dir():
        raise ConfigError(f"{text!r}: {candidate} is not an XP folder (it has none of "
                          f"{', '.join(XP_MARKERS)}).")
    root = xps_dir(dora_dir)
    known = known_signatures(dora_dir)
    if known:
        more = len(known) - KNOWN_SHOWN
        shown = ", ".join(known[:KNOWN_SHOWN]) + (f" and {more} more" if more > 0 else "")
        listing = f"XPs in {root} (newest first): {shown}"
    else:
        listing = f"{root} has no XPs (is AUDIOTOOLS_DORA_DIR or --dora-dir right?)"
    raise ConfigError(f"{text!r}: no XP at {candidate}; give a signature, //sig/SIG or an XP "
                      f"folder. {listing}.")
