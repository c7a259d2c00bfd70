"""Tiny generative solvers that use the building blocks the diffusion and LM families will:
a frozen codec (`register_frozen`), conditioners from item metadata (with CFG dropout), and
pre-encoded data that must come from the same codec.

`latents`: a conv net denoises the codec's latents (noise level drawn per item), conditioned
by the sum of its conditions' pooled embeddings. `tokens`: a causal conv net predicts each
frame's codes from the previous frames (per-codebook embeddings summed, per-codebook heads).
Both are the smallest honest callers of the blocks, not models worth listening to.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from audiotools.conditioning import ConditionerSet, Conditions
from audiotools.config import Section, SolverConfig
from audiotools.data.audio import audio_read
from audiotools.data.builders import AudioDataConfig, build_audio_datasets
from audiotools.data.pre_encoded import EncodedData
from audiotools.data.segments import collate_segments
from audiotools.io.codecs import CodecConfig, codec_from_config
from audiotools.metrics.embeddings import MelStatsEmbedder
from audiotools.metrics.generation import generation_report, report_metrics
from audiotools.models.codec import LatentStats
from audiotools.solvers import StandardSolver


class GenerativeToyModel(Section):
    kind: Literal["latents", "tokens"] = "latents"
    hidden: int = 32


class GenerativeToyConfig(SolverConfig):
    model: GenerativeToyModel = GenerativeToyModel()
    codec: CodecConfig
    conditioners: dict[str, Any] = {}
    dataset: AudioDataConfig


def pooled(conditions: Conditions) -> torch.Tensor:
    """(B, dim): each condition's masked mean over its positions, summed."""
    total = 0
    for condition in conditions.values():
        weights = condition.mask.unsqueeze(-1).to(condition.embeddings)
        total = total + (condition.embeddings * weights).sum(1) / weights.sum(1).clamp_min(1)
    return total


class Denoiser(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.inp = nn.Conv1d(dim + 1, hidden, 3, padding=1)
        self.out = nn.Conv1d(hidden, dim, 3, padding=1)

    def forward(self, noisy: torch.Tensor, level: torch.Tensor, bias: torch.Tensor):
        levels = level.view(-1, 1, 1).expand(-1, 1, noisy.shape[-1])
        hidden = F.gelu(self.inp(torch.cat([noisy, levels], 1)) + bias.unsqueeze(-1))
        return self.out(hidden)


class TokenPredictor(nn.Module):
    def __init__(self, codebooks: int, cardinality: int, hidden: int):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(cardinality, hidden)
                                        for _ in range(codebooks))
        self.conv = nn.Conv1d(hidden, hidden, 3)
        self.heads = nn.ModuleList(nn.Linear(hidden, cardinality) for _ in range(codebooks))

    def forward(self, tokens: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, frames, cardinality) of each frame from the frames before it."""
        summed = sum(embed(tokens[:, k]) for k, embed in enumerate(self.embeddings))
        shifted = F.pad(summed.transpose(1, 2), (3, -1))  # frame t sees frames < t
        hidden = F.gelu(self.conv(shifted)).transpose(1, 2) + bias.unsqueeze(1)
        return torch.stack([head(hidden) for head in self.heads], 1)


class GenerativeToySolver(StandardSolver):
    config_schema = GenerativeToyConfig

    def build_dataloaders(self) -> None:
        for split, dataset in self.datasets.items():
            self.loaders[split] = self.make_loader(dataset, self.settings.dataset.batch_size,
                                                   shuffle=split == "train",
                                                   collate_fn=collate_segments)

    def build_model(self) -> None:
        """The data first: pre-encoded data carries the codec's statistics and identity."""
        settings = self.settings
        self.datasets = datasets = build_audio_datasets(settings.dataset, settings.seed)
        stored = next(iter(datasets.values()))
        stats = None
        if isinstance(stored, EncodedData) and stored.codec.get("stats"):
            stats = LatentStats(**stored.codec["stats"])
        discrete = settings.model.kind == "tokens"
        codec = codec_from_config(settings.codec, self.device, stats, discrete=discrete)
        for split, dataset in datasets.items():
            if isinstance(dataset, EncodedData):
                dataset.check_codec(codec, f"dataset.{split}")
        self.register_frozen("codec", codec)
        hidden = settings.model.hidden
        self.conditioners = ConditionerSet(settings.conditioners, hidden,
                                           codec=codec).to(self.device)
        if discrete:
            self.model = TokenPredictor(codec.num_codebooks, codec.cardinality,
                                        hidden).to(self.device)
        else:
            self.model = Denoiser(codec.latent_dim, hidden).to(self.device)
        self.optimizer = self.build_optimizer([*self.model.parameters(),
                                               *self.conditioners.trainable_parameters()])
        self.register_stateful("model", "conditioners", "optimizer")
        self.register_best_state("model", "conditioners")

    def run_step(self, idx: int, batch: dict[str, Any], metrics: dict[str, Any]):
        bias = pooled(self.conditioners(batch["info"]))
        mask = batch["padding_mask"].to(self.device)
        if self.settings.model.kind == "tokens":
            tokens = batch["tokens"].to(self.device)
            logits = self.model(tokens, bias)
            losses = F.cross_entropy(logits.flatten(0, 2), tokens.flatten(), reduction="none")
            weights = mask.unsqueeze(1).expand_as(tokens).flatten().float()
            return {"loss": (losses * weights).sum() / weights.sum().clamp_min(1)}
        if "audio" in batch:  # audio files: encoded on the fly
            latents = self.codec.encode(batch["audio"].to(self.device))
            mask = torch.ones(latents.shape[0], latents.shape[-1], dtype=torch.bool,
                              device=self.device)
        else:
            latents = self.codec.normalise(batch["latents"].to(self.device))
        level = torch.rand(latents.shape[0], device=self.device)
        noisy = latents + level.view(-1, 1, 1) * torch.randn_like(latents)
        error = (self.model(noisy, level, bias) - latents).pow(2).mean(1)
        return {"loss": (error * mask).sum() / mask.sum().clamp_min(1)}

    def _generated(self, info: list[dict[str, Any]]) -> torch.Tensor:
        """Audio decoded from the model's prediction for pure noise, conditioned on `info`."""
        bias = pooled(self.conditioners(info))
        frames = round(self.settings.dataset.segment_duration * self.codec.frame_rate)
        shape = (len(info), self.codec.latent_dim, frames)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(self.device)
        return self.codec.decode(self.model(noise, torch.ones(shape[0]), bias)).clamp(-1, 1)

    def _real(self, info: list[dict[str, Any]]) -> list[torch.Tensor]:
        """The real audio of the items' segments, read from their source files."""
        duration = self.settings.dataset.segment_duration
        return [audio_read(item["path"], item["seconds_start"], duration,
                           self.codec.sample_rate, self.codec.channels)[0] for item in info]

    def evaluate(self) -> dict[str, Any]:
        """Generation metrics (latents only): the model's decoded generations for the valid
        items' conditions beside the generate split's real audio and noise, against the
        valid items' real audio, on the offline embedder."""
        if self.settings.model.kind == "tokens" or "generate" not in self.loaders:
            return {}
        valid = [item for batch in self.loaders["valid"] for item in batch["info"]]
        heldout = [item for batch in self.loaders["generate"] for item in batch["info"]]
        report = generation_report([clip.cpu() for clip in self._generated(valid)],
                                   self._real(valid), self._real(heldout),
                                   MelStatsEmbedder(window_seconds=0.25), self.codec.sample_rate)
        return report_metrics(report)

    def generate(self) -> dict[str, Any]:
        """The generate split's first batch of conditions, generated and logged as audio
        (latents only): the decode path end to end."""
        loader = self.loaders.get("generate")
        if loader is None or self.settings.model.kind == "tokens":
            return {}
        loader.set_epoch(0)
        audio = self._generated(next(iter(loader))["info"])
        for number, clip in enumerate(audio.cpu()):
            self.log_audio("generate", f"{number:03d}", clip, self.codec.sample_rate)
        return {"samples": float(audio.shape[0]), "seconds": float(audio.shape[-1]
                                                                    / self.codec.sample_rate)}
