"""MusicGen solver: a token LM (audiotools.models.lm, AudioCraft's layout) over the tokens of a
frozen discrete codec, encoded on the fly or pre-encoded, on the generative base (codec,
conditioners with CFG and attribute dropout, data, generate and evaluate).

Training predicts every code from the codes before it in the model's interleaving pattern
(`LMModel.predict`) and minimises the cross-entropy over the real frames (the frame mask of
padded segments), averaged over the codebooks: `ce` (the loss and, on valid, the best-state
metric), `ppl` = exp(ce), and per codebook `ce_q<k>`, `ppl_q<k>`. Evaluate reports the same on
the evaluate split, then the base's generation metrics; generate writes samples from nothing
and continuations of the first `generate.prompt_fraction` of real segments. Both sample
through MusicGenPipeline with the `generate:` settings, as inference does.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from ..conditioning.values import item_name
from ..data.pre_encoded import PreEncodedDataset, load_stored
from ..errors import ConfigError
from ..inference.musicgen import MusicGenPipeline, check_codec_fits
from ..models.lm import LMModel, build_lm
from .generative import GenerativeSolver, Item
from .musicgen_config import MusicGenSolverConfig

# A pre-encoded file's header can be whole and its codes not: a rerun keeps such a file.
REENCODE = ("delete that file and re-run `audiotools pre-encode` with the same arguments, which "
            "encodes what is missing.")


class MusicGenSolver(GenerativeSolver):
    config_schema = MusicGenSolverConfig
    discrete = True
    best_metric = "ce"
    best_mode = "min"
    settings: MusicGenSolverConfig
    model: LMModel

    def build_generative_model(self) -> LMModel:
        model = build_lm(self.settings.model)
        check_codec_fits(model, self.codec, f"codec.source={self.settings.codec.source}")
        self._check_stored_tokens(model.cardinality)
        return model

    def check_settings(self) -> None:
        """Also: settings that do nothing here (a top_k of every code, a scale of rotary
        positions) are said."""
        super().check_settings()
        model, generate = self.settings.model, self.settings.generate
        if model.positional_embedding == "rope" and model.positional_scale != 1.0:
            self.say_unread([f"model.positional_scale={model.positional_scale}"],
                            "rotary positions (model.positional_embedding=rope) have no scale")
        if generate.top_k >= model.cardinality:
            self.say_unread([f"generate.top_k={generate.top_k}"], f"it keeps all of the "
                            f"model.cardinality={model.cardinality} codes: no top-k filtering")

    def _check_stored_tokens(self, cardinality: int) -> None:
        """Every file of pre-encoded splits holds codes in [0, cardinality): a corrupted one
        is named now, not at some batch of some epoch (audio is checked batch by batch)."""
        for split, dataset in self.datasets.items():
            if not isinstance(dataset, PreEncodedDataset):
                continue
            for entry in dataset.entries:
                path = dataset.root / entry["file"]
                fault = _range_fault(load_stored(path)["tokens"], cardinality)
                if fault:
                    raise ConfigError(f"dataset.{split}: {path} (of {entry['source']}) holds "
                                      f"{fault}; {REENCODE}")

    @property
    def pipeline(self) -> MusicGenPipeline:
        """Inference around the live modules (the stage's weights are swapped in)."""
        assert self.codec is not None
        generate = self.settings.generate
        defaults = {"temperature": generate.temperature, "top_k": generate.top_k,
                    "top_p": generate.top_p, "max_duration": self.max_duration}
        return MusicGenPipeline(self.model, self.conditioners, self.codec, defaults)

    # ------------------------------------------------------------------ steps
    def _check_tokens(self, codes: torch.Tensor, info: Sequence[Item]) -> None:
        """Codes the model has an embedding for, else one error naming the item."""
        if _range_fault(codes, self.model.cardinality) is None:
            return
        for item, tokens in zip(info, codes, strict=True):
            fault = _range_fault(tokens, self.model.cardinality)
            if fault:
                raise ConfigError(f"{item_name(item)}: {fault}: data of another codec, or a "
                                  f"corrupted pre-encoded file; {REENCODE}")

    def run_step(self, idx: int, batch: Any, metrics: dict[str, Any]) -> dict[str, Any]:
        codes, mask = self.data_batch(batch)
        self._check_tokens(codes, batch["info"])
        logits = self.model.predict(codes, self.conditions(batch["info"]))
        ce = F.cross_entropy(logits.float().permute(0, 3, 1, 2), codes, reduction="none")
        weights = mask[:, None, :].to(ce.dtype)
        per_codebook = (ce * weights).sum(dim=(0, 2)) / weights.sum().clamp_min(1)
        loss = per_codebook.mean()
        out: dict[str, Any] = {"loss": loss, "ce": loss}
        for k, value in enumerate(per_codebook.detach()):
            out[f"ce_q{k}"] = value
        return out

    def summarise(self, metrics: dict[str, float]) -> dict[str, float]:
        """`ppl` and `ppl_q<k>`: exp of the stage's mean cross-entropies."""
        for key in [key for key in metrics if key == "ce" or key.startswith("ce_q")]:
            metrics[key.replace("ce", "ppl", 1)] = math.exp(metrics[key])
        return metrics

    # ------------------------------------------------------------------ sampling
    def generate_audio(self, values: Sequence[Mapping[str, Any]], items: Sequence[Item] | None,
                       duration: float, seed: int, cfg_scale: float) -> torch.Tensor:
        audio, _ = self.pipeline.generate(list(values), duration, seed=seed,
                                          cfg_scale=cfg_scale)
        return audio

    def continue_audio(self, values: Sequence[Mapping[str, Any]], items: Sequence[Item],
                       duration: float, seed: int, cfg_scale: float,
                       ) -> tuple[torch.Tensor, float] | None:
        fraction = self.settings.generate.prompt_fraction
        if not fraction:
            return None
        pipeline = self.pipeline
        frames = pipeline.frames(duration)
        prompt_frames = max(1, round(frames * fraction))
        prompt_seconds = prompt_frames / self.frame_rate
        samples = round(prompt_seconds * self.sample_rate)
        clips = [F.pad(clip, (0, samples - clip.shape[-1]))[..., :samples]
                 for clip in self.real_audio(items, prompt_seconds)]
        prompt = pipeline.encode(torch.stack(clips), self.sample_rate)[..., :prompt_frames]
        tokens = pipeline.generate_tokens(list(values), frames, prompt=prompt, seed=seed,
                                          cfg_scale=cfg_scale)
        return pipeline.decode(tokens, round(duration * self.sample_rate)), prompt_seconds

    def sampling_record(self) -> dict[str, Any]:
        generate = self.settings.generate
        return {"temperature": generate.temperature, "top_k": generate.top_k,
                "top_p": generate.top_p}

    # ------------------------------------------------------------------ evaluate
    def evaluate(self) -> dict[str, Any]:
        """Cross-entropy on the evaluate split (every rank its share, averaged), then the
        base's generation report."""
        loader = self.loaders["evaluate"]
        loader.set_epoch(0)
        token_metrics = self._run_batches(loader, loader.batches())
        token_metrics.pop("loss", None)
        return {**token_metrics, **super().evaluate()}


def _range_fault(tokens: torch.Tensor, cardinality: int) -> str | None:
    """What is wrong with codes outside [0, cardinality); None when they all fit."""
    if not tokens.numel():
        return None
    low, high = int(tokens.min()), int(tokens.max())
    if 0 <= low and high < cardinality:
        return None
    return (f"tokens in [{low}, {high}], outside [0, {cardinality}) "
            f"(model.cardinality={cardinality})")
