"""The `training` section of an SAT autoencoder config to audiotools solver keys.

Maps `loss_configs` (discriminator `encodec`, spectral `mrstft`, time `l1`, bottleneck `kl`),
`optimizer_configs` (Adam/AdamW, InverseLR), `learning_rate`, `use_ema`, `warmup_steps` and
`demo.demo_every` onto `losses`, `adversarial`, `optim` and `schedule`, with SAT's defaults
where a key is absent (including torch's optimizer defaults and auraloss' STFT resolutions).
What has no audiotools equivalent goes to the Notes.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from . import values
from .notes import Notes

# SAT's loss_configs when a config gives none (training/autoencoders.py).
_SCALES = [2048, 1024, 512, 256, 128, 64, 32]
_HOPS = [scale // 4 for scale in _SCALES]
DEFAULT_LOSS_CONFIGS: dict[str, Any] = {
    "discriminator": {"type": "encodec", "config": {
        "n_ffts": _SCALES, "hop_lengths": _HOPS, "win_lengths": _SCALES, "filters": 32},
        "weights": {"adversarial": 0.1, "feature_matching": 5.0}},
    "spectral": {"type": "mrstft", "config": {
        "fft_sizes": _SCALES, "hop_sizes": _HOPS, "win_lengths": _SCALES,
        "perceptual_weighting": True}, "weights": {"mrstft": 1.0}},
    "time": {"type": "l1", "config": {}, "weights": {"l1": 0.0}},
}
# auraloss MultiResolutionSTFTLoss: keys audiotools maps (with defaults), keys it does not.
_MRSTFT = {"fft_sizes": [1024, 2048, 512], "hop_sizes": [120, 240, 50],
           "win_lengths": [600, 1200, 240], "window": "hann_window", "w_sc": 1.0,
           "w_log_mag": 1.0, "w_lin_mag": 0.0, "scale": None, "n_bins": None,
           "perceptual_weighting": False}
_MRSTFT_UNSUPPORTED = {"w_phs": 0.0, "scale_invariance": False, "eps": 1e-8, "output": "loss",
                       "reduction": "mean", "mag_distance": "L1", "device": None}
# SAT's EnCodec MultiScaleSTFTDiscriminator: mapped keys, and fixed ones with their defaults.
_ENCODEC = {"n_ffts": [1024, 2048, 512], "hop_lengths": [256, 512, 128],
            "win_lengths": [1024, 2048, 512], "stride": [1, 1], "loss_type": "hinge",
            "normalize_losses": False}
_ENCODEC_FIXED = {"out_channels": 1, "max_filters": 1024, "filters_scale": 1,
                  "kernel_size": [3, 9], "dilations": [1, 2, 4], "normalized": True,
                  "activation": "LeakyReLU", "activation_params": {"negative_slope": 0.2},
                  "spec_scale_pow": 0.0}
_GAN_LOSSES = {"hinge": "hinge", "rpgan": "relativistic"}
# torch.optim defaults of the optimizers audiotools has.
_OPTIMIZERS = {"Adam": ("adam", {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                 "weight_decay": 0.0}),
               "AdamW": ("adamw", {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                   "weight_decay": 1e-2}),
               # DeepSpeed's FusedAdam: AdamW-style decay by default, no decay by default.
               "FusedAdam": ("adamw", {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                       "weight_decay": 0.0})}
_PERFORMANCE_ONLY = ("foreach", "fused", "capturable", "differentiable")
# ema_pytorch as SAT sets it up: beta 0.9999, power 3/4 (decay warm-up), every update.
SAT_EMA = {"use": True, "decay": 0.9999, "warmup_power": 0.75, "every": 1}
KNOWN_TRAINING_KEYS = ("learning_rate", "warmup_steps", "encoder_freeze_on_warmup", "loss_configs",
                       "eval_loss_configs", "optimizer_configs", "use_ema", "force_input_mono",
                       "latent_mask_ratio", "teacher_model", "teacher_model_ckpt", "demo")


@dataclass
class TrainingConversion:
    """Recipe sections (optim, schedule, losses, adversarial) and SAT's demo interval."""

    sections: dict[str, Any]
    demo_every: int


def _weight(weights: Mapping[str, Any], key: str, where: str) -> float:
    if key not in weights:
        raise ConfigError(f"{where}.weights.{key} is missing (stable-audio-tools requires it).")
    return values.number(weights[key], f"{where}.weights.{key}", low=0)


def _spectral(section: Mapping[str, Any], notes: Notes) -> tuple[dict[str, Any], float]:
    where = "training.loss_configs.spectral"
    config = dict(section.get("config") or {})
    unknown = sorted(set(config) - set(_MRSTFT) - set(_MRSTFT_UNSUPPORTED))
    if unknown:
        raise ConfigError(f"{where}.config: unknown keys {unknown} (auraloss would refuse them "
                          f"too); known: {', '.join([*_MRSTFT, *_MRSTFT_UNSUPPORTED])}.")
    if "sample_rate" in config:
        raise ConfigError(f"{where}.config.sample_rate: stable-audio-tools passes the model's "
                          "sample rate itself; remove the key.")
    for key, default in _MRSTFT_UNSUPPORTED.items():
        notes.unsupported_if(key in config and config[key] != default,
                             f"{where}.config.{key}={config.get(key)!r} (audiotools' STFT loss "
                             f"uses {default!r})")
    settings = {key: config.get(key, default) for key, default in _MRSTFT.items()}
    if settings["scale"] not in (None, "mel"):
        notes.unsupported.append(f"{where}.config.scale={settings['scale']!r} (audiotools: "
                                 "linear or mel bins; linear used)")
        settings["scale"] = None
    if settings["n_bins"] is None:
        settings.pop("n_bins")
    notes.unsupported_if(section.get("decay", 1.0) != 1.0,
                         f"{where}.decay={section.get('decay')} (the weight stays constant)")
    return settings, _weight(section.get("weights") or {}, "mrstft", where)


def _discriminator(section: Mapping[str, Any] | None, notes: Notes) -> dict[str, Any]:
    where = "training.loss_configs.discriminator"
    if section is None:
        return {}
    weights = section.get("weights") or {}
    adversarial: dict[str, Any] = {
        "weights": {"adversarial": _weight(weights, "adversarial", where),
                    "feature_matching": _weight(weights, "feature_matching", where)}}
    if section.get("type") != "encodec":
        notes.unsupported.append(
            f"{where}.type={section.get('type')!r}: audiotools trains with the EnCodec "
            "multi-scale STFT discriminator ('encodec') instead, at its recipe defaults")
        adversarial["settings"] = {"stride": [1, 1]}
        return adversarial
    config = dict(section.get("config") or {})
    if "in_channels" in config:
        raise ConfigError(f"{where}.config.in_channels: stable-audio-tools passes the model's "
                          "channel count itself; remove the key.")
    if "filters" not in config:
        raise ConfigError(f"{where}.config.filters is missing (stable-audio-tools requires it).")
    for key, default in _ENCODEC_FIXED.items():
        notes.unsupported_if(key in config and config[key] != default,
                             f"{where}.config.{key}={config.get(key)!r} (audiotools' "
                             f"discriminator uses {default!r})")
    ignored = sorted(set(config) - {"filters", *_ENCODEC, *_ENCODEC_FIXED})
    notes.unsupported_if(ignored, f"{where}.config keys {ignored}: ignored (stable-audio-tools' "
                         "discriminator ignores unknown keys too)")
    settings = {key: config.get(key, default) for key, default in _ENCODEC.items()}
    if settings["loss_type"] not in _GAN_LOSSES:
        raise ConfigError(f"{where}.config.loss_type={settings['loss_type']!r}; "
                          f"stable-audio-tools knows {', '.join(_GAN_LOSSES)}.")
    adversarial["settings"] = {
        "filters": config["filters"], "n_ffts": settings["n_ffts"],
        "hop_lengths": settings["hop_lengths"], "win_lengths": settings["win_lengths"],
        "stride": list(settings["stride"]), "loss": _GAN_LOSSES[settings["loss_type"]],
        "relative_feature_matching": bool(settings["normalize_losses"])}
    return adversarial


def convert_losses(loss_configs: Mapping[str, Any] | None, bottleneck: str,
                   notes: Notes) -> dict[str, Any]:
    """`losses` and `adversarial` sections of the recipe."""
    configs = DEFAULT_LOSS_CONFIGS if loss_configs is None else loss_configs
    for key in ("spectral", "time"):
        if key not in configs:
            raise ConfigError(f"training.loss_configs.{key} is missing (stable-audio-tools "
                              "requires it).")
    spectral, spectral_weight = _spectral(configs["spectral"], notes)
    time = values.section(configs["time"], "training.loss_configs.time")
    time_weights = values.section(time.get("weights"), "training.loss_configs.time.weights")
    l1, l2 = (values.number(time_weights.get(key, 0.0),
                            f"training.loss_configs.time.weights.{key}", low=0)
              for key in ("l1", "l2"))
    notes.unsupported_if(l2 > 0, f"training.loss_configs.time.weights.l2={l2} (no L2 "
                         "waveform loss in audiotools)")
    notes.unsupported_if(time.get("decay", 1.0) != 1.0, "training.loss_configs.time.decay="
                         f"{time.get('decay')} (the weight stays constant)")
    for extra in ("mrmel", "hubert"):
        weight = ((configs.get(extra) or {}).get("weights") or {}).get(extra, 0.0)
        notes.unsupported_if(weight > 0, f"training.loss_configs.{extra} (weight {weight}): "
                             "no such loss in audiotools")
    bottleneck_weights = values.section(
        values.section(configs.get("bottleneck"), "training.loss_configs.bottleneck")
        .get("weights"), "training.loss_configs.bottleneck.weights")
    kl_weight = values.number(bottleneck_weights.get("kl", 1e-6),
                              "training.loss_configs.bottleneck.weights.kl", low=0)
    discriminator = _discriminator(configs.get("discriminator"), notes)
    weights = {"spectral": spectral_weight, "l1": l1,
               "kl": kl_weight if bottleneck == "vae" else 0.0,
               # SAT weighs the RVQ's quantizer loss by 1.
               "commitment": 1.0 if bottleneck == "rvq" else 0.0,
               **discriminator.get("weights", {"adversarial": 0.0, "feature_matching": 0.0})}
    sections: dict[str, Any] = {"losses": {"weights": weights, "spectral": spectral}}
    if "settings" in discriminator:
        sections["adversarial"] = discriminator["settings"]
    return sections


def _optimizer(section: Mapping[str, Any], where: str, notes: Notes) -> dict[str, Any]:
    kind = section.get("type")
    config = dict(section.get("config") or {})
    if kind not in _OPTIMIZERS:
        notes.unsupported.append(f"{where}.type={kind!r}: audiotools has Adam and AdamW; AdamW "
                                 "with torch's defaults is used")
        kind = "AdamW"
    name, defaults = _OPTIMIZERS[kind]
    notes.unsupported_if(section.get("type") == "FusedAdam", f"{where}.type=FusedAdam "
                         "(DeepSpeed): trained with torch's AdamW (same update)")
    extra = sorted(set(config) - set(defaults))
    for key in extra:
        if key in _PERFORMANCE_ONLY:
            notes.difference(f"{where}.config.{key}: a speed setting of torch; ignored")
        else:
            notes.unsupported_if(config[key], f"{where}.config.{key}={config[key]!r}")
    settings = {key: config.get(key, default) for key, default in defaults.items()}
    settings["lr"] = values.number(settings["lr"], f"{where}.config.lr", above=0)
    settings["betas"] = values.numbers(settings["betas"], f"{where}.config.betas", 2, low=0,
                                       high=1)
    settings["eps"] = values.number(settings["eps"], f"{where}.config.eps", above=0)
    settings["weight_decay"] = values.number(settings["weight_decay"],
                                             f"{where}.config.weight_decay", low=0)
    return {"optimizer": name, **settings}


def _schedule(section: Mapping[str, Any] | None, lr: float, where: str,
              notes: Notes) -> dict[str, Any] | None:
    if section is None:
        return None
    if section.get("type") != "InverseLR":
        notes.unsupported.append(f"{where}.type={section.get('type')!r}: audiotools maps "
                                 "InverseLR; the learning rate stays constant")
        return None
    config = dict(section.get("config") or {})
    extra = sorted(set(config) - {"inv_gamma", "power", "warmup", "final_lr"})
    if extra:
        raise ConfigError(f"{where}.config: unknown keys {extra}; InverseLR takes inv_gamma, "
                          "power, warmup, final_lr.")
    final_lr = values.number(config.get("final_lr", 0.0), f"{where}.config.final_lr", low=0)
    if final_lr > lr:
        raise ConfigError(f"{where}.config.final_lr={final_lr} exceeds the optimizer's "
                          f"lr={lr}.")
    return {"name": "inverse",
            "inv_gamma": values.number(config.get("inv_gamma", 1.0), f"{where}.config.inv_gamma",
                                       above=0),
            "power": values.number(config.get("power", 1.0), f"{where}.config.power", low=0),
            "exp_warmup": values.number(config.get("warmup", 0.0), f"{where}.config.warmup",
                                        low=0, high=1),
            "min_lr_ratio": final_lr / lr}


def convert_optimizers(training: Mapping[str, Any], discriminator: bool,
                       notes: Notes) -> dict[str, Any]:
    """`optim` (without epochs etc.), `schedule` and the discriminator's learning rate."""
    where = "training.optimizer_configs"
    configs = training.get("optimizer_configs")
    if configs is None:
        lr = training.get("learning_rate")
        if lr is None:
            raise ConfigError("training.learning_rate or training.optimizer_configs is "
                              "required (stable-audio-tools builds its optimizers from them).")
        # SAT's default: AdamW(lr, betas=(0.8, 0.99)) for both networks, no schedule.
        lr = values.number(lr, "training.learning_rate", above=0)
        optim = {"optimizer": "adamw", "lr": lr, "betas": [0.8, 0.99], "eps": 1e-8,
                 "weight_decay": 1e-2}
        return {"optim": optim, "schedule": {"name": "none"}, "disc_lr": lr}
    for key in ("autoencoder", *(("discriminator",) if discriminator else ())):
        if key not in configs or "optimizer" not in configs[key]:
            raise ConfigError(f"{where}.{key}.optimizer is missing (stable-audio-tools "
                              "requires it).")
    optim = _optimizer(configs["autoencoder"]["optimizer"], f"{where}.autoencoder.optimizer",
                       notes)
    schedule = _schedule(configs["autoencoder"].get("scheduler"), optim["lr"],
                         f"{where}.autoencoder.scheduler", notes)
    disc_lr = optim["lr"]
    if discriminator:
        disc = _optimizer(configs["discriminator"]["optimizer"],
                          f"{where}.discriminator.optimizer", Notes())
        disc_lr = disc.pop("lr")
        differing = sorted(k for k, v in disc.items() if k != "lr" and v != optim[k])
        notes.unsupported_if(differing, f"{where}.discriminator.optimizer {differing} differ "
                             "from the autoencoder's: audiotools' discriminator optimizer "
                             "takes the autoencoder's settings (its own lr only)")
        disc_schedule = _schedule(configs["discriminator"].get("scheduler"), disc_lr,
                                  f"{where}.discriminator.scheduler", Notes())
        if schedule is not None and disc_schedule is None:
            notes.difference(f"{where}: only the autoencoder has a scheduler, which "
                             "stable-audio-tools then ignores; no schedule here either")
            schedule = None
        elif schedule != disc_schedule:
            notes.unsupported_if(disc_schedule is not None,
                                 f"{where}.discriminator.scheduler differs from the "
                                 "autoencoder's: both follow the autoencoder's here")
    return {"optim": optim, "schedule": schedule or {"name": "none"}, "disc_lr": disc_lr}


def convert_training(training: Mapping[str, Any] | None, bottleneck: str,
                     notes: Notes) -> TrainingConversion:
    """Recipe sections for the `training` section of an SAT autoencoder config."""
    if training is None:
        raise ConfigError("the model config has no `training` section; stable-audio-tools "
                          "needs one to train (learning_rate or optimizer_configs at least).")
    for key in sorted(set(training) - set(KNOWN_TRAINING_KEYS)):
        notes.difference(f"training.{key}: not read by stable-audio-tools' autoencoder "
                         "training either; ignored")
    sections = convert_losses(training.get("loss_configs"), bottleneck, notes)
    discriminator = "adversarial" in sections
    optimizers = convert_optimizers(training, discriminator, notes)
    optim = {**optimizers["optim"]}
    optim["ema"] = dict(SAT_EMA) if training.get("use_ema", False) else {"use": False}
    sections.update(optim=optim, schedule=optimizers["schedule"])
    if discriminator:
        warmup = values.whole(training.get("warmup_steps", 0), "training.warmup_steps", low=0)
        sections["adversarial"].update(lr=optimizers["disc_lr"],
                                       warmup_steps=math.ceil(warmup / 2))
        notes.difference(
            "stable-audio-tools alternates batches: odd steps update the discriminator, even "
            "steps the autoencoder; audiotools updates both on every batch (discriminator "
            "first), so one audiotools update = two SAT steps of the GAN")
        notes.unsupported_if(warmup, f"training.warmup_steps={warmup}: stable-audio-tools "
                             "keeps training the discriminator during its warm-up; audiotools "
                             f"starts both adversarial updates after {math.ceil(warmup / 2)} "
                             "autoencoder updates (the same number of generator steps)")
    for key, kind in (("encoder_freeze_on_warmup", "frozen encoder after warm-up"),
                      ("force_input_mono", "mono encoder input"),
                      ("latent_mask_ratio", "latent masking"),
                      ("teacher_model", "distillation from a teacher")):
        notes.unsupported_if(training.get(key), f"training.{key}={training.get(key)!r}: no "
                             f"{kind} in audiotools")
    notes.unsupported_if(training.get("eval_loss_configs"),
                         "training.eval_loss_configs: audiotools' evaluate stage reports "
                         "si_snr, mel_distance and stft_distance instead")
    if training.get("use_ema", False):
        notes.difference("use_ema: EMA decay 0.9999 with ema_pytorch's warm-up "
                         "(optim.ema.warmup_power=0.75) as stable-audio-tools sets it up")
    demo = training.get("demo") or {}
    notes.unsupported_if(set(demo) - {"demo_every"}, f"training.demo keys "
                         f"{sorted(set(demo) - {'demo_every'})}: audiotools' generate stage "
                         "writes reconstructions of the generate split instead")
    demo_every = values.whole(demo.get("demo_every", 2000), "training.demo.demo_every", low=1)
    return TrainingConversion(sections, demo_every)
