"""Conditional accuracy through a real classifier export (its output rigged to one class, so
the expected counts are known), loaded from a path or given as a pipeline."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import audiotools
from audiotools.families import FAMILIES
from audiotools.io import export
from audiotools.metrics.conditional import conditional_accuracy
from tests.signals import noise

TINY_CNN = {"channels": [4, 8], "pools": [[2, 2], [2, 2]], "n_mels": 16, "num_classes": 3}
MEL = {"sample_rate": 16000, "n_fft": 256, "hop_length": 160, "n_mels": 16, "num_frames": 32}
CLASSES = ["guitars", "piano", "choir"]


def write_classifier(path: Path, always: str) -> Path:
    """A tiny CNN export whose logits ignore the audio and always favour class `always`."""
    weights = FAMILIES["classifier"].new_model(TINY_CNN, "test").state_dict()
    weights["head.4.weight"] = torch.zeros_like(weights["head.4.weight"])
    weights["head.4.bias"] = torch.tensor([5.0 if name == always else 0.0 for name in CLASSES])
    return export.write(path, export.Export("classifier", TINY_CNN, {"model": weights},
                                            {"class_names": CLASSES, "mel": MEL}))


def test_accuracy_and_per_label_counts(tmp_path):
    path = write_classifier(tmp_path / "cnn.safetensors", always="piano")
    clips = noise(4, 2, 8000, std=0.1)
    labels = ["piano", "choir", "piano", "guitars"]
    for classifier in (str(path), audiotools.load(path)):
        scored = conditional_accuracy(classifier, clips, labels, 16000)
        assert scored.accuracy == pytest.approx(0.5)
        assert scored.per_label == {"choir": (0, 1), "guitars": (0, 1), "piano": (2, 2)}
        assert scored.predictions == ["piano"] * 4
    as_list = conditional_accuracy(path, list(clips), labels, 22050)
    assert as_list.accuracy == pytest.approx(0.5)


def test_unknown_labels_and_count_mismatch_are_clear(tmp_path):
    classifier = audiotools.load(write_classifier(tmp_path / "cnn.safetensors", "choir"))
    clips = noise(2, 1, 8000)
    with pytest.raises(ValueError, match=r"labels \['drums', 'harp'\] are not classes of the "
                                         r"classifier \(its classes: \['guitars', 'piano', "
                                         r"'choir'\]\)"):
        conditional_accuracy(classifier, clips, ["harp", "drums"], 16000)
    with pytest.raises(ValueError, match="2 clips, 1 labels"):
        conditional_accuracy(classifier, clips, ["choir"], 16000)
