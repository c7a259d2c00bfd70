"""The Dora main: `dora run solver=<family>/<recipe> [key=value ...]`.

validate the composed config -> seed (offset by rank) -> threads -> distributed init -> solver.
"""
from __future__ import annotations

import ast
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import yaml
from dora import XP, get_xp
from dora.conf import SlurmConfig
from dora.distrib import get_distrib_spec
from dora.explore import ProcessException
from dora.hydra import HydraMain
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from . import environment, logs, xp_config
from .errors import AudiotoolsError, ConfigError, storage_message
from .experiments import load_history
from .io.checkpoint import LATEST, numbered_checkpoints

if TYPE_CHECKING:
    from .config import SolverConfig

logger = logging.getLogger(__name__)


# What submitit raises when `dora grid` submits on a machine without SLURM.
_NO_SLURM = 'Could not detect "srun"'


def _print_user_errors(exc_type: type[BaseException], exc: BaseException,
                       tb: TracebackType | None) -> None:
    """Errors a user caused are printed as their message alone; anything else keeps its trace."""
    passed_on = _passed_on_message(exc) if isinstance(exc, ProcessException) else None
    storage = storage_message(exc) if isinstance(exc, OSError) else None
    if isinstance(exc, KeyboardInterrupt):  # outside a running XP (which says where it stops)
        print(f"error: {_interrupted_outside_an_xp(sys.argv)}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(130)
    if isinstance(exc, AudiotoolsError) or passed_on is not None:
        print(f"error: {passed_on or exc}", file=sys.stderr)
    elif storage is not None:  # e.g. Dora creating the XP folder on a full or read-only disk
        print(f"error: {storage}", file=sys.stderr)
    elif isinstance(exc, RuntimeError) and _NO_SLURM in str(exc):
        print("error: `dora grid` and `dora launch` submit jobs to SLURM, and this machine has "
              "no srun. Without a cluster, run the grid's XPs here with `audiotools grid NAME` "
              "(docs/cluster.md).", file=sys.stderr)
    else:
        sys.__excepthook__(exc_type, exc, tb)


def _interrupted_outside_an_xp(argv: Sequence[str]) -> str:
    """The line for Ctrl-C outside a running XP: `dora run` composing its config (before
    anything runs), `dora grid` watching its jobs (which go on), anything else."""
    command = next((arg for arg in argv[1:] if arg in ("run", "grid", "info", "launch")), "")
    if command == "run":
        return "interrupted before the XP started; nothing was run."
    if command == "grid":
        return ("interrupted; the jobs already submitted go on (`dora grid NAME` shows "
                "them, `dora grid NAME -C` cancels them).")
    return "interrupted."


def _passed_on_message(exc: ProcessException) -> str | None:
    """The message of an audiotools error that Dora's process pool (`dora grid`) passed on as
    its repr (`ConfigError('...')`); None for any other error."""
    match = re.fullmatch(r"(\w+)\((.*)\)", str(exc), re.DOTALL)
    if match is None or match.group(1) not in _error_names(AudiotoolsError):
        return None
    try:
        message = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        return None
    return message if isinstance(message, str) else None


def _error_names(base: type[BaseException]) -> set[str]:
    return {base.__name__}.union(*(_error_names(sub) for sub in base.__subclasses__()))


class AudiotoolsMain(HydraMain):
    """Dora's Hydra main, plus a config check at XP creation.

    `get_xp` runs before Dora creates the XP folder (for `dora run`, `dora grid`, `dora info`),
    so a bad config is refused with one message and leaves nothing behind.
    """

    def get_xp(self, argv: Sequence[str]) -> XP:
        from . import distributed
        from .config import missing_value_message
        from .families import validate_config
        for arg in argv:  # Dora's signature asserts it (its traceback names neither)
            if "=" not in arg:
                raise ConfigError(f"{arg}: Dora takes removals as ~KEY=VALUE (the value the "
                                  "key holds)." if arg.startswith("~") else
                                  f"{arg}: an override is KEY=VALUE (e.g. optim.lr=1e-3, "
                                  "solver=autoencoder/debug).")
        environment.check_user_config_tree()
        for arg in argv:
            if _override_key(arg) == "solver":
                environment.check_recipe_header(arg.partition("=")[2])
        try:
            xp = super().get_xp(argv)
        except yaml.YAMLError as error:  # a recipe's own syntax: Hydra lets it through
            raise ConfigError(f"a config file is not valid YAML: {error}") from None
        except MissingMandatoryValue as error:
            raise ConfigError(missing_value_message(str(error.full_key))) from None
        except (HydraException, OmegaConfBaseException) as error:
            unknown = re.search(r"Could not override '([^']+)'", str(error))
            raise ConfigError((unknown and self._unknown_key(unknown.group(1), argv))
                              or _explain_composition_error(error, argv)) from None
        except AssertionError as error:  # Dora compares the XP's config with the recipe's
            raise ConfigError(_structure_error(str(error), argv)) from None
        validate_config(xp.cfg)
        distributed.check_launch(xp.cfg, folder=xp.folder)
        return xp

    def _unknown_key(self, key: str, argv: Sequence[str]) -> str | None:
        """`key=...` names no key of the recipe: a key of the schema that the recipe's YAML
        does not set is added with `+key=...`; any other, the keys its section does have.
        None when the config does not compose without it either."""
        others = [arg for arg in argv if _override_key(arg) != key]
        try:
            cfg = super().get_xp(others).cfg
        except (HydraException, OmegaConfBaseException):
            return None
        added = [f"+{arg.lstrip('+~')}" for arg in argv if _override_key(arg) == key]
        refusal = self._schema_refusal(key, [*others, *added])
        shadowing = _split_keys(cfg, key)
        if refusal is None and shadowing:  # added, it would be read by no split
            value = added[0].partition("=")[2]
            return (f"{key}: every split of this recipe sets its own ({', '.join(shadowing)}), "
                    f"which a top-level {key} would not change: set those, e.g. "
                    f"{shadowing[0]}={value}.")
        if refusal is None:
            return (f"{key}: a key this recipe's YAML does not set, so Hydra takes it as an "
                    f"addition: {' '.join(added)}.")
        if refusal:
            return refusal
        node: DictConfig = cfg
        parts = key.split(".")
        for depth, part in enumerate(parts):  # down to the first name the config lacks
            if part not in node:
                section = ".".join(parts[:depth])
                where = f"section '{section}'" if section else "the config"
                return (f"{'.'.join(parts[:depth + 1])}: unknown key in {where}. Valid keys: "
                        f"{', '.join(sorted(node.keys()))}.")
            child = node[part]
            if not isinstance(child, DictConfig):
                return None
            node = child
        return None

    def _schema_refusal(self, key: str, argv: Sequence[str]) -> str | None:
        """The family's schema on `key` set by these overrides: None when it knows the key
        (its value may still be refused, which the run then says), else its line naming the
        keys it has ("" when it says nothing of the key)."""
        from .families import validate_config
        try:
            validate_config(super().get_xp(argv).cfg)
        except AudiotoolsError as error:
            parts = key.split(".")
            named = tuple(f"{'.'.join(parts[:n])}: unknown key" for n in range(1, len(parts) + 1))
            lines = [line.strip() for line in str(error).splitlines()
                     if line.strip().startswith(named)]
            return lines[0] if lines else None
        except (HydraException, OmegaConfBaseException, AssertionError):
            return ""
        return None

    def get_xp_history(self, xp: XP) -> list[dict]:
        """The XP's history.json (`dora grid`'s table, `dora info`); a damaged one is an error
        naming the file, not a JSON traceback."""
        return load_history(xp.folder)

    def get_slurm_config(self) -> SlurmConfig:
        """config.yaml's `slurm:` with the team file's over it, for `dora grid`/`dora launch`
        (their flags and the grid's `launcher.slurm_` still apply on top)."""
        from .slurm import check_clear, with_team_settings
        check_clear(sys.argv[1:])
        return with_team_settings(super().get_slurm_config())


def _split_keys(cfg: DictConfig, key: str) -> list[str]:
    """`dataset.<split>.<name>` of each split the recipe defines, when every one of them sets
    `name` for `key` = `dataset.<name>` (else none): a top-level value no split reads."""
    from .data.builders import SPLITS
    section, _, name = key.partition(".")
    dataset = cfg.get("dataset") if section == "dataset" and "." not in name else None
    if not isinstance(dataset, DictConfig):
        return []
    splits = [split for split in SPLITS if isinstance(dataset.get(split), DictConfig)]
    if splits and all(dataset[split].get(name) is not None for split in splits):
        return [f"dataset.{split}.{name}" for split in splits]
    return []


def _structure_error(error: str, argv: Sequence[str]) -> str:
    """Dora's signature compares the XP's config with the recipe's key by key, and asserts
    that no override replaced a section by a value or removed a key the base config has."""
    section = re.search(r"Wrong type for (\S+), expected DictConfig", error)
    missing = re.search(r"Missing key (\S+)", error)
    for arg in argv:
        key = _override_key(arg)
        leaf = key.split(".")[-1]
        if section and leaf == section.group(1):
            return (f"{arg}: '{key}' is a section of keys, not a value; set its keys one "
                    f"at a time ({key}.KEY=VALUE).")
        if missing and arg.startswith("~") and leaf == missing.group(1):
            return _no_removal(arg)
    return f"the overrides {' '.join(argv)} change the recipe's structure: {error}"


def _override_key(arg: str) -> str:
    """The key an override names: `+a.b=1`, `~a.b=1` and `a.b=1` name `a.b`."""
    return arg.partition("=")[0].lstrip("+~")


def _no_removal(arg: str) -> str:
    return (f"{arg}: an XP cannot remove a key the base config has (Dora's signature "
            f"compares the two key by key); set it instead ({_override_key(arg)}=null, or the "
            "value you mean).")


def _explain_composition_error(error: Exception, argv: Sequence[str]) -> str:
    message = str(error).strip()
    removed = re.search(r"Could not delete from config. The value of '([^']+)' is", message)
    if removed:  # Hydra's advice, the value the key holds, only leads to Dora's refusal
        arg = next((a for a in argv if a.startswith("~") and _override_key(a) == removed.group(1)),
                   removed.group(1))
        return _no_removal(arg)
    missing = re.search(r"Could not find '(solver/[^']+)'", message)
    if missing:
        from .environment import available_recipes
        recipe = missing.group(1).removeprefix("solver/")
        return (f"solver={recipe}: no such recipe (config/solver/{recipe}.yaml). "
                f"Available recipes: {', '.join(available_recipes())}.")
    option = re.search(r"(?:In '[^']+': )?Could not find '([^']+)/([^'/]+)'", message)
    if option:  # a config group's option (dset=, model/...=); Hydra appends its search path
        # Hydra names the defaults list that holds the group, not the file that set it.
        group, name = option.groups()
        listed = re.findall(r"^\t(\S+)$", message.partition("Config search path")[0], re.M)
        available = f" Available: {', '.join(listed)}." if listed else ""
        if any(_override_key(arg).lstrip("/") == group for arg in argv):
            return f"{group}={name}: no such option (config/{group}/{name}.yaml).{available}"
        recipe = next((arg for arg in argv if _override_key(arg) == "solver"), "the recipe")
        return (f"{recipe} (its recipe or a file it builds on) names {group}: {name}, which "
                f"does not exist (config/{group}/{name}.yaml).{available}")
    return f"cannot compose the config from {list(argv)}:\n{message}"


# Installed before the decorator runs: composing the config at import can already fail.
sys.excepthook = _print_user_errors


def _decorate(fn):
    main = AudiotoolsMain(fn, config_name="config", config_path="../config", version_base="1.3")
    # Dora reads `dir` from the config before any override; the team file / env decide instead.
    main.dora.dir = environment.dora_dir()
    # Grids come from audiotools.grids unless AUDIOTOOLS_GRID_PACKAGE names your own package.
    main.dora.grid_package = os.environ.get("AUDIOTOOLS_GRID_PACKAGE") or None
    if main.dora.grid_package and "grid" in sys.argv[1:4]:  # else Dora's import traceback
        main.dora._grids = environment.grid_package_folder(main.dora.grid_package)
    return main


def train(cfg: DictConfig) -> None:
    """One XP in this process, as `dora run`, each DDP rank, a SLURM task and `audiotools grid`
    run it: validate, seed (offset by rank), threads, distributed init, the solver."""
    from . import distributed
    from .families import build_solver, validate_config
    settings = validate_config(cfg)
    spec = get_distrib_spec()
    xp = get_xp()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    xp_config.check_unchanged(xp.folder, resolved, cfg.dora.exclude, "dora run")
    if _finished(settings):
        logs.setup_logging(get_xp().folder, spec.rank, settings.logging.level)
        logger.info("All %d epochs are done; nothing to run.", settings.optim.epochs)
        return
    from .solvers.loggers import check_wandb_login
    check_wandb_login(settings.logging.wandb.mode)  # before any work, on every launch path
    distributed.seed_everything(settings.seed + spec.rank)
    distributed.set_num_threads(settings.num_threads, spec)
    distributed.init(settings.device)
    build_solver(cfg).run()


def _finished(settings: SolverConfig) -> bool:
    """Whether this XP's epochs are all done, read from its folder before the training stack
    is imported: rerunning a finished XP then costs little more than Dora's own start-up.
    (An early-stopped XP is recognised by the solver, which knows its best metric.)"""
    xp = get_xp()
    if settings.work_after_training() or not (xp.folder / LATEST).exists():
        return False
    return len(load_history(xp.folder)) >= settings.optim.epochs


@_decorate
def main(cfg: DictConfig) -> None:
    _stop_on_signals()
    try:
        train(cfg)
    except AudiotoolsError as error:
        _report(str(error))
        sys.exit(1)
    except KeyboardInterrupt:
        _report(_where_it_resumes(get_xp().folder))
        sys.exit(128 + (_received[0] if _received else signal.SIGINT))


def _where_it_resumes(folder: Path) -> str:
    """The interrupted run's line: from which epoch the same command goes on."""
    if not (folder / LATEST).exists():
        return "interrupted before the first checkpoint; the same command starts the XP again."
    # history.json is written just after the checkpoint, which may be the one ahead.
    done = max([len(load_history(folder)), *(n for n, _ in numbered_checkpoints(folder))])
    if done:
        return (f"interrupted; the same command resumes after epoch {done}, the last one "
                "checkpointed.")
    return "interrupted; the same command resumes from its last checkpoint."


# The signal that stopped a one-process run (its exit status is 128 + it, as the shell's).
_received: list[int] = []


def _stop_on_signals() -> None:
    """SIGTERM (`kill`, a `timeout`) stops a one-process run as Ctrl-C does, so its loggers
    close: W&B offline wrote nothing of a session killed without that. A second signal
    during that cleanup (Ctrl-C twice) stops at once: raised into it, it broke the cleanup
    with a traceback (a DataLoader's shutdown). Checkpoints are whole either way. Not in
    SLURM jobs, where submitit handles the signals, nor in DDP ranks, which may wait in a
    collective that a Python handler would only interrupt when it returns."""
    if "SLURM_JOB_ID" in os.environ or int(os.environ.get("WORLD_SIZE") or 1) > 1:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    _received.clear()  # a process may run several XPs (`audiotools grid`, tests)

    def interrupt(signum: int, frame: object) -> None:
        if _received:
            print("error: interrupted again; stopping now.", file=sys.stderr)
            sys.stderr.flush()
            os._exit(128 + _received[0])
        _received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _report(message: str) -> None:
    """An error line on the console, and in solver.log.0 once logging is set up."""
    if any(getattr(handler, "stream", None) is sys.stderr
           for handler in logging.getLogger().handlers):
        logger.error("%s", message)
    else:
        print(f"error: {message}", file=sys.stderr)
