"""Sampling speed of the `diffusion/base` recipe's model: seconds of audio generated per second.

    python benchmarks/diffusion_sampling.py [--rounds 3] [--batches 1 4] [--steps 50]
                                            [--threads 1] [--untrained-codec]

The recipe is composed as `dora run solver=diffusion/base` composes it (audiotools.train.main
.get_xp) and validated by the solver's schema; its model (DiT 192 wide, 6 blocks, patch 2 on
the codec's 32 x 62.5 Hz latents, cross-attention to the ensemble and seconds_total tokens,
adaLN-free global condition) is built by `build_diffusion_model` with **untrained** weights
(the cost of a step does not depend on them; training nothing), its conditioners by
`ConditionerSet` as the solver builds them. The codec is the recipe's
`//recipe/autoencoder/magnitude_base`: the trained XP when this machine has it (found as the
solver finds it), else (or with --untrained-codec) that recipe's architecture freshly
initialised; the script says which. Latent statistics (codec.normalize) are left out: a
per-channel affine map, nothing next to the decode.

Each round times, for each batch size, `DiffusionPipeline.generate` (what inference and the
solver's generate stage call): the recipe's generate settings (dpmpp_2m, `steps` steps,
cfg_scale 1.0, the pipeline's default), 8 s (the recipe's segment) per item, conditions
cycling over the ensembles; its time is split into the sampler (the DiT's steps) and the
codec's decode by timing the pipeline's `_sample` and `_decode`. Figures: medians over rounds
of seconds of audio per second of wall time (batch x 8 s / wall) and the decode's share.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from peer import REPO, load_average, machine_line

DURATION = 8.0


def recipe_pipeline(untrained_codec: bool, steps: int):
    sys.path.insert(0, str(REPO))
    from omegaconf import OmegaConf

    from audiotools.conditioning import ConditionerSet
    from audiotools.errors import ConfigError
    from audiotools.inference.diffusion import DiffusionPipeline
    from audiotools.io.codecs import load_codec
    from audiotools.models.codec import FrozenCodec
    from audiotools.models.diffusion import build_diffusion_model
    from audiotools.solvers.diffusion_config import DiffusionSolverConfig
    from audiotools.train import main

    settings = DiffusionSolverConfig.model_validate(
        OmegaConf.to_container(main.get_xp(["solver=diffusion/base"]).cfg, resolve=True))
    codec_note = None
    if not untrained_codec:
        try:
            codec = load_codec(settings.codec.source, scale=settings.codec.scale)
            from audiotools.environment import resolve_path
            codec_note = (f"trained {settings.codec.source} "
                          f"({resolve_path(settings.codec.source).name})")
        except ConfigError as error:
            print(f"no trained codec ({error}); using an untrained one", flush=True)
    if codec_note is None:
        from audiotools.models.autoencoder import build_autoencoder
        recipe = settings.codec.source.removeprefix("//recipe/")
        config = main.get_xp([f"solver={recipe}"]).cfg.model
        network = build_autoencoder(OmegaConf.to_container(config, resolve=True))
        codec = FrozenCodec(network, f"{recipe} (untrained)", settings.codec.scale, None)
        codec_note = f"untrained {recipe} architecture"
    conditioners = ConditionerSet(settings.conditioners, settings.conditioning.dim,
                                  codec=codec, joint_dropout=settings.conditioning.joint_dropout)
    model = build_diffusion_model(settings.model).eval()
    model.check_conditioner_dim(settings.conditioning.dim)
    generate = settings.generate
    defaults = {"steps": steps, "sampler": generate.sampler, "cfg_rescale": generate.cfg_rescale,
                "cfg_interval": generate.cfg_interval}
    pipeline = DiffusionPipeline(model, conditioners.eval(), codec, codec.sample_rate,
                                 codec.channels, defaults)
    options = settings.conditioners["ensemble"].options
    return pipeline, options, codec_note, model


def timed_generate(pipeline, values: list[dict], seed: int) -> tuple[float, float, float]:
    """(wall, sampler, decode) seconds of one generate call."""
    spent = {"_sample": 0.0, "_decode": 0.0}
    originals = {name: getattr(pipeline, name) for name in spent}

    def timing(name):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return call

    for name in spent:
        setattr(pipeline, name, timing(name))
    try:
        start = time.perf_counter()
        with torch.inference_mode():
            audio, rate = pipeline.generate(values, DURATION, seed=seed, cfg_scale=1.0)
        wall = time.perf_counter() - start
    finally:
        for name in spent:
            delattr(pipeline, name)
    assert audio.shape[0] == len(values) and audio.shape[-1] == round(DURATION * rate)
    return wall, spent["_sample"], spent["_decode"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--untrained-codec", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads), flush=True)
    torch.manual_seed(0)
    pipeline, options, codec_note, model = recipe_pipeline(args.untrained_codec, args.steps)
    print(f"diffusion/base: DiT {sum(p.numel() for p in model.parameters()):,} parameters "
          f"(untrained), codec: {codec_note}; {pipeline.defaults['sampler']}, {args.steps} "
          f"steps, cfg_scale 1.0, {DURATION:g} s per item", flush=True)

    def values(batch: int) -> list[dict]:
        return [{"ensemble": options[i % len(options)], "seconds_total": DURATION}
                for i in range(batch)]

    timed_generate(pipeline, values(1), seed=0)  # warm-up
    results: dict[int, list[tuple[float, float, float]]] = {b: [] for b in args.batches}
    for round_ in range(args.rounds):
        for batch in args.batches:
            results[batch].append(timed_generate(pipeline, values(batch), seed=round_))
            wall, sampler, decode = results[batch][-1]
            print(f"round {round_ + 1}, batch {batch}: {wall:.2f} s (sampler {sampler:.2f} s, "
                  f"decode {decode:.2f} s) = {batch * DURATION / wall:.2f} s of audio per s",
                  flush=True)
    print(f"load average at end: {load_average()}")
    for batch, runs in results.items():
        speeds = [batch * DURATION / wall for wall, _, _ in runs]
        shares = [decode / wall for wall, _, decode in runs]
        sampler_shares = [sampler / wall for wall, sampler, _ in runs]
        print(f"batch {batch}: {statistics.median(speeds):.2f} s of audio per second "
              f"({min(speeds):.2f}-{max(speeds):.2f}), generate "
              f"{statistics.median(r[0] for r in runs):.2f} s; "
              f"DiT steps {100 * statistics.median(sampler_shares):.1f}%, codec decode "
              f"{100 * statistics.median(shares):.1f}% of the time (median of {len(runs)})")


if __name__ == "__main__":
    main()
