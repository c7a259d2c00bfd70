"""A Dora grid run on this machine, for users without SLURM: the grid's XPs one after another,
each an ordinary resumable XP (the same folder and signature `dora grid` gives it), then the
grid's own table, as `dora grid` prints it.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Sequence

from dora import XP, Explorer
from dora.conf import SlurmConfig
from dora.explore import Herd, Launcher
from dora.grid import RunGridArgs, monitor
from dora.shep import Sheep

from .cli import path_error
from .environment import check_grid_package
from .errors import AudiotoolsError, ConfigError
from .train import main, train

logger = logging.getLogger(__name__)


def grid_package() -> str:
    return main.dora.grid_package or f"{main.package}.grids"


def available_grids() -> list[str]:
    """Grid names under the grid package, as `dora grid` accepts them (`family.name`)."""
    name = grid_package()
    check_grid_package(name)
    package = importlib.import_module(name)
    found = pkgutil.walk_packages(package.__path__, prefix=f"{name}.")
    return sorted(info.name.removeprefix(f"{name}.") for info in found
                  if not info.ispkg and not info.name.rsplit(".", 1)[-1].startswith("_"))


def load_explorer(name: str) -> Explorer:
    """The `explorer` of grid `name` (e.g. `classifier.kfold`)."""
    module_name = f"{grid_package()}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not module_name.startswith(error.name):
            raise  # the grid itself imports something missing: a real bug, keep the trace
        raise ConfigError(f"grid {name!r}: no module {module_name}. "
                          f"Available grids: {', '.join(available_grids())}.") from None
    explorer = getattr(module, "explorer", None)
    if not isinstance(explorer, Explorer):
        raise ConfigError(f"{module.__file__} has no `explorer` made by a dora.Explorer "
                          "(e.g. `@ClassifierExplorer` over `def explorer(launcher): ...`).")
    return explorer


class LocalSheep(Sheep):
    """An XP of a grid run here: no SLURM job, its state is what happened in this process."""

    def __init__(self, xp: XP):
        self.xp = xp
        self.job = None
        self._other_jobs = []
        self._dependent_jobs = []
        self.local_state: str | None = None

    def state(self, mode: str = "standard") -> str | None:
        return self.local_state

    def is_done(self, mode: str = "standard") -> bool:
        return True


class _LocalShepherd:
    """What Dora's Launcher asks of its Shepherd to collect XPs, without SLURM."""

    def __init__(self) -> None:
        self.main = main

    def get_sheep_from_argv(self, argv: Sequence[str]) -> LocalSheep:
        return LocalSheep(main.get_xp(list(argv)))


def grid_sheeps(explorer: Explorer) -> list[LocalSheep]:
    """The grid's XPs, in the order the explorer launches them (duplicates once)."""
    herd = Herd()
    explorer(Launcher(_LocalShepherd(), SlurmConfig(), herd))  # type: ignore[arg-type]
    return list(herd.sheeps.values())


def run_xp(xp: XP) -> None:
    """Train `xp` in this process, exactly as `dora run` would (resuming its checkpoint)."""
    main.init_xp(xp)
    with xp.enter():
        train(xp.cfg)


def run_in_turn(sheeps: Sequence[LocalSheep]) -> None:
    """Each XP in turn; a failing XP is reported and marked FAILED, the others still run."""
    for index, sheep in enumerate(sheeps):
        print(f"[{index + 1}/{len(sheeps)}] XP {sheep.xp.sig}: {' '.join(sheep.xp.argv)}",
              flush=True)
        ran = run_reporting(sheep.xp, f"XP {sheep.xp.sig}")
        sheep.local_state = "COMPLETED" if ran else "FAILED"


def run_reporting(xp: XP, label: str) -> bool:
    """`run_xp`; a failure is reported under `label` (one line for what the user can mend, a
    traceback for a bug) and False returned, so that a sequence of XPs goes on."""
    try:
        run_xp(xp)
    except AudiotoolsError as error:
        print(f"error: {label}: {error}", flush=True)
    except OSError as error:  # a path of the user's: not writable, a file in the way, disk full
        print(f"error: {label}: {path_error(error)}", flush=True)
    except Exception:  # a bug in one XP must not cost the rest
        logger.exception("%s failed", label)
    else:
        return True
    return False


def print_table(explorer: Explorer, sheeps: Sequence[Sheep]) -> None:
    """The table `dora grid` prints, from the grid's own explorer."""
    monitor(RunGridArgs(), main, explorer, list(sheeps), print)
