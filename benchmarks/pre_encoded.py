"""An epoch of a latent model on pre-encoded latents vs encoding the audio on the fly.

The codec is the earlier autoencoder/base architecture (config/model/autoencoder/base.yaml; its
weights do not change the cost, so it is freshly initialised); the latent model a small 1-D
conv net over its latents (74 k parameters: a debug-sized stand-in for a diffusion or token
model's step, the same on both sides; a bigger model shrinks the ratio, since only the data
path differs). Both sides train on the same segments of the shipped music (the train manifest,
4 s segments, batch 8, the same number of items) with the same optimizer. The on-the-fly side
reads audio and runs the codec's encoder every batch; the other reads what `pre_encode` wrote
once (its one-off cost is reported beside). Goal: the pre-encoded epoch takes >= 10x fewer
seconds.

    python benchmarks/pre_encoded.py            # alone on the machine
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from audiotools.data.manifest import read_manifest
from audiotools.data.pre_encoded import PreEncodedDataset, pre_encode
from audiotools.data.segments import SegmentDataset, collate_segments
from audiotools.environment import CONFIG_DIR, resolve_path
from audiotools.families import FAMILIES
from audiotools.models.codec import FrozenCodec

SEGMENT = 4.0


def latent_model(dim: int) -> nn.Module:
    return nn.Sequential(nn.Conv1d(dim, 128, 3, padding=1), nn.GELU(),
                         nn.Conv1d(128, 128, 3, padding=1), nn.GELU(),
                         nn.Conv1d(128, dim, 3, padding=1))


def epoch(batches: Iterable[torch.Tensor], model: nn.Module,
          optimizer: torch.optim.Optimizer) -> float:
    """Seconds for one pass: denoise latents (the model's step), whatever the source."""
    start = time.perf_counter()
    for latents in batches:
        noisy = latents + torch.randn_like(latents)
        loss = (model(noisy) - latents).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def loader(dataset: torch.utils.data.Dataset, batch: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=batch, collate_fn=collate_segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    section = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/autoencoder/base.yaml"))
    codec = FrozenCodec(FAMILIES["autoencoder"].new_model(section, "base"), "autoencoder/base")
    entries = read_manifest(resolve_path("//datasets/music_small/train.jsonl"))
    audio = SegmentDataset(entries, codec.sample_rate, codec.channels, SEGMENT, seed=1,
                           num_samples=args.items)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        pre_encode(codec, {"train": entries}, Path(folder))
        encode_once = time.perf_counter() - start
        latents = PreEncodedDataset(folder, "train", SEGMENT, seed=1, num_samples=args.items)
        model = latent_model(codec.latent_dim)
        optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
        fly, stored = [], []
        for _ in range(args.rounds):  # paired rounds: machine noise hits both sides alike
            fly.append(epoch((codec.encode(b["audio"]) for b in loader(audio, args.batch)),
                             model, optimizer))
            stored.append(epoch((codec.normalise(b["latents"])
                                 for b in loader(latents, args.batch)), model, optimizer))
    on_the_fly, pre_encoded = statistics.median(fly), statistics.median(stored)
    print(f"codec: autoencoder/base architecture, {codec.latent_dim} x "
          f"{codec.frame_rate:g} Hz latents; {args.items} items of {SEGMENT:g} s, batch "
          f"{args.batch}, {torch.get_num_threads()} threads, {args.rounds} paired rounds")
    print(f"epoch encoding on the fly: {on_the_fly:.2f} s (rounds "
          f"{', '.join(f'{s:.2f}' for s in fly)})")
    print(f"epoch on pre-encoded data: {pre_encoded:.3f} s (rounds "
          f"{', '.join(f'{s:.3f}' for s in stored)})")
    print(f"ratio: {on_the_fly / pre_encoded:.1f}x fewer seconds per epoch pre-encoded "
          f"(goal >= 10x); pre-encoding the {len(entries)} train files once: "
          f"{encode_once:.1f} s")


if __name__ == "__main__":
    main()
