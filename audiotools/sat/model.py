"""stable-audio-tools model configs (`model_type: autoencoder`) to audiotools' `model:` section.

SAT builds its encoder and decoder by passing `config` as keyword arguments to the network
classes (OobleckEncoder/Decoder, EnCodec's SEANetEncoder/Decoder), so the typed sections below
mirror those signatures and defaults: an unknown key is an error here as it is a TypeError
there. The result builds, with `build_autoencoder`, the network SAT builds from the same
config: same layer structure, parameter count and state-dict keys.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, NonNegativeInt, PositiveInt, ValidationError

from ..config import Section
from ..errors import ConfigError
from ..models.autoencoder import AutoencoderConfig, validate_autoencoder_config
from .notes import Notes

SUPPORTED_MODEL_TYPES = ("autoencoder", "diffusion_uncond", "diffusion_cond",
                         "diffusion_cond_inpaint", "diffusion_autoencoder")
# SAT model types that need what audiotools does not have yet.
LATER_MODEL_TYPES = {
    "lm": "language-model (MusicGen-style) conversion",
    "musicgen": "language-model (MusicGen-style) conversion",
}
SUPPORTED_BOTTLENECKS = ("vae", "tanh", "rvq", "fsq")


class _Oobleck(Section):
    """OobleckEncoder/OobleckDecoder keyword arguments and defaults."""

    channels: PositiveInt = 128
    c_mults: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4, 8])
    strides: list[PositiveInt] = Field(default_factory=lambda: [2, 4, 8, 8])
    latent_dim: PositiveInt = 32
    use_snake: bool = False
    antialias_activation: bool = False


class OobleckEncoder(_Oobleck):
    in_channels: PositiveInt = 2


class OobleckDecoder(_Oobleck):
    out_channels: PositiveInt = 2
    use_nearest_upsample: bool = False
    final_tanh: bool = True


class _SEANet(Section):
    """EnCodec's SEANetEncoder/SEANetDecoder keyword arguments and defaults."""

    channels: PositiveInt = 1
    dimension: PositiveInt = 128
    n_filters: PositiveInt = 32
    n_residual_layers: NonNegativeInt = 1
    activation: str = "ELU"
    activation_params: dict[str, float] = Field(default_factory=lambda: {"alpha": 1.0})
    norm: str = "weight_norm"
    norm_params: dict[str, Any] = Field(default_factory=dict)
    kernel_size: PositiveInt = 7
    last_kernel_size: PositiveInt = 7
    residual_kernel_size: PositiveInt = 3
    dilation_base: PositiveInt = 2
    causal: bool = False
    pad_mode: str = "reflect"
    true_skip: bool = False
    compress: PositiveInt = 2
    lstm: NonNegativeInt = 2


class SEANetEncoder(_SEANet):
    # SAT's own default (it reverses the list before EnCodec reverses it again).
    ratios: list[PositiveInt] = Field(default_factory=lambda: [2, 2, 2, 2, 2])


class SEANetDecoder(_SEANet):
    ratios: list[PositiveInt] = Field(default_factory=lambda: [8, 5, 4, 2])  # decoder order
    final_activation: str | None = None
    final_activation_params: dict[str, Any] | None = None
    trim_right_ratio: float = 1.0


class Network(Section):
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    requires_grad: bool = True
    soft_clip: bool = False  # read from the decoder section by SAT


class Bottleneck(Section):
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    requires_grad: bool = True


class AutoencoderSection(BaseModel):
    """`model` of an SAT autoencoder config; other keys are ignored, as SAT does."""

    encoder: Network
    decoder: Network
    bottleneck: Bottleneck | None = None
    latent_dim: PositiveInt
    downsampling_ratio: PositiveInt
    io_channels: PositiveInt
    in_channels: PositiveInt | None = None
    out_channels: PositiveInt | None = None
    pretransform: dict[str, Any] | None = None


class ModelConfig(BaseModel):
    """Top level of an SAT model config; other top-level keys are ignored, as SAT does."""

    model_type: Literal["autoencoder"]
    sample_rate: PositiveInt
    sample_size: PositiveInt | None = None
    audio_channels: PositiveInt = 2
    model: AutoencoderSection
    training: dict[str, Any] | None = None


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; ConfigError naming the file otherwise."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist.") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{what} {path} is not valid JSON ({error}).") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object, got {type(value).__name__}.")
    return value


def _typed(schema: type[BaseModel], value: Any, where: str) -> Any:
    """`value` validated by `schema`; ConfigError naming each bad key under `where`."""
    try:
        return schema.model_validate(value)
    except ValidationError as error:
        lines = [f"Invalid stable-audio-tools model config ({where}):"]
        for item in error.errors():
            key = ".".join(str(part) for part in (where, *item["loc"]) if part != "")
            if item["type"] == "extra_forbidden":
                fields = sorted(schema.model_fields) if not item["loc"][:-1] else []
                hint = f" Valid keys: {', '.join(fields)}." if fields else ""
                lines.append(f"  {key}: unknown key (stable-audio-tools would fail on it "
                             f"too).{hint}")
            elif item["type"] == "missing":
                lines.append(f"  {key}: missing (stable-audio-tools requires it).")
            else:
                lines.append(f"  {key} = {item.get('input')!r}: "
                             f"{item['msg'].removeprefix('Value error, ')}.")
        raise ConfigError("\n".join(lines)) from None


def check_model_type(config: Mapping[str, Any], source: str) -> None:
    """Refuse, with the reason, model types audiotools cannot train yet."""
    kind = config.get("model_type")
    if kind in SUPPORTED_MODEL_TYPES:
        return
    if kind in LATER_MODEL_TYPES:
        raise ConfigError(
            f"{source}: model_type={kind!r} is not yet supported: audiotools has no "
            f"{LATER_MODEL_TYPES[kind]}. Model types that convert today: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}.")
    raise ConfigError(f"{source}: model_type={kind!r} is not a stable-audio-tools model type; "
                      f"supported: {', '.join(SUPPORTED_MODEL_TYPES)} (not yet: "
                      f"{', '.join(LATER_MODEL_TYPES)}).")


def pretransform_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The autoencoder config of a SAT model config: itself, or the autoencoder pretransform
    of a diffusion config (what a latent diffusion model's codec is built from)."""
    if config.get("model_type") == "autoencoder":
        return config
    section = (config.get("model") or {}).get("pretransform")
    if not section or section.get("type") != "autoencoder":
        raise ConfigError(f"model_type={config.get('model_type')!r}: this config has no "
                          "autoencoder pretransform to build a codec from.")
    return {"model_type": "autoencoder", "sample_rate": config.get("sample_rate"),
            "model": section.get("config") or {}}


def parse_model_config(config: Mapping[str, Any], source: str) -> ModelConfig:
    check_model_type(config, source)
    config = pretransform_config(config)
    return _typed(ModelConfig, dict(config), source)


def ignored_keys(config: Mapping[str, Any]) -> list[str]:
    """Keys of an SAT model config that SAT's autoencoder does not read (nor audiotools)."""
    top = sorted(set(config) - set(ModelConfig.model_fields))
    model = sorted(set(config.get("model") or {}) - set(AutoencoderSection.model_fields))
    return top + [f"model.{key}" for key in model]


def _refuse(condition: object, message: str) -> None:
    if condition:
        raise ConfigError(message)


def _oobleck_common(cfg: Any, where: str, io_key: str, io_value: int,
                    io_channels: int) -> dict[str, Any]:
    """The keys and checks an Oobleck encoder and decoder share."""
    _refuse(cfg.antialias_activation, f"{where}.antialias_activation=true is not "
            "supported (audiotools' Oobleck has no anti-aliased activations).")
    _refuse(io_value != io_channels, f"{where}.{io_key}={io_value} differs from "
            f"model.io_channels={io_channels}; audiotools needs them equal.")
    return {"type": "oobleck", "channels": cfg.channels, "c_mults": cfg.c_mults,
            "strides": cfg.strides, "use_snake": cfg.use_snake, "latent_dim": cfg.latent_dim}


def _encoder(section: Network, io_channels: int) -> dict[str, Any]:
    where = "model.encoder.config"
    if section.type == "oobleck":
        cfg = _typed(OobleckEncoder, section.config, where)
        return _oobleck_common(cfg, where, "in_channels", cfg.in_channels, io_channels)
    if section.type == "seanet":
        cfg = _typed(SEANetEncoder, section.config, where)
        _refuse(cfg.channels != io_channels, f"{where}.channels={cfg.channels} differs from "
                f"model.io_channels={io_channels}; audiotools needs them equal.")
        # SAT lists encoder ratios in downsampling order, as audiotools does.
        return {"type": "seanet", **_seanet_common(cfg, where), "ratios": cfg.ratios}
    raise ConfigError(f"model.encoder.type={section.type!r} is not supported; audiotools "
                      "converts oobleck and seanet encoders.")


def _decoder(section: Network, io_channels: int) -> dict[str, Any]:
    where = "model.decoder.config"
    _refuse(section.soft_clip, "model.decoder.soft_clip=true is not supported (audiotools' "
            "decoders have no soft clipping).")
    if section.type == "oobleck":
        cfg = _typed(OobleckDecoder, section.config, where)
        return {**_oobleck_common(cfg, where, "out_channels", cfg.out_channels, io_channels),
                "use_nearest_upsample": cfg.use_nearest_upsample, "final_tanh": cfg.final_tanh}
    if section.type == "seanet":
        cfg = _typed(SEANetDecoder, section.config, where)
        _refuse(cfg.channels != io_channels, f"{where}.channels={cfg.channels} differs from "
                f"model.io_channels={io_channels}; audiotools needs them equal.")
        _refuse(cfg.final_activation_params, f"{where}.final_activation_params is not "
                "supported (the final activation takes its defaults).")
        _refuse(cfg.causal and cfg.trim_right_ratio != 1.0, f"{where}.trim_right_ratio="
                f"{cfg.trim_right_ratio} is not supported (causal decoders trim on the right).")
        # SAT hands decoder ratios to EnCodec in upsampling order; audiotools lists them in
        # downsampling order for both networks.
        return {"type": "seanet", **_seanet_common(cfg, where),
                "ratios": list(reversed(cfg.ratios)), "final_activation": cfg.final_activation}
    raise ConfigError(f"model.decoder.type={section.type!r} is not supported; audiotools "
                      "converts oobleck and seanet decoders.")


def _seanet_common(cfg: _SEANet, where: str) -> dict[str, Any]:
    _refuse(cfg.norm not in ("weight_norm", "none"), f"{where}.norm={cfg.norm!r} is not "
            "supported; use weight_norm or none.")
    _refuse(cfg.norm_params, f"{where}.norm_params is not supported.")
    keys = ("n_filters", "n_residual_layers", "activation", "activation_params", "norm",
            "kernel_size", "last_kernel_size", "residual_kernel_size", "dilation_base", "causal",
            "pad_mode", "true_skip", "compress", "lstm")
    return {**{key: getattr(cfg, key) for key in keys}, "latent_dim": cfg.dimension}


# SAT's RVQ defaults (models/factory.py) and the vector-quantize-pytorch keys audiotools maps.
_RVQ_DEFAULTS = {"dim": 128, "codebook_size": 1024, "num_quantizers": 8, "decay": 0.99,
                 "kmeans_init": True, "kmeans_iters": 50, "threshold_ema_dead_code": 2}
_RVQ_KEYS = (*_RVQ_DEFAULTS, "quantize_dropout", "quantize_dropout_cutoff_index")
_FSQ_KEYS = ("levels", "num_codebooks", "dim", "noise_augment_dim")


def _bottleneck(section: Bottleneck | None, latent_dim: int) -> dict[str, Any]:
    where = "model.bottleneck"
    if section is None:
        return {"type": "none"}
    config = dict(section.config)
    if section.type == "vae":
        return {"type": "vae"}
    if section.type == "tanh":
        _unknown(config, ("scale",), f"{where}.config")
        return {"type": "tanh", "scale": config.get("scale", 1.0)}
    if section.type == "rvq":
        _unknown(config, _RVQ_KEYS, f"{where}.config")
        params = {**_RVQ_DEFAULTS, **config}
        _refuse(params["dim"] != latent_dim, f"{where}.config.dim={params['dim']} differs "
                f"from model.latent_dim={latent_dim} (stable-audio-tools defaults dim to 128).")
        return {"type": "rvq", "num_quantizers": params["num_quantizers"],
                "codebook_size": params["codebook_size"], "decay": params["decay"],
                "kmeans_init": params["kmeans_init"], "kmeans_iters": params["kmeans_iters"],
                "threshold_ema_dead_code": params["threshold_ema_dead_code"],
                "quantizer_dropout": bool(params.get("quantize_dropout", False)),
                "min_quantizers": int(params.get("quantize_dropout_cutoff_index", 0)) + 1}
    if section.type == "fsq":
        _unknown(config, _FSQ_KEYS, f"{where}.config")
        _refuse("levels" not in config, f"{where}.config.levels is missing (stable-audio-tools "
                "requires it).")
        _refuse(config.get("noise_augment_dim", 0), f"{where}.config.noise_augment_dim is not "
                "supported.")
        codebooks = config.get("num_codebooks", 1)
        dim = config.get("dim", len(config["levels"]) * codebooks)
        _refuse(dim != latent_dim, f"{where}.config.dim={dim} differs from "
                f"model.latent_dim={latent_dim}.")
        return {"type": "fsq", "levels": config["levels"], "num_codebooks": codebooks}
    raise ConfigError(f"{where}.type={section.type!r} is not supported; audiotools converts "
                      f"{', '.join(SUPPORTED_BOTTLENECKS)} (or no bottleneck).")


def note_frozen(parts: Mapping[str, Network | Bottleneck | None], notes: Notes) -> None:
    """SAT can freeze a part (`requires_grad: false`); audiotools trains them all."""
    for part, section in parts.items():
        notes.unsupported_if(section is not None and not section.requires_grad,
                             f"model.{part}.requires_grad=false: audiotools trains every part")


def convert_encoder(model: Mapping[str, Any], notes: Notes) -> tuple[dict[str, Any],
                                                                      dict[str, Any]]:
    """Our encoder and bottleneck sections for the `encoder` and `bottleneck` of a SAT
    `model` section with its `io_channels` and `latent_dim`: a diffusion autoencoder's, which
    SAT builds with its autoencoders' factories."""
    encoder = _typed(Network, model["encoder"], "model.encoder")
    bottleneck = (None if model.get("bottleneck") is None
                  else _typed(Bottleneck, model["bottleneck"], "model.bottleneck"))
    note_frozen({"encoder": encoder, "bottleneck": bottleneck}, notes)
    return (_encoder(encoder, model["io_channels"]),
            _bottleneck(bottleneck, model["latent_dim"]))


def _unknown(config: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    extra = sorted(set(config) - set(known))
    _refuse(extra, f"{where}: {', '.join(extra)} not supported; audiotools maps "
            f"{', '.join(known)}.")


def convert_architecture(config: ModelConfig) -> AutoencoderConfig:
    """The audiotools `model:` section of the network SAT builds from `config`."""
    section = config.model
    _refuse(section.pretransform is not None, "model.pretransform is not supported: "
            "audiotools' autoencoders read audio directly (no pretransform under them).")
    for key in ("in_channels", "out_channels"):
        value = getattr(section, key)
        _refuse(value not in (None, section.io_channels), f"model.{key}={value} differs from "
                f"model.io_channels={section.io_channels}; audiotools needs them equal.")
    model = validate_autoencoder_config({
        "sample_rate": config.sample_rate, "channels": section.io_channels,
        "latent_dim": section.latent_dim,
        "encoder": _encoder(section.encoder, section.io_channels),
        "decoder": _decoder(section.decoder, section.io_channels),
        "bottleneck": _bottleneck(section.bottleneck, section.latent_dim)})
    hop = model.hop_length
    _refuse(hop != section.downsampling_ratio, f"model.downsampling_ratio="
            f"{section.downsampling_ratio} but the encoder downsamples by {hop}; make them "
            "agree.")
    return model


def load_architecture(model_config: str | Path | Mapping[str, Any]) -> AutoencoderConfig:
    """The audiotools model section of an SAT autoencoder config (a JSON path or its content),
    or of the autoencoder pretransform of a SAT diffusion config."""
    if isinstance(model_config, Mapping):
        return convert_architecture(parse_model_config(model_config, "model config"))
    return convert_architecture(parse_model_config(read_json(model_config, "model config"),
                                                   str(model_config)))
