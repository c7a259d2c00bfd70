"""Check our DiT against stable-audio-tools' `DiffusionTransformer` (SAT as an oracle).

SAT is not a dependency: `bash scripts/make_reference_venvs.sh sat` installs it beside the
project in reference/sat (0.0.19 and what its model and sampling code import, reusing the
project's torch), then

    reference/sat/bin/python scripts/check_sat_dit_parity.py

Prints the parameter count of the Stable Audio Open / 2.0 DiT as SAT builds it on the meta
device (the number tests/test_diffusion_models.py asserts) and ours; then, for small DiTs in
every conditioning mode, builds SAT's at random (float64, every weight drawn so that no branch
is zero), maps its state dict onto ours with the table in audiotools/models/diffusion/dit.py,
loads it strictly and compares outputs. Exits non-zero on any mismatch.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stable_audio_tools.models.dit import DiffusionTransformer as SATDiT  # noqa: E402

from audiotools.models.diffusion import STABLE_AUDIO, build_diffusion_model  # noqa: E402
from audiotools.sat.diffusion_checkpoints import dit_key  # noqa: E402

# Relative to the output's scale: both rotate queries and keys in float32.
TOLERANCE = 1e-6
SAO = {key: value for key, value in STABLE_AUDIO["network"].items()
       if key not in ("type", "mask_cross_attention")}
SMALL = {"io_channels": 4, "embed_dim": 64, "depth": 2, "num_heads": 2}
CASES = {
    # SAO's layout in small: unprojected 32-wide tokens (one key/value head for two).
    "prepend_gqa": {**SMALL, "cond_token_dim": 32, "project_cond_tokens": False,
                    "global_cond_dim": 64},
    "adaln_projected": {**SMALL, "cond_token_dim": 48, "global_cond_dim": 10,
                        "global_cond_type": "adaLN"},
    "patch_concat_prepend": {**SMALL, "patch_size": 2, "input_concat_dim": 3,
                             "prepend_cond_dim": 12, "global_cond_dim": 8},
}


def inputs(config: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)
    batch, length = 2, 8
    given = {"x": randn(batch, config["io_channels"], length),
             "t": torch.rand(batch, generator=generator, dtype=torch.float64)}
    if config.get("cond_token_dim"):
        given["cross_attn_cond"] = randn(batch, 5, config["cond_token_dim"])
    if config.get("global_cond_dim"):
        given["global_cond"] = randn(batch, config["global_cond_dim"])
    if config.get("prepend_cond_dim"):
        given["prepend_cond"] = randn(batch, 3, config["prepend_cond_dim"])
        given["prepend_cond_mask"] = torch.ones(batch, 3, dtype=torch.bool)
    if config.get("input_concat_dim"):
        given["input_concat_cond"] = randn(batch, config["input_concat_dim"], length)
    return given


def check_case(name: str, config: dict) -> bool:
    torch.manual_seed(0)
    sat = SATDiT(**config).double().eval()
    with torch.no_grad():
        for parameter in sat.parameters():
            parameter.normal_(0, 0.3)
    state = {dit_key(key): value for key, value in sat.state_dict().items()}
    state.pop(None, None)
    ours = build_diffusion_model({"network": {"type": "dit", "mask_cross_attention": False,
                                              **config}}).double().eval()
    ours.model.load_state_dict(state, strict=True)
    given = inputs(config, torch.Generator().manual_seed(1))
    sat_args = dict(given)
    if "global_cond" in sat_args:
        sat_args["global_embed"] = sat_args.pop("global_cond")
    with torch.no_grad():
        expected = sat(**sat_args)
        got = ours(**given)
    scale = expected.abs().max().item()
    error = (expected - got).abs().max().item()
    ok = scale > 1e-3 and error <= TOLERANCE * scale
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |SAT - ours| = {error:.2e} "
          f"(output scale {scale:.2f})")
    return ok


def main() -> int:
    with torch.device("meta"):
        sat_count = sum(p.numel() for p in SATDiT(**SAO).parameters())
        our_count = sum(p.numel() for p in build_diffusion_model(STABLE_AUDIO).parameters())
    ok = sat_count == our_count
    print(f"{'ok  ' if ok else 'FAIL'} Stable Audio DiT parameters: SAT {sat_count:,}, "
          f"ours {our_count:,}")
    for name, config in CASES.items():
        ok = check_case(name, config) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
