"""stable-audio-tools (SAT) autoencoder checkpoints into audiotools autoencoders.

SAT writes an autoencoder's weights "unwrapped" (`unwrap_model.py`: `{"state_dict": ...}` in a
`.ckpt`, or a `.safetensors` state dict) or as a PyTorch Lightning training checkpoint of its
training wrapper (`autoencoder.*`, `autoencoder_ema.ema_model.*`, `discriminator.*`, optimizer
states, ...). Both are read here; a wrapped one is unwrapped on the fly (the EMA weights for
inference, the live weights to continue training) and what is left out is reported.

audiotools' networks use SAT's module names, so keys map one to one, except weight norm, which
comes in three forms: `weight_g`/`weight_v` (torch's old `weight_norm`, SAT 0.0.19),
`parametrizations.weight.original0/1` (the new one) and a plain `weight` (a checkpoint saved
after `remove_weight_norm`). Each is converted to the form the target module has, exactly
(w = g * v / ||v||, and g = ||w||, v = w back). Keys that fit nowhere are reported, never skipped.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _WeightNorm

from ..errors import CheckpointError, ConfigError
from ..io.export import is_export

if TYPE_CHECKING:
    from ..models.autoencoder import AutoencoderConfig

logger = logging.getLogger(__name__)

LIVE_PREFIX = "autoencoder."
EMA_PREFIX = "autoencoder_ema.ema_model."
# A diffusion checkpoint's autoencoder pretransform: wrapped (a diffusion model's, a diffusion
# autoencoder's), then unwrapped.
PRETRANSFORM_PREFIXES = ("diffusion.pretransform.model.", "diffae.pretransform.model.",
                         "pretransform.model.")
ORIGINAL = ("parametrizations.weight.original0", "parametrizations.weight.original1")
OLD = ("weight_g", "weight_v")
WeightNormRemoval = Literal["pre_load", "post_load"]


@dataclass
class SATCheckpoint:
    """An autoencoder state dict (SAT key names) read from an SAT checkpoint file."""

    path: Path
    weights: dict[str, torch.Tensor]
    # How it was found: "state dict", or which weights of a wrapped training checkpoint.
    source: str
    # Tensors of a wrapped checkpoint that are not the autoencoder, by top-level prefix.
    left_out: dict[str, int] = field(default_factory=dict)
    # The model config newer SAT versions embed in their training checkpoints.
    model_config: dict[str, Any] | None = None

    def describe(self) -> str:
        text = f"{self.path}: {len(self.weights)} tensors ({self.source})"
        if self.left_out:
            text += "; left out: " + ", ".join(f"{prefix} ({count} tensors)"
                                               for prefix, count in sorted(self.left_out.items()))
        return text


@dataclass
class LoadReport:
    """What matched between a checkpoint and a model, key by key."""

    loaded: int
    missing: list[str]
    unexpected: list[str]
    wrong_shape: list[str]

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    # Keys shown of each kind: another model's checkpoint misses hundreds (283 keys made a
    # line of 13,500 characters).
    SHOWN: ClassVar[int] = 8

    def __str__(self) -> str:
        parts = [f"{self.loaded} tensors loaded"]
        for title, keys in (("missing from the checkpoint", self.missing),
                            ("not in the model", self.unexpected),
                            ("of another shape", self.wrong_shape)):
            if keys:
                more = f" and {len(keys) - self.SHOWN} more" if len(keys) > self.SHOWN else ""
                parts.append(f"{len(keys)} {title}: {', '.join(keys[:self.SHOWN])}{more}")
        return "; ".join(parts)


def not_fitting(what: str, report: LoadReport) -> CheckpointError:
    """The refusal of weights that do not fit the model their config describes (most often:
    another model's config)."""
    return CheckpointError(f"{what} does not fit the model its config describes: {report}. "
                           "Is the model config the one this checkpoint was trained with?")


def read_checkpoint(path: str | Path, prefer_ema: bool = True) -> SATCheckpoint:
    """The autoencoder weights of an SAT .ckpt / .safetensors (unwrapped or wrapped)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist.")
    if path.suffix == ".safetensors":
        if is_export(path):
            raise CheckpointError(f"{path} is an audiotools export, not a stable-audio-tools "
                                  "checkpoint: use it as it is (no SAT model config needed).")
    return unwrap(load_state(path), path, prefer_ema)


def load_state(path: Path) -> Any:
    """The object a SAT `.ckpt` holds (tensors only), or the tensors of a `.safetensors`."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or unsafe files
        raise CheckpointError(
            f"Cannot read {path} as a checkpoint of tensors ({type(error).__name__}: {error}). "
            "If it holds Python objects, unwrap it with stable-audio-tools' unwrap_model.py "
            "first (it writes a plain state dict).") from None
    return state


def is_sat_state(state: Mapping[str, Any]) -> bool:
    """A loaded checkpoint in SAT's layout: `{"state_dict": ...}` or a flat state dict."""
    return "state_dict" in state or (
        bool(state) and all(isinstance(value, torch.Tensor) for value in state.values()))


def unwrap(state: Any, path: Path, prefer_ema: bool = True) -> SATCheckpoint:
    """The autoencoder state dict inside a loaded SAT checkpoint object."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict.")
    if "xp.cfg" in state:
        raise CheckpointError(f"{path} is an audiotools XP checkpoint, not a stable-audio-tools "
                              "one: give it (or its XP) as it is.")
    model_config = state.get("model_config") if isinstance(state.get("model_config"),
                                                           Mapping) else None
    weights = state.get("state_dict", state)
    tensors = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors (keys: {sorted(weights)[:8]}).")
    wrapped = any(key.startswith((LIVE_PREFIX, EMA_PREFIX)) for key in tensors)
    pretransform = next((prefix for prefix in PRETRANSFORM_PREFIXES
                         if any(key.startswith(prefix) for key in tensors)), None)
    if not wrapped and pretransform is not None:
        chosen = {k[len(pretransform):]: v for k, v in tensors.items()
                  if k.startswith(pretransform)}
        left_out = Counter(k.split(".", 1)[0] for k in tensors if not k.startswith(pretransform))
        return SATCheckpoint(path, chosen, f"the pretransform {pretransform}* of a diffusion "
                             "checkpoint", dict(left_out), model_config)
    if not wrapped:
        return SATCheckpoint(path, tensors, "state dict", model_config=model_config)
    has_ema = any(key.startswith(EMA_PREFIX) for key in tensors)
    prefix = EMA_PREFIX if prefer_ema and has_ema else LIVE_PREFIX
    chosen = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not chosen:
        raise CheckpointError(f"{path} is a training checkpoint without autoencoder weights "
                              f"({prefix}*); is it a stable-audio-tools autoencoder run?")
    left_out = Counter(_top_prefix(k, prefix == EMA_PREFIX) for k in tensors
                       if not k.startswith(prefix))
    kind = "EMA weights" if prefix == EMA_PREFIX else "live (non-EMA) weights"
    return SATCheckpoint(path, chosen, f"{kind} {prefix}* of a wrapped training checkpoint",
                         dict(left_out), model_config)


def _top_prefix(key: str, ema_chosen: bool) -> str:
    if key.startswith(LIVE_PREFIX) and ema_chosen:
        return "autoencoder (live weights)"
    if key.startswith(EMA_PREFIX):
        return "autoencoder_ema (EMA weights)"
    return key.split(".", 1)[0]


# ------------------------------------------------------------------ weight norm forms
def _split(key: str) -> tuple[str, str] | None:
    """(module prefix, weight form) of a weight key, None for any other key."""
    for suffix in (*ORIGINAL, *OLD, "weight"):
        if key == suffix or key.endswith("." + suffix):
            return key[:len(key) - len(suffix)], suffix
    return None


def _norm_dim(g: torch.Tensor) -> int:
    """The dim weight norm kept: the only one where the magnitude `g` is not of size 1."""
    sizes = [i for i, size in enumerate(g.shape) if size != 1]
    return sizes[0] if sizes else 0


def _module_norm_dim(model: nn.Module, prefix: str) -> int:
    module = model.get_submodule(prefix.rstrip("."))
    for item in module.parametrizations.weight:
        if isinstance(item, _WeightNorm):
            return item.dim
    raise CheckpointError(f"{prefix}weight is parametrized but not weight-normalised.")


def _convert(prefix: str, parts: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
             model: nn.Module) -> dict[str, torch.Tensor]:
    """One module's weight in the form `own` expects (its keys unchanged if none fits)."""
    if all(form in parts for form in OLD):
        magnitude, direction = parts[OLD[0]], parts[OLD[1]]
    elif all(form in parts for form in ORIGINAL):
        magnitude, direction = parts[ORIGINAL[0]], parts[ORIGINAL[1]]
    elif set(parts) == {"weight"}:
        magnitude, direction = None, parts["weight"]
    else:
        return {prefix + form: value for form, value in parts.items()}
    if prefix + ORIGINAL[0] in own:
        if magnitude is None:
            magnitude = torch.norm_except_dim(direction, 2, _module_norm_dim(model, prefix))
        return {prefix + ORIGINAL[0]: magnitude, prefix + ORIGINAL[1]: direction}
    if prefix + "weight" in own:
        if magnitude is None:
            return {prefix + "weight": direction}
        return {prefix + "weight": torch._weight_norm(direction, magnitude,
                                                      _norm_dim(magnitude))}
    return {prefix + form: value for form, value in parts.items()}


def _fits(own: torch.Size, given: torch.Size) -> bool:
    """Same shape, or torch's own allowance: a (1,) tensor into a 0-dim one (older
    vector-quantize-pytorch stores its `initted` flags as (1,))."""
    return own == given or (len(own) == 0 and tuple(given) == (1,))


def match_weights(weights: Mapping[str, torch.Tensor], model: nn.Module,
                  ) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """`weights` renamed to `model`'s keys and weight-norm form, and what did not match.

    The returned dict keeps unmatched keys as they came (so a caller that loads leniently
    still sees them as unexpected)."""
    own = model.state_dict()
    groups: dict[str, dict[str, torch.Tensor]] = {}
    converted: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        split = _split(key)
        if split is None:
            converted[key] = value
        else:
            groups.setdefault(split[0], {})[split[1]] = value
    for prefix, parts in groups.items():
        converted.update(_convert(prefix, parts, own, model))
    wrong_shape = sorted(k for k, v in converted.items()
                         if k in own and not _fits(own[k].shape, v.shape))
    report = LoadReport(
        loaded=sum(1 for k in converted if k in own and k not in wrong_shape),
        missing=sorted(set(own) - set(converted)),
        unexpected=sorted(set(converted) - set(own)), wrong_shape=wrong_shape)
    return converted, report


def remove_weight_norm(module: nn.Module) -> int:
    """Fold weight norm into plain weights (same outputs, no norm to recompute); modules
    without weight norm are left alone. Returns how many were folded."""
    folded = 0
    for child in module.modules():
        if parametrize.is_parametrized(child, "weight") and any(
                isinstance(item, _WeightNorm) for item in child.parametrizations.weight):
            parametrize.remove_parametrizations(child, "weight", leave_parametrized=True)
            folded += 1
    return folded


def load_into(model: nn.Module, checkpoint: SATCheckpoint,
              remove_norm: WeightNormRemoval | None = None) -> LoadReport:
    """Load every tensor of `checkpoint` into `model`, or raise CheckpointError listing what
    does not fit. `remove_norm` folds weight norm before (pre_load) or after (post_load)."""
    if remove_norm not in (None, "pre_load", "post_load"):  # any other was ignored in silence
        raise ConfigError(f"remove_norm={remove_norm!r}: use 'pre_load', 'post_load' or None.")
    if remove_norm == "pre_load":
        remove_weight_norm(model)
    converted, report = match_weights(checkpoint.weights, model)
    if not report.complete:
        raise not_fitting(f"{checkpoint.describe()}:", report)
    model.load_state_dict(converted)
    if remove_norm == "post_load":
        remove_weight_norm(model)
    logger.info("Loaded %s: %s.", checkpoint.describe(), report)
    return report


def load_autoencoder(checkpoint: str | Path, model_config: str | Path | Mapping[str, Any] | None
                     = None, remove_norm: WeightNormRemoval | None = None,
                     prefer_ema: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """The audiotools autoencoder (eval mode) of an SAT checkpoint and its SAT model config
    (a JSON path or its content; optional when the checkpoint embeds it)."""
    _, model = load_with_architecture(checkpoint, model_config, remove_norm, prefer_ema)
    return model.to(device).eval()


def load_with_architecture(checkpoint: str | Path,
                           model_config: str | Path | Mapping[str, Any] | None = None,
                           remove_norm: WeightNormRemoval | None = None,
                           prefer_ema: bool = True) -> tuple[AutoencoderConfig, nn.Module]:
    """The audiotools `model:` section an SAT checkpoint converts to, and the model built from
    it with the checkpoint's weights loaded."""
    from ..models.autoencoder import build_autoencoder
    from .model import load_architecture
    found = read_checkpoint(checkpoint, prefer_ema)
    config = model_config if model_config is not None else found.model_config
    if config is None:
        raise CheckpointError(
            f"{checkpoint} does not embed its model config: give the stable-audio-tools model "
            "config JSON it was trained with (--sat-model-config / sat_model_config=).")
    architecture = load_architecture(config)
    model = build_autoencoder(architecture)
    load_into(model, found, remove_norm)
    return architecture, model
