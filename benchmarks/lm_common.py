"""What the LM benchmarks (lm_training.py, lm_decoding.py) share: the benchmark LM built by
audiotools and by AudioCraft, running AudioCraft's side in its own venv, the machine line and
the matmul peak.

The LM is issue 16's: 4 x 2048 codebooks in MusicGen's delay pattern (0, 1, 2, 3), width 512,
8 layers of 8 heads, feed-forward 2048, no biases, sinusoidal positions, unconditional.
AudioCraft's is built by its `builders.get_lm_model` from MusicGen's LM keys (those of
scripts/audiocraft_lm_param_count.py, with memory_efficient attention: torch's SDPA), ours by
`build_lm`; the two have the same parameters. AudioCraft runs in the reference venv
(reference/audiocraft, see scripts/audiocraft_lm_param_count.py) in a worker process the
benchmark starts and keeps, with the same thread count (`AudioCraftWorker`, a
peer.PeerWorker). With more than one thread, run with OMP_WAIT_POLICY=PASSIVE (both processes
inherit it): the idle process's spinning OpenMP threads otherwise slow the busy one.
"""
from __future__ import annotations

import sys

import torch
from peer import REPO, PeerWorker, machine_line, matmul_peak, serve

__all__ = ["AudioCraftWorker", "audiocraft_lm", "machine_line", "matmul_peak", "our_lm", "serve"]

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


class AudioCraftWorker(PeerWorker):
    """AudioCraft's side (peer.PeerWorker), alive for the whole run: `script --audiocraft-side
    ARGUMENTS` under AudioCraft's interpreter builds its model once, then answers each request
    line (a JSON object) with one JSON line of figures."""

    def __init__(self, script: str, arguments: list[str], threads: int):
        super().__init__(REFERENCE_PYTHON, script, "--audiocraft-side", arguments, threads,
                         "install AudioCraft beside the project as "
                         "scripts/audiocraft_lm_param_count.py describes.")
