"""k-fold cross-validation over ordinary XPs: one XP per held-out fold.

`audiotools kfold`, the `classifier.kfold` grid and its explorer share this module, so a fold's
XP is the same whichever launched it, and the summary reads any of them.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from dora import XP
from omegaconf import OmegaConf

from .errors import ConfigError
from .experiments import load_history


def fold_ids(overrides: Sequence[str]) -> list[int]:
    """The folds present in the data the overrides select (read once; audio features cached)."""
    import numpy as np

    from .families import validate_config
    from .solvers.classifier import load_arrays
    from .solvers.classifier_config import ClassifierConfig
    from .train import main
    xp = main.get_xp(list(overrides))
    settings = validate_config(xp.cfg)
    if not isinstance(settings, ClassifierConfig):
        given = next((arg for arg in reversed(overrides) if arg.startswith("solver=")),
                     f"solver={xp.cfg.solver}")
        raise ConfigError(f"kfold runs classifier recipes (solver=classifier/...); {given} is "
                          f"a {xp.cfg.solver} recipe.")
    folds = [int(fold) for fold in np.unique(load_arrays(settings).folds)]
    if len(folds) < 2:
        where = (f"dataset.folds_file={settings.dataset.folds_file} assigns"
                 if getattr(settings.dataset, "folds_file", None) else "the data holds")
        raise ConfigError(f"{where} {len(folds)} fold: cross-validation holds each fold out "
                          "in turn and needs at least 2.")
    return folds


def _sets_fold(arg: str) -> bool:
    return arg.lstrip("+~").startswith("dataset.fold=")


def fold_argvs(overrides: Sequence[str]) -> list[list[str]]:
    """One argv per fold: the user's overrides, then `dataset.fold=K`. A `dataset.fold` of the
    user's is refused: kfold would replace it, and the user meant one fold or all of them."""
    given = [arg for arg in overrides if _sets_fold(arg)]
    if given:
        raise ConfigError(f"kfold sets dataset.fold itself (one XP per fold): drop {given[0]}. "
                          "To train that fold alone, use `dora run` with the same overrides.")
    return [[*overrides, f"dataset.fold={fold}"] for fold in fold_ids(overrides)]


def fold_groups(xps: Sequence[XP]) -> list[list[XP]]:
    """The XPs that differ only by `dataset.fold`, grouped in order: each group of two or more
    is one cross-validation. Empty when an XP has no fold (not a k-fold grid)."""
    groups: dict[str, list[XP]] = {}
    for xp in xps:
        if OmegaConf.select(xp.cfg, "dataset.fold") is None:
            return []
        # By the resolved config, not the overrides' text: `optim.lr=0.03` and `3e-2` (or
        # another order) are one cross-validation.
        config = OmegaConf.to_container(xp.cfg, resolve=True)
        del config["dataset"]["fold"]
        groups.setdefault(json.dumps(config, sort_keys=True, default=str), []).append(xp)
    return [group for group in groups.values() if len(group) > 1]


def best_valid(history: list[dict], metric: str = "accuracy") -> float | None:
    values = [epoch["valid"][metric] for epoch in history
              if metric in epoch.get("valid", {})]
    return max(values) if values else None


@dataclass
class FoldResult:
    fold: int
    sig: str
    epochs: int
    best_accuracy: float | None
    planned: int | None = None  # optim.epochs


def results(xps: Sequence[XP]) -> list[FoldResult]:
    rows = []
    for xp in xps:
        history = load_history(xp.folder)
        rows.append(FoldResult(int(xp.cfg.dataset.fold), xp.sig, len(history),
                               best_valid(history), int(xp.cfg.optim.epochs)))
    return rows


def summary(rows: Sequence[FoldResult]) -> str:
    """A table of folds and `mean ± std` (sample std over folds) of the best valid accuracy;
    a fold short of its epochs (stopped early, interrupted, failed) is marked, and counted."""
    lines = [f"{'fold':>4}  {'sig':>8}  {'epochs':>7}  best valid accuracy"]
    for row in rows:
        value = "not trained" if row.best_accuracy is None else f"{row.best_accuracy:.2%}"
        epochs = f"{row.epochs}/{row.planned}" if row.planned else str(row.epochs)
        lines.append(f"{row.fold:>4}  {row.sig:>8}  {epochs:>7}  {value}")
    done = [row.best_accuracy for row in rows if row.best_accuracy is not None]
    if done:
        spread = (f" ± {statistics.stdev(done):.2%}" if len(done) > 1
                  else " (one fold: no spread)")
        short = sum(1 for row in rows if row.best_accuracy is not None and row.planned
                    and row.epochs < row.planned)
        shortfall = (f"; {short} of them short of their epochs (early stop, or not finished)"
                     if short else "")
        lines.append(f"best valid accuracy over {len(done)}/{len(rows)} folds: "
                     f"{statistics.mean(done):.2%}{spread}{shortfall}")
    return "\n".join(lines)
