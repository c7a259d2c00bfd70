"""Check `audiotools.sat`'s diffusion conversion against stable-audio-tools (SAT) itself.

Run with the reference interpreter (see scripts/check_sat_dit_parity.py for its setup):

    reference/sat/bin/python scripts/check_sat_diffusion_parity.py

1. SAT's txt2audio/stable_audio_2_0.json (tests/sat/configs/): the parameters of each part as
   SAT builds it on the meta device (its DiTWrapper, its autoencoder pretransform, its number
   conditioners; its clap_text conditioner is not built, laion_clap being absent, and keeps
   its CLAP model out of its parameters anyway) against what `audiotools migrate` counts.
2. A small `diffusion_cond` model (DiT with cross-attention, global and prepended conditions;
   number, int and list conditioners; the tiny VAE as pretransform) built by SAT's
   `create_model_from_config` with random weights, saved unwrapped (`{"state_dict": ...}`
   .ckpt as unwrap_model.py writes it, and .safetensors) and wrapped (the training wrapper's
   layout: `diffusion.*` and an EMA copy of the network under `diffusion_ema.ema_model.*`, as
   training/diffusion.py builds it; Lightning is not installed, so the wrapper's attributes
   are rebuilt here). Each loads through `audiotools.sat.load_diffusion`; the denoiser output
   for the same noisy latents, times and metadata (conditioners included) is compared with
   SAT's (live and EMA weights), and the pretransform's decoder output with SAT's.
3. A `diffusion_uncond` DiT, unwrapped and wrapped (EMA), the same way.
Prints PASS/FAIL per check with the figures; exits non-zero on any FAIL.
"""
from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stable_audio_tools.models.conditioners import NumberConditioner  # noqa: E402
from stable_audio_tools.models.diffusion import DiTWrapper  # noqa: E402
from stable_audio_tools.models.factory import (  # noqa: E402
    create_model_from_config,
    create_pretransform_from_config,
)

from audiotools.sat import load_diffusion  # noqa: E402
from audiotools.sat.diffusion import convert_diffusion_model, parameter_counts  # noqa: E402
from audiotools.sat.notes import Notes  # noqa: E402

CONFIGS = REPO / "tests" / "sat" / "configs"
TOLERANCE = 1e-5  # relative to the output's scale (float64 DiT, float32 T5-free conditioners)


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def report(ok: bool, text: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {text}")
    return ok


def check_stable_audio() -> bool:
    config = json.loads((CONFIGS / "stable_audio_2_0.json").read_text())
    model = config["model"]
    with torch.device("meta"):
        sat = {"diffusion model": count(DiTWrapper(diffusion_objective="v",
                                                   **model["diffusion"]["config"])),
               "pretransform (frozen codec)": count(create_pretransform_from_config(
                   model["pretransform"], config["sample_rate"])),
               "conditioners": sum(count(NumberConditioner(model["conditioning"]["cond_dim"],
                                                           **entry["config"]))
                                   for entry in model["conditioning"]["configs"]
                                   if entry["type"] == "number")}
    ours = parameter_counts(convert_diffusion_model(config, Notes()))
    ok = True
    for part, expected in sat.items():
        ok = report(ours[part] == expected, f"stable_audio_2_0 {part}: SAT {expected:,}, "
                    f"ours {ours[part]:,}") and ok
    return ok


def small_config() -> dict:
    vae = json.loads((CONFIGS / "tiny_vae.json").read_text())
    latent = vae["model"]["latent_dim"]
    return {
        "model_type": "diffusion_cond", "sample_rate": vae["sample_rate"],
        "sample_size": 4096, "audio_channels": vae["audio_channels"],
        "model": {
            "pretransform": {"type": "autoencoder", "scale": 1.5, "config": vae["model"]},
            "conditioning": {"cond_dim": 32, "configs": [
                {"id": "seconds_total", "type": "number",
                 "config": {"min_val": 0, "max_val": 60}},
                {"id": "bpm", "type": "int", "config": {"min_val": 0, "max_val": 200}},
                {"id": "genre", "type": "list", "config": {"options": ["rock", "jazz"]}}]},
            "diffusion": {
                "type": "dit", "cross_attention_cond_ids": ["genre", "seconds_total"],
                "global_cond_ids": ["seconds_total"], "prepend_cond_ids": ["bpm"],
                "config": {"io_channels": latent, "embed_dim": 64, "depth": 2, "num_heads": 2,
                           "cond_token_dim": 32, "global_cond_dim": 32,
                           "prepend_cond_dim": 32}},
            "io_channels": latent},
        "training": {"learning_rate": 1e-4}}


def randomise(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def wrapped_state(sat: torch.nn.Module) -> tuple[dict, torch.nn.Module]:
    """SAT's DiffusionCondTrainingWrapper layout: `diffusion` is the model, `diffusion_ema` an
    ema_pytorch EMA of `diffusion.model` (include_online_model=False: its `ema_model` and its
    `initted`/`step` buffers). The EMA copy gets other weights so that the choice shows."""
    ema = copy.deepcopy(sat.model)
    randomise(ema, 7)
    state = {f"diffusion.{key}": value for key, value in sat.state_dict().items()}
    state.update({f"diffusion_ema.ema_model.{key}": value
                  for key, value in ema.state_dict().items()})
    state["diffusion_ema.initted"] = torch.tensor(True)
    state["diffusion_ema.step"] = torch.tensor(4)
    return state, ema


def sat_output(sat: torch.nn.Module, network: torch.nn.Module, x: torch.Tensor,
               t: torch.Tensor, metadata: list[dict]) -> torch.Tensor:
    conditioning = sat.conditioner(metadata, "cpu")
    inputs = sat.get_conditioning_inputs(conditioning)
    return network(x, t, **{key: value if key.endswith("mask") else value.double()
                            for key, value in inputs.items() if value is not None})


def our_output(path: Path, config: dict, x: torch.Tensor, t: torch.Tensor,
               metadata: list[dict], prefer_ema: bool) -> tuple[torch.Tensor, object]:
    loaded = load_diffusion(path, config, prefer_ema=prefer_ema)
    conditions = loaded.conditioners.encode(metadata)
    inputs = loaded.model.double().condition_inputs(conditions)
    return loaded.model(x, t, **{key: value if key.endswith("mask") else value.double()
                                 for key, value in inputs.items()}), loaded


def compare(name: str, expected: torch.Tensor, got: torch.Tensor) -> bool:
    scale = expected.abs().max().item()
    error = (expected - got).abs().max().item()
    return report(scale > 1e-3 and error <= TOLERANCE * scale,
                  f"{name}: max |SAT - ours| = {error:.2e} (output scale {scale:.2f})")


def check_checkpoints() -> bool:
    config = small_config()
    torch.manual_seed(0)
    sat = create_model_from_config(config).eval()
    randomise(sat.model, 1)
    randomise(sat.conditioner, 2)
    sat.model.double()
    generator = torch.Generator().manual_seed(3)
    latent = config["model"]["io_channels"]
    x = torch.randn(2, latent, 16, generator=generator, dtype=torch.float64)
    t = torch.rand(2, generator=generator, dtype=torch.float64)
    metadata = [{"seconds_total": 12.5, "bpm": 120, "genre": "jazz"},
                {"seconds_total": 70.0, "bpm": 61, "genre": "rock"}]
    z = torch.randn(1, latent, 8, generator=generator)
    ok = True
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        state = {key: value.float() for key, value in sat.state_dict().items()}
        unwrapped_ckpt = Path(folder) / "unwrapped.ckpt"
        torch.save({"state_dict": state}, unwrapped_ckpt)
        unwrapped_st = Path(folder) / "unwrapped.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(unwrapped_st))
        wrapped, ema = wrapped_state(sat)
        wrapped_ckpt = Path(folder) / "wrapped.ckpt"
        torch.save({"state_dict": {k: v.float() if v.is_floating_point() else v
                                   for k, v in wrapped.items()}, "global_step": 4},
                   wrapped_ckpt)
        live = sat_output(sat, sat.model, x, t, metadata)
        ema_out = sat_output(sat, ema.double(), x, t, metadata)
        sat_decoded = sat.pretransform.decode(z * 1.0)
        for name, path, prefer_ema, expected in (
                ("unwrapped .ckpt", unwrapped_ckpt, True, live),
                ("unwrapped .safetensors", unwrapped_st, True, live),
                ("wrapped, EMA weights", wrapped_ckpt, True, ema_out),
                ("wrapped, live weights", wrapped_ckpt, False, live)):
            got, loaded = our_output(path, config, x, t, metadata, prefer_ema)
            ok = compare(f"denoiser, {name}", expected, got) and ok
        ok = compare("pretransform decoder (wrapped .ckpt)", sat_decoded,
                     loaded.pretransform.decode(z * 1.5)) and ok
    return ok


def check_unconditional() -> bool:
    """A `diffusion_uncond` DiT on audio: its training wrapper keeps an EMA of the whole
    DiTUncondWrapper with the online model included (`diffusion_ema.online_model.*`)."""
    config = {"model_type": "diffusion_uncond", "sample_rate": 16000, "sample_size": 4096,
              "model": {"type": "dit", "config": {"in_channels": 2, "embed_dim": 64,
                                                  "depth": 2, "num_heads": 2}}}
    torch.manual_seed(0)
    sat = create_model_from_config(config).eval()
    randomise(sat.model, 4)
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 16, generator=generator, dtype=torch.float64)
    t = torch.rand(2, generator=generator, dtype=torch.float64)
    ok = True
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        unwrapped = Path(folder) / "uncond.ckpt"
        torch.save({"state_dict": sat.state_dict()}, unwrapped)
        ema = copy.deepcopy(sat.model)
        randomise(ema, 6)
        wrapped = Path(folder) / "uncond_wrapped.ckpt"
        torch.save({"state_dict": {
            **{f"diffusion.{k}": v for k, v in sat.state_dict().items()},
            **{f"diffusion_ema.ema_model.{k}": v for k, v in ema.state_dict().items()},
            **{f"diffusion_ema.online_model.{k}": v for k, v in sat.model.state_dict().items()},
            "diffusion_ema.step": torch.tensor(4)}}, wrapped)
        for name, path, network in (("unwrapped", unwrapped, sat.model),
                                    ("wrapped, EMA weights", wrapped, ema)):
            ours = load_diffusion(path, config).model.double()
            ok = compare(f"unconditional denoiser, {name}", network.double()(x, t),
                         ours(x, t)) and ok
    return ok


def main() -> int:
    ok = check_stable_audio()
    ok = check_checkpoints() and ok
    return 0 if check_unconditional() and ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
