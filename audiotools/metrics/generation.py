"""A generation report: a model's figures beside those of held-out real audio and of noise.

A Fréchet distance alone says little (its scale depends on the embedder and on the number of
embeddings); placed between held-out real audio (what a perfect model would score with that
many clips) and noise (what a model that learnt nothing would score), it reads as a position.
The same holds for conditional accuracy: held-out real audio gives the classifier's own
ceiling, noise its chance level. A model that generates in a codec's latents or tokens can do
no better than that codec's reconstructions, so the held-out clips encoded and decoded by it
("via codec") give the ceiling of any model over that codec.

Noise clips have the generated clips' count and shapes (so their FD has the model's sample
size) and the reference's loudness (RMS over all its samples), so a noise figure measures
content, not level. White and pink (-3 dB per octave) noise are drawn from `seed` and
`seed + 1`: the report is deterministic given its inputs and seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .conditional import as_classifier, conditional_accuracy
from .embeddings import AudioEmbedder, Clips, get_embedder
from .frechet import frechet_distance_from_stats, gaussian_stats

NOISE_KINDS = ("white", "pink")


def _pink(white: torch.Tensor) -> torch.Tensor:
    """White noise shaped to a 1/f power spectrum (no DC), along the last axis."""
    spectrum = torch.fft.rfft(white)
    bins = torch.arange(spectrum.shape[-1], dtype=white.dtype)
    gain = torch.where(bins > 0, bins.clamp_min(1).rsqrt(), torch.zeros(()))
    return torch.fft.irfft(spectrum * gain, n=white.shape[-1])


def rms(clips: Clips) -> float:
    """Root mean square over every sample of every clip."""
    energy = sum(float(clip.double().pow(2).sum()) for clip in clips)
    return (energy / sum(clip.numel() for clip in clips)) ** 0.5


def noise_like(clips: Clips, level: float, kind: str, seed: int) -> list[torch.Tensor]:
    """One noise clip per clip, of its shape, each at RMS `level`."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind {kind!r}; use one of {list(NOISE_KINDS)}.")
    generator = torch.Generator().manual_seed(seed)
    noises = []
    for clip in clips:
        noise = torch.randn(tuple(clip.shape), generator=generator)
        noise = _pink(noise) if kind == "pink" else noise
        noises.append(noise * level / noise.pow(2).mean().sqrt().clamp_min(1e-12))
    return noises


def generation_report(generated: Clips, reference: Clips, heldout: Clips,
                      embedder: AudioEmbedder | str, sample_rate: int,
                      classifier: Any = None, labels: Sequence[str] | None = None,
                      heldout_labels: Sequence[str] | None = None,
                      seed: int = 0, via_codec: Clips | None = None) -> dict[str, Any]:
    """FD to `reference` (and conditional accuracy, with a classifier) of the generated clips,
    held-out real clips and noise, all at `sample_rate`.

    `labels` are what the generated clips were conditioned on (the noise is scored against
    them too: chance level); `heldout_labels` the held-out clips' true labels (without them
    that row has no accuracy); `via_codec` the held-out clips after the model's codec (a row
    of their own, scored against `heldout_labels`). `classifier` is a `ClassifierPipeline` or
    its source."""
    if isinstance(embedder, str):
        embedder = get_embedder(embedder)
    if classifier is not None and labels is None:
        raise ValueError("generation_report: a classifier needs the labels the generated "
                         "clips were conditioned on (labels=...).")
    classifier = as_classifier(classifier)
    reference_stats = gaussian_stats(embedder.embed_clips(reference, sample_rate), "reference")
    level = rms(reference)
    sets = {"model": (generated, labels), "held-out real": (heldout, heldout_labels)}
    if via_codec is not None:
        if len(via_codec) != len(heldout):
            raise ValueError(f"generation_report: via_codec holds {len(via_codec)} clips, the "
                             f"held-out set {len(heldout)}: give each held-out clip's "
                             "reconstruction.")
        sets["via codec"] = (via_codec, heldout_labels)
    for offset, kind in enumerate(NOISE_KINDS):
        sets[f"{kind} noise"] = (noise_like(generated, level, kind, seed + offset), labels)
    rows: dict[str, dict[str, Any]] = {}
    for name, (clips, clip_labels) in sets.items():
        stats = gaussian_stats(embedder.embed_clips(clips, sample_rate), name)
        row: dict[str, Any] = {"fd": frechet_distance_from_stats(stats, reference_stats),
                               "clips": len(clips), "embeddings": stats.count}
        if classifier is not None:
            scored = (None if clip_labels is None else
                      conditional_accuracy(classifier, clips, clip_labels, sample_rate))
            row["accuracy"] = None if scored is None else scored.accuracy
            row["per_label"] = None if scored is None else scored.per_label
        rows[name] = row
    return {"embedder": embedder.name, "seed": seed,
            "reference": {"clips": len(reference), "embeddings": reference_stats.count},
            "rows": rows}


def format_report(report: dict[str, Any]) -> str:
    """The report as a small text table, the model first, then its references."""
    rows = report["rows"]
    with_accuracy = any("accuracy" in row for row in rows.values())
    reference = report["reference"]
    lines = [f"FD to the reference ({reference['clips']} clips, {reference['embeddings']} "
             f"embeddings) with {report['embedder']}, seed {report['seed']}; lower is closer",
             f"{'set':<14}{'clips':>7}{'embeddings':>12}{'FD':>12}"
             + (f"{'accuracy':>10}" if with_accuracy else "")]
    for name, row in rows.items():
        line = f"{name:<14}{row['clips']:>7}{row['embeddings']:>12}{row['fd']:>12.2f}"
        if with_accuracy:
            accuracy = row.get("accuracy")
            line += f"{'-' if accuracy is None else f'{accuracy:.3f}':>10}"
        lines.append(line)
    return "\n".join(lines)


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report as a solver's evaluate metrics (history.json, loggers): `fd` of the model
    and `fd_<row>` of its references (held-out real, noises), `accuracy[_<row>]` likewise
    when a classifier scored them."""
    metrics: dict[str, float] = {}
    for name, row in report["rows"].items():
        suffix = "" if name == "model" else "_" + name.replace("-", "").replace(" ", "_")
        metrics[f"fd{suffix}"] = row["fd"]
        if row.get("accuracy") is not None:
            metrics[f"accuracy{suffix}"] = row["accuracy"]
    return metrics
