"""What the LM benchmarks (lm_training.py, lm_decoding.py) share: the benchmark LM built by
audiotools and by AudioCraft, running AudioCraft's side in its own venv, the machine line and
the matmul peak.

The LM is issue 16's: 4 x 2048 codebooks in MusicGen's delay pattern (0, 1, 2, 3), width 512,
8 layers of 8 heads, feed-forward 2048, no biases, sinusoidal positions, unconditional.
AudioCraft's is built by its `builders.get_lm_model` from MusicGen's LM keys (those of
scripts/audiocraft_lm_param_count.py, with memory_efficient attention: torch's SDPA), ours by
`build_lm`; the two have the same parameters. AudioCraft runs in the reference venv
(reference/audiocraft, see scripts/audiocraft_lm_param_count.py) in a worker process the
benchmark starts and keeps, with the same thread count (`AudioCraftWorker`). With more than
one thread, run with OMP_WAIT_POLICY=PASSIVE (both processes inherit it): the idle process's
spinning OpenMP threads otherwise slow the busy one.
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
REFERENCE_PYTHON = REPO / "reference" / "audiocraft" / "bin" / "python"
CODEBOOKS, CARDINALITY, DIM, HEADS, LAYERS = 4, 2048, 512, 8, 8


def our_lm() -> torch.nn.Module:
    from audiotools.models.lm import build_lm
    return build_lm({"num_codebooks": CODEBOOKS, "cardinality": CARDINALITY, "dim": DIM,
                     "num_heads": HEADS, "num_layers": LAYERS, "ffn_dim": 4 * DIM,
                     "pattern": {"type": "delay", "delays": list(range(CODEBOOKS))}})


def audiocraft_lm() -> torch.nn.Module:
    """AudioCraft's own LMModel of the same config (only under the reference interpreter)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from audiocraft_lm_param_count import _stub_unused_imports, musicgen_small_config
    _stub_unused_imports()
    from audiocraft.models import builders
    config = musicgen_small_config()
    config.transformer_lm.update(dim=DIM, num_heads=HEADS, num_layers=LAYERS, card=CARDINALITY,
                                 n_q=CODEBOOKS)
    config.conditioners = {}
    config.fuser.cross = []
    return builders.get_lm_model(config)


class AudioCraftWorker:
    """AudioCraft's side, alive for the whole run: `script --audiocraft-side ARGUMENTS` under
    AudioCraft's interpreter builds its model once, then answers each request line (a JSON
    object) with one JSON line of figures. The parent alternates its own measurements with
    requests, so that each pair is measured back to back on a machine whose speed drifts."""

    def __init__(self, script: str, arguments: list[str], threads: int):
        if not REFERENCE_PYTHON.exists():
            raise SystemExit(f"{REFERENCE_PYTHON} not found: install AudioCraft beside the "
                             "project as scripts/audiocraft_lm_param_count.py describes.")
        self.process = subprocess.Popen(
            [str(REFERENCE_PYTHON), script, "--audiocraft-side", "--threads", str(threads),
             *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
        self.ready = self._answer()

    def _answer(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"AudioCraft's side exited with {self.process.wait()}")
        return json.loads(line)

    def request(self, **fields: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def serve(handle: Any, ready: dict[str, Any]) -> None:
    """AudioCraft's side of `AudioCraftWorker`: `ready`, then `handle(request)` per line."""
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        print(json.dumps(handle(json.loads(line))), flush=True)


def machine_line(threads: int) -> str:
    """CPU model, whether it has avx512_bf16, torch, threads, load average."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    flags = "avx512_bf16" if "avx512_bf16" in info else "no avx512_bf16"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{name} ({os.cpu_count()} cores, {flags}), torch {torch.__version__}, "
            f"{threads} thread(s), load average {load} at start")


def matmul_peak(n: int = 1024, repeats: int = 10) -> float:
    """fp32 FLOP/s of the best of `repeats` square matmuls (what the machine reaches)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best
