"""Solver overhead: the same training through `StandardSolver` and through a bare PyTorch loop.

    python benchmarks/solver_overhead.py [--epochs 3] [--repeats 7] [--threads 1]

Workload (`Workload` below): a keyword-spotting-sized 1-D conv net (40 log-mel bins x 101
frames, i.e. one second at a 10 ms hop; two conv+BatchNorm+ReLU layers of 32 channels, a linear
head over 10 classes; 7.4k parameters) trained with AdamW on 4,096 in-memory examples, batch 16:
256 steps per epoch. One step costs about 4-5 ms of CPU on one thread, so the fixed per-step
Python cost of either loop shows up (a larger model would hide it) without dominating (a
two-layer toy MLP at well under 1 ms per step would exaggerate it).

Both sides get the same model init, the same examples in the same order (the solver's
(seed, epoch) permutation, rebuilt by hand in the bare loop), the same AdamW settings and the
same number of steps; the script checks that the final weights are bit-identical, which proves
the two did the same arithmetic. The bare loop reads `loss.item()` once per step (any real loop
logs its loss) and writes nothing.

The solver side is a real XP: a recipe in a temporary config tree (`AUDIOTOOLS_CONFIG_PATH`),
composed and validated by `audiotools.train.main.get_xp`, run with `solver.run()` inside
`xp.enter()`, with its defaults: progress lines, history.json, TensorBoard, and an atomic,
fsynced checkpoint (plus `checkpoint_<epoch>.th`, keep_last=1) after every epoch. No valid
split, so both sides do only the training steps.

Runs alternate bare/solver (the order flips every repeat). On a shared machine the speed drifts
by tens of percent within a minute, so the figure to read is the *paired* ratio: the median over
repeats of solver/bare for the two runs made back to back. Medians of each side are printed too.
- whole run: bare = model + data + loop; solver = build the solver + `run()` (restore, every
  epoch, every checkpoint write). The config composition (`get_xp`, once per launch) is timed
  apart and not in the ratio.
- training only: the sum of the epochs' training loops, i.e. `train_stage` on the solver side.
Wall time and process CPU time (all threads) are both given. Last, the same comparison with a
tiny model (almost no arithmetic; 3x the repeats) gives the solver's own bookkeeping per
training step in microseconds, independent of the model.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from audiotools.config import Section, SolverConfig
from audiotools.solvers import StandardSolver

MODEL_SEED = 1234
DATA_SEED = 4321
# Mirrors audiotools.solvers.loading / base: the permutation of epoch E (first draw) is seeded
# with seed * 1_000_003 + E * 10_000.
_SEED_STRIDE = 1_000_003
_PASSES_PER_EPOCH = 10_000


class Workload(Section):
    samples: int = 4096
    valid_samples: int = 512
    batch_size: int = 16
    mels: int = 40
    frames: int = 101
    channels: int = 32
    classes: int = 10
    # Add a valid split (the memory benchmark uses it; the overhead one does not).
    valid: bool = False


class BenchConfig(SolverConfig):
    bench: Workload = Workload()


def make_model(w: Workload) -> torch.nn.Module:
    torch.manual_seed(MODEL_SEED)
    return torch.nn.Sequential(
        torch.nn.Conv1d(w.mels, w.channels, 3, padding=1), torch.nn.BatchNorm1d(w.channels),
        torch.nn.ReLU(),
        torch.nn.Conv1d(w.channels, w.channels, 3, padding=1), torch.nn.BatchNorm1d(w.channels),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(w.channels, w.classes))


def make_data(w: Workload) -> tuple[TensorDataset, TensorDataset]:
    """Class-dependent random 'spectrograms', so the loss really decreases."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    total = w.samples + w.valid_samples
    labels = torch.randint(0, w.classes, (total,), generator=generator)
    prototypes = torch.randn(w.classes, w.mels, 1, generator=generator)
    inputs = prototypes[labels] + torch.randn(total, w.mels, w.frames, generator=generator)
    return (TensorDataset(inputs[:w.samples], labels[:w.samples]),
            TensorDataset(inputs[w.samples:], labels[w.samples:]))


class BenchSolver(StandardSolver):
    config_schema = BenchConfig
    best_metric = "loss"
    best_mode = "min"

    def build_model(self) -> None:
        self.model = make_model(self.settings.bench).to(self.device)
        self.optimizer = self.build_optimizer(self.model.parameters())
        self.register_stateful("model", "optimizer")
        self.register_best_state("model")
        self.register_ema("model")
        self.train_seconds: list[float] = []
        self.train_cpu_seconds: list[float] = []
        self.epoch_end_rss_kib: dict[int, int] = {}

    def build_dataloaders(self) -> None:
        w = self.settings.bench
        train, valid = make_data(w)
        self.loaders["train"] = self.make_loader(train, w.batch_size, shuffle=True)
        if w.valid:
            self.loaders["valid"] = self.make_loader(valid, w.batch_size, shuffle=False)

    def run_step(self, idx: int, batch: Any, metrics: dict[str, Any]) -> dict[str, Any]:
        inputs, labels = (tensor.to(self.device) for tensor in batch)
        return {"loss": F.cross_entropy(self.model(inputs), labels)}

    def train_stage(self) -> dict[str, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        metrics = super().train_stage()
        self.train_seconds.append(time.perf_counter() - wall)
        self.train_cpu_seconds.append(time.process_time() - cpu)
        return metrics

    def commit(self, save_checkpoint: bool = True) -> None:
        super().commit(save_checkpoint)
        # After the checkpoint and history of the epoch just finished (len(history)).
        self.epoch_end_rss_kib[len(self.history)] = rss_kib()


def rss_kib(field: str = "VmRSS") -> int:
    """Resident memory of this process from /proc/self/status, in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_recipe(config_dir: Path, w: Workload, epochs: int, lr: float, extra: str = "",
                 name: str = "run") -> str:
    """A recipe `solver=bench/<name>` naming BenchSolver by its importable module path."""
    folder = config_dir / "solver" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    bench = "\n".join(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}"
                      for key, value in w.model_dump().items())
    (folder / f"{name}.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - /solver/default\n  - _self_\n"
        f"solver: {BenchSolver.__module__}:BenchSolver\n"
        f"optim:\n  epochs: {epochs}\n  lr: {lr}\n"
        f"bench:\n{bench}\n{extra}")
    return f"bench/{name}"


def make_xp(root: Path, recipe: str, overrides: list[str] | None = None):
    """Compose and validate the config like `dora run solver=<recipe>`, in a fresh dora dir."""
    from audiotools.train import main
    main.dora.dir = root / "dora"
    xp = main.get_xp([f"solver={recipe}", *(overrides or [])])
    main.init_xp(xp)
    return xp


def quiet_console() -> None:
    """Progress lines still go to <xp>/solver.log.0 (and are formatted); only stderr is spared."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)


def solver_run(root: Path, recipe: str, show_logs: bool) -> dict[str, Any]:
    wall0 = time.perf_counter()
    xp = make_xp(root, recipe)
    compose = time.perf_counter() - wall0
    torch.manual_seed(0)  # what audiotools.train.main does (seed_everything) before building
    wall, cpu = time.perf_counter(), time.process_time()
    with xp.enter():
        solver = BenchSolver(xp.cfg)
        if not show_logs:
            quiet_console()
        solver.run()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "train_wall": sum(solver.train_seconds), "train_cpu": sum(solver.train_cpu_seconds),
            "compose": compose, "weights": solver.model.state_dict(),
            "steps": solver._updates_done, "sig": xp.sig}


def bare_run(w: Workload, epochs: int, lr: float, seed: int) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    model = make_model(w)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.0)
    train, _ = make_data(w)
    train_wall = train_cpu = 0.0
    steps = 0
    for epoch in range(1, epochs + 1):
        epoch_wall, epoch_cpu = time.perf_counter(), time.process_time()
        generator = torch.Generator().manual_seed(seed * _SEED_STRIDE + epoch * _PASSES_PER_EPOCH)
        order = torch.randperm(len(train), generator=generator).tolist()
        loader = DataLoader(train, batch_size=w.batch_size, sampler=order, drop_last=True,
                            generator=generator)
        model.train()
        running = 0.0
        for inputs, labels in loader:
            loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.item()
            steps += 1
        train_wall += time.perf_counter() - epoch_wall
        train_cpu += time.process_time() - epoch_cpu
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "train_wall": train_wall, "train_cpu": train_cpu, "weights": model.state_dict(),
            "steps": steps}


def same_weights(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--samples", type=int, default=Workload().samples)
    parser.add_argument("--batch-size", type=int, default=Workload().batch_size)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--show-logs", action="store_true",
                        help="keep the solver's console log (it always writes solver.log.0)")
    parser.add_argument("--no-tiny", action="store_true",
                        help="skip the per-step bookkeeping measurement with a tiny model")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    w = Workload(samples=args.samples, batch_size=args.batch_size)
    # Nearly no arithmetic: the difference per step is the solver's own bookkeeping.
    tiny = Workload(samples=args.samples, batch_size=args.batch_size, mels=1, frames=4,
                    channels=2)
    with tempfile.TemporaryDirectory(prefix="audiotools-bench-") as tmp:
        tmp_path = Path(tmp)
        os.environ["AUDIOTOOLS_CONFIG_PATH"] = f"file://{tmp_path / 'config'}"
        seed = BenchConfig.model_fields["seed"].default

        # Warm-up, not counted: first imports (TensorBoard, ...), allocator, oneDNN kernels.
        warm = write_recipe(tmp_path / "config", w, 1, args.lr, name="warmup")
        solver_run(tmp_path / "warmup", warm, args.show_logs)
        bare_run(w, 1, args.lr, seed)
        runs = compare(tmp_path, "main", w, args, seed, verbose=True)
        tiny_args = argparse.Namespace(**{**vars(args), "repeats": 3 * args.repeats})
        tiny_runs = None if args.no_tiny else compare(tmp_path, "tiny", tiny, tiny_args, seed)

    bare, solver = runs["bare"], runs["solver"]
    identical = all(same_weights(b["weights"], s["weights"])
                    for b, s in zip(bare, solver, strict=True))
    steps = bare[0]["steps"]
    assert all(r["steps"] == steps for r in bare + solver), "step counts differ"

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    print()
    print(f"workload: {sum(p.numel() for p in make_model(w).parameters()):,} parameters, "
          f"batch {w.batch_size}, {steps // args.epochs} steps x {args.epochs} epochs = {steps} "
          f"steps; torch threads {args.threads}; {args.repeats} repeats, medians")
    print(f"final weights bit-identical (bare vs solver): {identical}")
    print(f"bare step: {1000 * median('bare', 'train_wall') / steps:.2f} ms wall, "
          f"{1000 * median('bare', 'train_cpu') / steps:.2f} ms cpu")
    print(f"config composition (get_xp, once per launch, not in the ratios): "
          f"{median('solver', 'compose'):.3f} s")
    print("ratio = solver / bare; 'paired' = median of the per-repeat ratios (each pair ran "
          "back to back, so it shares the machine's load)")
    for label, key in (("whole run", "wall"), ("whole run", "cpu"),
                       ("training only", "train_wall"), ("training only", "train_cpu")):
        b, s = median("bare", key), median("solver", key)
        paired = statistics.median(sr[key] / br[key] for br, sr in zip(bare, solver, strict=True))
        clock = "cpu" if key.endswith("cpu") else "wall"
        print(f"{label:13s} {clock:4s}: bare {b:.3f} s  solver {s:.3f} s  ratio {s / b:.3f}x  "
              f"paired {paired:.3f}x")
    fixed = {kind: statistics.median(r["wall"] - r["train_wall"] for r in runs[kind])
             for kind in runs}
    print(f"outside the training loops (wall): bare {fixed['bare']:.3f} s (model, data), "
          f"solver {fixed['solver']:.3f} s (model, data, loggers, lock, checkpoints, close)")
    if tiny_runs is not None:
        # CPU time: the bookkeeping is single-threaded Python, and CPU time is the steadier clock.
        extra = [(s["train_cpu"] - b["train_cpu"]) / b["steps"]
                 for b, s in zip(tiny_runs["bare"], tiny_runs["solver"], strict=True)]
        bare_step = median("bare", "train_cpu") / steps
        per_step = statistics.median(extra)
        print(f"solver bookkeeping per training step (tiny model, paired, cpu): "
              f"{1e6 * per_step:.0f} us = {100 * per_step / bare_step:.1f}% of this workload's "
              f"{1000 * bare_step:.2f} ms step")
    whole = statistics.median(sr["wall"] / br["wall"] for br, sr in zip(bare, solver, strict=True))
    print(f"goal <= 1.03x (whole run, wall, paired): {whole:.3f}x, "
          f"{'met' if whole <= 1.03 else 'NOT met'}")
    return 0 if identical else 1


def compare(tmp_path: Path, name: str, w: Workload, args: argparse.Namespace, seed: int,
            verbose: bool = False) -> dict[str, list[dict[str, Any]]]:
    """`args.repeats` alternating bare/solver runs of workload `w` (the order flips each repeat)."""
    recipe = write_recipe(tmp_path / "config", w, args.epochs, args.lr, name=name)
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "solver": []}
    for repeat in range(args.repeats):
        order = ("bare", "solver") if repeat % 2 == 0 else ("solver", "bare")
        for kind in order:
            if kind == "bare":
                result = bare_run(w, args.epochs, args.lr, seed)
            else:
                result = solver_run(tmp_path / f"{name}{repeat}", recipe, args.show_logs)
            runs[kind].append(result)
            if verbose:
                print(f"repeat {repeat} {kind:6s} whole {result['wall']:.3f} s wall "
                      f"{result['cpu']:.3f} s cpu | training {result['train_wall']:.3f} s wall "
                      f"{result['train_cpu']:.3f} s cpu", flush=True)
    return runs


if __name__ == "__main__":
    sys.exit(main())
