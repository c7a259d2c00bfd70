"""Check our autoencoder networks against stable-audio-tools (SAT) as an oracle.

SAT is not a dependency: install it in a separate environment (SAT 0.0.19 installs on Python
3.11 with `pip install stable-audio-tools==0.0.19 "torch==2.11.*" "torchaudio==2.11.*"`), then

    python scripts/check_sat_autoencoder_parity.py --sat-python /path/to/sat-venv/bin/python

This script re-runs itself under that interpreter to build SAT's models from SAT-style configs
(random init, fixed seed), saving their state dicts, inputs and encoder/decoder outputs; back
here it builds the equivalent recipes, loads SAT's state dicts strictly (no key renaming) and
compares parameter counts and outputs (eval mode, float32). Prints one line per model and
exits non-zero on any mismatch.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sat-python", help="python of an environment with stable-audio-tools")
    parser.add_argument("--oracle-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.oracle_out:
        run_oracle(args.oracle_out)
        return 0
    if not args.sat_python:
        parser.error("--sat-python is required")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "oracle.pt"
        subprocess.run([args.sat_python, __file__, "--oracle-out", str(out)], check=True)
        oracle = torch.load(out, weights_only=False)
    return 0 if compare(oracle) else 1


if __name__ == "__main__":
    sys.exit(main())
