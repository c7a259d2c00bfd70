"""Start-up a person waits for: `audiotools --help`, each command's `--help`, and `dora run` of
an XP that is already finished.

Each command runs `--rounds` times in a fresh process (wall time, median and best). Baselines
measured in the same run: the interpreter alone, `import torch`, and `import dora` (what any
`dora run` pays before audiotools runs at all); with `--before REV`, the same commands on a
temporary git worktree of REV (so an improvement is a ratio measured on one machine, in one
run). Run it alone on the machine: other processes inflate every figure.

    python benchmarks/startup.py --before a227d4f
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revisions import REPO, worktree

BIN = Path(sys.executable).parent
RECIPE = "solver=classifier/debug"


def wall(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{result.stderr[-2000:]}")
    return elapsed


def timings(command: list[str], cwd: Path, env: dict[str, str], rounds: int) -> list[float]:
    wall(command, cwd, env)  # warm the file cache
    return [wall(command, cwd, env) for _ in range(rounds)]


def commands() -> list[tuple[str, list[str]]]:
    sys.path.insert(0, str(REPO))
    from audiotools.cli import COMMANDS
    rows = [("audiotools --help", [str(BIN / "audiotools"), "--help"])]
    import importlib
    for module_name in COMMANDS:
        name = importlib.import_module(f"audiotools.commands.{module_name}").NAME
        rows.append((f"audiotools {name} --help", [str(BIN / "audiotools"), name, "--help"]))
    rows.append(("dora run (finished XP)", [str(BIN / "dora"), "run", RECIPE]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="git revision to compare with (a temporary worktree)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="audiotools-startup-"))
    env = {**os.environ, "AUDIOTOOLS_DORA_DIR": str(scratch / "dora"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    trees = {"now": REPO}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        if args.before:
            trees["before"] = stack.enter_context(worktree(args.before, scratch / "before"))
        print(f"Training {RECIPE} once so that `dora run` finds it finished...", flush=True)
        subprocess.run([str(BIN / "dora"), "run", RECIPE], cwd=REPO, env=env, check=True,
                       capture_output=True)
        python = sys.executable
        floors = {name: statistics.median(timings([python, "-c", code], REPO, env, args.rounds))
                  for name, code in (("python", "pass"), ("import torch", "import torch"),
                                     ("import dora", "import dora"))}
        for name, seconds in floors.items():
            print(f"baseline {name:<14} {seconds:6.2f} s")
        header = f"{'command':<32} {'now s':>7} {'best':>6}"
        if "before" in trees:
            header += f" {'before s':>9} {'now/before':>11}"
        print(header + f" {'now/import dora':>16}")
        for label, command in commands():
            row = {}
            for tree_name, tree in trees.items():
                tree_env = {**env, "PYTHONPATH": str(tree)}
                row[tree_name] = timings(command, tree, tree_env, args.rounds)
            now = statistics.median(row["now"])
            line = f"{label:<32} {now:7.2f} {min(row['now']):6.2f}"
            if "before" in row:
                before = statistics.median(row["before"])
                line += f" {before:9.2f} {now / before:10.2f}x"
            print(line + f" {now / floors['import dora']:15.2f}x", flush=True)


if __name__ == "__main__":
    main()
