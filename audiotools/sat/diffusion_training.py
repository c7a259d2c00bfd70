"""The `training` section of an SAT diffusion config to audiotools' diffusion solver keys:
optimizer and scheduler (`optimizer_configs.diffusion`, or `learning_rate` with SAT's Adam),
EMA, CFG dropout, timestep sampler, inpainting masks, and the demo settings as `generate`.
SAT's unconditional and diffusion-autoencoder wrappers read less (UNCOND_KEYS,
AUTOENCODER_KEYS): Adam at learning_rate, always an EMA, uniform noise levels; the rest of
their training section is listed as ignored."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from . import values
from .notes import Notes
from .training import SAT_EMA, TrainingConversion, _optimizer, _schedule

_SAMPLERS = ("uniform", "logit_normal", "trunc_logit_normal")
# Keys SAT's diffusion wrappers read; the rest are listed as ignored.
KNOWN_KEYS = ("learning_rate", "optimizer_configs", "use_ema", "cfg_dropout_prob",
              "timestep_sampler", "timestep_sampler_options", "mask_padding",
              "mask_padding_dropout", "log_loss_info", "pre_encoded", "p_one_shot",
              "inpainting", "demo")
_DEMO_KEYS = ("demo_every", "demo_steps", "demo_cfg_scales", "demo_cond", "num_demos")
# SAT's adversarial post-training (training/arc.py) is a wrapper of its own when `arc` is set;
# these keys are read by it alone.
_ARC_KEYS = ("arc", "clip_grad_norm", "trim_config")
# What SAT's DiffusionAutoencoderTrainingWrapper and DiffusionUncondTrainingWrapper read
# (training/factory.py): Adam at learning_rate, an optional reconstruction loss (the
# autoencoder's) or pre-encoded data (the unconditional one's), and their demos' every and
# steps; the unconditional demo makes 8 clips.
AUTOENCODER_KEYS = ("learning_rate", "use_reconstruction_loss", "demo")
UNCOND_KEYS = ("learning_rate", "pre_encoded", "demo")
_FIXED_DEMO_KEYS = ("demo_every", "demo_steps")
SAT_UNCOND_DEMOS = 8
# The wrapper hands its bottleneck losses no loss config, so SAT's default KL weight holds.
SAT_AUTOENCODER_KL = 1e-6


def _optimizers(training: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    configs = values.section(training.get("optimizer_configs"), "training.optimizer_configs")
    if not configs:
        lr = training.get("learning_rate")
        if lr is None:
            raise ConfigError("training.learning_rate or training.optimizer_configs is "
                              "required (stable-audio-tools builds its optimizer from them).")
        # SAT's default for learning_rate alone: Adam(lr), no schedule.
        lr = values.number(lr, "training.learning_rate", above=0)
        configs = {"diffusion": {"optimizer": {"type": "Adam", "config": {"lr": lr}}}}
    where = "training.optimizer_configs.diffusion"
    diffusion = values.section(configs.get("diffusion"), where)
    if "optimizer" not in diffusion:
        raise ConfigError(f"{where}.optimizer is missing (stable-audio-tools requires it).")
    optim = _optimizer(values.section(diffusion["optimizer"], f"{where}.optimizer"),
                       f"{where}.optimizer", notes)
    schedule = _schedule(values.section(diffusion.get("scheduler"), f"{where}.scheduler")
                         or None, optim["lr"], f"{where}.scheduler", notes)
    return {"optim": optim, "schedule": schedule or {"name": "none"}}


def _demo(training: Mapping[str, Any]) -> Mapping[str, Any]:
    return values.section(training.get("demo"), "training.demo")


def _demo_every(demo: Mapping[str, Any]) -> int:
    return values.whole(demo.get("demo_every", 2000), "training.demo.demo_every", low=1)


def _demo_steps(demo: Mapping[str, Any]) -> int:
    return values.whole(demo.get("demo_steps", 250), "training.demo.demo_steps", low=1)


def _generate(demo: Mapping[str, Any], objective: str,
              conditioners: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    """SAT's demo settings as `generate` (its demo_every is converted by the caller)."""
    generate: dict[str, Any] = {"steps": _demo_steps(demo),
                                "sampler": "euler" if objective == "rectified_flow"
                                else "dpmpp_2m_sde"}
    if "demo_cfg_scales" in demo:
        generate["cfg_scale"] = values.numbers(demo["demo_cfg_scales"],
                                               "training.demo.demo_cfg_scales", low=0)
    conditions, dropped, absent = [], set(), set()
    for item in values.objects(demo.get("demo_cond"), "training.demo.demo_cond"):
        kept = {key: value for key, value in item.items() if key in conditioners}
        dropped |= set(item) - set(kept)
        absent |= set(conditioners) - set(item)
        # A conditioner the demo does not set gets its null condition (SAT would fail).
        conditions.append({**kept, **{name: None for name in conditioners if name not in item}})
    notes.unsupported_if(dropped, f"training.demo.demo_cond keys {sorted(dropped)}: no such "
                         "conditioner here (left out of generate.conditions)")
    notes.unsupported_if(absent, f"training.demo.demo_cond lacks {sorted(absent)}: their null "
                         "condition is generated (stable-audio-tools fails on a missing key)")
    if conditions:
        generate["conditions"] = conditions
    if "num_demos" in demo and not conditions:
        generate["num_samples"] = values.whole(demo["num_demos"], "training.demo.num_demos",
                                               low=1)
    notes.difference(f"demo sampler: audiotools samples with {generate['sampler']} (SAT's "
                     "demos use k-diffusion's dpmpp-3m-sde for v, euler for rectified flow)")
    _ignored_demo_keys(demo, _DEMO_KEYS, notes)
    return generate


def _ignored_demo_keys(demo: Mapping[str, Any], known: tuple[str, ...], notes: Notes) -> None:
    ignored = sorted(set(demo) - set(known))
    notes.unsupported_if(ignored, f"training.demo keys {ignored}: ignored")


def _ema(notes: Notes) -> dict[str, Any]:
    """SAT's EMA (its diffusion wrappers all set ema_pytorch up the same way)."""
    notes.difference("EMA decay 0.9999 with ema_pytorch's warm-up "
                     "(optim.ema.warmup_power=0.75) as stable-audio-tools sets it up")
    return dict(SAT_EMA)


def _fixed_training(training: Mapping[str, Any], known: tuple[str, ...], what: str,
                    notes: Notes) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """What SAT's fixed wrappers share: Adam(learning_rate), always an EMA, uniform
    (scrambled Sobol) noise levels; the sections and the demo settings."""
    for key in sorted(set(training) - set(known)):
        notes.difference(f"training.{key}: not read by stable-audio-tools' {what} training "
                         "either; ignored")
    if "learning_rate" not in training:
        raise ConfigError(f"training.learning_rate is required (stable-audio-tools' {what} "
                          "training builds Adam(learning_rate) from it).")
    sections = _optimizers({"learning_rate": training["learning_rate"]}, notes)
    sections["optim"]["ema"] = _ema(notes)
    sections.update(conditioning={"joint_dropout": 0.0}, timesteps={"type": "uniform"})
    demo = _demo(training)
    _ignored_demo_keys(demo, _FIXED_DEMO_KEYS, notes)
    return sections, demo


def _autoencoder_training(training: Mapping[str, Any], notes: Notes) -> TrainingConversion:
    """SAT's diffusion-autoencoder training: the fixed wrapper's, plus the VAE's KL at 1e-6,
    no conditioning; its demos reconstruct with its v-diffusion DDIM sampler."""
    sections, demo = _fixed_training(training, AUTOENCODER_KEYS, "diffusion-autoencoder",
                                     notes)
    sections["losses"] = {"kl": SAT_AUTOENCODER_KL}
    notes.unsupported_if(training.get("use_reconstruction_loss"), "training.use_reconstruction_"
                         "loss=true: SAT's multi-resolution STFT loss (weight 0.1) on the "
                         "prediction; audiotools trains the diffusion loss and the KL only")
    sections["generate"] = {"steps": _demo_steps(demo), "sampler": "ddim"}
    notes.difference("demos: SAT reconstructs a batch of training audio each time; audiotools "
                     "reconstructs the generate split's first generate.num_samples items, with "
                     "DDIM (SAT's v-diffusion sampler, eta 0)")
    notes.difference("the diffusion loss is taken over the real frames (SAT's also over the "
                     "padding of files shorter than sample_size)")
    return TrainingConversion(sections, _demo_every(demo))


def _uncond_training(training: Mapping[str, Any], notes: Notes) -> TrainingConversion:
    """SAT's unconditional training: the fixed wrapper's; its demos sample 8 clips with its
    v-diffusion DDIM sampler, whatever else the demo section says."""
    _refuse_pre_encoded(training)
    sections, demo = _fixed_training(training, UNCOND_KEYS, "unconditional diffusion", notes)
    sections["generate"] = {"steps": _demo_steps(demo), "sampler": "ddim",
                            "num_samples": SAT_UNCOND_DEMOS}
    notes.difference("demos: 8 clips sampled with DDIM (SAT's v-diffusion sampler, eta 0)")
    return TrainingConversion(sections, _demo_every(demo))


def _refuse_pre_encoded(training: Mapping[str, Any]) -> None:
    if training.get("pre_encoded"):
        raise ConfigError("training.pre_encoded=true: convert the latents with `audiotools "
                          "pre-encode` and train on dataset.source=pre_encoded instead.")


def _inpainting(training: Mapping[str, Any], inpainting: bool,
                notes: Notes) -> dict[str, Any] | None:
    """SAT's inpainting mask settings (both conditional wrappers read them) as `inpainting`."""
    where = "training.inpainting"
    section = values.section(training.get("inpainting"), where)
    if not section:
        return None
    if not inpainting:
        notes.unsupported.append(f"{where}: ignored, the model reads no inpaint_mask and "
                                 "inpaint_masked_input (its input_concat_ids)")
        return None
    mask = values.section(section.get("mask_kwargs"), f"{where}.mask_kwargs")
    converted: dict[str, Any] = {}
    if "max_mask_segments" in mask:
        converted["max_segments"] = values.whole(mask.pop("max_mask_segments"),
                                                 f"{where}.mask_kwargs.max_mask_segments", low=1)
    if "mask_type_probabilities" in mask:
        key = f"{where}.mask_kwargs.mask_type_probabilities"
        probabilities = values.numbers(mask.pop("mask_type_probabilities"), key, 3, low=0)
        if not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6):
            raise ConfigError(f"{key}={probabilities}: the three probabilities (random "
                              "segments, full, causal) must sum to 1, as stable-audio-tools "
                              "requires.")
        converted.update(zip(("random_segments", "full", "causal"), probabilities, strict=True))
    notes.unsupported_if(mask, f"{where}.mask_kwargs {sorted(mask)}: ignored")
    return converted


def convert_diffusion_training(training: Mapping[str, Any] | None, model_type: str,
                               objective: str, conditioners: Mapping[str, Any],
                               notes: Notes, inpainting: bool = False) -> TrainingConversion:
    """Recipe sections for the `training` section of an SAT diffusion config; `inpainting`:
    whether the model reads inpainting masks."""
    if training is None:
        raise ConfigError("the model config has no `training` section; stable-audio-tools "
                          "needs one to train (learning_rate or optimizer_configs at least).")
    training = values.section(training, "training")
    if model_type == "diffusion_autoencoder":
        return _autoencoder_training(training, notes)
    if model_type == "diffusion_uncond":
        return _uncond_training(training, notes)
    for key in sorted(set(training) - set(KNOWN_KEYS) - set(_ARC_KEYS)):
        notes.difference(f"training.{key}: not read by stable-audio-tools' diffusion "
                         "training either; ignored")
    arc = sorted(set(training) & set(_ARC_KEYS))
    notes.unsupported_if("arc" in training, f"training.arc: stable-audio-tools' adversarial "
                         f"post-training (ARC; {', '.join(arc)}) is not reproduced: audiotools "
                         "trains the model with the plain diffusion loss")
    _refuse_pre_encoded(training)
    sections = _optimizers(training, notes)
    sections["optim"]["ema"] = _ema(notes) if training.get("use_ema", True) else {"use": False}
    dropout = (values.number(training.get("cfg_dropout_prob", 0.1),
                             "training.cfg_dropout_prob", low=0, high=1)
               if conditioners else 0.0)
    sections["conditioning"] = {"joint_dropout": dropout}
    if conditioners:
        notes.difference(f"cfg_dropout_prob={dropout}: audiotools nulls all of an item's "
                         "conditions at once (conditioning.joint_dropout); SAT's DiT nulls its "
                         "cross-attention and prepended tokens and keeps the global condition")
    sampler = training.get("timestep_sampler", "uniform")
    if sampler not in _SAMPLERS:
        notes.unsupported.append(f"training.timestep_sampler={sampler!r}: audiotools has "
                                 f"{', '.join(_SAMPLERS)}; uniform used")
        sampler = "uniform"
    sections["timesteps"] = {"type": sampler}
    notes.unsupported_if(training.get("p_one_shot"), f"training.p_one_shot="
                         f"{training.get('p_one_shot')}: no one-shot steps in audiotools")
    if training.get("mask_padding"):
        notes.difference("training.mask_padding: audiotools always takes the loss over the "
                         "real frames only (mask_padding_dropout not reproduced)")
    converted = _inpainting(training, inpainting, notes)
    if converted is not None:
        sections["inpainting"] = converted
    demo = _demo(training)
    sections["generate"] = _generate(demo, objective, conditioners, notes)
    return TrainingConversion(sections, _demo_every(demo))
