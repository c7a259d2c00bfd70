"""Tiny autoencoder configs for the autoencoder model tests (milliseconds per step on a CPU),
and the fixture those tests run under (imported by them, so no other test is affected)."""
from __future__ import annotations

from typing import Any

import pytest
import torch

ENCODER_TYPES = ["oobleck", "seanet", "stft"]
BOTTLENECK_TYPES = ["vae", "tanh", "rvq", "fsq", "none"]


def network(kind: str, decoder: bool = False, **overrides: Any) -> dict[str, Any]:
    """A tiny encoder (or decoder) section of `kind` with hop 16; kind `stft` is the STFT
    encoder and, as a decoder, the iSTFT one."""
    if kind == "stft":
        section = {"type": "istft" if decoder else "stft", "n_fft": 64, "hop_length": 16,
                   "channels": 8, "depth": 2}
    elif kind == "oobleck":
        section = {"type": "oobleck", "channels": 4, "c_mults": [1, 2], "strides": [4, 4],
                   "use_snake": True}
    else:
        section = {"type": "seanet", "n_filters": 4, "ratios": [4, 4], "lstm": 1}
    return {**section, **overrides}


def bottleneck(kind: str) -> dict[str, Any]:
    return {"vae": {"type": "vae"},
            "tanh": {"type": "tanh", "scale": 2.0},
            "rvq": {"type": "rvq", "num_quantizers": 3, "codebook_size": 16, "kmeans_iters": 2},
            "fsq": {"type": "fsq", "levels": [5, 3], "num_codebooks": 2},
            "none": {"type": "none"}}[kind]


def model_config(encoder: str = "oobleck", bottleneck_type: str = "vae", channels: int = 1,
                 decoder: str | None = None, **bottleneck_overrides: Any) -> dict[str, Any]:
    return {"sample_rate": 16000, "channels": channels, "latent_dim": 6,
            "encoder": network(encoder), "decoder": network(decoder or encoder, decoder=True),
            "bottleneck": {**bottleneck(bottleneck_type), **bottleneck_overrides}}


@pytest.fixture(autouse=True)
def seeded_single_thread():
    """Seeded, and one thread: these models are tiny, so syncing a second thread per op costs
    more than it computes (on a busy shared CPU, 10x more: 53 s against 4 s for this suite)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
