"""Typed schema of the composed configuration.

Hydra composes YAML; this module checks the result before any heavy work so that a wrong type,
an out-of-range value, an unknown key in a typed section or a missing mandatory value gives one
clear message (key, value, what is allowed) instead of a traceback deep inside training.
A family solver extends `SolverConfig` with its own sections (`model`, `dataset`, ...).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from omegaconf import DictConfig, OmegaConf
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError


class Section(BaseModel):
    """A typed config section: unknown keys are errors, values are checked, nothing coerced
    silently beyond what YAML means (an int where a float is expected is fine)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def unread_settings(section: BaseModel, read: tuple[str, ...], where: str) -> list[str]:
    """`where.key=value` for each key of `section` (but `read`) set away from its default:
    what the section's other choices make it ignore, for the solver to say so."""
    unread = []
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if name in read or value == field.get_default(call_default_factory=True):
            continue
        if isinstance(value, BaseModel):  # a nested section: its keys that differ
            unread += unread_settings(value, (), f"{where}.{name}")
        else:
            unread.append(f"{where}.{name}={value!r}")
    return unread


def keys_but(section: BaseModel, *names: str) -> tuple[str, ...]:
    """The keys of `section` other than `names` (what it reads when only those are unread)."""
    return tuple(name for name in type(section).model_fields if name not in names)


def validate_by_type(value: Any, registry: dict[str, type[Section]]) -> Any:
    """Validate a `{type: ..., ...}` mapping with the section its type names (before
    pydantic's union matching), so that faults read `model.encoder.channels` rather than a
    tagged path, and an unknown type lists the valid ones. Anything else passes through."""
    if not isinstance(value, Mapping):
        return value
    kind = value.get("type")
    if kind not in registry:
        found = "no type" if kind is None else f"unknown type {kind!r}"
        raise ValueError(f"{found}; valid types: {', '.join(registry)}")
    return registry[kind].model_validate(dict(value))


class EMAConfig(Section):
    use: bool = False
    decay: float = Field(0.999, gt=0.0, lt=1.0)
    every: int = Field(1, ge=1)
    # Decay of the t-th EMA update = min(decay, 1 - t^-warmup_power): early updates follow the
    # weights closely (ema_pytorch's warm-up, 0.75 in stable-audio-tools); null: constant decay.
    warmup_power: float | None = Field(None, gt=0.0)
    # Floating buffers: average them with the weights (BatchNorm statistics) or copy the live
    # ones (running estimates such as VQ codebooks).
    buffers: Literal["average", "copy"] = "average"


class OptimConfig(Section):
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(3e-4, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    epochs: int = Field(10, ge=1)
    updates_per_epoch: int | None = Field(None, ge=1)
    accumulation: int = Field(1, ge=1)
    max_norm: float = Field(0.0, ge=0.0)
    ema: EMAConfig = EMAConfig()


class PlateauConfig(Section):
    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    factor: float = Field(0.5, gt=0.0, lt=1.0)
    patience: int = Field(2, ge=0)
    threshold: float = Field(1e-4, ge=0.0)
    min_lr: float = Field(0.0, ge=0.0)


class ScheduleConfig(Section):
    name: Literal["none", "cosine", "linear_warmup", "step", "inverse_sqrt", "inverse",
                  "plateau"] = "none"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    step_size: int = Field(1000, ge=1)
    gamma: float = Field(0.5, gt=0.0, le=1.0)
    # inverse (stable-audio-tools' InverseLR): lr * (1 - exp_warmup^(t+1))
    #   * max(min_lr_ratio, (1 + t / inv_gamma)^-power) at update t.
    inv_gamma: float = Field(1.0, gt=0.0)
    power: float = Field(1.0, ge=0.0)
    exp_warmup: float = Field(0.0, ge=0.0, lt=1.0)
    plateau: PlateauConfig = PlateauConfig()


class EarlyStopConfig(Section):
    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0.0)


class CheckpointConfig(Section):
    keep_last: int = Field(1, ge=0)


class EveryConfig(Section):
    """`every: N` runs the stage on epochs divisible by N (and always on the last); 0 never."""

    every: int = Field(1, ge=0)


class WandbConfig(Section):
    mode: Literal["online", "offline", "disabled"] = "disabled"
    project: str = "audiotools"
    entity: str | None = None
    group: str | None = None


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_updates: int = Field(10, ge=0)
    tensorboard: bool = True
    wandb: WandbConfig = WandbConfig()


class SolverConfig(Section):
    """The keys every solver has (config/config.yaml + config/solver/default.yaml)."""

    solver: str
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    seed: int = Field(42, ge=0)
    num_threads: int | None = Field(None, ge=1)
    continue_from: str | None = None
    # auto: bf16-mixed where the hardware computes in bf16 (a CUDA GPU that supports it, a CPU
    # with AVX-512 BF16 or AMX), else 32.
    precision: Literal["32", "bf16-mixed", "16-mixed", "auto"] = "32"
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    early_stop: EarlyStopConfig = EarlyStopConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    valid: EveryConfig = EveryConfig()
    evaluate: EveryConfig = EveryConfig()
    generate: EveryConfig = EveryConfig()
    logging: LoggingConfig = LoggingConfig()
    # Dora's and SLURM's own sections are checked by Dora and submitit.
    dora: dict[str, Any] = {}
    slurm: dict[str, Any] = {}

    def work_after_training(self) -> bool:
        """Whether a run whose epochs are all done still has work (an upload, say): if not,
        rerunning a finished XP stops before the solver is built."""
        return False

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        """`precision=32` on the command line arrives as an int; it means full precision."""
        return "32" if value == 32 and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _warmup_fits(self) -> SolverConfig:
        if self.schedule.name == "linear_warmup" and self.schedule.warmup_steps == 0:
            raise ValueError("schedule.name=linear_warmup needs schedule.warmup_steps >= 1")
        if self.schedule.name == "plateau" and self.schedule.warmup_steps:
            # ReduceLROnPlateau steps once per valid stage: a warm-up would be dropped silently.
            raise ValueError(f"schedule.warmup_steps={self.schedule.warmup_steps} has no effect "
                             "with schedule.name=plateau (it steps once per valid stage); "
                             "set schedule.warmup_steps=0")
        return self


# A key a rule's message names: `dataset.sample_rate` (a dotted path), or `latent_dim=` (a key of
# the section the rule belongs to, followed by its value).
_NAMED_KEY = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[A-Za-z_]\w*(?==))")


def _path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` without pydantic's validator tags (`function-after[...]`)."""
    return tuple(part for part in loc if not str(part).startswith("function-"))


def _format_location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in _path(loc))


def _lookup(container: Any, loc: tuple[Any, ...]) -> Any:
    value = container
    for part in _path(loc):
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return value


def _is_rule(item: Any, container: dict[str, Any]) -> bool:
    """A fault of a whole section (a rule across its keys), not of one value."""
    return item["type"] == "value_error" and isinstance(_lookup(container, item["loc"]), dict)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The sections an annotation allows: `X`, `X | None`, `X | Y`, `Annotated[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _sections_at(schema: type[BaseModel], loc: tuple[Any, ...],
                 container: Any) -> list[type[BaseModel]]:
    """The schema(s) of the section at `loc`; for a union (`model.encoder`), the member its
    `type:` value in the config names, else every member."""
    models: list[type[BaseModel]] = [schema]
    value = container
    for part in _path(loc):
        value = value.get(part) if isinstance(value, dict) else None
        models = [found for model in models if str(part) in model.model_fields
                  for found in _models_in(model.model_fields[str(part)].annotation)]
        kind = value.get("type") if isinstance(value, dict) else None
        typed = [model for model in models if "type" in model.model_fields
                 and model.model_fields["type"].default == kind]
        models = typed or models
    return models


def _allowed_keys(schema: type[BaseModel], loc: tuple[Any, ...],
                  container: Any = None) -> list[str]:
    """The field names of the (sub)section at `loc`, to suggest what a typo meant; a split
    (`dataset.valid`) or a typed part (`model.encoder`) lists its own."""
    return sorted({name for model in _sections_at(schema, loc, container)
                   for name in model.model_fields})


def _rule_keys(message: str, loc: tuple[Any, ...], schema: type[BaseModel],
               container: dict[str, Any]) -> list[str]:
    """The keys a rule's message names that exist in the schema, as full paths."""
    section = _path(loc)
    keys: list[str] = []
    for name in _NAMED_KEY.findall(message):
        for candidate in (tuple(name.split(".")), (*section, *name.split("."))):
            *parent, leaf = candidate
            if leaf in _allowed_keys(schema, tuple(parent), container):
                key = ".".join(map(str, candidate))
                if key not in keys:
                    keys.append(key)
                break
    return keys


def _describe(item: Any, container: dict[str, Any], schema: type[BaseModel]) -> str:
    """One line for one fault: the key (for a rule, the keys it names), what is wrong."""
    key = _format_location(item["loc"])
    if item["type"] == "extra_forbidden":
        section = _format_location(item["loc"][:-1])
        allowed = _allowed_keys(schema, item["loc"][:-1], container)
        where = f"section '{section}'" if section else "the root config"
        hint = f" Valid keys: {', '.join(allowed)}." if allowed else ""
        return f"  {key}: unknown key in {where}.{hint}"
    if item["type"] == "missing":
        return f"  {key}: missing mandatory value."
    if _is_rule(item, container):
        message = item["msg"].removeprefix("Value error, ")
        label = ", ".join(_rule_keys(message, item["loc"], schema, container)) or key or "config"
        return f"  {label}: {message}."
    message = item["msg"].removeprefix("Value error, ")  # a validator's own words
    return f"  {key} = {_lookup(container, item['loc'])!r}: {message}."


def _without(container: dict[str, Any], locs: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A copy of `container` without the keys at `locs` (the deepest mapping key of each, so
    a bad list element drops its list), which the schema's defaults then fill."""
    pruned = copy.deepcopy(container)
    for loc in locs:
        parent: Any = None
        node: Any = pruned
        last: Any = None
        for part in _path(loc):
            if not (isinstance(node, dict) and part in node):
                break
            parent, last, node = node, part, node[part]
        if parent is not None:
            del parent[last]
    return pruned


def _rules_behind(error: ValidationError, container: dict[str, Any],
                  schema: type[BaseModel]) -> list[Any]:
    """Rule faults that the single-key faults kept from running.

    pydantic checks a section's rules only once its keys are valid, so a bad value elsewhere
    would hide a rule until the next run. Validating again with the faulty keys left to their
    defaults runs those rules; a rule that names a faulty key is dropped (it judged the
    default, not the user's value)."""
    faulty = [_path(item["loc"]) for item in error.errors() if not _is_rule(item, container)]
    if not faulty:
        return []
    repaired = _without(container, faulty)
    try:
        schema.model_validate(repaired)
    except ValidationError as second:
        faulty_keys = [".".join(map(str, loc)) for loc in faulty]
        found = []
        for item in second.errors():
            if not _is_rule(item, repaired):
                continue
            message = item["msg"].removeprefix("Value error, ")
            named = _rule_keys(message, item["loc"], schema, repaired)
            if not any(key == bad or key.startswith(f"{bad}.") or bad.startswith(f"{key}.")
                       for key in named for bad in faulty_keys):
                found.append(item)
        return found
    return []


def format_validation_error(error: ValidationError, container: dict[str, Any],
                            schema: type[BaseModel]) -> str:
    """One message listing every invalid key with its value and what is allowed, and every
    rule across keys that fails, labelled with the keys it names."""
    lines = ["Invalid configuration:"]
    for item in [*error.errors(), *_rules_behind(error, container, schema)]:
        line = _describe(item, container, schema)
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def to_container(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError("Invalid configuration:\n" + "\n".join(
                f"  {key}: missing mandatory value; set it on the command line, e.g. {key}=..."
                for key in missing))
        container = OmegaConf.to_container(cfg, resolve=True)
    else:
        container = dict(cfg)
    assert isinstance(container, dict)
    return {str(key): value for key, value in container.items()}


def validate(cfg: DictConfig | dict[str, Any], schema: type[SolverConfig]) -> SolverConfig:
    """Check `cfg` against `schema`; raise ConfigError with one message listing every fault."""
    container = to_container(cfg)
    container = {key: value for key, value in container.items() if key != "hydra"}
    try:
        return schema.model_validate(container)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, container, schema)) from None


def validate_section(section: Any, schema: type[BaseModel], key: str) -> BaseModel:
    """One section (an export's `model:`, say) checked on its own; faults are named
    `<key>.<field>` as they would be in a whole config."""
    from pydantic import create_model
    if isinstance(section, schema):
        return section
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    wrapper = create_model(f"{schema.__name__}Section", __base__=Section,
                           **{key: (schema, ...)})
    container = {key: section.model_dump() if isinstance(section, BaseModel) else section}
    try:
        return getattr(wrapper.model_validate(container), key)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, container, wrapper)) from None


def missing_value_message(key: str) -> str:
    """What to do about a mandatory key left unset (`solver` lists the recipes)."""
    from .environment import available_recipes
    hint = f"set it on the command line, e.g. {key}=..."
    if key == "solver":
        hint = f"choose a recipe with solver=<recipe>, one of: {', '.join(available_recipes())}"
    return f"Invalid configuration:\n  {key}: missing mandatory value; {hint}."
