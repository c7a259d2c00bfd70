"""AudioCraft compression packages (`compression_state_dict.bin`: an `EncodecModel`, SEANet
encoder and decoder around a residual vector quantizer) as audiotools autoencoders.

The config comes from the package's `xp.cfg` as AudioCraft's `builders.get_compression_model`
reads it: `encodec` (sample rate, channels, renormalize), `seanet` with its `encoder` and
`decoder` overrides, and `rvq` (or `no_quant`). AudioCraft writes SEANet ratios in decoder
order; audiotools writes both networks' in encoder order, so they are reversed. The networks'
keys are audiotools' already (weight norm converted from `weight_g`/`weight_v`); the quantizer's
`quantizer.vq.layers.{i}._codebook.{inited, cluster_size, embed, embed_avg}` become
vector-quantize-pytorch's `bottleneck.quantizer.layers.{i}._codebook.{initted, ...}` with its
leading codebook-head axis. The result encodes to AudioCraft's tokens and decodes them to its
audio (scripts/check_audiocraft_parity.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..models.autoencoder import AudioAutoencoder, build_autoencoder
from ..models.autoencoder.config import AutoencoderConfig, validate_autoencoder_config
from ..sat.checkpoints import match_weights
from .package import Package, read_package, reads_xp_cfg

# AudioCraft 1.3.0's constructor defaults (SEANetEncoder/Decoder, ResidualVectorQuantizer) for
# the keys a section may leave out.
_SEANET: dict[str, Any] = {
    "channels": 1, "dimension": 128, "n_filters": 32, "n_residual_layers": 3,
    "ratios": [8, 5, 4, 2], "activation": "ELU", "activation_params": {"alpha": 1.0},
    "norm": "none", "norm_params": {}, "kernel_size": 7, "last_kernel_size": 7,
    "residual_kernel_size": 3, "dilation_base": 2, "causal": False, "pad_mode": "reflect",
    "true_skip": True, "compress": 2, "lstm": 0, "disable_norm_outer_blocks": 0}
_DECODER: dict[str, Any] = {"final_activation": None, "final_activation_params": None,
                            "trim_right_ratio": 1.0}
_RVQ: dict[str, Any] = {"n_q": 8, "q_dropout": False, "bins": 1024, "decay": 0.99,
                        "kmeans_init": True, "kmeans_iters": 10, "threshold_ema_dead_code": 2,
                        "orthogonal_reg_weight": 0.0}
# The SEANet options audiotools' network takes as they are.
_SHARED = ("n_filters", "n_residual_layers", "activation", "activation_params", "norm",
           "kernel_size", "last_kernel_size", "residual_kernel_size", "dilation_base", "causal",
           "pad_mode", "true_skip", "compress", "lstm")
_QUANTIZER = "quantizer.vq.layers."
_CODEBOOK = {"inited": "initted", "cluster_size": "cluster_size", "embed": "embed",
             "embed_avg": "embed_avg"}


def _network(package: Package, side: str) -> tuple[dict[str, Any], int]:
    """One network's section (`seanet` with its `side` overrides, AudioCraft's defaults) and
    its audio channels."""
    section = dict(package.option("seanet", None) or {})
    overrides = {"encoder": section.pop("encoder", None) or {},
                 "decoder": section.pop("decoder", None) or {}}[side]
    settings = {**_SEANET, **(_DECODER if side == "decoder" else {}), **section, **overrides}

    def where(key: str) -> str:
        return f"seanet.{side}.{key}" if key in overrides else f"seanet.{key}"

    for key, allowed, supported in (
            ("norm", ("weight_norm", "none"), "weight_norm or none"),
            ("pad_mode", ("reflect", "constant", "replicate"), "reflect, constant, replicate"),
            ("norm_params", ({},), "{}"),
            ("disable_norm_outer_blocks", (0,), "0: the same norm in every block")):
        if settings[key] not in allowed:
            raise package.unsupported(where(key), settings[key], supported)
    network = {key: settings[key] for key in _SHARED}
    network.update(type="seanet", ratios=list(reversed(settings["ratios"])),
                   latent_dim=settings["dimension"])
    if side == "decoder":
        if settings["final_activation_params"]:
            raise package.unsupported(where("final_activation_params"),
                                      settings["final_activation_params"],
                                      "none: the activation's defaults")
        if settings["trim_right_ratio"] != 1.0:
            raise package.unsupported(where("trim_right_ratio"), settings["trim_right_ratio"],
                                      "1.0: causal trimming on the right")
        network["final_activation"] = settings["final_activation"]
    return network, settings["channels"]


def _bottleneck(package: Package) -> dict[str, Any]:
    quantizer = package.require("encodec.quantizer", None, ("rvq", "no_quant"),
                                "rvq, or no_quant for continuous latents")
    if quantizer == "no_quant":
        return {"type": "none"}
    rvq = {**_RVQ, **(package.option("rvq", None) or {})}
    package.training_only("rvq.orthogonal_reg_weight", _RVQ["orthogonal_reg_weight"], 0.0,
                          "orthogonal codebook regularisation")
    return {"type": "rvq", "num_quantizers": rvq["n_q"], "codebook_size": rvq["bins"],
            "decay": rvq["decay"], "kmeans_init": rvq["kmeans_init"],
            "kmeans_iters": rvq["kmeans_iters"],
            "threshold_ema_dead_code": float(rvq["threshold_ema_dead_code"]),
            "quantizer_dropout": bool(rvq["q_dropout"]), "min_quantizers": 1}


@reads_xp_cfg
def compression_settings(package: Package) -> AutoencoderConfig:
    """The autoencoder `model:` section of a compression package."""
    package.require("compression_model", None, ("encodec",), "EnCodec models")
    package.require("encodec.autoencoder", None, ("seanet",), "SEANet networks")
    package.require("encodec.renormalize", False, (False,), "audio as given, not renormalised")
    channels = int(package.option("encodec.channels"))
    networks = {side: _network(package, side) for side in ("encoder", "decoder")}
    for side, (_, network_channels) in networks.items():
        if network_channels != channels:
            raise CheckpointError(f"{package.path}: xp.cfg seanet {side} channels="
                                  f"{network_channels} differ from encodec.channels={channels}.")
    encoder, decoder = networks["encoder"][0], networks["decoder"][0]
    section = {"sample_rate": int(package.option("encodec.sample_rate")), "channels": channels,
               "latent_dim": decoder["latent_dim"], "encoder": encoder, "decoder": decoder,
               "bottleneck": _bottleneck(package)}
    try:
        return validate_autoencoder_config(section)
    except ConfigError as error:
        raise CheckpointError(f"{package.path}: its xp.cfg converts to an autoencoder "
                              f"audiotools cannot build: {error}") from None


def compression_weights(package: Package, model: AudioAutoencoder,
                        strict: bool = True) -> dict[str, torch.Tensor]:
    """The package's `best_state` in `model`'s layout; CheckpointError naming what does not
    fit (`strict`: the model the package's own xp.cfg describes), else what fits
    (continue_from, which logs the rest)."""
    own = model.state_dict()
    renamed = {}
    for key, value in package.weights.items():
        if key.startswith(_QUANTIZER):
            layer, _, rest = key[len(_QUANTIZER):].partition("._codebook.")
            if rest in _CODEBOOK:
                target = f"bottleneck.quantizer.layers.{layer}._codebook.{_CODEBOOK[rest]}"
                if target in own and own[target].numel() == value.numel():
                    value = value.reshape(own[target].shape).to(own[target].dtype)
                key = target
        renamed[key] = value
    weights, report = match_weights(renamed, model)
    if strict and not report.complete:
        raise CheckpointError(f"{package.path}: best_state does not fit the EnCodec model its "
                              f"xp.cfg describes: {report}.")
    return weights


def convert_compression(package: Package) -> AudioAutoencoder:
    """The audiotools autoencoder of an AudioCraft compression package (eval mode)."""
    model = build_autoencoder(compression_settings(package))
    model.load_state_dict(compression_weights(package, model))
    return model.eval()


def load_compression_model(path: str | Path) -> AudioAutoencoder:
    """The autoencoder of an AudioCraft `compression_state_dict.bin` (or of its folder)."""
    return convert_compression(read_package(path, "compression"))
