"""A grid package written by a test where Dora and `audiotools grid` find it, as a user's own
grids are found (AUDIOTOOLS_GRID_PACKAGE); rewriting a grid file is how a test changes a grid."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PACKAGE = "testgrids"

_GRID = '''"""Written by tests/grid_package.py."""
from audiotools.grids.classifier._explorers import ClassifierExplorer
from audiotools.kfold import fold_argvs


@ClassifierExplorer
def explorer(launcher):
    launcher.slurm_(**{slurm!r})
    for argv in fold_argvs({recipe!r})[:{folds}]:
        launcher(argv)
    for argv in {extra!r}:
        launcher(argv)
    # Jobs that stay RUNNING without using a CPU: they sleep before training would start.
    for argv in {sleeping!r}:
        launcher.slurm(setup=["sleep 600"])(argv)
'''


def write_grid(root: Path, name: str, recipe: Sequence[str], folds: int,
               extra: Sequence[Sequence[str]] = (), slurm: dict[str, Any] | None = None,
               sleeping: Sequence[Sequence[str]] = ()) -> dict[str, str]:
    """Grid `name` (e.g. `classifier.kfold`): the first `folds` folds of `recipe`, then the
    `extra` XPs, with `slurm` settings, then `sleeping` XPs whose SLURM jobs only sleep;
    returns the environment that makes it visible."""
    *packages, module = name.split(".")
    folder = root / PACKAGE
    for part in packages:
        (folder / "__init__.py").parent.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").touch()
        folder = folder / part
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").touch()
    (folder / f"{module}.py").write_text(_GRID.format(
        slurm=slurm or {}, recipe=list(recipe), folds=folds, extra=[list(x) for x in extra],
        sleeping=[list(x) for x in sleeping]))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(root),
                                                        os.environ.get("PYTHONPATH")])),
            "AUDIOTOOLS_GRID_PACKAGE": PACKAGE,
            # A rewritten grid must never be read from a stale .pyc of the same second.
            "PYTHONDONTWRITEBYTECODE": "1"}
