"""Find the solver class a config names and check the config against that solver's schema."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from ..config import SolverConfig, to_container, validate
from ..environment import config_dirs
from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import StandardSolver

# Family name -> "module:Class". A config may also name any importable "module:Class".
SOLVERS: dict[str, str] = {
    "autoencoder": "audiotools.solvers.autoencoder:AutoencoderSolver",
    "classifier": "audiotools.solvers.classifier:ClassifierSolver",
}


def available_recipes() -> list[str]:
    """Recipe names usable as `solver=<name>` (config/solver/<family>/<recipe>.yaml)."""
    names = set()
    for config_dir in config_dirs():
        root = config_dir / "solver"
        names.update(str(p.relative_to(root).with_suffix("")) for p in root.glob("*/*.yaml"))
    return sorted(names)


def missing_value_message(key: str) -> str:
    hint = f"set it on the command line, e.g. {key}=..."
    if key == "solver":
        hint = f"choose a recipe with solver=<recipe>, one of: {', '.join(available_recipes())}"
    return f"Invalid configuration:\n  {key}: missing mandatory value; {hint}."


def solver_class(name: str) -> type[StandardSolver]:
    from .base import StandardSolver
    target = SOLVERS.get(name, name)
    if ":" not in target:
        raise ConfigError(
            f"solver={name!r}: unknown solver. Registered: {', '.join(sorted(SOLVERS)) or 'none'}"
            "; or give an importable 'package.module:ClassName'. "
            f"Recipes (solver=<recipe>): {', '.join(available_recipes())}.")
    module_name, class_name = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"solver={name!r}: cannot import module {module_name!r}: {error}.") \
            from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, StandardSolver)):
        raise ConfigError(f"solver={name!r}: {target} is not a StandardSolver subclass.")
    return cls


def validate_config(cfg: DictConfig) -> SolverConfig:
    """Check the whole config against the schema of the solver it names."""
    if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, "solver"):
        raise ConfigError(missing_value_message("solver"))
    container = to_container(cfg)
    return validate(container, solver_class(str(container["solver"])).config_schema)


def get_solver(cfg: DictConfig) -> StandardSolver:
    return solver_class(cfg.solver)(cfg)
