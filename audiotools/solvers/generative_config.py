"""Schema of what the generative families (diffusion, the LM) share: the frozen codec, the
conditioners, the data, and the generate and evaluate stages. Kept apart from the solver so a
config is checked without importing the training stack; a family's schema extends
`GenerativeSolverConfig` with its model and its own keys."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from ..conditioning import ConditionersConfig
from ..config import EveryConfig, Section, SolverConfig
from ..data.builders import SPLITS, AudioDataConfig
from ..io.codecs import CodecConfig
from ..sampling.limits import MAX_CFG_SCALE

CfgScale = Annotated[float, Field(ge=0.0, le=MAX_CFG_SCALE)]


class ConditioningConfig(Section):
    """How the conditioners feed the model."""

    # Width of every condition (cross-attention tokens, global vectors, ...): the model's
    # conditioning inputs must fit it.
    dim: PositiveInt = 768
    # Probability that a training item gets every condition nulled at once, the
    # unconditional case classifier-free guidance needs (each conditioner's own `dropout`
    # comes on top).
    joint_dropout: float = Field(0.1, ge=0.0, le=1.0)


class GenerateConfig(EveryConfig):
    """Samples written under <xp>/samples/<epoch>/ (audio, spectrogram PNG, conditions.json)."""

    format: Literal["wav", "flac", "ogg"] = "wav"
    # Condition sets, {conditioner: value} each (a conditioner left out takes its default;
    # null: its null condition); one sample per set and CFG scale. Empty: the conditions of
    # the generate split's first `num_samples` items (their metadata), or, without a generate
    # split, `num_samples` samples with null conditions.
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    num_samples: PositiveInt = 4
    # Seconds per sample; null: the generate split's segment_duration.
    duration: PositiveFloat | None = None
    # Classifier-free guidance scales (1: none); every set is sampled at each.
    cfg_scale: list[CfgScale] = Field(default_factory=lambda: [1.0], min_length=1)
    # The longest audio (a prompt included) inference generates, in seconds: a transformer's
    # time and memory grow with the square of the length, so a mistyped duration is refused
    # rather than run for hours. null: 300 s, or what this XP generates and evaluates when
    # longer. The exports' default; `--max-duration` raises it.
    max_duration: PositiveFloat | None = None
    # Seed of the noise of each batch of samples: the same seed gives the same samples.
    seed: int = Field(0, ge=0)

    @field_validator("cfg_scale")
    @classmethod
    def _distinct_names(cls, scales: list[float]) -> list[float]:
        """Each scale names its files (`NNN_cfg{scale:g}`): two that print alike would write
        over each other's samples."""
        names = [f"{scale:g}" for scale in scales]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"scale {', '.join(repeated)} appears twice as the sample files "
                             "name it (NNN_cfg<scale>); give each scale once")
        return scales


class EvaluateConfig(EveryConfig):
    """Generation metrics: the model conditioned on the evaluate split's items, against that
    split's real audio, beside the valid split's real audio and white and pink noise."""

    # mel-stats (offline, no weights) | vggish | vggish:PATH (docs/metrics.md).
    embedder: str = "mel-stats"
    # A classifier that judges conditional accuracy (an export, SIG, //sig/SIG,
    # //recipe/classifier/NAME); null: FD only.
    judge: str | None = None
    # The metadata key of the items whose value the judge should hear (e.g. ensemble).
    label: str | None = None
    cfg_scale: CfgScale = 1.0
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _judge_has_a_label(self) -> EvaluateConfig:
        if (self.judge is None) != (self.label is None):
            raise ValueError("evaluate.judge and evaluate.label go together: the judge "
                             "classifies each clip, the label names the metadata key it should "
                             "recognise")
        return self


class GenerativeSolverConfig(SolverConfig):
    """The shared keys; a family's schema adds its `model:` section and its own keys."""

    # The frozen codec (latents or tokens); null: the model works on the audio itself.
    codec: CodecConfig | None = None
    # {name: {type: text | number | int | options | audio, ...}} (docs/conditioning.md).
    conditioners: ConditionersConfig = Field(default_factory=dict)
    conditioning: ConditioningConfig = ConditioningConfig()
    # Clips of the training split whose latents give their per-channel statistics when
    # codec.normalize is set and the data is audio (pre-encoded data records its own).
    stats_clips: PositiveInt = 64
    dataset: AudioDataConfig
    generate: GenerateConfig = GenerateConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @model_validator(mode="after")
    def _generative_keys_fit(self) -> GenerativeSolverConfig:
        names = set(self.conditioners)
        for index, values in enumerate(self.generate.conditions):
            unknown = sorted(set(values) - names)
            if unknown:
                raise ValueError(f"generate.conditions[{index}] name {unknown}, which are not "
                                 f"conditioners (conditioners: {sorted(names) or 'none'})")
        guided = [scale for scale in self.generate.cfg_scale if scale != 1.0]
        if not names and (guided or self.evaluate.cfg_scale != 1.0):
            raise ValueError("generate.cfg_scale / evaluate.cfg_scale other than 1: guidance "
                             "needs conditioners, and this model has none")
        data = self.dataset
        if not data.return_info:
            raise ValueError("dataset.return_info=false: a generative model reads each item's "
                             "info (metadata, seconds_start, seconds_total); set it to true")
        for split in SPLITS:
            own = getattr(data, split)
            if own is None:
                continue
            source = own.source or data.source
            if source == "pre_encoded" and self.codec is None:
                raise ValueError(f"dataset.source=pre_encoded (split {split}) needs the codec "
                                 "that wrote it: set codec.source")
            for key in ("sample_rate", "channels"):
                if source != "pre_encoded" and self.codec is None and (
                        getattr(own, key) or getattr(data, key)) is None:
                    raise ValueError(f"dataset.{key} (split {split}) must be set: without a "
                                     "codec the model works on the audio at that format")
        if self.evaluate.every and (data.evaluate is None or data.valid is None):
            raise ValueError(f"evaluate.every={self.evaluate.every} compares generations with "
                             "dataset.evaluate's real audio beside dataset.valid's: define both "
                             "splits, or set evaluate.every=0")
        return self
