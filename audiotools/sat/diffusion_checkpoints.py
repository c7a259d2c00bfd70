"""stable-audio-tools diffusion checkpoints into audiotools' DiffusionModel, conditioners and
frozen codec.

SAT saves its diffusion wrapper's state dict unwrapped (`unwrap_model.py`: the network under
`model.model.`, the conditioners under `conditioner.conditioners.<id>.`, the pretransform under
`pretransform.model.`) or inside a Lightning training checkpoint of its training wrapper (the
same under `diffusion.`, and the EMA copy of the network under `diffusion_ema.ema_model.model.`).
A diffusion autoencoder keeps its DiT under `diffusion.model.` and its encoder (and bottleneck)
under `encoder.`; its training wrapper holds it as `diffae.` and an EMA copy of all of it as
`diffae_ema.ema_model.` (LAYOUTS). The DiT's keys map by the table in
audiotools/models/diffusion/dit.py, the encoder's one to one (weight norm converted, as for an
autoencoder), the conditioners' by CONDITIONER_KEYS; a SAT conditioner whose output projection
is the identity (its width is cond_dim already) gets an identity projection here, so its
outputs are SAT's.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoints import LoadReport, load_state, match_weights, not_fitting

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class Layout:
    """Where one SAT state dict layout keeps each part (key prefixes)."""

    network: str
    conditioners: str | None
    # The parent of a diffusion autoencoder's `encoder.` and `bottleneck.` (None: it has none).
    encoder: str | None
    pretransform: str


# (unwrapped, wrapped live, wrapped EMA) layouts of SAT's diffusion models, and of its diffusion
# autoencoder (whose training wrapper keeps an EMA of the whole model; its frozen pretransform
# is read from the live copy).
LAYOUTS = {
    "diffusion": (
        Layout("model.model.", "conditioner.conditioners.", None, "pretransform.model."),
        Layout("diffusion.model.model.", "diffusion.conditioner.conditioners.", None,
               "diffusion.pretransform.model."),
        Layout("diffusion_ema.ema_model.model.", "diffusion.conditioner.conditioners.", None,
               "diffusion.pretransform.model.")),
    "diffusion_autoencoder": (
        Layout("diffusion.model.", None, "", "pretransform.model."),
        Layout("diffae.diffusion.model.", None, "diffae.", "diffae.pretransform.model."),
        Layout("diffae_ema.ema_model.diffusion.model.", None, "diffae_ema.ema_model.",
               "diffae.pretransform.model.")),
}
# The parts of a diffusion autoencoder's encoder, by their prefix in SAT and here.
ENCODER_PARTS = ("encoder.", "bottleneck.")
# SAT conditioner parameter names -> ours, by our conditioner type.
CONDITIONER_KEYS = {
    "number": {"embedder.embedding.0.weights": "fourier.frequencies",
               "embedder.embedding.1.weight": "proj.weight",
               "embedder.embedding.1.bias": "proj.bias"},
    "int": {"int_embedder.weight": "table.weight"},
    "options": {"embedder.weight": "table.weight"},
    "text": {"proj_out.weight": "proj.weight", "proj_out.bias": "proj.bias"},
}


def dit_key(name: str) -> str | None:
    """Our DiT key for a SAT DiffusionTransformer key (None: a SAT-only buffer)."""
    if name.endswith("rotary_pos_emb.inv_freq") or name.endswith("_norm.beta"):
        return None
    return (name.replace("_norm.gamma", "_norm.weight").replace(".ff.ff.0.proj.", ".ff.proj_in.")
            .replace(".ff.ff.2.", ".ff.proj_out."))


@dataclass
class SATDiffusionCheckpoint:
    """A SAT diffusion checkpoint split into its parts (SAT key names within each part)."""

    path: Path
    network: dict[str, torch.Tensor]
    conditioners: dict[str, dict[str, torch.Tensor]]  # by conditioner id
    pretransform: dict[str, torch.Tensor]
    source: str
    left_out: dict[str, int] = field(default_factory=dict)
    model_config: dict[str, Any] | None = None
    # A diffusion autoencoder's `encoder.*` and `bottleneck.*` tensors.
    encoder: dict[str, torch.Tensor] = field(default_factory=dict)

    def model_weights(self) -> dict[str, torch.Tensor]:
        """The tensors of our DiffusionModel (its network under `model.`, a diffusion
        autoencoder's encoder and bottleneck), the encoder's weight norm in SAT's form."""
        return {**{f"model.{key}": value for key, value in self.network.items()},
                **self.encoder}

    def describe(self) -> str:
        text = f"{self.path}: {len(self.network)} network tensors ({self.source})"
        if self.left_out:
            text += "; left out: " + ", ".join(f"{prefix} ({count} tensors)"
                                               for prefix, count in sorted(self.left_out.items()))
        return text


def _under(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def read_diffusion_checkpoint(path: str | Path, prefer_ema: bool = True,
                              ) -> SATDiffusionCheckpoint:
    """The parts of a SAT diffusion `.ckpt`/`.safetensors` (unwrapped or wrapped): the EMA
    network of a training checkpoint when `prefer_ema` and it has one, else the live one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist.")
    state = load_state(path)
    model_config = state.get("model_config") if isinstance(state.get("model_config"),
                                                           Mapping) else None
    weights = state.get("state_dict", state)
    tensors = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    kind = _kind(tensors)
    unwrapped, live, ema = LAYOUTS[kind]
    wrapped = any(key.startswith(live.network) for key in tensors)
    has_ema = any(key.startswith(ema.network) for key in tensors)
    layout = (ema if prefer_ema and has_ema else live) if wrapped else unwrapped
    network = _under(tensors, layout.network)
    if not network:
        raise CheckpointError(f"{path} holds no diffusion network ({layout.network}*); is it a "
                              "stable-audio-tools diffusion checkpoint?")
    conditioners: dict[str, dict[str, torch.Tensor]] = {}
    if layout.conditioners:
        for key, value in _under(tensors, layout.conditioners).items():
            ident, _, name = key.partition(".")
            conditioners.setdefault(ident, {})[name] = value
    encoder: dict[str, torch.Tensor] = {}
    encoder_prefixes: tuple[str, ...] = ()
    if layout.encoder is not None:
        encoder_prefixes = tuple(layout.encoder + part for part in ENCODER_PARTS)
        encoder = {key[len(layout.encoder):]: value for key, value in tensors.items()
                   if key.startswith(encoder_prefixes)}
    used = tuple(prefix for prefix in (layout.network, layout.conditioners, layout.pretransform,
                                       *encoder_prefixes) if prefix)
    left_out = Counter(".".join(key.split(".", 2)[:2]) for key in tensors
                       if not key.startswith(used))
    if wrapped:
        which = "EMA" if layout is ema else "live (non-EMA)"
        source = f"{which} weights {layout.network}* of a wrapped training checkpoint"
    else:
        source = "unwrapped state dict"
    return SATDiffusionCheckpoint(path, {k: v for k, v in ((dit_key(k), v)
                                                           for k, v in network.items()) if k},
                                  conditioners, _under(tensors, layout.pretransform), source,
                                  dict(left_out), model_config, encoder)


def _kind(tensors: Mapping[str, torch.Tensor]) -> str:
    """Which LAYOUTS a SAT state dict is in: a diffusion autoencoder's is held as `diffae`
    (wrapped), or has its encoder or its DiT (`diffusion.model.`, where a wrapped diffusion
    model has `diffusion.model.model.`) at the top."""
    def autoencoder(key: str) -> bool:
        return key.startswith(("diffae.", "encoder.")) or (
            key.startswith("diffusion.model.") and not key.startswith("diffusion.model.model."))
    return "diffusion_autoencoder" if any(map(autoencoder, tensors)) else "diffusion"


def _strict(module: nn.Module, weights: Mapping[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    report = LoadReport(
        loaded=sum(1 for k in weights if k in own and own[k].shape == weights[k].shape),
        missing=sorted(set(own) - set(weights)), unexpected=sorted(set(weights) - set(own)),
        wrong_shape=sorted(k for k in weights if k in own and own[k].shape != weights[k].shape))
    if not report.complete:
        raise not_fitting(what, report)
    module.load_state_dict(dict(weights))


def conditioner_weights(kind: str, weights: Mapping[str, torch.Tensor],
                        conditioner: nn.Module) -> dict[str, torch.Tensor]:
    """One SAT conditioner's weights in the layout of our `conditioner`."""
    names = CONDITIONER_KEYS.get(kind, {})
    ours = {names.get(key, key): value for key, value in weights.items()}
    if kind == "int" and weights and conditioner.config.min:
        raise CheckpointError(f"int conditioner {conditioner.name!r}: min={conditioner.config.min}"
                              "; SAT indexes its table by the raw value, audiotools by value - "
                              "min, so these rows cannot be reproduced (SAT gives the same "
                              "outputs with min_val 0).")
    if kind == "options" and "table.weight" in ours:
        ours["table.weight"] = ours["table.weight"][1:]  # SAT's row 0: unknown values
    if kind == "text" and "proj.weight" not in ours:
        # SAT's projection is the identity when T5's width is cond_dim.
        proj = conditioner.proj
        ours["proj.weight"] = torch.eye(proj.out_features, proj.in_features)
        ours["proj.bias"] = torch.zeros(proj.out_features)
    # Frozen encoders (T5) are not in SAT's checkpoints: keep ours.
    own = conditioner.state_dict()
    return {**{k: v for k, v in own.items() if k not in ours and not k.startswith("proj.")},
            **ours}


def load_network(model: nn.Module, found: SATDiffusionCheckpoint) -> None:
    """The checkpoint's network (and a diffusion autoencoder's encoder) into `model` (a
    DiffusionModel), strictly."""
    converted, report = match_weights(found.model_weights(), model)
    if not report.complete:
        raise not_fitting(f"{found.describe()}: the network", report)
    model.load_state_dict(converted)


def load_conditioners(conditioner_set: nn.Module, found: SATDiffusionCheckpoint) -> None:
    """Each of the checkpoint's conditioners into ours, strictly; SAT conditioners without
    weights here (not reproduced) are reported."""
    for name, conditioner in conditioner_set.conditioners.items():
        weights = conditioner_weights(conditioner.config.type, found.conditioners.get(name, {}),
                                      conditioner)
        _strict(conditioner, weights, f"{found.path}: conditioner {name!r}")
    extra = sorted(set(found.conditioners) - set(conditioner_set.conditioners))
    if extra:
        logger.warning("%s: conditioners %s are not reproduced here; their weights are left "
                       "out.", found.path, ", ".join(extra))


def load_pretransform(autoencoder: nn.Module, found: SATDiffusionCheckpoint) -> None:
    converted, report = match_weights(found.pretransform, autoencoder)
    if not report.complete:
        raise not_fitting(f"{found.path}: the pretransform", report)
    autoencoder.load_state_dict(converted)


@dataclass
class SATDiffusion:
    """A SAT diffusion model as audiotools modules (eval mode): the DiffusionModel (the
    `denoise(x, t, **model.condition_inputs(conditions))` of audiotools.sampling), its
    conditioners and its pretransform autoencoder (None without one)."""

    model: nn.Module
    conditioners: nn.Module | None
    pretransform: nn.Module | None
    # The recipe sections the config converts to (DiffusionConversion).
    conversion: Any


def load_diffusion(checkpoint: str | Path,
                   model_config: str | Path | Mapping[str, Any] | None = None,
                   prefer_ema: bool = True) -> SATDiffusion:
    """A SAT diffusion checkpoint (unwrapped or a training checkpoint; EMA weights when
    `prefer_ema`) with its SAT model config (a JSON path or its content; optional when the
    checkpoint embeds it). Every tensor of a part must fit; what is left out is logged."""
    from ..conditioning import ConditionerSet
    from ..models.autoencoder import build_autoencoder
    from ..models.diffusion import build_diffusion_model
    from .diffusion import convert_diffusion_model
    from .model import load_architecture, read_json
    from .notes import Notes
    found = read_diffusion_checkpoint(checkpoint, prefer_ema)
    config = model_config if model_config is not None else found.model_config
    if config is None:
        raise CheckpointError(f"{checkpoint} does not embed its model config: give the "
                              "stable-audio-tools model config JSON it was trained with.")
    if not isinstance(config, Mapping):
        config = read_json(config, "model config")
    conversion = convert_diffusion_model(config, Notes())
    model = build_diffusion_model(conversion.model)
    load_network(model, found)
    conditioners = None
    if conversion.conditioners:
        conditioners = ConditionerSet(conversion.conditioners,
                                      conversion.conditioning.get("dim", 768))
        load_conditioners(conditioners, found)
        conditioners.eval()
    pretransform = None
    if conversion.pretransform is not None and found.pretransform:
        pretransform = build_autoencoder(load_architecture(conversion.pretransform)).eval()
        load_pretransform(pretransform, found)
    logger.info("Loaded %s.", found.describe())
    return SATDiffusion(model.eval(), conditioners, pretransform, conversion)
