"""Check audiotools' AudioCraft conversion (audiotools/audiocraft/) against AudioCraft itself.

AudioCraft is not a dependency: `bash scripts/make_reference_venvs.sh audiocraft` installs it
beside the project, then

    reference/audiocraft/bin/python scripts/check_audiocraft_parity.py

Under AudioCraft's interpreter this script builds AudioCraft's own models from configs written
as AudioCraft's Hydra tree composes them (random weights, fixed seed): three small LMs (4 x 64
codebooks, width 64, 2 layers; MusicGen's delay pattern with T5 cross-attention and no biases,
a rotary coarse-first one with biases and a prepended condition, an unrolled one on PyTorch's
own attention with a summed condition) and two EnCodec models (the 32 kHz MusicGen tokenizer's
exact architecture, 4 x 2048 codes, k-means initialised on noise, and a small causal stereo
variant with the options that one leaves at their defaults). Each is saved as an AudioCraft
training checkpoint and exported with AudioCraft's own `export_lm` / `export_encodec`, read back
with its own `load_lm_model` / `load_compression_model`, and run: LM logits on a batch of random
sequences with projected T5-like states (two full prompts and a null one), greedy generation
with classifier-free guidance, and every supported codebook pattern's interleaving; EnCodec
tokens and decoded audio. Then it re-runs itself under the project's interpreter (`--compare`),
which loads the exported files through audiotools only (`audiotools.audiocraft.load_lm`,
`audiotools.io.codecs.load_codec`, the foreign-format path `audiotools.load` takes) and compares.
Prints one PASS/FAIL line per check with its figure and exits non-zero on any FAIL.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
T5_DIM = 768  # t5-base, the projection's input (AudioCraft's T5Conditioner.MODELS_DIMS)
BATCH, STEPS, TEXT_TOKENS = 3, 12, 5
GENERATED_FRAMES = 20

# transformer_lm / codebooks_pattern / fuser changes from the tiny MusicGen config, per case.
# A prepended null condition is compared nowhere: AudioCraft attends its zero tokens, audiotools
# masks them (audiotools/audiocraft/lm.py).
LM_CASES: dict[str, dict] = {
    "musicgen_delay_cross": {},
    "rope_coarse_first_prepend": {
        "transformer_lm": {"positional_embedding": "rope", "bias_ff": True, "bias_attn": True,
                           "bias_proj": True, "custom": True, "memory_efficient": False},
        "codebooks_pattern": {"modeling": "coarse_first", "coarse_first": {"delays": [0, 1, 1]}},
        "fuser": {"cross": [], "prepend": ["description"]}},
    "mha_unroll_sum": {
        "transformer_lm": {"custom": False, "memory_efficient": False, "bias_attn": True,
                           "max_period": 5000.0, "positional_scale": 0.5},
        "codebooks_pattern": {"modeling": "unroll", "unroll": {"flattening": None,
                                                               "delays": None}},
        "fuser": {"cross": [], "sum": ["description"]}},
}
ENCODEC_32KHZ = {  # config/model/encodec/default.yaml + encodec_large_nq4_s640.yaml
    "sample_rate": 32000, "channels": 1,
    "seanet": {"n_filters": 64, "ratios": [8, 5, 4, 4]}, "rvq": {"bins": 2048, "n_q": 4}}
ENCODEC_CASES: dict[str, dict] = {
    "encodec_musicgen_32khz": ENCODEC_32KHZ,
    "encodec_causal_stereo_variant": {
        "sample_rate": 16000, "channels": 2, "encodec": {"causal": True},
        "seanet": {"dimension": 16, "n_filters": 4, "ratios": [4, 4, 2], "n_residual_layers": 2,
                   "norm": "none", "pad_mode": "reflect", "true_skip": False, "compress": 4,
                   "lstm": 0, "dilation_base": 3, "residual_kernel_size": 5,
                   "decoder": {"trim_right_ratio": 1.0, "final_activation": "Tanh",
                               "final_activation_params": None, "kernel_size": 5}},
        "rvq": {"n_q": 3, "bins": 32}},
}


# ------------------------------------------------------------------ AudioCraft's side
def _merged(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def lm_xp_config(changes: dict) -> dict:
    """A tiny MusicGen xp.cfg (scripts/audiocraft_lm_param_count.py's MusicGen-small keys)."""
    from audiocraft_lm_param_count import musicgen_small_config
    from omegaconf import OmegaConf
    config = OmegaConf.to_container(musicgen_small_config())
    config["transformer_lm"].update(dim=64, num_heads=4, num_layers=2, card=64)
    config.update(sample_rate=32000, channels=1,
                  compression_model_checkpoint="//pretrained/facebook/encodec_32khz")
    return _merged(config, changes)


def encodec_xp_config(changes: dict) -> dict:
    base = {"device": "cpu", "compression_model": "encodec", "sample_rate": 32000,
            "channels": 1,
            "encodec": {"autoencoder": "seanet", "quantizer": "rvq",
                        "sample_rate": "${sample_rate}", "channels": "${channels}",
                        "causal": False, "renormalize": False},
            "seanet": {"dimension": 128, "channels": "${channels}",
                       "causal": "${encodec.causal}", "n_filters": 32, "n_residual_layers": 1,
                       "ratios": [8, 5, 4, 2], "activation": "ELU",
                       "activation_params": {"alpha": 1.0}, "norm": "weight_norm",
                       "norm_params": {}, "kernel_size": 7, "residual_kernel_size": 3,
                       "last_kernel_size": 7, "dilation_base": 2, "pad_mode": "constant",
                       "true_skip": True, "compress": 2, "lstm": 2,
                       "disable_norm_outer_blocks": 0,
                       "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                                   "final_activation_params": None},
                       "encoder": {}},
            "rvq": {"n_q": 8, "q_dropout": False, "bins": 1024, "decay": 0.99,
                    "kmeans_init": True, "kmeans_iters": 50, "threshold_ema_dead_code": 2,
                    "orthogonal_reg_weight": 0.0, "orthogonal_reg_active_codes_only": False},
            "no_quant": {}}
    return _merged(base, changes)


def _export(model: torch.nn.Module, config: dict, folder: Path, exporter) -> None:
    """Save as an AudioCraft solver checkpoint, then export with AudioCraft's own function."""
    checkpoint = folder / "checkpoint.th"
    torch.save({"best_state": {"model": model.state_dict()}, "fsdp_best_state": {},
                "xp.cfg": config}, checkpoint)
    exporter(checkpoint, folder / ("state_dict.bin" if "lm_model" in config
                                   else "compression_state_dict.bin"))
    checkpoint.unlink()


def _fixed_conditions(lm: torch.nn.Module, tensors: dict) -> None:
    """AudioCraft's condition provider without T5: it returns the given projected states."""
    lm.condition_provider.tokenize = lambda conditions: conditions
    lm.condition_provider.forward = lambda tokenized: tensors


def run_lm_reference(name: str, changes: dict, folder: Path) -> dict:
    from audiocraft.models import builders, loaders
    from audiocraft.modules.conditioners import ConditioningAttributes
    from audiocraft.utils.export import export_lm
    from omegaconf import OmegaConf
    config = lm_xp_config(changes)
    torch.manual_seed(0)
    _export(builders.get_lm_model(OmegaConf.create(config)), config, folder, export_lm)
    lm = loaders.load_lm_model(folder)  # what AudioCraft itself reads back
    card, codebooks = config["transformer_lm"]["card"], config["transformer_lm"]["n_q"]
    sequence = torch.randint(0, card + 1, (BATCH, codebooks, STEPS))
    fuser = changes.get("fuser", {})
    tokens = 1 if "sum" in fuser else TEXT_TOKENS
    states = torch.randn(BATCH, tokens, T5_DIM)
    rows = [1, 1, 1] if "prepend" in fuser else [1, 1, 0]  # prompts, and a null condition
    mask = torch.tensor(rows).unsqueeze(1).expand(BATCH, tokens).int()
    projection = lm.condition_provider.conditioners["description"].output_proj
    with torch.no_grad():
        embeddings = projection(states) * mask.unsqueeze(-1)
        logits = lm(sequence, [], condition_tensors={"description": (embeddings, mask)})
        generated = None
        if "prepend" not in fuser:  # one prompt with guidance: AudioCraft batches its null
            null = torch.zeros_like(embeddings[:1])
            _fixed_conditions(lm, {"description": (
                torch.cat([embeddings[:1], null]), torch.cat([mask[:1], 0 * mask[:1]]))})
            generated = lm.generate(
                conditions=[ConditioningAttributes(text={"description": "x"})],
                max_gen_len=GENERATED_FRAMES, use_sampling=False, cfg_coef=3.0)
    return {"sequence": sequence, "states": states, "mask": mask.bool(), "logits": logits,
            "generated": generated}


def run_pattern_reference() -> dict:
    from audiocraft.modules.codebooks_patterns import (
        CoarseFirstPattern,
        DelayedPatternProvider,
        ParallelPatternProvider,
        UnrolledPatternProvider,
    )
    codes = torch.randint(0, 64, (2, 4, 7))
    providers = {"delay": DelayedPatternProvider(4, [0, 1, 2, 4]),
                 "parallel": ParallelPatternProvider(4), "unroll": UnrolledPatternProvider(4),
                 "coarse_first": CoarseFirstPattern(4, [0, 1, 1])}
    return {"codes": codes, **{
        name: provider.get_pattern(codes.shape[-1]).build_pattern_sequence(codes, 64)[0]
        for name, provider in providers.items()}}


def run_encodec_reference(changes: dict, folder: Path) -> dict:
    from audiocraft.models import builders, loaders
    from audiocraft.utils.export import export_encodec
    from omegaconf import OmegaConf
    config = encodec_xp_config(changes)
    torch.manual_seed(0)
    model = builders.get_compression_model(OmegaConf.create(config))
    hop = int(torch.tensor(config["seanet"]["ratios"]).prod())
    channels = config["channels"]
    model.train()
    model(0.3 * torch.randn(4, channels, 40 * hop))  # k-means init of the codebooks
    _export(model, config, folder, export_encodec)
    model = loaders.load_compression_model(folder)
    audio = 0.3 * torch.randn(2, channels, 25 * hop)
    with torch.no_grad():
        codes, _ = model.encode(audio)
        decoded = model.decode(codes)
    return {"audio": audio, "codes": codes, "decoded": decoded,
            "parameters": sum(p.numel() for p in model.parameters())}


def run_reference(out: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from audiocraft_lm_param_count import _stub_unused_imports
    _stub_unused_imports()
    results = {}
    for name, changes in LM_CASES.items():
        (out / name).mkdir()
        results[name] = run_lm_reference(name, changes, out / name)
    for name, changes in ENCODEC_CASES.items():
        (out / name).mkdir()
        results[name] = run_encodec_reference(changes, out / name)
    results["patterns"] = run_pattern_reference()
    torch.save(results, out / "reference.pt")


# ------------------------------------------------------------------ audiotools' side
def _line(ok: bool, text: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {text}")
    return ok


def _difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if a.shape == b.shape else float("inf")


def compare_lm(name: str, folder: Path, expected: dict) -> bool:
    import torch.nn.functional as F

    from audiotools.audiocraft import load_lm
    from audiotools.conditioning import Conditioning
    from audiotools.sampling.tokens import generate
    converted = load_lm(folder)
    weight = converted.conditioner_weights["conditioners.description.proj.weight"]
    bias = converted.conditioner_weights["conditioners.description.proj.bias"]
    mask = expected["mask"]
    embeddings = F.linear(expected["states"], weight, bias) * mask.unsqueeze(-1)
    conditions = {"description": Conditioning(embeddings, mask)}
    with torch.no_grad():
        logits = converted.model(expected["sequence"], conditions)
    difference = _difference(logits, expected["logits"])
    fuser = converted.config.fuser.methods()
    nulls = int((~mask.any(dim=1)).sum())
    ok = _line(difference <= TOLERANCE,
               f"LM {name} ({converted.config.pattern.type} pattern, "
               f"{converted.config.positional_embedding} positions, fused {fuser}): logits "
               f"{tuple(logits.shape)} of {BATCH - nulls} prompts and {nulls} null conditions, "
               f"max |diff| {difference:.2e} (tolerance {TOLERANCE:g})")
    if expected["generated"] is None:
        return ok
    first = {"description": Conditioning(embeddings[:1], mask[:1])}
    tokens = generate(converted.model, None, None, GENERATED_FRAMES, first, cfg_scale=3.0,
                      temperature=0.0)
    same = torch.equal(tokens, expected["generated"])
    agree = float((tokens == expected["generated"]).float().mean()) if (
        tokens.shape == expected["generated"].shape) else 0.0
    ok &= _line(same, f"LM {name}: greedy generation with guidance (scale 3), "
                f"{GENERATED_FRAMES} frames: {100 * agree:.1f}% of the tokens equal "
                "AudioCraft's generate")
    return ok


def compare_patterns(expected: dict) -> bool:
    from audiotools.models.lm import (
        CoarseFirstPattern,
        DelayPattern,
        ParallelPattern,
        UnrollPattern,
    )
    patterns = {"delay": DelayPattern(4, [0, 1, 2, 4]), "parallel": ParallelPattern(4),
                "unroll": UnrollPattern(4), "coarse_first": CoarseFirstPattern(4, [0, 1, 1])}
    equal = [name for name, pattern in patterns.items()
             if torch.equal(pattern.build(expected["codes"], 64)[0], expected[name])]
    return _line(len(equal) == len(patterns), f"patterns: {len(equal)} of {len(patterns)} "
                 f"interleave codes exactly as AudioCraft's providers ({', '.join(equal)})")


def compare_encodec(name: str, folder: Path, expected: dict) -> bool:
    from audiotools.io.codecs import load_codec
    codec = load_codec(folder / "compression_state_dict.bin", discrete=True)
    parameters = sum(p.numel() for p in codec.parameters())
    with torch.no_grad():
        tokens = codec.encode_to_tokens(expected["audio"])
        decoded = codec.decode_tokens(expected["codes"])
    same = torch.equal(tokens, expected["codes"])
    agree = float((tokens == expected["codes"]).float().mean()) if (
        tokens.shape == expected["codes"].shape) else 0.0
    ok = _line(same and parameters == expected["parameters"],
               f"EnCodec {name} ({parameters:,} parameters, AudioCraft "
               f"{expected['parameters']:,}): tokens {tuple(tokens.shape)} "
               f"{100 * agree:.2f}% equal to AudioCraft's")
    difference = _difference(decoded, expected["decoded"])
    ok &= _line(difference <= TOLERANCE,
                f"EnCodec {name}: audio decoded from AudioCraft's tokens "
                f"{tuple(decoded.shape)}, max |diff| {difference:.2e} (tolerance {TOLERANCE:g})")
    return ok


def compare(out: Path) -> bool:
    expected = torch.load(out / "reference.pt", weights_only=False)
    ok = True
    for name in LM_CASES:
        ok &= compare_lm(name, out / name, expected[name])
    ok &= compare_patterns(expected["patterns"])
    for name in ENCODEC_CASES:
        ok &= compare_encodec(name, out / name, expected[name])
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-python", default=str(REPO / ".venv" / "bin" / "python"),
                        help="the project's interpreter (audiotools' side)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compare", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        return 0 if compare(args.compare) else 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run_reference(out)
        result = subprocess.run([args.project_python, __file__, "--compare", str(out),
                                 "--threads", str(args.threads)], cwd=REPO)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
