"""The classifier family's pipeline: class probabilities of a clip or a file, computed from
the same log-mel features the model was trained on (their settings travel in the export)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.audio_folder import MelSettings, audio_features, file_features
from ..errors import CheckpointError
from ..io.export import Export
from .inputs import checked_clip

Ranking = list[tuple[str, float]]


@dataclass
class ClassifierPipeline:
    model: torch.nn.Module
    export: Export
    class_names: list[str]
    mel: MelSettings

    @classmethod
    def from_model(cls, model: torch.nn.Module, export: Export) -> ClassifierPipeline:
        info = export.info
        if "class_names" not in info:
            raise CheckpointError(f"{export.label} is not an exported classifier (no class "
                                  "names in its metadata).")
        if "mel" not in info:
            raise CheckpointError(
                f"{export.label} was trained on precomputed features: it has no feature "
                "settings to turn audio into features. Classify feature arrays with the model "
                "instead, or train with dataset.source=audio_folder.")
        return cls(model, export, list(info["class_names"]), MelSettings(**info["mel"]))

    @torch.no_grad()
    def _rank(self, features: torch.Tensor) -> Ranking:
        device = next(self.model.parameters()).device
        probabilities = self.model(features[None].to(device)).softmax(dim=1)[0].cpu()
        order = probabilities.argsort(descending=True)
        return [(self.class_names[int(i)], float(probabilities[i])) for i in order]

    def classify(self, audio: torch.Tensor, sample_rate: int) -> Ranking:
        """(class name, probability) pairs, most likely first, for a clip (channels, samples)
        at `sample_rate`."""
        audio, sample_rate = checked_clip(audio, sample_rate)
        return self._rank(torch.from_numpy(audio_features(audio, sample_rate, self.mel)))

    def classify_file(self, path: str | Path) -> Ranking:
        return self._rank(torch.from_numpy(file_features(path, self.mel)))
