"""The one registry of model families.

A family is everything audiotools knows about one kind of model: the solver that trains it,
the schema of its whole config, the schema of its `model:` section (what an export embeds),
the function that builds the model from that section, and the inference pipeline that wraps
a built model. Training (`dora run`), export, `audiotools.load`, `continue_from`, the commands
and the stable-audio-tools conversion all look a family up here; adding a family is its own
modules plus one entry in `FAMILIES`.

Entries name their parts as "module:attribute" strings, imported on first use, so that
importing this module (every command does) costs nothing, and inference never imports the
training stack (flashy, dora, the loggers, the solvers).
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import torch
    from omegaconf import DictConfig
    from pydantic import BaseModel

    from .config import SolverConfig
    from .solvers.base import StandardSolver


def import_object(target: str) -> Any:
    """The attribute `name` of module `module` for a "module:name" string."""
    module_name, _, name = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no attribute {name!r}") from None


@dataclass(frozen=True)
class Family:
    """One model family; each part is a "module:attribute" imported when first used."""

    name: str
    # The StandardSolver subclass: imported only to train.
    solver: str
    # The schema of the whole composed config (kept apart from the solver, so a config is
    # checked, and a finished XP recognised, without importing the training stack).
    config_schema: str
    # The schema of the `model:` section, the part an export embeds to rebuild the model.
    model_schema: str
    # (validated model section) -> torch.nn.Module with the export's "model" weights.
    build_model: str
    # The inference pipeline class: `Pipeline.from_model(model, export)`.
    pipeline: str
    # stable-audio-tools `model_type`s that convert into this family (audiotools.sat).
    sat_model_types: tuple[str, ...] = field(default=())
    # The web UI's tab for one of its models: (pipeline, UIContext, name) -> None, building
    # Gradio components (audiotools.ui); None: the family has no tab.
    ui_tab: str | None = None
    # Whether its models are codecs (audiotools.models.codec): what `load_codec` accepts as a
    # pretransform or tokenizer.
    codec: bool = False

    def solver_class(self) -> type[StandardSolver]:
        return import_object(self.solver)

    def config_class(self) -> type[SolverConfig]:
        return import_object(self.config_schema)

    def model_config(self, section: Mapping[str, Any], source: str) -> BaseModel:
        """`section` checked against the family's model schema; faults name `source`."""
        from .config import validate_section
        try:
            return validate_section(section, import_object(self.model_schema), "model")
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    def new_model(self, section: Mapping[str, Any], source: str) -> torch.nn.Module:
        return import_object(self.build_model)(self.model_config(section, source))

    def pipeline_class(self) -> Any:
        return import_object(self.pipeline)

    def ui_tab_builder(self) -> Any:
        if self.ui_tab is None:
            raise ConfigError(f"The {self.name} family has no web UI tab.")
        return import_object(self.ui_tab)


def _by_name(*families: Family) -> dict[str, Family]:
    """The registry; a second family of one name is refused (a dict would keep the last)."""
    names = [family.name for family in families]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"families declared twice: {', '.join(repeated)}")
    return {family.name: family for family in families}


FAMILIES: dict[str, Family] = _by_name(
    Family(
        name="autoencoder",
        solver="audiotools.solvers.autoencoder:AutoencoderSolver",
        config_schema="audiotools.solvers.autoencoder_config:AutoencoderSolverConfig",
        model_schema="audiotools.models.autoencoder.config:AutoencoderConfig",
        build_model="audiotools.models.autoencoder:build_autoencoder",
        pipeline="audiotools.inference.autoencoder:AutoencoderPipeline",
        ui_tab="audiotools.ui.codec:autoencoder_tab",
        sat_model_types=("autoencoder",),
        codec=True,
    ),
    Family(
        name="classifier",
        solver="audiotools.solvers.classifier:ClassifierSolver",
        config_schema="audiotools.solvers.classifier_config:ClassifierConfig",
        model_schema="audiotools.models.cnn:CNNConfig",
        build_model="audiotools.models.cnn:build_cnn",
        pipeline="audiotools.inference.classifier:ClassifierPipeline",
        ui_tab="audiotools.ui.classification:classifier_tab",
    ),
    Family(
        name="diffusion",
        solver="audiotools.solvers.diffusion:DiffusionSolver",
        config_schema="audiotools.solvers.diffusion_config:DiffusionSolverConfig",
        model_schema="audiotools.models.diffusion.config:DiffusionModelConfig",
        build_model="audiotools.models.diffusion:build_diffusion_model",
        pipeline="audiotools.inference.diffusion:DiffusionPipeline",
        ui_tab="audiotools.ui.generation:diffusion_tab",
        sat_model_types=("diffusion_uncond", "diffusion_cond", "diffusion_cond_inpaint",
                         "diffusion_autoencoder"),
    ),
    Family(
        name="musicgen",
        solver="audiotools.solvers.musicgen:MusicGenSolver",
        config_schema="audiotools.solvers.musicgen_config:MusicGenSolverConfig",
        model_schema="audiotools.models.lm.config:LMConfig",
        build_model="audiotools.models.lm:build_lm",
        pipeline="audiotools.inference.musicgen:MusicGenPipeline",
        ui_tab="audiotools.ui.generation:musicgen_tab",
    ),
)

# Readers of other tools' checkpoints, tried in turn for a file that is neither an audiotools
# export nor an XP checkpoint (see audiotools.io.loading.ForeignFormat).
FOREIGN_FORMATS: tuple[str, ...] = (
    "audiotools.sat.loading:SAT_FORMAT",
    "audiotools.audiocraft.loading:AUDIOCRAFT_FORMAT",
)


def get_family(name: str, source: str = "solver") -> Family:
    """The family `name`; an unknown name is an error listing the known ones."""
    family = FAMILIES.get(name)
    if family is None:
        raise ConfigError(f"{source}={name!r}: no such model family; known families: "
                          f"{', '.join(sorted(FAMILIES))}.")
    return family


def family_for_sat_model_type(model_type: str) -> Family:
    """The family a stable-audio-tools `model_type` converts into."""
    for family in FAMILIES.values():
        if model_type in family.sat_model_types:
            return family
    supported = sorted(kind for family in FAMILIES.values() for kind in family.sat_model_types)
    raise ConfigError(f"stable-audio-tools model_type={model_type!r} has no audiotools family; "
                      f"supported: {', '.join(supported)}.")


# ------------------------------------------------------------------ solvers from configs
def solver_class(name: str) -> type[StandardSolver]:
    """The solver of a config's `solver:` value: a family name or "package.module:Class"."""
    from .environment import available_recipes
    from .solvers.base import StandardSolver
    if name in FAMILIES:
        return FAMILIES[name].solver_class()
    if ":" not in name:
        raise ConfigError(
            f"solver={name!r}: unknown solver. Families: {', '.join(sorted(FAMILIES))}; or "
            "give an importable 'package.module:ClassName'. "
            f"Recipes (solver=<recipe>): {', '.join(available_recipes())}.")
    try:
        cls = import_object(name)
    except ImportError as error:
        raise ConfigError(f"solver={name!r}: cannot import module "
                          f"{name.partition(':')[0]!r}: {error}.") from None
    if not (isinstance(cls, type) and issubclass(cls, StandardSolver)):
        raise ConfigError(f"solver={name!r} is not a StandardSolver subclass.")
    return cls


def config_schema(name: str) -> type[SolverConfig]:
    """The schema a config with `solver: name` is checked against; for a registered family
    without importing its solver."""
    if name in FAMILIES:
        return FAMILIES[name].config_class()
    return solver_class(name).config_schema


def validate_config(cfg: DictConfig | Mapping[str, Any]) -> SolverConfig:
    """Check the whole config against the schema of the solver it names."""
    from omegaconf import DictConfig, OmegaConf

    from .config import missing_value_message, to_container, validate
    if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, "solver"):
        raise ConfigError(missing_value_message("solver"))
    container = to_container(cfg)
    return validate(container, config_schema(str(container["solver"])))


def build_solver(cfg: DictConfig) -> StandardSolver:
    return solver_class(str(cfg.solver))(cfg)
