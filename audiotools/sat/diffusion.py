"""stable-audio-tools diffusion model configs (`diffusion_uncond`, `diffusion_cond`,
`diffusion_cond_inpaint`, `diffusion_autoencoder`) to the sections of an audiotools diffusion
recipe.

SAT's `model.diffusion` (or, unconditional, `model`) names a network and its constructor
arguments; `model.conditioning` a list of conditioners sharing `cond_dim`; `model.pretransform`
the frozen autoencoder whose latents the network generates; a diffusion autoencoder's
`model.encoder` and `model.bottleneck` the encoder whose latents the DiT decodes. They become
`model:` (a DiT or an ADP U-Net with SAT's layout, so its weights load one to one, and the
encoder),
`conditioners:`/`conditioning:` and `codec:`.
A conditioner audiotools cannot build is listed as not reproduced with what to use instead,
and the rest converts; what would change the network is an error, as in SAT.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import validate_section
from ..errors import ConfigError
from ..models.diffusion.config import ENCODER_BOTTLENECKS, ENCODER_LATENTS, DiffusionEncoderConfig
from . import values
from .adp import ADP_TYPES, adp_network, check_adp_ids
from .model import convert_encoder
from .notes import Notes

DIFFUSION_MODEL_TYPES = ("diffusion_uncond", "diffusion_cond", "diffusion_cond_inpaint",
                         "diffusion_autoencoder")
# The keys of `model` that SAT's create_diffAE_from_config reads.
_AUTOENCODER_KEYS = ("encoder", "decoder", "bottleneck", "diffusion", "latent_dim",
                     "downsampling_ratio", "io_channels", "pretransform")
# DiT inputs a diffusion autoencoder never feeds (SAT gives its DiT the latents only).
_CONDITION_WIDTHS = ("cond_token_dim", "global_cond_dim", "prepend_cond_dim")
# SAT's DiffusionAutoencoder scales its encoder's initial parameters by this.
SAT_ENCODER_INIT_SCALE = 0.5
# SAT DiffusionTransformer arguments that audiotools' DiT takes under the same name.
_DIT_KEYS = ("io_channels", "patch_size", "embed_dim", "cond_token_dim", "project_cond_tokens",
             "global_cond_dim", "project_global_cond", "input_concat_dim", "prepend_cond_dim",
             "depth", "num_heads", "global_cond_type")
# Arguments whose only value here is SAT's default (anything else changes the network).
_DIT_FIXED = {"transformer_type": "continuous_transformer", "timestep_cond_type": "global"}
# Frozen text encoders SAT knows, by hidden width (its T5Conditioner's table).
T5_WIDTHS = {"t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024,
             "t5-11b": 1024, "google/flan-t5-small": 512, "google/flan-t5-base": 768,
             "google/flan-t5-large": 1024, "google/flan-t5-xl": 2048,
             "google/flan-t5-xxl": 4096, "google/t5-v1_1-xl": 2048,
             "google/t5-v1_1-xxl": 4096}
# SAT conditioner types audiotools does not build, and what to use instead.
NOT_BUILT = {
    "clap_text": "a `text` conditioner (frozen T5, e.g. t5-base) on the same metadata key; "
                 "CLAP needs laion_clap and its checkpoint, which audiotools does not ship",
    "clap_audio": "an `audio` conditioner (the reference clip through the model's codec)",
    "pretransform": "an `audio` conditioner (the reference clip through the model's codec)",
    "source_mix": "an `audio` conditioner per source",
    "phoneme": "a `text` conditioner (T5) on the transcript",
    "lut": "a `text` conditioner (T5), or `options` for a closed vocabulary",
}
_OBJECTIVES = ("v", "rectified_flow")
_TIMESTEP_SAMPLERS = ("uniform", "logit_normal", "trunc_logit_normal")
_SHIFT_KEYS = ("base_shift", "max_shift", "min_length", "max_length")


@dataclass
class NotReproduced:
    """A SAT conditioner left out of the conversion, and what to use instead."""

    id: str
    type: str
    instead: str

    def __str__(self) -> str:
        return f"conditioner {self.id!r} (type {self.type}): not built here; use {self.instead}"


@dataclass
class DiffusionConversion:
    """The recipe sections a SAT diffusion model config converts to."""

    model: dict[str, Any]
    conditioners: dict[str, Any]
    conditioning: dict[str, Any]
    # {"scale"} (the caller adds where the weights and config are); None: the model reads
    # audio.
    codec: dict[str, Any] | None
    # The SAT autoencoder config of the pretransform (`model_type: autoencoder`).
    pretransform: dict[str, Any] | None
    not_reproduced: list[NotReproduced] = field(default_factory=list)


def dit_network(config: Mapping[str, Any], where: str, io_key: str = "io_channels",
                ) -> dict[str, Any]:
    """Our `network:` for SAT DiffusionTransformer arguments (SAT's defaults where absent)."""
    config = dict(config)
    if io_key != "io_channels":  # the unconditional wrapper names it in_channels
        if io_key not in config:
            raise ConfigError(f"{where}.{io_key} is missing (stable-audio-tools requires it).")
        config["io_channels"] = config.pop(io_key)
    for key, value in _DIT_FIXED.items():
        if config.pop(key, value) != value:
            raise ConfigError(f"{where}.{key}: only {value!r} is supported (audiotools' DiT).")
    unknown = sorted(set(config) - set(_DIT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: {', '.join(unknown)} not supported by audiotools' DiT "
                          f"(it maps {', '.join(_DIT_KEYS)}; see "
                          "audiotools/models/diffusion/dit.py).")
    # SAT's DiffusionTransformer defaults.
    network = {"type": "dit", "io_channels": 32, "patch_size": 1, "embed_dim": 768,
               "cond_token_dim": 0, "project_cond_tokens": True, "global_cond_dim": 0,
               "project_global_cond": True, "input_concat_dim": 0, "prepend_cond_dim": 0,
               "depth": 12, "num_heads": 8, "global_cond_type": "prepend", **config}
    # SAT's DiT attends to padding tokens; its weights expect it.
    network["mask_cross_attention"] = False
    return network


def _conditioner(kind: str, config: dict[str, Any], where: str,
                 notes: Notes) -> dict[str, Any]:
    """Our section for one SAT conditioner of a type audiotools builds."""
    def take(*keys: str) -> None:
        unknown = sorted(set(config) - set(keys))
        if unknown:
            raise ConfigError(f"{where}.config: {', '.join(unknown)} not known for type "
                              f"{kind} (stable-audio-tools would fail on them too).")
    if kind == "t5":
        take("t5_model_name", "max_length", "enable_grad", "project_out")
        name = config.get("t5_model_name", "t5-base")
        if name not in T5_WIDTHS:
            raise ConfigError(f"{where}.config.t5_model_name={name!r}: stable-audio-tools knows "
                              f"{', '.join(T5_WIDTHS)}.")
        notes.unsupported_if(config.get("enable_grad"), f"{where}.config.enable_grad=true: "
                             "audiotools keeps T5 frozen")
        return {"type": "text", "model": name, "max_length": int(config.get("max_length", 128))}
    if kind == "number":
        take("min_val", "max_val")
        return {"type": "number", "min": float(config.get("min_val", 0)),
                "max": float(config.get("max_val", 1))}
    if kind == "int":
        take("min_val", "max_val")
        low = int(config.get("min_val", 0))
        notes.unsupported_if(low, f"{where} (int): min_val={low}: SAT looks its table up by "
                             "the raw value (row v, failing above max_val - min_val), "
                             "audiotools by value - min_val; its trained rows do not load")
        return {"type": "int", "min": low, "max": int(config.get("max_val", 512))}
    take("options")
    if "options" not in config:
        raise ConfigError(f"{where}.config.options is missing (stable-audio-tools requires it).")
    options = [str(option) for option in config["options"]]
    notes.difference(f"{where} (list): a value outside its options gets the first option "
                     f"({options[0]!r}) here; stable-audio-tools has a learned row for it")
    return {"type": "options", "options": options, "default": options[0]}


_BUILT = ("t5", "number", "int", "list")


def convert_conditioning(section: Mapping[str, Any] | None, notes: Notes,
                         ) -> tuple[dict[str, Any], int | None, list[NotReproduced]]:
    """Our conditioners, their width (SAT's cond_dim) and what is not reproduced."""
    where = "model.conditioning"
    section = values.section(section, where)
    if not section:
        return {}, None, []
    if "cond_dim" not in section:
        raise ConfigError(f"{where}.cond_dim is missing (stable-audio-tools requires it).")
    default_keys = values.section(section.get("default_keys"), f"{where}.default_keys")
    notes.unsupported_if(section.get("pre_encoded_keys"), f"{where}.pre_encoded_keys: "
                         "audiotools encodes every condition from the metadata")
    conditioners: dict[str, Any] = {}
    dropped: list[NotReproduced] = []
    for index, entry in enumerate(section.get("configs") or []):
        entry_where = f"{where}.configs[{index}]"
        if "id" not in entry or "type" not in entry:
            raise ConfigError(f"{entry_where}: id and type are required.")
        ident, kind = str(entry["id"]), str(entry["type"])
        if kind in NOT_BUILT:
            dropped.append(NotReproduced(ident, kind, NOT_BUILT[kind]))
            continue
        if kind not in _BUILT:
            raise ConfigError(f"{entry_where}.type={kind!r} is not a stable-audio-tools "
                              f"conditioner type; known: {', '.join([*_BUILT, *NOT_BUILT])}.")
        converted = _conditioner(kind, values.section(entry.get("config"), entry_where),
                                 entry_where, notes)
        if ident in default_keys:
            converted["key"] = str(default_keys[ident])
        conditioners[ident] = converted
    for item in dropped:
        notes.unsupported.append(str(item))
    return conditioners, int(section["cond_dim"]), dropped


def _pretransform(section: Mapping[str, Any] | None, sample_rate: int,
                  notes: Notes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(codec section without its source, SAT autoencoder config) of a pretransform."""
    where = "model.pretransform"
    section = values.section(section, where)
    if not section:
        return None, None
    kind = section.get("type")
    if kind != "autoencoder":
        raise ConfigError(f"{where}.type={kind!r} is not supported: audiotools' latent diffusion "
                          "runs on an autoencoder (type autoencoder: a stable-audio-tools VAE, "
                          "or an audiotools codec through codec.source).")
    notes.unsupported_if(section.get("enable_grad"), f"{where}.enable_grad=true: the codec "
                         "stays frozen in audiotools")
    for key in ("iterate_batch", "chunked", "model_half"):
        if section.get(key):
            notes.difference(f"{where}.{key}: a memory setting of SAT's pretransform; "
                             "audiotools encodes the batch at once in the run's precision")
    autoencoder = {"model_type": "autoencoder", "sample_rate": sample_rate,
                   "model": values.section(section.get("config"), f"{where}.config")}
    return {"scale": float(section.get("scale", 1.0))}, autoencoder


_ID_KEYS = ("cross_attention_cond_ids", "global_cond_ids", "prepend_cond_ids",
            "input_concat_ids")


# What stable-audio-tools 0.0.19's factories read of a diffusion config, by model type
# (models/diffusion.py, models/autoencoders.py); any other key is listed as ignored.
_TOP_KEYS = ("model_type", "sample_rate", "sample_size", "audio_channels", "model", "training")
_MODEL_KEYS = {
    "diffusion_uncond": ("type", "config", "pretransform"),
    "diffusion_autoencoder": ("encoder", "decoder", "bottleneck", "diffusion", "latent_dim",
                              "downsampling_ratio", "io_channels", "pretransform"),
}
_COND_MODEL_KEYS = ("diffusion", "io_channels", "pretransform", "conditioning")
_DIFFUSION_KEYS = ("type", "config", "diffusion_objective", "distribution_shift_options",
                   *_ID_KEYS)


def ignored_diffusion_keys(config: Mapping[str, Any]) -> list[str]:
    """Keys of an SAT diffusion config that SAT's factories do not read (nor audiotools)."""
    model = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    known = _MODEL_KEYS.get(config.get("model_type"), _COND_MODEL_KEYS)
    keys = [*sorted(set(config) - set(_TOP_KEYS)),
            *(f"model.{key}" for key in sorted(set(model) - set(known)))]
    diffusion = model.get("diffusion")
    if config.get("model_type") != "diffusion_autoencoder" and isinstance(diffusion, Mapping):
        keys += [f"model.diffusion.{key}" for key in sorted(set(diffusion) - set(_DIFFUSION_KEYS))]
    return keys


def _ids(diffusion: Mapping[str, Any], dropped: set[str]) -> dict[str, list[str]]:
    """SAT's `*_ids` (the same keys here), without the conditioners not reproduced."""
    return {key: [str(name) for name in diffusion.get(key) or [] if name not in dropped]
            for key in _ID_KEYS}


def convert_diffusion_model(config: Mapping[str, Any], notes: Notes) -> DiffusionConversion:
    """The recipe sections of a SAT diffusion model config (its `model_type` one of
    DIFFUSION_MODEL_TYPES)."""
    kind = config.get("model_type")
    if kind not in DIFFUSION_MODEL_TYPES:
        raise ConfigError(f"model_type={kind!r}: audiotools converts the diffusion types "
                          f"{', '.join(DIFFUSION_MODEL_TYPES)}.")
    if "sample_rate" not in config:
        raise ConfigError("sample_rate is missing (stable-audio-tools requires it).")
    ignored = ignored_diffusion_keys(config)
    notes.unsupported_if(ignored, f"model config keys {ignored}: ignored (stable-audio-tools' "
                         "diffusion models do not read them either)")
    model = values.section(config.get("model"), "model")
    codec, pretransform = _pretransform(model.get("pretransform"), int(config["sample_rate"]),
                                        notes)
    if kind == "diffusion_uncond":
        network_type = model.get("type")
        config_section = values.section(model.get("config"), "model.config")
        if network_type == "adp_uncond_1d":
            network = adp_network(network_type, config_section, "model.config")
        elif network_type == "dit":
            network = dit_network(config_section, "model.config", io_key="in_channels")
        else:
            raise ConfigError(_unsupported_network(network_type, "model.type", "adp_uncond_1d"))
        section = {"objective": "v", "network": network}
        return DiffusionConversion(section, {}, {"joint_dropout": 0.0}, codec, pretransform)
    if kind == "diffusion_autoencoder":
        return DiffusionConversion(_autoencoder_section(model, notes), {},
                                   {"joint_dropout": 0.0}, codec, pretransform)
    diffusion = _diffusion_section(model, ("adp_cfg_1d", "adp_1d"))
    objective = diffusion.get("diffusion_objective", "v")
    if objective not in _OBJECTIVES:
        raise ConfigError(f"model.diffusion.diffusion_objective={objective!r} is not supported; "
                          f"audiotools trains {', '.join(_OBJECTIVES)}.")
    network_type, where = diffusion["type"], "model.diffusion.config"
    if network_type in ADP_TYPES:
        check_adp_ids(network_type, _ids(diffusion, set()), "model.diffusion")
        network = adp_network(network_type, values.section(diffusion.get("config"), where), where)
    else:
        network = dit_network(values.section(diffusion.get("config"), where), where)
    _check_io_channels(model, network)
    conditioners, dim, dropped = convert_conditioning(model.get("conditioning"), notes)
    section: dict[str, Any] = {"objective": objective,
                               **_ids(diffusion, {item.id for item in dropped}),
                               "network": network}
    if network_type in ADP_TYPES:
        _adp_notes(network, section, notes)
    shift = diffusion.get("distribution_shift_options")
    if shift is not None:
        shift = values.section(shift, "model.diffusion.distribution_shift_options")
        notes.unsupported_if(shift.pop("use_sine", False), "model.diffusion."
                             "distribution_shift_options.use_sine: the linear shift is used")
        unknown = sorted(set(shift) - set(_SHIFT_KEYS))
        if unknown:
            raise ConfigError(f"model.diffusion.distribution_shift_options: {unknown} unknown; "
                              f"known: {', '.join(_SHIFT_KEYS)}, use_sine.")
        section["time_shift"] = shift
    conditioning = {"dim": dim} if dim is not None else {}
    return DiffusionConversion(section, conditioners, conditioning, codec, pretransform, dropped)


def _diffusion_section(model: Mapping[str, Any], others: tuple[str, ...] = ()) -> dict[str, Any]:
    """`model.diffusion`, which must name a DiT or one of the `others` networks."""
    diffusion = values.section(model.get("diffusion"), "model.diffusion")
    if not diffusion:
        raise ConfigError("model.diffusion is missing (stable-audio-tools requires it).")
    if diffusion.get("type") not in ("dit", *others):
        raise ConfigError(_unsupported_network(diffusion.get("type"), "model.diffusion.type",
                                               *others))
    return diffusion


def _adp_notes(network: Mapping[str, Any], section: dict[str, Any], notes: Notes) -> None:
    """What an ADP U-Net conversion must refuse, or does differently, once the conditioners
    not reproduced are left out of the ids."""
    if network.get("cond_token_dim") and not section["cross_attention_cond_ids"]:
        raise ConfigError("model.diffusion.cross_attention_cond_ids: none of its conditioners "
                          "is built here (see the conditioners not reproduced), and the "
                          "adp_cfg_1d network needs cross-attention tokens.")
    if network.get("null_embedding_length"):
        notes.difference("adp_cfg_1d's learned null embedding: audiotools puts it in place of "
                         "an item's null condition and attends to all its rows; SAT masks it "
                         "with the conditional item's padding mask (the same where the tokens "
                         "have no padding: number, int, options, CLAP)")
    if network.get("global_cond_dim") and network.get("null_embedding_length"):
        notes.difference("CFG: audiotools' unconditional branch also nulls the global "
                         "condition; SAT's adp_cfg_1d keeps it")


def _check_io_channels(model: Mapping[str, Any], network: Mapping[str, Any]) -> None:
    if "io_channels" in model and model["io_channels"] != network["io_channels"]:
        raise ConfigError(f"model.io_channels={model['io_channels']} differs from the network's "
                          f"io_channels={network['io_channels']}.")


def _autoencoder_section(model: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """Our `model:` of a SAT diffusion autoencoder: its encoder and bottleneck, whose latents
    reach the DiT as input-concat channels (`encoder_latents`), on the v objective that SAT's
    diffusion-autoencoder training and sampling always use."""
    for key in ("latent_dim", "downsampling_ratio", "io_channels"):
        if key not in model:
            raise ConfigError(f"model.{key} is missing (stable-audio-tools requires it).")
    if "encoder" not in model:
        raise ConfigError("model.encoder is missing: audiotools' diffusion autoencoder encodes "
                          "with an encoder (oobleck or seanet) before its DiT.")
    if "decoder" in model:
        raise ConfigError("model.decoder is not supported: audiotools' diffusion autoencoder "
                          "hands the bottleneck's latents to the DiT as they are (and "
                          "stable-audio-tools' own DiffusionAutoencoder.decode calls itself "
                          "without end when it has a decoder).")
    ignored = sorted(set(model) - set(_AUTOENCODER_KEYS))
    notes.unsupported_if(ignored, f"model keys {ignored}: not read by stable-audio-tools' "
                         "diffusion autoencoder either; ignored")
    diffusion = _diffusion_section(model)
    ignored = sorted(set(diffusion) - {"type", "config"})
    notes.unsupported_if(ignored, f"model.diffusion keys {ignored}: stable-audio-tools' "
                         "diffusion autoencoder reads only type and config; ignored")
    config = values.section(diffusion.get("config"), "model.diffusion.config")
    if "diffusion_objective" not in config:
        raise ConfigError("model.diffusion.config.diffusion_objective is missing "
                          "(stable-audio-tools' DiTWrapper requires it).")
    objective = config.pop("diffusion_objective")
    if objective != "v":
        notes.difference(f"model.diffusion.config.diffusion_objective={objective!r}: "
                         "stable-audio-tools' diffusion-autoencoder training and sampling use "
                         "v whatever it says (only its guidance interval reads it); so does "
                         "audiotools")
    network = dit_network(config, "model.diffusion.config")
    _check_io_channels(model, network)
    unused = [f"{key}={network[key]}" for key in _CONDITION_WIDTHS if network[key]]
    if unused:
        raise ConfigError(f"model.diffusion.config: {', '.join(unused)}: a diffusion "
                          "autoencoder's DiT reads the encoder latents only (input_concat_dim); "
                          "audiotools builds no inputs that nothing feeds, set them to 0.")
    if network["input_concat_dim"] != model["latent_dim"]:
        raise ConfigError(f"model.diffusion.config.input_concat_dim="
                          f"{network['input_concat_dim']} but model.latent_dim="
                          f"{model['latent_dim']}: the DiT reads the latents as extra input "
                          "channels (stable-audio-tools fails at its first step too).")
    encoder, bottleneck = convert_encoder(model, notes)
    if bottleneck["type"] not in ENCODER_BOTTLENECKS:
        raise ConfigError(f"model.bottleneck.type={bottleneck['type']!r} is not supported in a "
                          "diffusion autoencoder (its latents condition the DiT as they are); "
                          f"audiotools converts {', '.join(ENCODER_BOTTLENECKS)}.")
    if bottleneck["type"] == "vae":
        notes.difference("the VAE bottleneck: stable-audio-tools samples its latents at "
                         "inference too (its demos); audiotools takes their mean outside "
                         "training")
    section = {"latent_dim": model["latent_dim"], "encoder": encoder, "bottleneck": bottleneck,
               "init_scale": SAT_ENCODER_INIT_SCALE}
    hop = validate_section(section, DiffusionEncoderConfig, "model.encoder").hop_length
    if hop != model["downsampling_ratio"]:
        raise ConfigError(f"model.downsampling_ratio={model['downsampling_ratio']} but the "
                          f"encoder downsamples by {hop}; make them agree.")
    return {"objective": "v", "input_concat_ids": [ENCODER_LATENTS], "network": network,
            "encoder": section}


def _unsupported_network(kind: Any, where: str, *others: str) -> str:
    converted = " and ".join(f"type {name}" for name in ("dit", *others))
    hint = ""
    if kind == "DAU1d":
        hint = (" (dance diffusion's U-Net; stable-audio-tools' own DAU1d configs fail to build "
                "in stable-audio-tools, with ResConvBlock(use_snake=...))")
    elif str(kind).startswith("adp"):
        hint = (" (stable-audio-tools builds that ADP network for another model_type: "
                "adp_cfg_1d and adp_1d under diffusion_cond, adp_uncond_1d under "
                "diffusion_uncond; a diffusion autoencoder's decoder converts as a DiT only)")
    return f"{where}={kind!r} is not supported here: audiotools converts {converted}.{hint}"


def _count(module: Any) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def parameter_counts(conversion: DiffusionConversion) -> dict[str, int]:
    """Parameters of what the conversion builds, per part and in total, counted on the meta
    device (no memory, no download). A text conditioner counts its projection only: its frozen
    T5 is loaded from the Hugging Face cache when training starts (SAT keeps T5 out of its
    parameters too)."""
    import torch

    from ..conditioning import ConditionerSet
    from ..models.autoencoder import build_autoencoder
    from ..models.diffusion import build_diffusion_model
    from .model import load_architecture
    dim = conversion.conditioning.get("dim", 768)
    with torch.device("meta"):
        model = build_diffusion_model(conversion.model)
        counts = {"diffusion model": _count(model.model)}
        if conversion.model.get("encoder") is not None:
            counts["encoder and bottleneck"] = _count(model) - counts["diffusion model"]
        if conversion.pretransform is not None:
            autoencoder = build_autoencoder(load_architecture(conversion.pretransform))
            counts["pretransform (frozen codec)"] = _count(autoencoder)
        built = {name: section for name, section in conversion.conditioners.items()
                 if section["type"] != "text"}
        conditioners = _count(ConditionerSet(built, dim)) if built else 0
    conditioners += sum(T5_WIDTHS[section["model"]] * dim + dim
                        for section in conversion.conditioners.values()
                        if section["type"] == "text")
    counts["conditioners"] = conditioners
    counts["total"] = sum(counts.values())
    return counts
