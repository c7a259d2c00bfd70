"""What the benchmarks against a peer framework share: the peer's side in its own venv as a
worker process, the machine line and the matmul peak.

A peer (AudioCraft, stable-audio-tools) is never a dependency of the project: it lives in a
reference venv beside it (reference/NAME). The benchmark script starts itself under that
venv's interpreter with a side flag (`PeerWorker`), and that process builds the peer's model
once and answers each request line with one line of figures (`serve`), so that the parent
can alternate its own measurements with the peer's and pair them back to back on a machine
whose speed drifts. With more than one thread, run with OMP_WAIT_POLICY=PASSIVE (both
processes inherit it): the idle process's spinning OpenMP threads otherwise slow the busy one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent


class PeerWorker:
    """The peer's side, alive for the whole run: `script SIDE_FLAG --threads N ARGUMENTS`
    under `python` (a reference venv's interpreter) prints one JSON line when its model is
    built (`ready`), then answers each request (a JSON object) with one JSON line."""

    def __init__(self, python: Path, script: str, side_flag: str, arguments: list[str],
                 threads: int, missing: str):
        if not Path(python).exists():
            raise SystemExit(f"{python} not found: {missing}")
        self.name = side_flag.strip("-").removesuffix("-side")
        self.process = subprocess.Popen(
            [str(python), script, side_flag, "--threads", str(threads), *arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
        self.ready = self._answer()

    def _answer(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} side exited with {self.process.wait()}")
        return json.loads(line)

    def request(self, **fields: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def serve(handle: Any, ready: dict[str, Any]) -> None:
    """The peer's side of `PeerWorker`: `ready`, then `handle(request)` per line, on the
    process's real stdout; from here on, anything the peer prints goes to stderr (build the
    model under `contextlib.redirect_stdout(sys.stderr)` for the same before)."""
    out = sys.__stdout__
    sys.stdout = sys.stderr
    print(json.dumps(ready), file=out, flush=True)
    for line in sys.stdin:
        print(json.dumps(handle(json.loads(line))), file=out, flush=True)


def machine_line(threads: int) -> str:
    """CPU model, its bf16 hardware (AVX-512 BF16, AMX tiles: their bf16 matmul peaks differ
    about threefold), torch, threads, load average."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    bf16 = [flag for flag in ("avx512_bf16", "amx_bf16") if f" {flag}" in info]
    flags = (", ".join(bf16) if bf16 else
             "AVX2, no avx512_bf16" if " avx2" in info else "no AVX2")
    return (f"{name} ({os.cpu_count()} cores, {flags}), torch {torch.__version__}, "
            f"{threads} thread(s), load average {load_average()} at start")


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def matmul_peak(n: int = 1024, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of the best of `repeats` square `dtype` matmuls (what the machine reaches)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best
