"""AudioCraft LM packages (`state_dict.bin`, MusicGen's) as audiotools LMs.

The config comes from the package's `xp.cfg` as AudioCraft's `builders.get_lm_model` reads it:
`transformer_lm` (n_q, card, dim, num_heads, num_layers, hidden_scale, bias flags, positional
embedding), `codebooks_pattern`, `fuser`, `conditioners`, `classifier_free_guidance` and
`attribute_dropout`. Weights map key for key onto `LMModel` (whose names are AudioCraft's),
except three: `condition_provider.conditioners.<name>.output_proj.*` is the text conditioner's
`proj` here (`conditioners.<name>.proj.*` of a `ConditionerSet`), the `.mha.` level of
AudioCraft's non-custom attention is dropped, and the rotary frequency buffers AudioCraft saves
are recomputed. Anything else that does not fit is an error naming it.

Cross-attention keeps audiotools' mask over padded text tokens (`fuser.cross_mask: true`):
AudioCraft pads a batch's prompts to the longest one and attends the padding as zero vectors,
so a prompt's output depends on the others in its batch; alone (AudioCraft's generate with
guidance batches one prompt with its null condition) it has no padding, which is exactly what
the mask gives every prompt. Prepended conditions are masked likewise, while AudioCraft attends
their padding and a null condition's zero tokens: equal outputs for prompts, not for the null
branch of guidance (a warning says so; MusicGen's released models prepend no text).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.lm import LMConfig, LMModel, build_lm
from .package import Package, read_package, reads_xp_cfg

logger = logging.getLogger(__name__)

# AudioCraft 1.3.0's constructor defaults (LMModel, StreamingTransformer and its layers) for
# the keys a `transformer_lm` section may leave out.
_DEFAULTS: dict[str, Any] = {
    "n_q": 8, "card": 1024, "dim": 128, "num_heads": 8, "hidden_scale": 4,
    "norm": "layer_norm", "norm_first": False, "bias_proj": True, "dropout": 0.1,
    "bias_ff": True, "bias_attn": True, "causal": False, "past_context": None,
    "layer_scale": None, "positional_embedding": "sin", "max_period": 10000.0,
    "positional_scale": 1.0, "xpos": False, "qk_layer_norm": False,
    "qk_layer_norm_cross": False, "kv_repeat": 1, "activation": "relu",
    "attention_dropout": None, "cross_attention": False}
# Options that must have one value: (allowed values, what audiotools' transformer is).
_FIXED: dict[str, tuple[tuple[Any, ...], str]] = {
    "norm": (("layer_norm",), "LayerNorm"),
    "norm_first": ((True,), "pre-norm layers"),
    "causal": ((True,), "a causal LM"),
    "past_context": ((None,), "attention over the whole past"),
    "layer_scale": ((None,), "no layer scale"),
    "xpos": ((False,), "rotary positions without xPos decay"),
    "qk_layer_norm": ((False,), "no query/key LayerNorm"),
    "qk_layer_norm_cross": ((False,), "no query/key LayerNorm"),
    "kv_repeat": ((1,), "one key/value head per query head"),
    "activation": (("gelu",), "a GELU feed-forward"),
    "positional_embedding": (("sin", "rope", "sin_rope"), "sin, rope or sin_rope"),
}
_PROJECTION = ("output_proj.weight", "output_proj.bias")
_CONDITIONERS = "condition_provider.conditioners."


@dataclass
class AudioCraftLM:
    """An AudioCraft LM converted: the model (weights loaded, eval mode), its `model:` section,
    its conditioners (a `ConditionerSet` section and that set's weights: the projections of
    T5's states), and the guidance settings it was trained with."""

    model: LMModel
    config: LMConfig
    conditioners: dict[str, dict[str, Any]]
    conditioner_weights: dict[str, torch.Tensor]
    # ConditionerSet joint_dropout (AudioCraft's classifier_free_guidance.training_dropout).
    joint_dropout: float
    # AudioCraft's classifier_free_guidance.inference_coef: its default guidance scale.
    cfg_scale: float
    # sample_rate, channels, segment_duration, compression_model_checkpoint where xp.cfg has them.
    info: dict[str, Any] = field(default_factory=dict)


def _transformer(package: Package, key: str) -> Any:
    name = f"transformer_lm.{key}"
    if key not in _DEFAULTS:
        return package.option(name)
    if key in _FIXED:
        allowed, supported = _FIXED[key]
        return package.require(name, _DEFAULTS[key], allowed, supported)
    return package.option(name, _DEFAULTS[key])


def _pattern(package: Package, codebooks: int) -> dict[str, Any]:
    modeling = package.option("codebooks_pattern.modeling", None)
    if modeling is None:  # AudioCraft then takes transformer_lm.q_modeling, delays 0..K-1
        modeling = package.option("transformer_lm.q_modeling")
        section: dict[str, Any] = {"delays": list(range(codebooks))}
    else:
        section = package.option(f"codebooks_pattern.{modeling}", None) or {}
    where = f"codebooks_pattern.{modeling}"
    if modeling in ("delay", "parallel"):
        for key in ("flatten_first", "empty_initial"):
            if section.get(key, 0):
                raise package.unsupported(f"{where}.{key}", section[key], "0: one empty step "
                                          "before the first frame, no flattened frames")
        if modeling == "parallel":
            return {"type": "parallel"}
        delays = section.get("delays")
        return {"type": "delay", "delays": list(range(codebooks)) if delays is None
                else list(delays)}
    if modeling == "unroll":
        flattening, delays = section.get("flattening"), section.get("delays")
        if flattening not in (None, list(range(codebooks))):
            raise package.unsupported(f"{where}.flattening", flattening,
                                      "null: one codebook per step")
        if delays not in (None, [0] * codebooks):
            raise package.unsupported(f"{where}.delays", delays, "null or all 0")
        return {"type": "unroll"}
    if modeling == "coarse_first":
        delays = section.get("delays")
        return {"type": "coarse_first", "delays": None if delays is None else list(delays)}
    raise package.unsupported("codebooks_pattern.modeling", modeling,
                              "delay, parallel, unroll or coarse_first")


def _conditioners(package: Package, fused: set[str]) -> dict[str, dict[str, Any]]:
    """The ConditionerSet section of AudioCraft's `conditioners` (T5 text conditioners)."""
    section = package.option("conditioners", None) or {}
    dropouts = package.option("attribute_dropout.text", None) or {}
    out = {}
    for name, settings in section.items():
        if name == "args":  # the ConditioningProvider's own arguments
            continue
        where = f"conditioners.{name}"
        model = settings.get("model")
        if model != "t5":
            raise package.unsupported(f"{where}.model", model, "t5 text conditioners")
        if name not in fused:
            raise CheckpointError(f"{package.path}: xp.cfg {where} is fused by none of "
                                  "fuser.cross, fuser.prepend, fuser.sum.")
        package.require(f"{where}.t5.finetune", False, (False,), "a frozen T5 encoder")
        package.require(f"{where}.t5.normalize_text", False, (False,), "the prompt as given")
        package.training_only(f"{where}.t5.word_dropout", 0.0, 0.0, "drops prompt words")
        out[name] = {"type": "text", "model": package.option(f"{where}.t5.name"),
                     "dropout": float(dropouts.get(name, 0.0))}
    return out


@reads_xp_cfg
def lm_settings(package: Package) -> tuple[LMConfig, dict[str, dict[str, Any]], float, float]:
    """(model section, conditioners section, joint dropout, guidance scale) of an LM package."""
    package.require("lm_model", None, ("transformer_lm",), "the MusicGen transformer_lm")
    codebooks = int(_transformer(package, "n_q"))
    dim = int(_transformer(package, "dim"))
    for key in _FIXED:
        _transformer(package, key)
    positional = _transformer(package, "positional_embedding")
    scale = float(_transformer(package, "positional_scale"))
    if positional != "sin" and scale != 1.0:  # AudioCraft scales the rotation itself
        raise package.unsupported("transformer_lm.positional_scale", scale,
                                  f"1 with positional_embedding={positional}")
    dropout = float(_transformer(package, "dropout"))
    package.training_only("transformer_lm.attention_dropout",
                          _DEFAULTS["attention_dropout"], None, "attention dropout apart")
    package.require("fuser.cross_attention_pos_emb", False, (False,),
                    "cross-attention without positions")
    if package.option("fuser.input_interpolate", []):
        raise package.unsupported("fuser.input_interpolate",
                                  package.option("fuser.input_interpolate"),
                                  "[]: cross, prepend or sum")
    conditioner_names = set(package.option("conditioners", None) or {}) - {"args"}
    fuser = {method: [name for name in package.option(f"fuser.{method}", [])
                      if name in conditioner_names]
             for method in ("cross", "prepend", "sum")}
    conditioners = _conditioners(package, {name for names in fuser.values() for name in names})
    if fuser["prepend"]:
        logger.warning("%s: fuser.prepend=%s: AudioCraft attends the zero tokens of a null "
                       "prepended condition, audiotools masks them; guided generation differs.",
                       package.path, fuser["prepend"])
    if _transformer(package, "cross_attention") and not fuser["cross"]:
        raise package.unsupported("transformer_lm.cross_attention", True,
                                  "cross-attention layers only with fuser.cross conditions")
    config = LMConfig(
        num_codebooks=codebooks, cardinality=int(_transformer(package, "card")), dim=dim,
        num_heads=int(_transformer(package, "num_heads")),
        num_layers=int(_transformer(package, "num_layers")),
        ffn_dim=int(float(_transformer(package, "hidden_scale")) * dim), dropout=dropout,
        bias_attn=bool(_transformer(package, "bias_attn")),
        bias_ff=bool(_transformer(package, "bias_ff")),
        bias_proj=bool(_transformer(package, "bias_proj")),
        positional_embedding=positional,
        max_period=float(_transformer(package, "max_period")), positional_scale=scale,
        pattern=_pattern(package, codebooks), fuser={**fuser, "cross_mask": True})
    joint_dropout = float(package.option("classifier_free_guidance.training_dropout", 0.0))
    cfg_scale = float(package.option("classifier_free_guidance.inference_coef", 1.0))
    return config, conditioners, joint_dropout, cfg_scale


def lm_weights(package: Package, conditioners: set[str],
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(LMModel state dict, ConditionerSet state dict) of the package's `best_state`."""
    lm, conditioning, unexpected = {}, {}, []
    for key, value in package.weights.items():
        if key.startswith(_CONDITIONERS):
            name, _, parameter = key[len(_CONDITIONERS):].partition(".")
            if name in conditioners and parameter in _PROJECTION:
                conditioning[f"conditioners.{name}.proj.{parameter.rpartition('.')[2]}"] = value
            else:
                unexpected.append(key)
        elif key.startswith("condition_provider."):
            unexpected.append(key)
        elif not key.endswith("rope.frequencies"):  # recomputed by audiotools
            lm[key.replace(".mha.", ".")] = value
    if unexpected:
        raise CheckpointError(f"{package.path}: best_state holds weights audiotools' text "
                              f"conditioners do not have: {sorted(unexpected)[:8]}.")
    return lm, conditioning


def _check_fit(package: Package, model: torch.nn.Module, weights: dict[str, torch.Tensor],
               ) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(key for key in set(own) & set(weights)
                   if own[key].shape != weights[key].shape)
    if missing or unexpected or wrong:
        details = [f"{title}: {keys[:8]}" for title, keys in (
            ("missing", missing), ("unexpected", unexpected),
            ("wrong shape", [f"{key} {tuple(weights[key].shape)} vs {tuple(own[key].shape)}"
                             for key in wrong])) if keys]
        raise CheckpointError(f"{package.path}: best_state does not fit the LM its xp.cfg "
                              f"describes ({'; '.join(details)}).")


def _check_projections(package: Package, weights: dict[str, torch.Tensor],
                       conditioners: dict[str, Any], dim: int) -> None:
    for name in conditioners:
        key = f"conditioners.{name}.proj.weight"
        if key not in weights or weights[key].shape[0] != dim:
            found = tuple(weights[key].shape) if key in weights else "missing"
            raise CheckpointError(f"{package.path}: {_CONDITIONERS}{name}.output_proj.weight "
                                  f"is {found}; the LM's width is {dim}.")


def convert_lm(package: Package) -> AudioCraftLM:
    """The audiotools LM of an AudioCraft LM package."""
    config, conditioners, joint_dropout, cfg_scale = lm_settings(package)
    lm, conditioning = lm_weights(package, set(conditioners))
    _check_projections(package, conditioning, conditioners, config.dim)
    model = build_lm(config)
    _check_fit(package, model, lm)
    model.load_state_dict(lm)
    info = {key: package.option(path, None) for key, path in (
        ("sample_rate", "sample_rate"), ("channels", "channels"),
        ("segment_duration", "dataset.segment_duration"),
        ("compression_model_checkpoint", "compression_model_checkpoint"))}
    return AudioCraftLM(model.eval(), config, conditioners,
                        {key: value.float() for key, value in conditioning.items()},
                        joint_dropout, cfg_scale,
                        {key: value for key, value in info.items() if value is not None})


def load_lm(path: str | Path) -> AudioCraftLM:
    """The LM of an AudioCraft `state_dict.bin` (or of the folder holding it)."""
    return convert_lm(read_package(path, "lm"))
