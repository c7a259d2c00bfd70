"""LM decoding: the KV cache vs recomputing the whole prefix, and batch-1 generation speed vs
AudioCraft's own `LMModel.generate`, same config, same run.

    python benchmarks/lm_decoding.py [--frames 500] [--rounds 3] [--pairs 4] [--threads 1]

The LM of lm_common.py (4 x 2048 codebooks, delay pattern, width 512, 8 layers), random
weights, fp32, batch 1, unconditional. `frames` frames are `frames + 3` sequence steps.
- Cache: `audiotools.sampling.tokens.generate` (static KV cache, one step per forward) against
  the same loop that runs the model over the whole sequence so far at every step; both
  greedy, so the script also checks that they give the same tokens. The prefix loop runs once
  (it is slow by construction), the cached one `rounds` times.
- Speed: frames per second of `generate` with AudioCraft's default sampling (temperature 1,
  top-k 250) vs AudioCraft's `generate(num_samples=1, max_gen_len=frames, use_sampling=True,
  top_k=250)` on its own LMModel in its venv (a worker process, lm_common.AudioCraftWorker);
  each after a short warm-up generation, then `pairs` pairs of generations back to back (the
  order alternating): the ratio is the median over pairs of the pair's ratio.
- Floor: a batch-1 step multiplies every weight matrix by one vector, so it streams all of
  them from memory (117 MB in fp32 here, far more than the caches). The script times that
  alone, `F.linear` of one vector through every matrix of the model as `generate` lays them
  out (`LMModel.decoding_layout`) and as they are stored (row-major: what AudioCraft
  multiplies), and gives each side's time per frame above the first.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from lm_common import AudioCraftWorker, audiocraft_lm, machine_line, our_lm, serve

TOP_K = 250


@torch.no_grad()
def generate_without_cache(lm: torch.nn.Module, frames: int) -> torch.Tensor:
    """Greedy codes, every step a forward over the whole sequence so far."""
    pattern = lm.pattern
    codes = torch.full((1, lm.num_codebooks, frames), -1, dtype=torch.long)
    sequence, _ = pattern.build(codes, lm.special_token)
    for step in range(pattern.first_step(0, frames), sequence.shape[-1]):
        tokens = lm(sequence[..., :step])[:, :, -1].argmax(dim=-1)
        current = sequence[:, :, step]
        current.copy_(torch.where(current == -1, tokens, current))
    return pattern.revert(sequence)


def weight_streaming(lm: torch.nn.Module, layout: bool = True, repeats: int = 20,
                     ) -> tuple[float, int]:
    """(seconds of the best pass of one vector through every weight matrix of `lm`, in its
    decoding layout or as stored, bytes of those matrices)."""
    with torch.no_grad(), lm.decoding_layout() if layout else contextlib.nullcontext():
        matrices = [p for name, p in lm.named_parameters()
                    if p.dim() == 2 and not name.startswith("emb.")]
        vectors = {size: torch.randn(1, size) for size in {p.shape[1] for p in matrices}}
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for matrix in matrices:
                F.linear(vectors[matrix.shape[1]], matrix)
            best = min(best, time.perf_counter() - start)
    return best, sum(p.numel() * p.element_size() for p in matrices)


def timed(function, *args, **kwargs) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return time.perf_counter() - start, out


def ours_sampled(lm: torch.nn.Module, frames: int) -> float:
    from audiotools.sampling.tokens import generate
    generator = torch.Generator().manual_seed(0)
    return timed(generate, lm, None, None, frames, temperature=1.0, top_k=TOP_K,
                 generator=generator)[0]


def audiocraft_side(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    lm = audiocraft_lm().eval()
    lm.generate(num_samples=1, max_gen_len=8, use_sampling=True, top_k=TOP_K)  # warm-up

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        seconds, _ = timed(lm.generate, num_samples=1, max_gen_len=request["frames"],
                           use_sampling=True, top_k=TOP_K)
        return {"seconds": seconds}

    serve(handle, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="cached greedy generations")
    parser.add_argument("--pairs", type=int, default=4, help="paired sampled generations")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-prefix", action="store_true",
                        help="leave out the (slow) whole-prefix loop")
    parser.add_argument("--audiocraft-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.audiocraft_side:
        return audiocraft_side(args)
    from audiotools.sampling.tokens import generate
    print(machine_line(args.threads))
    torch.manual_seed(0)
    lm = our_lm().eval()
    steps = lm.pattern.steps(args.frames) - 1
    print(f"LM {sum(p.numel() for p in lm.parameters()):,} parameters, batch 1, "
          f"{args.frames} frames = {steps} decoding steps")
    generate(lm, None, None, 8, temperature=0.0)  # warm-up
    cached = []
    for _ in range(args.rounds):
        seconds, greedy = timed(generate, lm, None, None, args.frames, temperature=0.0)
        cached.append(seconds)
    cache = statistics.median(cached)
    print(f"KV cache, greedy: {cache:.2f} s ({1e3 * cache / steps:.2f} ms per step; rounds "
          f"{', '.join(f'{s:.2f}' for s in cached)})")
    if not args.skip_prefix:
        prefix, reference = timed(generate_without_cache, lm, args.frames)
        same = torch.equal(reference, greedy)
        print(f"whole prefix every step, greedy: {prefix:.1f} s ({1e3 * prefix / steps:.1f} ms "
              f"per step); same tokens as the cache: {same}")
        print(f"KV cache speed-up: {prefix / cache:.1f}x (goal >= 10)")
    floor, size = weight_streaming(lm)
    stored, _ = weight_streaming(lm, layout=False)
    print(f"floor: one vector through every weight matrix ({size / 1e6:.0f} MB) "
          f"{1e3 * floor:.2f} ms = {size / floor / 1e9:.1f} GB/s in the decoding layout "
          f"({1e3 * stored:.2f} ms = {size / stored / 1e9:.1f} GB/s as stored, row-major)")
    ours, theirs = [], []
    ours_sampled(lm, 8)  # warm-up
    worker = AudioCraftWorker(__file__, [], args.threads)
    for pair in range(args.pairs):
        if pair % 2:
            theirs.append(args.frames / worker.request(frames=args.frames)["seconds"])
            ours.append(args.frames / ours_sampled(lm, args.frames))
        else:
            ours.append(args.frames / ours_sampled(lm, args.frames))
            theirs.append(args.frames / worker.request(frames=args.frames)["seconds"])
        print(f"pair {pair + 1}: audiotools {ours[-1]:.1f} frames/s "
              f"({1e3 / ours[-1]:.2f} ms per frame), AudioCraft {theirs[-1]:.1f} frames/s "
              f"({1e3 / theirs[-1]:.2f} ms per frame), ratio {ours[-1] / theirs[-1]:.2f}",
              flush=True)
    worker.close()
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    for name, rates in (("audiotools", ours), ("AudioCraft", theirs)):
        frame = 1 / statistics.median(rates)
        print(f"{name}: {1e3 * frame:.2f} ms per frame = floor + {1e3 * (frame - floor):.2f} ms")
    print(f"batch-1 sampling (top-k {TOP_K}): audiotools {statistics.median(ours):.1f} "
          f"frames/s, AudioCraft {statistics.median(theirs):.1f} frames/s: "
          f"{statistics.median(ratios):.2f}x (median of {len(ratios)} pairs, {min(ratios):.2f}-"
          f"{max(ratios):.2f}; goal >= 3)")


if __name__ == "__main__":
    main()
