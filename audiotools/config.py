"""Typed schema of the composed configuration.

Hydra composes YAML; this module checks the result before any heavy work so that a wrong type,
an out-of-range value, an unknown key in a typed section or a missing mandatory value gives one
clear message (key, value, what is allowed) instead of a traceback deep inside training.
A family solver extends `SolverConfig` with its own sections (`model`, `dataset`, ...).
"""
from __future__ import annotations

from typing import Any, Literal

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


class OpenSection(BaseModel):
    """A section whose keys belong to a component (a model's architecture, say)."""

    model_config = ConfigDict(extra="allow")


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

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        """`precision=32` on the command line arrives as an int; it means full precision."""
        return "32" if value == 32 and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _warmup_fits(self) -> SolverConfig:
        if self.schedule.name == "linear_warmup" and self.schedule.warmup_steps == 0:
            raise ValueError("schedule.name=linear_warmup needs schedule.warmup_steps >= 1")
        return self


def _format_location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def _lookup(container: Any, loc: tuple[Any, ...]) -> Any:
    value = container
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return value


def format_validation_error(error: ValidationError, container: dict[str, Any],
                            schema: type[BaseModel]) -> str:
    """One message listing every invalid key with its value and what is allowed."""
    lines = ["Invalid configuration:"]
    for item in error.errors():
        key = _format_location(item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            section = _format_location(item["loc"][:-1])
            model_fields = _allowed_keys(schema, item["loc"][:-1])
            where = f"section '{section}'" if section else "the root config"
            hint = f" Valid keys: {', '.join(model_fields)}." if model_fields else ""
            lines.append(f"  {key}: unknown key in {where}.{hint}")
        elif item["type"] == "missing":
            lines.append(f"  {key}: missing mandatory value.")
        else:
            value = _lookup(container, item["loc"])
            if isinstance(value, dict):  # a rule across keys of a section: the rule says it
                message = item["msg"].removeprefix("Value error, ")
                lines.append(f"  {key}: {message}.")
            else:
                lines.append(f"  {key} = {value!r}: {item['msg']}.")
    return "\n".join(lines)


def _allowed_keys(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (sub)section at `loc`, to suggest what a typo meant."""
    model: Any = schema
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        if field is None:
            return []
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    return []


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
