"""Memory: resident memory (VmRSS) of a solver run at the end of every epoch.

    python benchmarks/memory.py [--epochs 12] [--threads 1]

Runs the workload of `solver_overhead.py` through the real StandardSolver in a temporary XP,
this time with a valid split and an EMA, so every per-epoch path is exercised: train, valid on
the EMA weights, best-state copy, evaluate/generate stages, history.json, TensorBoard, and an
atomic checkpoint (keep_last=1, so one numbered file is written and one pruned per epoch).
VmRSS is read from /proc/self/status right after each epoch's commit (checkpoint and history
written). Goal: RSS at the end of epoch 10 within 5% of epoch 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
from solver_overhead import BenchSolver, Workload, make_xp, quiet_console, rss_kib, write_recipe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--show-logs", action="store_true")
    args = parser.parse_args()
    if args.epochs < 10:
        parser.error("--epochs must be at least 10 (epoch 10 is compared with epoch 2)")

    torch.set_num_threads(args.threads)
    w = Workload(valid=True)
    with tempfile.TemporaryDirectory(prefix="audiotools-mem-") as tmp:
        tmp_path = Path(tmp)
        os.environ["AUDIOTOOLS_CONFIG_PATH"] = f"file://{tmp_path / 'config'}"
        recipe = write_recipe(tmp_path / "config", w, args.epochs, 1e-3)
        xp = make_xp(tmp_path, recipe, ["optim.ema.use=true"])
        torch.manual_seed(0)
        before = rss_kib()
        with xp.enter():
            solver = BenchSolver(xp.cfg)
            if not args.show_logs:
                quiet_console()
            built = rss_kib()
            solver.run()
        rss = solver.epoch_end_rss_kib

    print(f"VmRSS before the solver: {before / 1024:.1f} MiB; after building it: "
          f"{built / 1024:.1f} MiB")
    for epoch, value in sorted(rss.items()):
        print(f"end of epoch {epoch:2d}: VmRSS {value / 1024:.1f} MiB")
    growth = (rss[10] - rss[2]) / rss[2]
    print(f"epoch 10 vs epoch 2: {(rss[10] - rss[2]) / 1024:+.1f} MiB ({100 * growth:+.2f}%); "
          f"goal within 5%: {'met' if abs(growth) <= 0.05 else 'NOT met'}")
    print(f"peak (VmHWM): {rss_kib('VmHWM') / 1024:.1f} MiB")
    return 0 if abs(growth) <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
