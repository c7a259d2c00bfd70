"""Check our autoencoder networks against stable-audio-tools (SAT) as an oracle.

SAT is not a dependency: `bash scripts/make_reference_venvs.sh sat` installs it beside the
project in reference/sat (or use any environment with SAT 0.0.19 and PyTorch Lightning), then

    python scripts/check_sat_autoencoder_parity.py --sat-python reference/sat/bin/python

This script re-runs itself under that interpreter to build SAT's models from SAT-style configs
(random init, fixed seed), saving their state dicts, inputs and encoder/decoder outputs; back
here it builds the equivalent recipes, loads SAT's state dicts strictly (no key renaming) and
compares parameter counts and outputs (eval mode, float32).

Then, end to end through `audiotools.sat`, for every SAT autoencoder config in tests/sat/configs/:
the config converted by audiotools builds SAT's parameter count and state-dict layout; SAT's
own checkpoint files (`{"state_dict": ...}` .ckpt, `save_model` .safetensors, one saved after
SAT's `remove_weight_norm_from_model`, and for tiny_vae a PyTorch Lightning training checkpoint
of a real 4-step SAT run) load with `audiotools.sat.load_autoencoder` (also with
remove_norm pre_load / post_load) and give SAT's encoder and decoder outputs within 1e-4.
Prints one line per check and exits non-zero on any mismatch. `--fixture DIR` also writes the
SAT-saved tiny_vae weights and outputs the unit tests use (tests/sat/fixtures/).
"""
from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
_OOBLECK = {"channels": 128, "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8],
            "use_snake": True}
_SEANET = {"channels": 1, "dimension": 128, "n_filters": 64, "lstm": 2, "true_skip": True,
           "pad_mode": "constant", "n_residual_layers": 1, "compress": 2}

# SAT model configs, and the audiotools `model:` section (recipe name or dict) for each.
CASES = {
    "oobleck_vae": ({"model_type": "autoencoder", "sample_rate": 44100, "model": {
        "encoder": {"type": "oobleck", "config": {"in_channels": 2, "latent_dim": 128,
                                                  **_OOBLECK}},
        "decoder": {"type": "oobleck", "config": {"out_channels": 2, "latent_dim": 64,
                                                  "final_tanh": False, **_OOBLECK}},
        "bottleneck": {"type": "vae"}, "latent_dim": 64, "downsampling_ratio": 2048,
        "io_channels": 2}}, "oobleck_vae"),
    "encodec_rvq": ({"model_type": "autoencoder", "sample_rate": 32000, "model": {
        # SAT reverses the encoder's ratios before EnCodec's SEANetEncoder reverses them again.
        "encoder": {"type": "seanet", "config": {**_SEANET, "ratios": [4, 4, 5, 8]}},
        "decoder": {"type": "seanet", "config": {**_SEANET, "ratios": [8, 5, 4, 4]}},
        "bottleneck": {"type": "rvq", "config": {"dim": 128, "codebook_size": 2048,
                                                 "num_quantizers": 4}},
        "latent_dim": 128, "downsampling_ratio": 640, "io_channels": 1}}, "encodec_rvq"),
    # EnCodec package defaults (reflect padding, conv skips, 2 LSTM layers), stereo.
    "seanet_defaults_vae": ({"model_type": "autoencoder", "sample_rate": 16000, "model": {
        "encoder": {"type": "seanet", "config": {"channels": 2, "dimension": 32, "n_filters": 8,
                                                 "ratios": [2, 4, 5, 8]}},
        "decoder": {"type": "seanet", "config": {"channels": 2, "dimension": 16, "n_filters": 8,
                                                 "ratios": [8, 5, 4, 2]}},
        "bottleneck": {"type": "vae"}, "latent_dim": 16, "downsampling_ratio": 320,
        "io_channels": 2}},
        {"sample_rate": 16000, "channels": 2, "latent_dim": 16,
         "encoder": {"type": "seanet", "n_filters": 8, "ratios": [2, 4, 5, 8]},
         "decoder": {"type": "seanet", "n_filters": 8, "ratios": [2, 4, 5, 8]},
         "bottleneck": {"type": "vae"}}),
}


def run_oracle(out: Path) -> None:
    """Under SAT's interpreter: build each SAT model, run it, save everything to `out`."""
    from stable_audio_tools.models.factory import create_model_from_config
    torch.manual_seed(0)
    results = {}
    for name, (sat_config, _) in CASES.items():
        model = create_model_from_config(copy.deepcopy(sat_config))
        settings = sat_config["model"]
        audio = 0.3 * torch.randn(2, settings["io_channels"], 6 * settings["downsampling_ratio"])
        if settings["bottleneck"]["type"] == "rvq":
            model.train()
            model.encode(audio)  # k-means init of the codebooks
        model.eval()
        with torch.no_grad():
            features = model.encoder(audio)
            results[name] = {
                "state": model.state_dict(), "audio": audio, "features": features,
                "decoded": model.decoder(features[:, :settings["latent_dim"]]),
                "latents": model.encode(audio),
                "parameters": sum(p.numel() for p in model.parameters())}
    torch.save(results, out)


def compare(oracle: dict) -> bool:
    from omegaconf import OmegaConf

    from audiotools.models.autoencoder import build_autoencoder
    ok = True
    for name, (_, ours) in CASES.items():
        expected = oracle[name]
        if isinstance(ours, str):
            ours = OmegaConf.load(REPO / "config" / "model" / "autoencoder" / f"{ours}.yaml")
        model = build_autoencoder(ours)
        model.load_state_dict(expected["state"], strict=True)
        model.eval()
        with torch.no_grad():
            features = model.encoder(expected["audio"])
            decoded = model.decoder(expected["features"][:, :model.latent_dim])
            latents = model.encode(expected["audio"])
        parameters = sum(p.numel() for p in model.parameters())
        errors = {"encoder": (features - expected["features"]).abs().max().item(),
                  "decoder": (decoded - expected["decoded"]).abs().max().item()}
        if model.is_quantized:  # SAT's VAE encode samples; a quantizer is deterministic
            errors["quantized"] = (latents - expected["latents"]).abs().max().item()
        same = parameters == expected["parameters"] and max(errors.values()) <= TOLERANCE
        ok &= same
        print(f"{'OK  ' if same else 'FAIL'} {name}: {parameters:,} parameters "
              f"(SAT {expected['parameters']:,}), state dict loads strictly, max |diff| "
              + ", ".join(f"{part} {error:.1e}" for part, error in errors.items()))
    return ok


# ------------------------------------------------------------------ SAT configs, end to end
SAT_CONFIGS = REPO / "tests" / "sat" / "configs"
# Above this many parameters only the converted layout is compared (no checkpoint files).
LARGE = 10_000_000
WRAPPED = "tiny_vae"


def autoencoder_configs() -> list[Path]:
    """The SAT configs of autoencoders (the folder also holds diffusion models' configs, which
    scripts/check_sat_diffusion_parity.py checks)."""
    import json
    return [path for path in sorted(SAT_CONFIGS.glob("*.json"))
            if json.loads(path.read_text()).get("model_type") == "autoencoder"]


def run_config_oracle(out: Path) -> None:
    """Under SAT's interpreter: each config's model, its checkpoint files and outputs."""
    import contextlib
    import io
    import json

    from safetensors.torch import save_model
    from stable_audio_tools.models.factory import create_model_from_config
    from stable_audio_tools.models.utils import remove_weight_norm_from_model
    results = {}
    for path in autoencoder_configs():
        config = json.loads(path.read_text())
        torch.manual_seed(0)
        large = "stable_audio_2_0" in path.stem
        with torch.device("meta") if large else contextlib.nullcontext():
            model = create_model_from_config(copy.deepcopy(config))
        entry = {"parameters": sum(p.numel() for p in model.parameters()),
                 "layout": {k: tuple(v.shape) for k, v in model.state_dict().items()}}
        results[path.stem] = entry
        if entry["parameters"] > LARGE:
            continue
        settings = config["model"]
        entry["audio"] = 0.3 * torch.randn(2, settings["io_channels"],
                                           4 * settings["downsampling_ratio"])
        if (settings.get("bottleneck") or {}).get("type") == "rvq":
            model.train()
            model.encode(entry["audio"])  # k-means init of the codebooks
        entry.update(_outputs(model.eval(), entry["audio"], settings["latent_dim"]))
        torch.save({"state_dict": model.state_dict()}, out / f"{path.stem}.ckpt")
        save_model(model, str(out / f"{path.stem}.safetensors"))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints every module
                plain = remove_weight_norm_from_model(copy.deepcopy(model))
            torch.save({"state_dict": plain.state_dict()}, out / f"{path.stem}_plain.ckpt")
        except ValueError as error:  # SAT's removal fails on a layer without weight norm
            entry["plain_error"] = str(error)
    results["wrapped"] = _wrapped_run(SAT_CONFIGS / f"{WRAPPED}.json",
                                      out / f"{WRAPPED}_wrapped.ckpt")
    torch.save(results, out / "configs.pt")


def _outputs(model: torch.nn.Module, audio: torch.Tensor, latent_dim: int) -> dict:
    with torch.no_grad():
        features = model.encoder(audio)
        return {"features": features, "decoded": model.decoder(features[:, :latent_dim])}


def _wrapped_run(config_path: Path, out: Path) -> dict:
    """A real 4-step SAT training run (PyTorch Lightning, CPU) saved as a training checkpoint;
    the outputs of its EMA and live autoencoders."""
    import json

    import pytorch_lightning as pl
    from stable_audio_tools.models.factory import create_model_from_config
    from stable_audio_tools.training.factory import create_training_wrapper_from_config
    config = json.loads(config_path.read_text())
    # SAT 0.0.19's InverseLR passes `verbose` to LRScheduler, which torch 2.11 refuses.
    for part in config["training"]["optimizer_configs"].values():
        part.pop("scheduler", None)
    torch.manual_seed(0)
    wrapper = create_training_wrapper_from_config(config, create_model_from_config(config))
    items = [(0.1 * torch.randn(1, config["sample_size"]), {}) for _ in range(8)]
    loader = torch.utils.data.DataLoader(
        items, batch_size=2, collate_fn=lambda batch: (torch.stack([x for x, _ in batch]), []))
    trainer = pl.Trainer(accelerator="cpu", max_steps=4, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(wrapper, loader)
    trainer.save_checkpoint(out)
    audio = 0.3 * torch.randn(2, 1, 128)
    latent_dim = config["model"]["latent_dim"]
    return {"audio": audio,
            "ema": _outputs(wrapper.autoencoder_ema.ema_model.eval(), audio, latent_dim),
            "live": _outputs(wrapper.autoencoder.eval(), audio, latent_dim)}


def _max_errors(model: torch.nn.Module, expected: dict, audio: torch.Tensor) -> dict[str, float]:
    ours = _outputs(model, audio, model.latent_dim)
    return {part: (ours[part] - expected[part]).abs().max().item()
            for part in ("features", "decoded")}


def _line(ok: bool, text: str, errors: dict[str, float]) -> str:
    diffs = ", ".join(f"{part} {error:.1e}" for part, error in errors.items())
    return f"{'OK  ' if ok else 'FAIL'} {text}" + (f": max |diff| {diffs}" if diffs else "")


def compare_configs(oracle_dir: Path) -> bool:
    """Converted configs and SAT checkpoints through audiotools.sat, against the oracle."""
    import contextlib

    from audiotools.models.autoencoder import build_autoencoder
    from audiotools.sat import load_architecture, load_autoencoder
    from audiotools.sat.checkpoints import match_weights
    results = torch.load(oracle_dir / "configs.pt", weights_only=False)
    ok = True
    for stem, expected in results.items():
        if stem == "wrapped":
            continue
        config = SAT_CONFIGS / f"{stem}.json"
        large = expected["parameters"] > LARGE
        with torch.device("meta") if large else contextlib.nullcontext():
            model = build_autoencoder(load_architecture(config))
        count = sum(p.numel() for p in model.parameters())
        zeros = {k: torch.zeros(shape, device="meta") for k, shape in expected["layout"].items()}
        _, report = match_weights(zeros, model)
        same = count == expected["parameters"] and report.complete
        ok &= same
        print(_line(same, f"config {stem}.json converted: {count:,} parameters (SAT "
                    f"{expected['parameters']:,}), every one of SAT's {len(zeros)} state-dict "
                    f"tensors maps to a model tensor of the same shape", {}))
        if large:
            continue
        checks = [(".ckpt", None), (".safetensors", None), (".ckpt", "post_load")]
        if "plain_error" in expected:
            print(f"     ({stem}: SAT's remove_weight_norm_from_model fails: "
                  f"{expected['plain_error']})")
        else:
            checks.append(("_plain.ckpt", "pre_load"))
        for suffix, removal in checks:
            model = load_autoencoder(oracle_dir / f"{stem}{suffix}", config, remove_norm=removal)
            errors = _max_errors(model, expected, expected["audio"])
            normed = sum(1 for name, _ in model.named_parameters() if "original0" in name)
            good = max(errors.values()) <= TOLERANCE and (removal is None or normed == 0)
            ok &= good
            print(_line(good, f"SAT {stem}{suffix} loaded"
                        + (f", weight norm removed {removal}" if removal else ""), errors))
    wrapped = results["wrapped"]
    for prefer_ema, part in ((True, "ema"), (False, "live")):
        model = load_autoencoder(oracle_dir / f"{WRAPPED}_wrapped.ckpt",
                                 SAT_CONFIGS / f"{WRAPPED}.json", prefer_ema=prefer_ema)
        errors = _max_errors(model, wrapped[part], wrapped["audio"])
        good = max(errors.values()) <= TOLERANCE
        ok &= good
        print(_line(good, f"SAT Lightning training checkpoint {WRAPPED}_wrapped.ckpt (4 steps) "
                    f"unwrapped, {part} weights", errors))
    return ok


def write_fixture(oracle_dir: Path, fixture: Path) -> None:
    """The SAT-saved tiny_vae weights and its outputs, for tests/sat/."""
    from safetensors.torch import save_file
    fixture.mkdir(parents=True, exist_ok=True)
    results = torch.load(oracle_dir / "configs.pt", weights_only=False)[WRAPPED]
    (fixture / f"{WRAPPED}.safetensors").write_bytes(
        (oracle_dir / f"{WRAPPED}.safetensors").read_bytes())
    save_file({key: results[key].contiguous() for key in ("audio", "features", "decoded")},
              str(fixture / f"{WRAPPED}_outputs.safetensors"))
    print(f"Wrote {fixture / WRAPPED}.safetensors and {WRAPPED}_outputs.safetensors")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sat-python", help="python of an environment with stable-audio-tools")
    parser.add_argument("--fixture", type=Path,
                        help="also write the SAT-saved tiny_vae fixture of tests/sat here")
    parser.add_argument("--oracle-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.oracle_out:
        run_oracle(args.oracle_out / "oracle.pt")
        run_config_oracle(args.oracle_out)
        return 0
    if not args.sat_python:
        parser.error("--sat-python is required")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        subprocess.run([args.sat_python, __file__, "--oracle-out", str(out)], check=True)
        ok = compare(torch.load(out / "oracle.pt", weights_only=False))
        ok &= compare_configs(out)
        if args.fixture:
            write_fixture(out, args.fixture)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
