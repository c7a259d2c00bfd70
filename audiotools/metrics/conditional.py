"""Conditional accuracy: how often a classifier trained on real audio hears, in a generated
clip, the label the clip was conditioned on (top-1). A model that ignores its conditioning
scores chance; one that renders it as real recordings do scores what the classifier scores
on held-out real audio, which `generation_report` shows beside it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .embeddings import Clips


@dataclass(frozen=True)
class ConditionalAccuracy:
    """Top-1 accuracy, per-label (correct, total) counts and each clip's predicted label."""

    accuracy: float
    per_label: dict[str, tuple[int, int]]
    predictions: list[str]


def as_classifier(classifier: Any, device: str | torch.device = "cpu") -> Any:
    """A classifier pipeline, loaded when given as a source (export, SIG, //sig/SIG, ...)."""
    if isinstance(classifier, str | Path):
        from ..io.loading import load_pipeline
        return load_pipeline(classifier, device=device, family="classifier")
    return classifier


def conditional_accuracy(classifier: Any, clips: Clips, labels: Sequence[str],
                         sample_rate: int) -> ConditionalAccuracy:
    """Accuracy of `classifier` (a `ClassifierPipeline` or its source) on clips (a (B, C, T)
    batch or (C, T) clips at `sample_rate`) against the labels they were conditioned on."""
    classifier = as_classifier(classifier)
    labels = [str(label) for label in labels]
    if len(clips) != len(labels):
        raise ValueError(f"conditional accuracy needs one label per clip: {len(clips)} clips, "
                         f"{len(labels)} labels.")
    if not labels:
        raise ValueError("conditional accuracy of no clips.")
    unknown = sorted(set(labels) - set(classifier.class_names))
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of the classifier "
                         f"(its classes: {list(classifier.class_names)}).")
    predictions = [classifier.classify(clip, sample_rate)[0][0] for clip in clips]
    per_label: dict[str, tuple[int, int]] = {}
    for label, predicted in zip(labels, predictions, strict=True):
        correct, total = per_label.get(label, (0, 0))
        per_label[label] = (correct + (predicted == label), total + 1)
    correct = sum(hit for hit, _ in per_label.values())
    return ConditionalAccuracy(correct / len(labels), dict(sorted(per_label.items())),
                               predictions)
