"""A tiny regression solver that proves StandardSolver end to end in a fraction of a second.

Dropout and a shuffled loader make it sensitive to every RNG and to the data order, so exact
resume is really tested; `fail_at_epoch` lets tests inject a non-finite loss.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

from audiotools.config import Section, SolverConfig
from audiotools.solvers import StandardSolver


class ToyModel(Section):
    hidden: int = 16
    dropout: float = 0.1


class ToyData(Section):
    num_samples: int = 256
    features: int = 8
    batch_size: int = 16
    num_workers: int = 0
    fail_at_epoch: int | None = None


class ToyConfig(SolverConfig):
    model: ToyModel = ToyModel()
    dataset: ToyData = ToyData()


class ToySolver(StandardSolver):
    config_schema = ToyConfig
    best_metric = "loss"
    best_mode = "min"

    def build_model(self) -> None:
        model, data = self.settings.model, self.settings.dataset
        self.model = torch.nn.Sequential(
            torch.nn.Linear(data.features, model.hidden), torch.nn.ReLU(),
            torch.nn.Dropout(model.dropout), torch.nn.Linear(model.hidden, 1)).to(self.device)
        self.optimizer = self.build_optimizer(self.model.parameters())
        self.register_stateful("model", "optimizer")
        self.register_best_state("model")
        self.register_ema("model")

    def build_dataloaders(self) -> None:
        data = self.settings.dataset
        generator = torch.Generator().manual_seed(1234)
        inputs = torch.randn(data.num_samples, data.features, generator=generator)
        weights = torch.randn(data.features, 1, generator=generator)
        targets = inputs @ weights + 0.1 * torch.randn(data.num_samples, 1, generator=generator)
        split = data.num_samples * 3 // 4
        train = TensorDataset(inputs[:split], targets[:split])
        valid = TensorDataset(inputs[split:], targets[split:])
        self.loaders["train"] = self.make_loader(train, data.batch_size, shuffle=True,
                                                 num_workers=data.num_workers)
        self.loaders["valid"] = self.make_loader(valid, data.batch_size, shuffle=False)

    def run_step(self, idx, batch, metrics):
        inputs, targets = (tensor.to(self.device) for tensor in batch)
        loss = torch.nn.functional.mse_loss(self.model(inputs).float(), targets)
        if self.is_training and self.epoch == self.settings.dataset.fail_at_epoch and idx == 2:
            loss = loss * math.nan
        return {"loss": loss}

    def evaluate(self):
        loader = self.loaders["valid"]
        errors = [torch.nn.functional.l1_loss(self.model(x), y).item() for x, y in loader]
        return {"l1": sum(errors) / len(errors)}

    def generate(self):
        time = torch.arange(1600) / 16000
        tone = 0.5 * torch.sin(2 * math.pi * 440 * time)[None]
        self.log_audio("generate", "tone", tone, 16000)
        return {}
