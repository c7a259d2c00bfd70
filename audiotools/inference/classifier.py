"""An exported AudioCNN with what it needs to classify a file: class names and feature settings."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import export
from ..data.audio_folder import MelSettings, file_features
from ..errors import CheckpointError
from ..models.cnn import AudioCNN


@dataclass
class ExportedClassifier:
    model: AudioCNN
    class_names: list[str]
    mel: MelSettings

    @classmethod
    def load(cls, path: Path) -> ExportedClassifier:
        weights, metadata = export.read(path)
        info = metadata["info"]
        if "class_names" not in info or "model_kwargs" not in info:
            raise CheckpointError(f"{path} is not an exported classifier (no class names or "
                                  "model arguments in its metadata).")
        if "mel" not in info:
            raise CheckpointError(
                f"{path} was trained on precomputed features: it has no feature settings to "
                "turn audio files into features. Classify feature arrays with the model "
                "instead, or train with dataset.source=audio_folder.")
        model = AudioCNN(**info["model_kwargs"])
        model.load_state_dict(weights["model"])
        model.eval()
        return cls(model, list(info["class_names"]), MelSettings(**info["mel"]))

    @torch.no_grad()
    def predict_file(self, path: Path) -> list[tuple[str, float]]:
        """(class name, probability) pairs, most likely first."""
        features = torch.from_numpy(file_features(path, self.mel))
        probabilities = self.model(features[None]).softmax(dim=1)[0]
        order = probabilities.argsort(descending=True)
        return [(self.class_names[int(i)], float(probabilities[i])) for i in order]
