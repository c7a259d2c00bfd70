"""Where things live on this cluster: team settings and the special path prefixes.

A team file `teams/<team>.yaml` (team from AUDIOTOOLS_TEAM, default `default`) in the project's
config tree or the user's (AUDIOTOOLS_CONFIG_PATH) says where XPs go, where reference data lives
and the SLURM defaults. `//reference/...` and `//sig/SIG/...`
resolve through it everywhere a configured path is read.
"""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
# Small real datasets that ship with the package: `//datasets/<name>`.
DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
REFERENCE_PREFIX = "//reference/"
SIG_PREFIX = "//sig/"
RECIPE_PREFIX = "//recipe/"
DATASETS_PREFIX = "//datasets/"


def config_dirs() -> list[Path]:
    """The project's config tree, then the user's own from AUDIOTOOLS_CONFIG_PATH (file://)."""
    extra = os.environ.get("AUDIOTOOLS_CONFIG_PATH", "")
    dirs = [CONFIG_DIR]
    if extra.startswith("file://"):
        dirs.append(Path(extra[len("file://"):]))
    return dirs


def check_user_config_tree() -> None:
    """Refuse files of the user's tree (AUDIOTOOLS_CONFIG_PATH) that have the path of one of
    the project's: Hydra reads the project's tree first, so such a file is never read and the
    run would use the shipped one in silence. Team files are exempt: the user's is meant to win
    (`team_file`), and Hydra does not compose them."""
    dirs = config_dirs()
    if len(dirs) < 2 or dirs[1].resolve() == CONFIG_DIR.resolve():
        return
    user = dirs[1]
    shadowed = sorted(str(path.relative_to(user)) for path in user.rglob("*.yaml")
                      if path.relative_to(user).parts[0] != "teams"
                      and (CONFIG_DIR / path.relative_to(user)).exists())
    if shadowed:
        raise ConfigError(
            f"AUDIOTOOLS_CONFIG_PATH={user}: {', '.join(shadowed)} "
            f"{'has' if len(shadowed) == 1 else 'have'} the name of a file of the project's "
            f"config tree ({CONFIG_DIR}), which Hydra reads first, so "
            f"{'it' if len(shadowed) == 1 else 'they'} would never be used. Rename "
            f"{'it' if len(shadowed) == 1 else 'them'} (e.g. solver/<family>/my_<recipe>.yaml) "
            "and refer to the new name.")


def check_recipe_header(recipe: str) -> None:
    """A recipe file (solver/<name>.yaml) opens with `# @package _global_`: without it Hydra
    nests its keys under `solver:`, and the run fails on `solver` being a mapping, or on an
    override of its defaults, far from the cause."""
    for folder in config_dirs():
        path = folder / "solver" / f"{recipe}.yaml"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as file:
            for line in file:
                if not line.lstrip().startswith("#"):
                    break
                if line.strip().replace(" ", "") == "#@package_global_":
                    return
        raise ConfigError(f"{path}: a recipe's first line is `# @package _global_` (its keys are "
                          "the whole config's, as every shipped recipe has); add it.")


def available_recipes() -> list[str]:
    """Recipe names usable as `solver=<name>` (config/solver/<family>/<recipe>.yaml).

    A family's `default.yaml` is the base its recipes start from, not a run of its own (it
    names no data or leaves mandatory keys unset), so it is not offered."""
    names = set()
    for config_dir in config_dirs():
        root = config_dir / "solver"
        names.update(str(p.relative_to(root).with_suffix("")) for p in root.glob("*/*.yaml")
                     if p.stem != "default")
    return sorted(names)


def team_name() -> str:
    return os.environ.get("AUDIOTOOLS_TEAM", "default")


def team_file(team: str | None = None) -> Path:
    """`teams/<team>.yaml` from the user's config tree (AUDIOTOOLS_CONFIG_PATH) if it has one,
    else from the project's: a cluster's team file can live outside this repository."""
    team = team or team_name()
    candidates = [folder / "teams" / f"{team}.yaml" for folder in reversed(config_dirs())]
    for path in candidates:
        if path.exists():
            return path
    known = sorted({p.stem for folder in config_dirs() for p in (folder / "teams").glob("*.yaml")})
    raise ConfigError(
        f"AUDIOTOOLS_TEAM={team!r}: no team file {' or '.join(map(str, candidates))}. "
        f"Known teams: {', '.join(known)}.")


@cache
def _team_settings(team: str) -> dict[str, Any]:
    path = team_file(team)
    settings = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(settings, dict):
        raise ConfigError(f"Team file {path} must hold a mapping, got {type(settings)}.")
    return settings


def team_settings() -> dict[str, Any]:
    """The current team's settings as a plain dict."""
    return _team_settings(team_name())


def _absolute(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def dora_dir() -> Path:
    """Where XPs live: AUDIOTOOLS_DORA_DIR, else the team's `dora_dir`, else ./outputs.

    The team file is read even when the variable is set, so that a misspelt AUDIOTOOLS_TEAM
    is an error here rather than a cluster's SLURM settings silently missing later."""
    settings = team_settings()
    value = os.environ.get("AUDIOTOOLS_DORA_DIR") or settings.get("dora_dir") or "outputs"
    return _absolute(value)


def reference_dir() -> Path:
    """Root of shared reference data: AUDIOTOOLS_REFERENCE_DIR, else the team's `reference_dir`
    (the team file is read either way, as for `dora_dir`)."""
    settings = team_settings()
    value = (os.environ.get("AUDIOTOOLS_REFERENCE_DIR")
             or settings.get("reference_dir") or "reference")
    return _absolute(value)


def slurm_defaults() -> dict[str, Any]:
    """SLURM settings of the team (partition, setup lines, ...), applied under the grid's own."""
    return dict(team_settings().get("slurm") or {})


def xp_folder(sig: str) -> Path:
    return dora_dir() / "xps" / sig


def recipe_xp_folder(recipe: str) -> Path:
    """The folder of the XP that `dora run solver=<recipe>` trains (its signature computed
    from the recipe as Dora would); an XP not trained yet is an error that says how to train
    it. Imports Dora and Hydra, so only a `//recipe/` path pays for them."""
    from hydra.core.global_hydra import GlobalHydra

    from .train import main
    # Inside a running XP (`dora run`) Hydra is initialised and refuses to compose another
    # config: compose this one beside it, then put the running one back.
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        xp = main.get_xp([f"solver={recipe}"])
    finally:
        GlobalHydra.instance().clear()
        if running is not None:
            GlobalHydra.instance().initialize(running)
    if not (xp.folder / "checkpoint.th").exists():
        raise ConfigError(
            f"{RECIPE_PREFIX}{recipe} is XP {xp.sig}, which has not been trained here "
            f"({xp.folder} has no checkpoint). Train it first: dora run solver={recipe}")
    return xp.folder


def resolve_path(path: str | os.PathLike) -> Path:
    """Resolve `//reference/x`, `//sig/SIG[/x]`, `//recipe/<family>/<recipe>` (that recipe's
    trained XP), `//datasets/x`, `~` and relative paths to an absolute path."""
    text = str(path)
    if text.startswith(RECIPE_PREFIX):
        return recipe_xp_folder(text[len(RECIPE_PREFIX):])
    if text.startswith(DATASETS_PREFIX):
        return DATASETS_DIR / text[len(DATASETS_PREFIX):]
    if text.startswith(REFERENCE_PREFIX):
        return reference_dir() / text[len(REFERENCE_PREFIX):]
    if text.startswith(SIG_PREFIX):
        sig, _, rest = text[len(SIG_PREFIX):].partition("/")
        if not sig:
            raise ConfigError(f"{text!r}: expected //sig/SIG or //sig/SIG/path.")
        folder = xp_folder(sig)
        return folder / rest if rest else folder
    return _absolute(text)


def check_grid_package(name: str) -> Any:
    """AUDIOTOOLS_GRID_PACKAGE names a package Python can import (its own imports aside);
    its module spec."""
    import importlib.util
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent package is missing
        spec = None
    if spec is None:
        raise ConfigError(f"AUDIOTOOLS_GRID_PACKAGE={name}: no such importable package (put "
                          "its folder on PYTHONPATH, or leave the variable unset for "
                          "audiotools.grids).")
    return spec


def grid_package_folder(name: str) -> str:
    """Where Dora keeps the grids of the grid package `name`: `grids/<name>-<hash of its
    folder>`. Dora keys a grid's folder by the grid's name alone, and a grid of that name
    from another package (another user's `mygrids.sweep` in a shared dora dir) cancelled this
    one's running jobs as no longer required."""
    import hashlib
    spec = check_grid_package(name)
    where = [*(spec.submodule_search_locations or []), spec.origin or ""][0]
    digest = hashlib.sha1(str(Path(where).resolve()).encode()).hexdigest()[:8]
    return f"grids/{name}-{digest}"
