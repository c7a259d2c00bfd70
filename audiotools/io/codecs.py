"""Frozen codecs for the generative families, from wherever the codec is: `//recipe/<family>/
<recipe>` (the XP that recipe trains), `//sig/SIG`, an XP folder, an exported `.safetensors`,
or another tool's checkpoint (a stable-audio-tools autoencoder with `sat_model_config`)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, field_validator

from ..config import Section
from ..errors import CheckpointError, ConfigError
from ..families import FAMILIES
from ..models.codec import FrozenCodec, LatentStats, is_discrete
from .loading import load_model

# How a pipeline takes a codec other than the one its export records.
_PASS_CODEC = ("the pipeline's from_model(loaded.model, loaded.export, codec=load_codec(PATH, "
               "...)) with loaded = load_model(MODEL)")


class CodecConfig(Section):
    """The `codec:` section of a latent or token model: which frozen codec, and how its
    latents are scaled."""

    # //recipe/<family>/<recipe>, //sig/SIG, an XP folder, an exported .safetensors, or a
    # stable-audio-tools checkpoint (with sat_model_config). Required (null in a recipe that
    # leaves it to the command line).
    source: str | None = None
    # Latents are divided by it (stable-audio-tools' pretransform.scale).
    scale: float = Field(1.0, gt=0.0)
    # Normalise latents per channel with the training split's statistics, which pre-encoded
    # data records (codec.json).
    normalize: bool = False
    sat_model_config: str | None = None

    @field_validator("source")
    @classmethod
    def _source_is_set(cls, source: str | None) -> str:
        if not source:
            raise ValueError("no codec: set codec.source=//recipe/autoencoder/NAME, //sig/SIG, "
                             "an exported .safetensors or a stable-audio-tools checkpoint")
        return source


def load_codec(source: str | Path, device: str | torch.device = "cpu", *, scale: float = 1.0,
               stats: LatentStats | None = None, discrete: bool = False,
               **options: Any) -> FrozenCodec:
    """The codec of `source`, frozen, on `device`. `scale` divides its latents
    (stable-audio-tools' `pretransform.scale`), `stats` normalises them per channel;
    `discrete` refuses a codec without tokens. `options` go to a foreign format."""
    loaded = load_model(source, device, **options)
    if not loaded.family.codec:
        codecs = sorted(name for name, family in FAMILIES.items() if family.codec)
        raise ConfigError(f"{source}: a {loaded.family.name} model is not a codec; codecs come "
                          f"from the families {', '.join(codecs)}.")
    codec = FrozenCodec(loaded.model, str(source), scale, stats).to(device)
    if discrete and not is_discrete(codec):
        kind = loaded.export.model.get("bottleneck", {}).get("type", "continuous")
        raise ConfigError(f"{source}: this codec has continuous latents (bottleneck {kind!r}); "
                          "a token model needs a discrete one (bottleneck rvq or fsq).")
    return codec


def codec_from_config(config: CodecConfig, device: str | torch.device = "cpu",
                      stats: LatentStats | None = None, discrete: bool = False) -> FrozenCodec:
    """The codec a `codec:` section names; `normalize` needs the statistics `stats`."""
    if config.normalize and stats is None:
        raise ConfigError("codec.normalize=true needs the latents' statistics, which pre-encoded "
                          "data records: train on dataset.source=pre_encoded, or set "
                          "codec.normalize=false.")
    options = {"sat_model_config": config.sat_model_config} if config.sat_model_config else {}
    return load_codec(config.source, device, scale=config.scale,
                      stats=stats if config.normalize else None, discrete=discrete, **options)


def trained_codec(described: Mapping[str, Any] | None, device: torch.device | str,
                  label: str) -> FrozenCodec | None:
    """The codec a generative model was trained on, from what its export records (the
    solver's `export_info()["codec"]`: the codec's `describe()`, where the XP found it, a
    stable-audio-tools model config), with the same scale and statistics; other weights at
    that place are refused. A record without `identity` names the file of a codec that ships
    beside the model (an AudioCraft LM's compression package): nothing to compare, and a
    missing file is named. None when the model was trained without a codec."""
    if described is None:
        return None
    options = ({"sat_model_config": described["sat_model_config"]}
               if described.get("sat_model_config") else {})
    stats = LatentStats(**described["stats"]) if described.get("stats") else None
    source = described.get("path") or described["source"]
    identity = described.get("identity")
    if identity is None and not Path(source).exists():
        raise CheckpointError(f"{label} takes its codec from {source}, which does not exist: "
                              f"put the codec there, or pass one: {_PASS_CODEC}.")
    try:
        codec = load_codec(source, device, scale=described["scale"], stats=stats, **options)
    except CheckpointError as error:
        raise CheckpointError(f"{label} was trained on the codec {source}, which cannot be "
                              f"loaded ({error}): put it back, or pass one: {_PASS_CODEC}."
                              ) from None
    if identity is not None and codec.identity != identity:
        raise CheckpointError(
            f"{label} was trained on the codec {described['source']} (sha256 "
            f"{identity[:12]}...), but {source} now holds other weights (sha256 "
            f"{codec.identity[:12]}...). Put the original back, or pass it: {_PASS_CODEC}.")
    return codec
