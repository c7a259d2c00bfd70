"""Classifier epoch time: the `classifier/digits` recipe through the solver vs a bare loop in
the style of the original trainer, and the cost of `precision=bf16-mixed` on CPU.

    python benchmarks/classifier_epoch.py [--epochs 6] [--bf16-epochs 1] [--threads 1]

Data: the shipped spoken digits exactly as the `classifier/digits` recipe reads them (log-mel
features from `load_audio_folder` with the recipe's settings, cached under
~/.cache/audiotools/features; fold 0 held out): 750 training and 210 held-out examples of
64 mels x 101 frames, 10 classes. AudioCNN default config (184,714 parameters), Adam lr 1e-3,
batch 32: 23 training steps (the 14-example tail is dropped) and 7 validation batches per epoch.

Sides, all in one process, one XP folder each in a temporary Dora dir:
- bare: the original trainer's loop. A DataLoader over the same `FeatureDataset`, batch 32,
  shuffled, `model.train()`, cross-entropy, zero_grad/backward/step, `loss.item()` per step;
  then a validation pass (`model.eval()`, no_grad) computing loss and accuracy. No checkpoint,
  no EMA, no logging.
- solver: a real XP, `solver=classifier/digits optim.ema.use=false evaluate.every=0
  generate.every=0 schedule.name=none early_stop.patience=null optim.epochs=E`, composed and
  validated by `audiotools.train.main.get_xp` and built inside `xp.enter()` like `dora run`
  does (seeded with `seed` first). Schedule `none` (the recipe's `plateau` could not act
  within so few epochs anyway, but `none` makes the constant rate explicit). Its epoch is
  `solver.run_epoch()`: train, valid (loss, exact accuracy, macro-F1 through the confusion
  matrix), best-state copy, and the commit: history.json, TensorBoard, the progress lines in
  solver.log.0 and an fsynced atomic checkpoint (+ checkpoint_<epoch>.th). The commit is
  counted. `solver.run()` is `restore()`, then `run_epoch()` until done, then `close()`; this
  script makes those same calls itself so that it can interleave the epochs.
- solver bf16: the same XP with `precision=bf16-mixed` (autocast to bfloat16 on CPU).

Same data order, same weights: the bare loop feeds its DataLoader the solver's permutation
(`EpochSampler`: seeded with seed * 1_000_003 + epoch * 10_000, tail dropped), passed as its
`sampler`, so each batch is the same. The model init (seed 42, as `main` seeds before building
the solver) is the same, and each side keeps its own torch RNG state (Dropout draws from it),
swapped in before and saved after each of its epochs, outside the timed region. The script
checks the initial and final weights (parameters and BatchNorm buffers) for bit-identity and
the per-epoch valid loss/accuracy for equality. (The bare DataLoaders get a generator of their
own, as the solver's do: without one, every iteration over a DataLoader draws its base seed
from the global RNG and shifts the Dropout masks.)

Timing: round r runs epoch r of every side back to back, the order rotating each round. This
2-core VM is shared and its speed drifts by tens of percent within a minute, so the figures
to read are *paired*: the median over rounds of the per-round ratio (solver / bare; bf16 /
fp32 solver). Medians of each side are printed too. Wall time is the headline; process CPU
time (both threads) is printed beside it. The one-off costs (config composition, building the
solver or the bare model/loaders) are not in the epoch times and are printed apart.

bf16 probe (skip with --no-probe): per-step training time on one digits batch of the bare
model in fp32, under bf16 autocast, bf16 autocast with channels_last weights and input, and
bf16 autocast with the Conv2d encoder blocks kept in fp32 (autocast disabled around
`model.encoder`), interleaved, medians; plus what the CPU and torch report about bf16 support.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from audiotools import distributed
from audiotools.data.features import FeatureArrays, split_by_fold
from audiotools.families import validate_config
from audiotools.models.cnn import AudioCNN
from audiotools.solvers.classifier import ClassifierSolver, load_arrays

RECIPE = "classifier/digits"
# Mirrors audiotools.solvers.loading / base: epoch E of training draws the permutation seeded
# with seed * 1_000_003 + E * 10_000 (first pass of the epoch).
_SEED_STRIDE = 1_000_003
_PASSES_PER_EPOCH = 10_000


def overrides(epochs: int, precision: str) -> list[str]:
    return [f"solver={RECIPE}", "optim.ema.use=false", "evaluate.every=0", "generate.every=0",
            "schedule.name=none", "early_stop.patience=null", f"optim.epochs={epochs}",
            f"precision='{precision}'"]


class TimedClassifierSolver(ClassifierSolver):
    """The classifier solver, unchanged, with its train and valid stages timed."""

    def build_model(self) -> None:
        super().build_model()
        self.stage_seconds: dict[str, float] = {}

    def train_stage(self) -> dict[str, float]:
        wall = time.perf_counter()
        try:
            return super().train_stage()
        finally:
            self.stage_seconds["train"] = time.perf_counter() - wall

    def valid_stage(self) -> dict[str, float]:
        wall = time.perf_counter()
        try:
            return super().valid_stage()
        finally:
            self.stage_seconds["valid"] = time.perf_counter() - wall


def quiet_console() -> None:
    """Progress lines still go to <xp>/solver.log.0 (and are formatted); only stderr is spared."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)


class Side:
    """One contender: `epoch(n)` runs its epoch n; each keeps its own torch RNG state."""

    name: str

    def __init__(self) -> None:
        self.rng = torch.get_rng_state()
        self.times: list[dict[str, float]] = []
        self.valid: list[tuple[float, float]] = []  # (loss, accuracy) per epoch

    def epoch(self, number: int) -> None:
        torch.set_rng_state(self.rng)
        wall, cpu = time.perf_counter(), time.process_time()
        parts = self._epoch(number)
        self.times.append({"wall": time.perf_counter() - wall,
                           "cpu": time.process_time() - cpu, **parts})
        self.rng = torch.get_rng_state()

    def _epoch(self, number: int) -> dict[str, float]:
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class BareSide(Side):
    name = "bare"

    def __init__(self, arrays: FeatureArrays, fold: int, batch_size: int, lr: float, seed: int):
        build = time.perf_counter()
        distributed.seed_everything(seed)
        self.model = AudioCNN(n_mels=arrays.n_mels, num_classes=arrays.num_classes)
        self.initial = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.train, valid = split_by_fold(arrays, fold)
        self.valid_loader = DataLoader(valid, batch_size=batch_size, shuffle=False,
                                       generator=torch.Generator())
        self.batch_size = batch_size
        self.seed = seed
        self.build_seconds = time.perf_counter() - build
        super().__init__()

    def _epoch(self, number: int) -> dict[str, float]:
        # The solver's permutation for this epoch, so both sides see the same batches.
        generator = torch.Generator().manual_seed(
            self.seed * _SEED_STRIDE + number * _PASSES_PER_EPOCH)
        order = torch.randperm(len(self.train), generator=generator).tolist()
        # A generator of its own: without one, each DataLoader iteration draws its base seed
        # from the global RNG, shifting the Dropout draws (the solver's loaders have one).
        loader = DataLoader(self.train, batch_size=self.batch_size, sampler=order,
                            drop_last=True, generator=generator)
        wall = time.perf_counter()
        self.model.train()
        running = 0.0
        for features, labels in loader:
            loss = F.cross_entropy(self.model(features), labels)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            running += loss.item()
        train = time.perf_counter() - wall
        self.model.eval()
        total_loss, correct, seen, batches = 0.0, 0, 0, 0
        with torch.no_grad():
            for features, labels in self.valid_loader:
                logits = self.model(features)
                total_loss += F.cross_entropy(logits, labels).item()
                correct += int((logits.argmax(dim=1) == labels).sum())
                seen += len(labels)
                batches += 1
        self.valid.append((total_loss / batches, correct / seen))
        return {"train": train, "valid": time.perf_counter() - wall - train}

    def weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()


class SolverSide(Side):
    def __init__(self, name: str, xp: Any, seed: int, show_logs: bool):
        self.name = name
        self.xp = xp
        build = time.perf_counter()
        with xp.enter():
            distributed.seed_everything(seed)  # what audiotools.train.main does first
            self.solver = TimedClassifierSolver(xp.cfg)
            if not show_logs:
                quiet_console()
            self.initial = {k: v.clone() for k, v in self.solver.model.state_dict().items()}
            self.solver.restore()
        self.build_seconds = time.perf_counter() - build
        super().__init__()

    def _epoch(self, number: int) -> dict[str, float]:
        assert self.solver.epoch == number, (self.solver.epoch, number)
        with self.xp.enter():
            self.solver.run_epoch()
        valid = self.solver.history[-1]["valid"]
        self.valid.append((valid["loss"], valid["accuracy"]))
        return dict(self.solver.stage_seconds)

    def close(self) -> None:
        with self.xp.enter():
            self.solver.close()

    def weights(self) -> dict[str, torch.Tensor]:
        return self.solver.model.state_dict()


def same_weights(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


Part = Callable[[dict[str, float]], float] | None


def measure(times: dict[str, float], key: str, part: Part = None) -> float:
    return part(times) if part else times[key]


def paired(numerator: Side, denominator: Side, key: str = "wall",
           part: Part = None) -> tuple[float, int]:
    """Median of the per-round ratios over the rounds both sides ran."""
    ratios = [measure(n, key, part) / measure(d, key, part)
              for n, d in zip(numerator.times, denominator.times, strict=False)]
    return statistics.median(ratios), len(ratios)


def median(side: Side, key: str) -> float:
    return statistics.median(times[key] for times in side.times)


# ---------------------------------------------------------------------- bf16 probe
class _Fp32(torch.nn.Module):
    """Runs the wrapped module with autocast disabled (inputs cast back to float32)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return self.module(inputs.float())


def bf16_support() -> str:
    flags: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    present = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)
    return (f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}"
            f", oneDNN bf16 supported {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; "
            f"cpu flags: {present}")


def probe_bf16(arrays: FeatureArrays, batch_size: int, lr: float, steps: int,
               rounds: int) -> dict[str, list[float]]:
    features = torch.from_numpy(arrays.features[:batch_size])
    labels = torch.from_numpy(arrays.labels[:batch_size])

    def make(variant: str) -> Callable[[], None]:
        torch.manual_seed(0)
        model = AudioCNN(n_mels=arrays.n_mels, num_classes=arrays.num_classes)
        if variant == "bf16 + channels_last":
            # Channels-last weights make the convolutions pick channels-last activations.
            model = model.to(memory_format=torch.channels_last)
        if variant == "bf16, Conv2d blocks fp32":
            model.encoder = _Fp32(model.encoder)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        enabled = variant != "fp32"

        def step() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                loss = F.cross_entropy(model(features).float(), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return step

    variants = ["fp32", "bf16", "bf16 + channels_last", "bf16, Conv2d blocks fp32"]
    runs = {variant: make(variant) for variant in variants}
    for step in runs.values():  # warm-up
        step()
    seconds: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_ in range(rounds):
        for variant in variants[round_ % 4:] + variants[:round_ % 4]:
            wall = time.perf_counter()
            for _ in range(steps):
                runs[variant]()
            seconds[variant].append((time.perf_counter() - wall) / steps)
    return seconds


def warm_up(arrays: FeatureArrays, batch_size: int) -> None:
    """Not counted: first oneDNN kernels, allocator; a few steps on a throwaway model."""
    torch.manual_seed(0)
    model = AudioCNN(n_mels=arrays.n_mels, num_classes=arrays.num_classes)
    optimizer = torch.optim.Adam(model.parameters())
    features = torch.from_numpy(arrays.features[:batch_size])
    labels = torch.from_numpy(arrays.labels[:batch_size])
    for _ in range(2):
        loss = F.cross_entropy(model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        model.eval()(features)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="bare and fp32 solver epochs")
    parser.add_argument("--bf16-epochs", type=int, default=1,
                        help="bf16-mixed solver epochs (the first rounds; 0 skips)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: steadier on a shared 2-core machine)")
    parser.add_argument("--probe-steps", type=int, default=1)
    parser.add_argument("--probe-rounds", type=int, default=2)
    parser.add_argument("--no-probe", action="store_true", help="skip the bf16 step probe")
    parser.add_argument("--show-logs", action="store_true",
                        help="keep the solver's console log (it always writes solver.log.0)")
    args = parser.parse_args()
    assert args.bf16_epochs <= args.epochs, "--bf16-epochs runs within the first rounds"

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    from audiotools.train import main as dora_main

    with tempfile.TemporaryDirectory(prefix="audiotools-bench-") as tmp:
        dora_main.dora.dir = Path(tmp) / "dora"
        compose = time.perf_counter()
        xp32 = dora_main.get_xp(overrides(args.epochs, "32"))
        dora_main.init_xp(xp32)
        compose = time.perf_counter() - compose
        xpbf = None
        if args.bf16_epochs:
            xpbf = dora_main.get_xp(overrides(args.bf16_epochs, "bf16-mixed"))
            dora_main.init_xp(xpbf)
        settings = validate_config(xp32.cfg)
        data, optim = settings.dataset, settings.optim
        assert optim.optimizer == "adam" and optim.betas == (0.9, 0.999) and optim.eps == 1e-8 \
            and optim.weight_decay == 0.0 and optim.accumulation == 1, optim

        load = time.perf_counter()
        arrays = load_arrays(settings)  # the recipe's own data settings (cached features)
        load = time.perf_counter() - load

        warm_up(arrays, data.batch_size)

        bare = BareSide(arrays, data.fold, data.batch_size, optim.lr, settings.seed)
        solver = SolverSide("solver", xp32, settings.seed, args.show_logs)
        sides: list[Side] = [bare, solver]
        bf16 = None
        if xpbf is not None:
            bf16 = SolverSide("bf16", xpbf, settings.seed, args.show_logs)
            sides.append(bf16)
        print(f"one-off: compose {compose:.2f} s, features {load:.2f} s (cache), build bare "
              f"{bare.build_seconds:.2f} s, build solver {solver.build_seconds:.2f} s "
              "(not in the epoch times)", flush=True)

        for number in range(1, args.epochs + 1):
            active = [side for side in sides if side is not bf16 or number <= args.bf16_epochs]
            shift = (number - 1) % len(active)
            for side in active[shift:] + active[:shift]:
                side.epoch(number)
                times = side.times[-1]
                print(f"epoch {number} {side.name:6s} {times['wall']:6.2f} s wall "
                      f"{times['cpu']:6.2f} s cpu | train {times['train']:6.2f} s, valid "
                      f"{times['valid']:5.2f} s | valid loss {side.valid[-1][0]:.4f} "
                      f"acc {side.valid[-1][1]:.4f}", flush=True)
        for side in sides:
            if isinstance(side, SolverSide):
                side.close()

        probe = None
        if not args.no_probe:
            probe = probe_bf16(arrays, data.batch_size, optim.lr, args.probe_steps,
                               args.probe_rounds)

    train_steps = len(bare.train) // data.batch_size
    print()
    print(f"workload: digits fold {data.fold}, {len(bare.train)} train / "
          f"{len(bare.valid_loader.dataset)} valid examples, batch {data.batch_size}: "
          f"{train_steps} train steps + {len(bare.valid_loader)} valid batches per epoch; "
          f"AudioCNN {sum(p.numel() for p in bare.model.parameters()):,} parameters; "
          f"torch threads {args.threads}; {args.epochs} rounds (bf16: {args.bf16_epochs})")
    same_init = same_weights(bare.initial, solver.initial)
    identical = same_weights(bare.weights(), solver.weights())
    same_valid = bare.valid == solver.valid
    print(f"initial weights bit-identical: {same_init}; final weights bit-identical (bare vs "
          f"solver, {args.epochs} epochs): {identical}; valid loss/accuracy equal every epoch: "
          f"{same_valid}")
    print(f"bare step: {1000 * median(bare, 'train') / train_steps:.0f} ms (median epoch)")
    print("ratio = a / b; 'paired' = median over rounds of the per-round ratio")
    rows: list[tuple[str, str, Part]] = [
        ("epoch (solver incl. commit)", "wall", None),
        ("epoch (solver incl. commit)", "cpu", None),
        ("train + valid only", "wall", lambda t: t["train"] + t["valid"]),
        ("train only", "wall", lambda t: t["train"]),
        ("valid only", "wall", lambda t: t["valid"])]

    def report(a: Side, b: Side) -> None:
        rounds = min(len(a.times), len(b.times))  # medians over the same rounds on both sides
        for label, key, part in rows:
            ma, mb = (statistics.median(measure(t, key, part) for t in side.times[:rounds])
                      for side in (a, b))
            ratio, count = paired(a, b, key, part)
            print(f"  {label:28s} {key:4s}: {b.name} {mb:6.2f} s  {a.name} {ma:6.2f} s  "
                  f"ratio {ma / mb:.3f}x  paired {ratio:.3f}x (n={count})")

    print(f"solver / bare ({args.epochs} rounds):")
    report(solver, bare)
    commit = statistics.median(t["wall"] - t["train"] - t["valid"] for t in solver.times)
    print(f"  solver commit + bookkeeping outside train/valid: {1000 * commit:.0f} ms per epoch")
    epoch_ratio = paired(solver, bare)[0]
    print(f"goal <= 1.05x (epoch, wall, paired): {epoch_ratio:.3f}x, "
          f"{'met' if epoch_ratio <= 1.05 else 'NOT met'}")
    if bf16 is not None:
        print(f"bf16-mixed / fp32 solver ({args.bf16_epochs} rounds; speed-up = 1 / ratio):")
        report(bf16, solver)
    print(bf16_support())
    if probe is not None:
        base = statistics.median(probe["fp32"])
        print(f"bf16 probe: training step on one batch of {data.batch_size}, "
              f"{args.probe_rounds} rounds x {args.probe_steps} steps, medians:")
        for variant, values in probe.items():
            print(f"  {variant:26s} {1000 * statistics.median(values):7.0f} ms  "
                  f"{statistics.median(values) / base:.2f}x fp32")
    print(f"total wall time: {time.perf_counter() - started:.0f} s")
    return 0 if identical and same_init else 1


if __name__ == "__main__":
    sys.exit(main())
