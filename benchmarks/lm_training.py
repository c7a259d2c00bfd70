"""LM training step: audiotools' LMModel vs AudioCraft's own LMModel, same config, same run.

    python benchmarks/lm_training.py [--pairs 6] [--warmup 1] [--threads 1]

The LM of lm_common.py (4 x 2048 codebooks, delay pattern, width 512, 8 layers), batch 4 x 500
frames of random codes, fp32. A step is what each framework's solver does with a batch:
- audiotools: `lm.predict(codes)` (the interleaved sequence, the forward, each head on its
  codebook's steps), one cross-entropy over all codes, backward, gradient clipping at 1, AdamW
  as audiotools' `build_optimizer` makes it (torch's fused CPU kernel);
- AudioCraft (its own LMModel in its venv, a worker process): `lm.compute_predictions(codes,
  [])`, the masked cross-entropy of its MusicGen solver (one per codebook, averaged),
  backward, clipping at 1, AdamW as its `build_optimizer` makes it (torch's default).
Both: lr 1e-4, betas (0.9, 0.95), weight decay 0.1 (MusicGen's), `warmup` steps first. Then
`pairs` pairs of steps, one of each side back to back (the order alternating), each pair
with a fp32 matmul peak measured just before it: the ratio is the median over pairs of the
pair's ratio, since this shared machine's speed drifts between pairs. FLOPs of our step are
counted by torch.utils.flop_counter (matmuls, forward and backward; AudioCraft's sequence is
2 steps shorter, 0.4%) and given as a fraction of the peak.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from lm_common import (
    CARDINALITY,
    CODEBOOKS,
    AudioCraftWorker,
    audiocraft_lm,
    machine_line,
    matmul_peak,
    our_lm,
    serve,
)

BATCH, FRAMES = 4, 500
ADAMW = {"lr": 1e-4, "betas": (0.9, 0.95), "weight_decay": 0.1}


def our_step(lm: torch.nn.Module, optimizer: torch.optim.Optimizer,
             codes: torch.Tensor) -> None:
    logits = lm.predict(codes)
    loss = F.cross_entropy(logits.flatten(0, 2), codes.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
    optimizer.step()


def audiocraft_step(lm: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    codes: torch.Tensor) -> None:
    output = lm.compute_predictions(codes, [], condition_tensors={})
    loss = 0.0
    for k in range(CODEBOOKS):  # its MusicGenSolver's per-codebook masked cross-entropy
        mask = output.mask[:, k].reshape(-1)
        logits = output.logits[:, k].reshape(-1, CARDINALITY)[mask]
        loss = loss + F.cross_entropy(logits, codes[:, k].reshape(-1)[mask])
    optimizer.zero_grad(set_to_none=True)
    (loss / CODEBOOKS).backward()
    torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
    optimizer.step()


def batch_codes() -> torch.Tensor:
    return torch.randint(0, CARDINALITY, (BATCH, CODEBOOKS, FRAMES),
                         generator=torch.Generator().manual_seed(0))


def timed_step(step, lm: torch.nn.Module, optimizer: torch.optim.Optimizer,
               codes: torch.Tensor) -> float:
    start = time.perf_counter()
    step(lm, optimizer, codes)
    return time.perf_counter() - start


def audiocraft_side(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    lm = audiocraft_lm().train()
    optimizer = torch.optim.AdamW(lm.parameters(), **ADAMW)
    codes = batch_codes()
    for _ in range(args.warmup):
        audiocraft_step(lm, optimizer, codes)

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        return {"seconds": timed_step(audiocraft_step, lm, optimizer, codes)}

    serve(handle, {"parameters": sum(p.numel() for p in lm.parameters())})


def step_flops(lm: torch.nn.Module) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    optimizer = torch.optim.SGD(lm.parameters(), lr=0.0)
    counter = FlopCounterMode(display=False)
    with counter:
        our_step(lm, optimizer, batch_codes())
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="paired steps timed")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--audiocraft-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.audiocraft_side:
        return audiocraft_side(args)
    print(machine_line(args.threads))
    torch.manual_seed(0)
    lm = our_lm().train()
    flops = step_flops(lm)
    optimizer = torch.optim.AdamW(lm.parameters(), fused=True, **ADAMW)
    codes = batch_codes()
    for _ in range(args.warmup):
        our_step(lm, optimizer, codes)
    worker = AudioCraftWorker(__file__, ["--warmup", str(args.warmup)], args.threads)
    print(f"LM {sum(p.numel() for p in lm.parameters()):,} parameters (AudioCraft's "
          f"{worker.ready['parameters']:,}), batch {BATCH} x {FRAMES} frames, "
          f"{flops / 1e9:.0f} GFLOP per step (ours)", flush=True)
    ours, theirs, peaks = [], [], []
    for pair in range(args.pairs):
        peaks.append(matmul_peak())
        if pair % 2:
            theirs.append(worker.request()["seconds"])
            ours.append(timed_step(our_step, lm, optimizer, codes))
        else:
            ours.append(timed_step(our_step, lm, optimizer, codes))
            theirs.append(worker.request()["seconds"])
        print(f"pair {pair + 1}: audiotools {ours[-1]:.2f} s, AudioCraft {theirs[-1]:.2f} s, "
              f"ratio {ours[-1] / theirs[-1]:.3f}, peak {peaks[-1] / 1e9:.0f} GFLOP/s",
              flush=True)
    worker.close()
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    for name, times in (("audiotools", ours), ("AudioCraft", theirs)):
        fractions = [flops / time / peak for time, peak in zip(times, peaks, strict=True)]
        print(f"{name}: step {statistics.median(times):.2f} s (median; {min(times):.2f}-"
              f"{max(times):.2f}) = {100 * statistics.median(fractions):.0f}% of the fp32 "
              f"matmul peak (median of pairs; best pair {100 * max(fractions):.0f}%)")
    print(f"audiotools / AudioCraft step time: {statistics.median(ratios):.3f}x (median of "
          f"{len(ratios)} pairs, {min(ratios):.3f}-{max(ratios):.3f}; goal <= 1.0)")


if __name__ == "__main__":
    main()
