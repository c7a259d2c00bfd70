"""Training step of an autoencoder recipe: this working tree against another git revision,
in the same run on the same machine.

    python benchmarks/autoencoder_step.py --before REV [--recipe base] [--rounds 6]
                                          [--steps 8] [--warmup 3] [--threads 2] [--avx2]

Each round runs one fresh process per tree, the order alternating from round to round (this
shared machine's speed drifts by tens of percent over minutes). A process imports its tree's
audiotools (first on PYTHONPATH), builds a real XP of `solver=autoencoder/RECIPE` in float32
as `dora run` composes it, draws one batch from its training loader and, after `warmup`
steps, times `steps` training steps through the solver's own `_run_batches` (forward, losses,
backward, optimizer, EMA): it prints their median. The ratio is the median over rounds of
each round's now / before. `--avx2` caps torch, oneDNN and MKL at AVX2 in both processes
(`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`): these
cores running the code an AVX2-only CPU gets, not that CPU's clock, caches or memory.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from revisions import REPO, worktree

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def measure(args: argparse.Namespace) -> None:
    """The child: one JSON line with the median step seconds of this process's audiotools."""
    import torch
    from autoencoder_speed import recipe_solver, time_steps
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        xp, solver = recipe_solver(Path(tmp), ["precision=32", "dataset.num_workers=0"],
                                   args.recipe)
        with xp.enter():
            loader = solver.loaders["train"]
            loader.set_epoch(0)
            times = time_steps(solver, next(iter(loader)), args.steps, args.warmup)
            solver.close()
    print(json.dumps({"step": statistics.median(times)}), flush=True)


def child_step(tree: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), **(AVX2 if args.avx2 else {})}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--recipe",
               args.recipe, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree)
    if result.returncode:
        raise SystemExit(f"the step of {tree} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare with (required)")
    parser.add_argument("--recipe", default="base", help="autoencoder/RECIPE")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=8, help="steps timed per process")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--avx2", action="store_true", help="cap at AVX2 code paths")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args)
        return
    if not args.before:
        parser.error("--before REV is required")
    from peer import machine_line
    print(machine_line(args.threads) + (" (capped at AVX2)" if args.avx2 else ""))
    with tempfile.TemporaryDirectory() as scratch, \
            worktree(args.before, Path(scratch) / "before") as before:
        trees = {"now": REPO, "before": before}
        steps: dict[str, list[float]] = {name: [] for name in trees}
        ratios = []
        for round_index in range(args.rounds):
            order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
            for name in order:
                steps[name].append(child_step(trees[name], args))
            ratios.append(steps["now"][-1] / steps["before"][-1])
            print(f"round {round_index + 1}: now {steps['now'][-1] * 1e3:.0f} ms, before "
                  f"{steps['before'][-1] * 1e3:.0f} ms", flush=True)
    now, old = (statistics.median(steps[name]) for name in ("now", "before"))
    print(f"autoencoder/{args.recipe} step, float32: now {now * 1e3:.0f} ms, before "
          f"({args.before}) {old * 1e3:.0f} ms: now / before {statistics.median(ratios):.3f}x "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
