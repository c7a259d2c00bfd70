"""The `training` section of an SAT diffusion config to audiotools' diffusion solver keys:
optimizer and scheduler (`optimizer_configs.diffusion`, or `learning_rate` with SAT's Adam),
EMA, CFG dropout, timestep sampler, inpainting masks, and the demo settings as `generate`.
A diffusion autoencoder's training wrapper reads less (AUTOENCODER_KEYS): the rest is listed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .notes import Notes
from .training import SAT_EMA, TrainingConversion, _optimizer, _schedule

_SAMPLERS = ("uniform", "logit_normal", "trunc_logit_normal")
# Keys SAT's diffusion wrappers read; the rest are listed as ignored.
KNOWN_KEYS = ("learning_rate", "optimizer_configs", "use_ema", "cfg_dropout_prob",
              "timestep_sampler", "timestep_sampler_options", "mask_padding",
              "mask_padding_dropout", "log_loss_info", "pre_encoded", "p_one_shot",
              "inpainting", "demo")
_DEMO_KEYS = ("demo_every", "demo_steps", "demo_cfg_scales", "demo_cond", "num_demos")
# What SAT's DiffusionAutoencoderTrainingWrapper reads (training/factory.py): Adam at
# learning_rate, an optional reconstruction loss, and its demo's every and steps.
AUTOENCODER_KEYS = ("learning_rate", "use_reconstruction_loss", "demo")
_AUTOENCODER_DEMO_KEYS = ("demo_every", "demo_steps")
# The wrapper hands its bottleneck losses no loss config, so SAT's default KL weight holds.
SAT_AUTOENCODER_KL = 1e-6


def _optimizers(training: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    configs = training.get("optimizer_configs")
    if configs is None:
        lr = training.get("learning_rate")
        if lr is None:
            raise ConfigError("training.learning_rate or training.optimizer_configs is "
                              "required (stable-audio-tools builds its optimizer from them).")
        # SAT's default for learning_rate alone: Adam(lr), no schedule.
        configs = {"diffusion": {"optimizer": {"type": "Adam", "config": {"lr": lr}}}}
    where = "training.optimizer_configs.diffusion"
    if "diffusion" not in configs or "optimizer" not in configs["diffusion"]:
        raise ConfigError(f"{where}.optimizer is missing (stable-audio-tools requires it).")
    optim = _optimizer(configs["diffusion"]["optimizer"], f"{where}.optimizer", notes)
    schedule = _schedule(configs["diffusion"].get("scheduler"), optim["lr"],
                         f"{where}.scheduler", notes)
    return {"optim": optim, "schedule": schedule or {"name": "none"}}


def _generate(demo: Mapping[str, Any], objective: str,
              conditioners: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    """SAT's demo settings as `generate` (its demo_every is converted by the caller)."""
    generate: dict[str, Any] = {"steps": int(demo.get("demo_steps", 250)),
                                "sampler": "euler" if objective == "rectified_flow"
                                else "dpmpp_2m_sde"}
    if "demo_cfg_scales" in demo:
        generate["cfg_scale"] = [float(scale) for scale in demo["demo_cfg_scales"]]
    conditions, dropped, absent = [], set(), set()
    for item in demo.get("demo_cond") or []:
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
        generate["num_samples"] = int(demo["num_demos"])
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


def _autoencoder_training(training: Mapping[str, Any], notes: Notes) -> TrainingConversion:
    """SAT's diffusion-autoencoder training: Adam(learning_rate), always an EMA, the v loss on
    uniform (scrambled Sobol) noise levels plus the VAE's KL at 1e-6, no conditioning; its
    demos reconstruct with its v-diffusion DDIM sampler."""
    for key in sorted(set(training) - set(AUTOENCODER_KEYS)):
        notes.difference(f"training.{key}: not read by stable-audio-tools' diffusion-"
                         "autoencoder training either; ignored")
    if "learning_rate" not in training:
        raise ConfigError("training.learning_rate is required (stable-audio-tools' diffusion-"
                          "autoencoder training builds Adam(learning_rate) from it).")
    sections = _optimizers({"learning_rate": training["learning_rate"]}, notes)
    sections["optim"]["ema"] = _ema(notes)
    sections.update(conditioning={"joint_dropout": 0.0}, timesteps={"type": "uniform"},
                    losses={"kl": SAT_AUTOENCODER_KL})
    notes.unsupported_if(training.get("use_reconstruction_loss"), "training.use_reconstruction_"
                         "loss=true: SAT's multi-resolution STFT loss (weight 0.1) on the "
                         "prediction; audiotools trains the diffusion loss and the KL only")
    demo = dict(training.get("demo") or {})
    _ignored_demo_keys(demo, _AUTOENCODER_DEMO_KEYS, notes)
    sections["generate"] = {"steps": int(demo.get("demo_steps", 250)), "sampler": "ddim"}
    notes.difference("demos: SAT reconstructs a batch of training audio each time; audiotools "
                     "reconstructs the generate split's first generate.num_samples items, with "
                     "DDIM (SAT's v-diffusion sampler, eta 0)")
    notes.difference("the diffusion loss is taken over the real frames (SAT's also over the "
                     "padding of files shorter than sample_size)")
    return TrainingConversion(sections, int(demo.get("demo_every", 2000)))


def convert_diffusion_training(training: Mapping[str, Any] | None, model_type: str,
                               objective: str, conditioners: Mapping[str, Any],
                               notes: Notes) -> TrainingConversion:
    """Recipe sections for the `training` section of an SAT diffusion config."""
    if training is None:
        raise ConfigError("the model config has no `training` section; stable-audio-tools "
                          "needs one to train (learning_rate or optimizer_configs at least).")
    if model_type == "diffusion_autoencoder":
        return _autoencoder_training(training, notes)
    for key in sorted(set(training) - set(KNOWN_KEYS)):
        notes.difference(f"training.{key}: not read by stable-audio-tools' diffusion "
                         "training either; ignored")
    if training.get("pre_encoded"):
        raise ConfigError("training.pre_encoded=true: convert the latents with `audiotools "
                          "pre-encode` and train on dataset.source=pre_encoded instead.")
    sections = _optimizers(training, notes)
    # SAT's unconditional wrapper always keeps an EMA; the conditional one by default.
    use_ema = model_type == "diffusion_uncond" or training.get("use_ema", True)
    sections["optim"]["ema"] = _ema(notes) if use_ema else {"use": False}
    dropout = float(training.get("cfg_dropout_prob", 0.1)) if conditioners else 0.0
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
    inpainting = training.get("inpainting")
    if model_type == "diffusion_cond_inpaint" and inpainting:
        mask = dict(inpainting.get("mask_kwargs") or {})
        converted: dict[str, Any] = {}
        if "max_mask_segments" in mask:
            converted["max_segments"] = int(mask.pop("max_mask_segments"))
        if "mask_type_probabilities" in mask:
            random, full, causal = mask.pop("mask_type_probabilities")
            converted.update(random_segments=random, full=full, causal=causal)
        notes.unsupported_if(mask, f"training.inpainting.mask_kwargs {sorted(mask)}: ignored")
        sections["inpainting"] = converted
    demo = dict(training.get("demo") or {})
    sections["generate"] = _generate(demo, objective, conditioners, notes)
    return TrainingConversion(sections, int(demo.get("demo_every", 2000)))
