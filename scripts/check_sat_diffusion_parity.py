"""Check `audiotools.sat`'s diffusion conversion against stable-audio-tools (SAT) itself.

Run with the reference interpreter (`bash scripts/make_reference_venvs.sh sat` makes it):

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
4. Two small `diffusion_autoencoder`s (tests/sat/test_diffusion_autoencoder.py's configs: an
   Oobleck encoder with a VAE on mono audio; one with a tanh bottleneck on the tiny VAE's
   latents as pretransform) built by SAT with random weights: the parameters of each part
   against `migrate`'s count; saved unwrapped (.ckpt, .safetensors, as the training wrapper's
   export_model writes them) and wrapped (`diffae.*`, the EMA copy `diffae_ema.ema_model.*`);
   each loads through `load_diffusion`, and the encoder's output before and after the
   bottleneck (the VAE drawing the same noise), the DiT's output on the latents stretched to
   the data as SAT's training step stretches them, and a DDIM reconstruction from the same
   noise (SAT's `sample` as its DiffusionAutoencoder.decode calls it) are compared with SAT's;
   the pretransform decodes as SAT's, also as the codec a recipe loads from the checkpoint.
   Also shown: SAT's encoder drops a partial last latent frame (why audiotools takes whole
   frames only).
5. SAT's ADP U-Nets (its adp.py, float32: its attention's softmax is float32 on CPU, so it
   cannot run in float64): the network of SAT's txt2audio/stable_audio_1_0.json (tests/sat/
   configs/; an adp_cfg_1d) counted on the meta device; and, built by its factory with random
   weights:
   - `adp_cfg_1d` on the tiny VAE's latents (number and int conditioners in cross-attention,
     the number also global): the parameters of each part against `migrate`'s count; the
     denoiser from unwrapped .ckpt/.safetensors and wrapped (live and EMA) checkpoints as in 2;
     its classifier-free guidance (SAT's learned null embedding in the unconditional branch)
     against ours with the null conditions (the global condition kept, as SAT keeps it); and a
     guided DDIM pass (SAT's v-diffusion `sample`) from the same noise;
   - tests/sat/configs/adp_cfg_1d_tiny.json: the diffusion model's parameters (its list
     conditioner has SAT's extra row for unknown values, a documented difference);
   - tests/sat/configs/adp_uncond_1d_tiny.json (`diffusion_uncond`, odd factor, transposed
     convolutions, no skip scale): counts, unwrapped and wrapped (EMA) checkpoints as in 3, and
     a DDIM pass;
   - an `adp_1d` inpainting network (global condition, input-concat channels, patching,
     nearest upsampling, no time mapping): counts and the denoiser from an unwrapped .ckpt.
Prints PASS/FAIL per check with the figures; exits non-zero on any FAIL.
"""
from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stable_audio_tools.inference.sampling import sample as sat_sample  # noqa: E402
from stable_audio_tools.models.conditioners import NumberConditioner  # noqa: E402
from stable_audio_tools.models.diffusion import DiTWrapper, UNetCFG1DWrapper  # noqa: E402
from stable_audio_tools.models.factory import (  # noqa: E402
    create_model_from_config,
    create_pretransform_from_config,
)

from audiotools.conditioning import Conditioning  # noqa: E402
from audiotools.io.codecs import load_codec  # noqa: E402
from audiotools.models.diffusion import ENCODER_LATENTS  # noqa: E402
from audiotools.sampling.diffusion import sample  # noqa: E402
from audiotools.sat import load_diffusion  # noqa: E402
from audiotools.sat.diffusion import convert_diffusion_model, parameter_counts  # noqa: E402
from audiotools.sat.notes import Notes  # noqa: E402
from tests.sat.test_diffusion_autoencoder import (  # noqa: E402
    autoencoder_config,
    latent_autoencoder_config,
)

CONFIGS = REPO / "tests" / "sat" / "configs"
TOLERANCE = 1e-5  # relative to the output's scale (float64 DiT, float32 T5-free conditioners)
ADP_STEPS, ADP_SEED, ADP_CFG = 4, 21, 3.0


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
    return compare_counts("stable_audio_2_0", sat, config)


def compare_counts(name: str, sat: dict[str, int], config: dict) -> bool:
    """SAT's parameters per part against what `migrate` counts for `config`."""
    ours = parameter_counts(convert_diffusion_model(config, Notes()))
    ok = True
    for part, expected in sat.items():
        ok = report(ours[part] == expected, f"{name} {part}: SAT {expected:,}, "
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


def _cast(inputs: dict, dtype: torch.dtype) -> dict:
    return {key: value if key.endswith("mask") else value.to(dtype)
            for key, value in inputs.items() if value is not None}


def sat_inputs(sat: torch.nn.Module, metadata: list[dict], dtype: torch.dtype) -> dict:
    return _cast(sat.get_conditioning_inputs(sat.conditioner(metadata, "cpu")), dtype)


def sat_output(sat: torch.nn.Module, network: torch.nn.Module, x: torch.Tensor,
               t: torch.Tensor, metadata: list[dict]) -> torch.Tensor:
    return network(x, t, **sat_inputs(sat, metadata, x.dtype))


def our_output(path: Path, config: dict, x: torch.Tensor, t: torch.Tensor,
               metadata: list[dict], prefer_ema: bool) -> tuple[torch.Tensor, object]:
    loaded = load_diffusion(path, config, prefer_ema=prefer_ema)
    conditions = from_metadata(loaded.conditioners, metadata)
    inputs = loaded.model.to(x.dtype).condition_inputs(conditions)
    return loaded.model(x, t, **_cast(inputs, x.dtype)), loaded


def compare(name: str, expected: torch.Tensor, got: torch.Tensor) -> bool:
    scale = expected.abs().max().item()
    error = (expected - got).abs().max().item()
    return report(scale > 1e-3 and error <= TOLERANCE * scale,
                  f"{name}: max |SAT - ours| = {error:.2e} (output scale {scale:.2f})")


def random_sat(config: dict) -> torch.nn.Module:
    """SAT's conditional model of `config`, random network and conditioner weights."""
    torch.manual_seed(0)
    sat = create_model_from_config(config).eval()
    randomise(sat.model, 1)
    randomise(sat.conditioner, 2)
    return sat


METADATA = [{"seconds_total": 12.5, "bpm": 120, "genre": "jazz"},
            {"seconds_total": 70.0, "bpm": 61, "genre": "rock"}]


def from_metadata(conditioners, metadata: list[dict]) -> dict:
    """Our conditions of a batch's metadata as training reads it (a number beyond its range
    is clamped, as SAT's is; a value a caller gives outside it is refused instead)."""
    return conditioners.eval()(metadata)


def metadata_for(config: dict) -> list[dict]:
    """METADATA with the values of the config's conditioners only."""
    ids = {entry["id"] for entry in config["model"]["conditioning"]["configs"]}
    return [{key: value for key, value in item.items() if key in ids} for item in METADATA]


def check_checkpoints(config: dict | None = None, dtype: torch.dtype = torch.float64,
                      label: str = "") -> bool:
    """SAT's conditional model of `config` (small_config()) saved unwrapped and wrapped,
    against ours loaded from each, in `dtype`."""
    config = config or small_config()
    sat = random_sat(config)
    sat.model.to(dtype)
    generator = torch.Generator().manual_seed(3)
    latent = config["model"]["io_channels"]
    x = torch.randn(2, latent, 16, generator=generator, dtype=dtype)
    t = torch.rand(2, generator=generator, dtype=dtype)
    metadata = metadata_for(config)
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
        ema_out = sat_output(sat, ema.to(dtype), x, t, metadata)
        sat_decoded = sat.pretransform.decode(z * 1.0)
        for name, path, prefer_ema, expected in (
                ("unwrapped .ckpt", unwrapped_ckpt, True, live),
                ("unwrapped .safetensors", unwrapped_st, True, live),
                ("wrapped, EMA weights", wrapped_ckpt, True, ema_out),
                ("wrapped, live weights", wrapped_ckpt, False, live)):
            got, loaded = our_output(path, config, x, t, metadata, prefer_ema)
            ok = compare(f"{label}denoiser, {name}", expected, got) and ok
        ok = compare(f"{label}pretransform decoder (wrapped .ckpt)", sat_decoded,
                     loaded.pretransform.decode(z * 1.5)) and ok
    return ok


DIT_UNCOND = {"model_type": "diffusion_uncond", "sample_rate": 16000, "sample_size": 4096,
              "model": {"type": "dit", "config": {"in_channels": 2, "embed_dim": 64,
                                                  "depth": 2, "num_heads": 2}}}


def check_unconditional(config: dict = DIT_UNCOND, dtype: torch.dtype = torch.float64,
                        label: str = "unconditional denoiser", length: int = 16) -> bool:
    """A `diffusion_uncond` network (a DiT on audio by default): its training wrapper keeps an
    EMA of the whole wrapper with the online model included (`diffusion_ema.online_model.*`).
    """
    torch.manual_seed(0)
    sat = create_model_from_config(config).eval()
    randomise(sat.model, 4)
    generator = torch.Generator().manual_seed(5)
    channels = config["model"]["config"]["in_channels"]
    x = torch.randn(2, channels, length, generator=generator, dtype=dtype)
    t = torch.rand(2, generator=generator, dtype=dtype)
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
            ours = load_diffusion(path, config).model.to(dtype)
            ok = compare(f"{label}, {name}", network.to(dtype)(x, t), ours(x, t)) and ok
    return ok


def autoencoder_counts(name: str, config: dict, sat: torch.nn.Module) -> bool:
    """SAT's DiffusionAutoencoder parts: its DiTWrapper, encoder (+ bottleneck), pretransform."""
    bottleneck = sat.bottleneck if sat.bottleneck is not None else torch.nn.Module()
    expected = {"diffusion model": count(sat.diffusion),
                "encoder and bottleneck": count(sat.encoder) + count(bottleneck)}
    if sat.pretransform is not None:
        expected["pretransform (frozen codec)"] = count(sat.pretransform)
    return compare_counts(name, expected, config)


def autoencoder_files(sat: torch.nn.Module, config: dict,
                      folder: Path) -> tuple[dict, torch.nn.Module]:
    """SAT's diffusion autoencoder saved unwrapped (.ckpt, .safetensors) and wrapped (the
    training wrapper's `diffae` and its EMA copy `diffae_ema`, include_online_model=False);
    the EMA copy (built as SAT's training factory builds it: another model, loaded) gets other
    weights (its frozen pretransform stays) so that the choice shows."""
    ema = create_model_from_config(config).eval()
    ema.load_state_dict(sat.state_dict())
    randomise(ema.diffusion, 11)
    randomise(ema.encoder, 12)
    state = sat.state_dict()
    paths = {"unwrapped .ckpt": folder / "dae.ckpt",
             "unwrapped .safetensors": folder / "dae.safetensors",
             "wrapped": folder / "dae_wrapped.ckpt"}
    torch.save({"state_dict": state}, paths["unwrapped .ckpt"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(paths["unwrapped .safetensors"]))
    torch.save({"state_dict": {**{f"diffae.{k}": v for k, v in state.items()},
                               **{f"diffae_ema.ema_model.{k}": v
                                  for k, v in ema.state_dict().items()},
                               "diffae_ema.initted": torch.tensor(True),
                               "diffae_ema.step": torch.tensor(4)}, "global_step": 4},
               paths["wrapped"])
    return paths, ema


def sat_autoencoder_outputs(sat: torch.nn.Module, x: torch.Tensor, t: torch.Tensor,
                            noise: torch.Tensor, steps: int) -> dict[str, torch.Tensor]:
    """What SAT computes: its training step's encode (skip_pretransform, the bottleneck
    sampling from seed 0), its stretch of the latents to the data and DiT output, and its
    decode's DDIM sampling from `noise`."""
    sat.diffusion.double()
    torch.manual_seed(0)
    latents, info = sat.encode(x, return_info=True, skip_pretransform=True)
    stretched = F.interpolate(latents, size=x.shape[-1], mode="nearest").double()
    return {"encoder output": info["pre_bottleneck_latents"], "latents": latents,
            "DiT output": sat.diffusion(x.double(), t, input_concat_cond=stretched),
            "DDIM reconstruction": sat_sample(sat.diffusion, noise, steps, 0,
                                              input_concat_cond=stretched)}


def our_autoencoder_outputs(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor,
                            seed: int, steps: int) -> dict[str, torch.Tensor]:
    """The same through our loaded DiffusionModel (its DiT stretches the latents itself)."""
    model.bottleneck.train()  # the VAE samples, as SAT's always does
    torch.manual_seed(0)
    encoded = model.encode(x)
    real = torch.ones(x.shape[0], encoded.latents.shape[-1], dtype=torch.bool)
    inputs = model.condition_inputs({ENCODER_LATENTS: Conditioning(
        encoded.latents.double().transpose(1, 2), real)})
    return {"encoder output": model.encoder(x), "latents": encoded.latents,
            "DiT output": model.double()(x.double(), t, **inputs),
            "DDIM reconstruction": sample(model, tuple(x.shape), objective="v", steps=steps,
                                          sampler="ddim", seed=seed, cond=inputs,
                                          dtype=torch.float64)}


def check_autoencoder(name: str, config: dict, length: int) -> bool:
    """A SAT diffusion autoencoder of `config` against ours, on data of `length` frames."""
    torch.manual_seed(0)
    sat = create_model_from_config(config).eval()
    randomise(sat.diffusion, 8)
    randomise(sat.encoder, 9)
    ok = autoencoder_counts(name, config, sat)
    channels, seed, steps = config["model"]["io_channels"], 13, 4
    generator = torch.Generator().manual_seed(10)
    x = torch.randn(2, channels, length, generator=generator)
    t = torch.rand(2, generator=generator, dtype=torch.float64)
    noise = torch.randn((2, channels, length), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        paths, ema = autoencoder_files(sat, config, Path(folder))
        for which, prefer_ema in (("live", False), ("EMA", True)):
            expected = sat_autoencoder_outputs(ema if prefer_ema else sat, x, t, noise.double(),
                                               steps)
            for form, path in paths.items():
                if form != "wrapped" and prefer_ema:
                    continue
                label = f"{form}, {which} weights" if form == "wrapped" else form
                loaded = load_diffusion(path, config, prefer_ema=prefer_ema)
                got = our_autoencoder_outputs(loaded.model, x, t, seed, steps)
                for part, value in expected.items():
                    ok = compare(f"{name} {part}, {label}", value, got[part]) and ok
        if sat.pretransform is not None:
            config_path = Path(folder) / "dae.json"
            config_path.write_text(json.dumps(config))
            scale = config["model"]["pretransform"]["scale"]
            z = torch.randn(1, channels, 8, generator=generator)
            codec = load_codec(paths["wrapped"], sat_model_config=str(config_path))
            ok = compare(f"{name} pretransform decoder (codec of the wrapped .ckpt)",
                         sat.pretransform.decode(z), codec.codec.decode(z * scale)) and ok
    return ok


def check_partial_frames() -> bool:
    """SAT's encoder on a length that is not a multiple of its hop drops the partial frame
    (its training then stretches the rest over the whole segment): why audiotools takes
    whole latent frames only (migrate refuses such a sample_size)."""
    sat = create_model_from_config(autoencoder_config())
    hop = sat.downsampling_ratio
    frames = sat.encoder(torch.zeros(1, 1, 64 * hop + hop // 2)).shape[-1]
    return report(frames == 64, f"SAT's encoder on {64 * hop + hop // 2} samples (hop {hop}): "
                  f"{frames} latent frames, the partial one dropped")


# ------------------------------------------------------------------ ADP U-Nets
def adp_latent_config() -> dict:
    """An `adp_cfg_1d` on the tiny VAE's latents: number and int tokens cross-attended (no
    padding, so SAT's masked null embedding is ours), the number also global; two levels, an
    attentions list of one entry per level (SAT's middle then takes the last)."""
    config = small_config()
    config["model"]["conditioning"]["configs"] = config["model"]["conditioning"]["configs"][:2]
    latent = config["model"]["io_channels"]
    config["model"]["diffusion"] = {
        "type": "adp_cfg_1d", "cross_attention_cond_ids": ["seconds_total", "bpm"],
        "global_cond_ids": ["seconds_total"],
        "config": {"in_channels": latent, "context_embedding_features": 32,
                   "context_embedding_max_length": 3, "context_features": 32, "channels": 32,
                   "multipliers": [1, 2, 2], "factors": [1, 2], "num_blocks": [2, 1],
                   "attentions": [1, 1], "attention_heads": 4, "attention_multiplier": 2,
                   "resnet_groups": 8, "use_nearest_upsample": True}}
    return config


def sat_parts(sat: torch.nn.Module) -> dict[str, int]:
    parts = {"diffusion model": count(sat.model)}
    if sat.pretransform is not None:
        parts["pretransform (frozen codec)"] = count(sat.pretransform)
    if getattr(sat, "conditioner", None) is not None:
        parts["conditioners"] = count(sat.conditioner)
    return parts


def check_adp_guidance(config: dict) -> bool:
    """SAT's adp_cfg_1d guidance (its null embedding in the unconditional branch, the global
    condition kept) against ours (null conditions, the global condition kept), one output and
    a guided DDIM pass from the same noise."""
    sat = random_sat(config)
    latent = config["model"]["io_channels"]
    generator = torch.Generator().manual_seed(17)
    x = torch.randn(2, latent, 16, generator=generator)
    t = torch.rand(2, generator=generator)
    ok = True
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adp.ckpt"
        torch.save({"state_dict": sat.state_dict()}, path)
        loaded = load_diffusion(path, config)
        model = loaded.model
        metadata = metadata_for(config)
        cond = model.condition_inputs(from_metadata(loaded.conditioners, metadata))
        uncond = model.condition_inputs(loaded.conditioners.null(len(metadata)))
        uncond["global_cond"] = cond["global_cond"]  # SAT's CFG keeps it
        inputs = sat_inputs(sat, metadata, torch.float32)
        expected = sat.model(x, t, **inputs, cfg_scale=ADP_CFG)
        got = model(x, t, **uncond) + (model(x, t, **cond) - model(x, t, **uncond)) * ADP_CFG
        ok = compare(f"adp_cfg_1d guided output (cfg {ADP_CFG})", expected, got) and ok
        noise = torch.randn((2, latent, 16), generator=torch.Generator().manual_seed(ADP_SEED))
        expected = sat_sample(sat.model, noise, ADP_STEPS, 0, **inputs, cfg_scale=ADP_CFG)
        got = sample(model, (2, latent, 16), objective="v", steps=ADP_STEPS, sampler="ddim",
                     seed=ADP_SEED, cond=cond, uncond=uncond, cfg_scale=ADP_CFG)
        ok = compare(f"adp_cfg_1d guided DDIM ({ADP_STEPS} steps)", expected, got) and ok
    return ok


def check_stable_audio_1() -> bool:
    """SAT's txt2audio/stable_audio_1_0.json (an adp_cfg_1d): its network's parameters as SAT
    builds it on the meta device (its DAC pretransform is not converted here: left out)."""
    config = json.loads((CONFIGS / "stable_audio_1_0.json").read_text())
    config["model"].pop("pretransform")
    with torch.device("meta"):
        network = UNetCFG1DWrapper(**config["model"]["diffusion"]["config"])
    return compare_counts("stable_audio_1_0", {"diffusion model": count(network)}, config)


def check_adp_cond() -> bool:
    ok = check_stable_audio_1()
    config = adp_latent_config()
    ok = compare_counts("adp_cfg_1d", sat_parts(random_sat(config)), config) and ok
    ok = check_checkpoints(config, torch.float32, "adp_cfg_1d ") and ok
    ok = check_adp_guidance(config) and ok
    tiny = json.loads((CONFIGS / "adp_cfg_1d_tiny.json").read_text())
    return compare_counts("adp_cfg_1d_tiny", {"diffusion model": count(
        create_model_from_config(tiny).model)}, tiny) and ok


def check_adp_uncond() -> bool:
    config = json.loads((CONFIGS / "adp_uncond_1d_tiny.json").read_text())
    torch.manual_seed(0)
    ok = compare_counts("adp_uncond_1d_tiny", {"diffusion model": count(
        create_model_from_config(config).model)}, config)
    ok = check_unconditional(config, torch.float32, "adp_uncond_1d denoiser", 24) and ok
    torch.manual_seed(0)
    sat = create_model_from_config(config).eval()
    randomise(sat.model, 4)
    noise = torch.randn((2, 1, 24), generator=torch.Generator().manual_seed(ADP_SEED))
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adp_uncond.ckpt"
        torch.save({"state_dict": sat.state_dict()}, path)
        model = load_diffusion(path, config).model
        expected = sat_sample(sat.model, noise, ADP_STEPS, 0)
        got = sample(model, (2, 1, 24), objective="v", steps=ADP_STEPS, sampler="ddim",
                     seed=ADP_SEED)
    return compare(f"adp_uncond_1d DDIM ({ADP_STEPS} steps)", expected, got) and ok


def adp_inpaint_config() -> dict:
    """An `adp_1d` inpainting network on stereo audio: a global condition, the mask and masked
    audio as input channels (context_channels), patching, nearest upsampling, no time
    mapping (the global condition alone makes it)."""
    return {
        "model_type": "diffusion_cond_inpaint", "sample_rate": 16000, "sample_size": 4096,
        "audio_channels": 2,
        "model": {
            "io_channels": 2,
            "conditioning": {"cond_dim": 16, "configs": [
                {"id": "seconds_total", "type": "number",
                 "config": {"min_val": 0, "max_val": 60}}]},
            "diffusion": {
                "type": "adp_1d", "global_cond_ids": ["seconds_total"],
                "input_concat_ids": ["inpaint_mask", "inpaint_masked_input"],
                "config": {"in_channels": 2, "context_channels": [3], "context_features": 16,
                           "channels": 16, "multipliers": [2, 2, 4], "factors": [2, 3],
                           "num_blocks": [1, 1], "attentions": [0, 1, 0],
                           "attention_heads": 2, "attention_multiplier": 2,
                           "resnet_groups": 4, "patch_size": 2, "use_context_time": False,
                           "use_nearest_upsample": True}}},
        "training": {"learning_rate": 1e-4}}


def check_adp_inpaint() -> bool:
    config = adp_inpaint_config()
    sat = random_sat(config)
    ok = compare_counts("adp_1d inpainting", sat_parts(sat), config)
    generator = torch.Generator().manual_seed(19)
    x = torch.randn(2, 2, 24, generator=generator)
    t = torch.rand(2, generator=generator)
    mask = (torch.arange(24) < 10).float().expand(2, 1, 24)
    concat = torch.cat([mask, x.flip(0) * mask], dim=1)
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adp_1d.ckpt"
        torch.save({"state_dict": sat.state_dict()}, path)
        loaded = load_diffusion(path, config)
        metadata = metadata_for(config)
        # SAT's global condition (its inpainting inputs come from its training wrapper).
        global_cond = sat.conditioner(metadata, "cpu")["seconds_total"][0].squeeze(1)
        expected = sat.model(x, t, input_concat_cond=concat, global_cond=global_cond)
        # Ours: the number's one token (what the model pools for its global condition).
        ours = from_metadata(loaded.conditioners, metadata)["seconds_total"].embeddings[:, 0]
        got = loaded.model(x, t, input_concat_cond=concat, global_cond=ours)
    return compare("adp_1d inpainting denoiser, unwrapped .ckpt", expected, got) and ok


def main() -> int:
    ok = check_stable_audio()
    ok = check_checkpoints() and ok
    ok = check_unconditional() and ok
    ok = check_autoencoder("diffusion_autoencoder (VAE, audio)", autoencoder_config(),
                           256) and ok
    ok = check_autoencoder("diffusion_autoencoder (tanh, latents)",
                           latent_autoencoder_config(), 32) and ok
    ok = check_adp_cond() and ok
    ok = check_adp_uncond() and ok
    ok = check_adp_inpaint() and ok
    return 0 if check_partial_frames() and ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
