"""What the generative families' pipelines share: the conditioners an export holds with their
trained weights, the sampling defaults of the XP's `generate:` section, and how a call's
settings and conditions are read."""
from __future__ import annotations

import inspect
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from ..conditioning import ConditionerSet
from ..errors import ConfigError
from ..io.export import Export
from ..models.codec import FrozenCodec
from ..sampling.limits import MAX_CFG_SCALE
from .conditions import checked_values, complete, describe_conditioners
from .inputs import checked_finite, checked_number


def exported_conditioners(export: Export, codec: FrozenCodec | None, dim: int,
                          device: torch.device) -> ConditionerSet:
    """The export's conditioners (as its metadata names them) with their trained weights;
    one that cannot be built (a T5 not on this machine) is an error naming the export."""
    try:
        conditioners = ConditionerSet(export.info["conditioners"],
                                      export.info.get("conditioning_dim", dim), codec=codec)
    except ConfigError as error:
        raise ConfigError(f"{export.label}: {error}") from None
    conditioners = conditioners.to(device)
    conditioners.load_state_dict(export.weights.get("conditioners", {}))
    return conditioners.eval()


def check_audio_format(export: Export, codec: FrozenCodec, fix: str) -> None:
    """The codec's audio is what the model was trained on: a codec of the same latents or
    tokens at another rate or channel count (AudioGen's EnCodec beside a MusicGen LM) gives
    noise, or audio labelled with the wrong rate."""
    for key in ("sample_rate", "channels"):
        trained, found = export.info.get(key), getattr(codec, key)
        if trained is not None and trained != found:
            raise ConfigError(f"{export.label} was trained on audio of {key} {trained}, but the "
                              f"codec ({codec.source}) has {key} {found}: {fix}.")


def sampling_defaults(export: Export, keys: Sequence[str]) -> dict[str, Any]:
    """The `generate:` settings among `keys` the XP set: its duration (else its generate
    split's segment, or its training split's without one, as the XP's samples have; else the
    export's own), and its last CFG scale when it listed several."""
    generate = dict(export.config.get("generate") or {})
    if generate.get("duration") is None:
        dataset = export.config.get("dataset") or {}
        split = dataset.get("generate") or dataset.get("train") or {}
        generate["duration"] = (split.get("segment_duration") or dataset.get("segment_duration")
                                or export.info.get("segment_duration"))
    if isinstance(generate.get("cfg_scale"), list):
        generate["cfg_scale"] = generate["cfg_scale"][-1]
    generate.setdefault("cfg_scale", export.info.get("cfg_scale"))
    return {key: generate[key] for key in keys if generate.get(key) is not None}


Values = Mapping[str, Any]


class SamplingSettings:
    """A generative pipeline's settings: what a call passes, else the XP's `generate:`
    default (`defaults`), else the family's `FALLBACK`."""

    FALLBACK: ClassVar[dict[str, Any]] = {}
    defaults: dict[str, Any]
    conditioners: ConditionerSet

    def setting(self, key: str, given: Any = None) -> Any:
        """The value a call that gives `given` for `key` samples with."""
        value = given if given is not None else self.defaults.get(key, self.FALLBACK.get(key))
        return checked_finite(key, value)

    def duration_limit(self, given: float | None) -> float:
        """The max_duration a call keeps to: `given`, else the XP's."""
        limit = self.number_setting("max_duration", given)
        if limit <= 0:
            raise ConfigError(f"max_duration={limit:g}: give the longest clip in seconds, > 0.")
        return limit

    def check_length(self, seconds: float, what: str, max_duration: float | None) -> None:
        """`seconds` of audio to make fit `max_duration` (None: the XP's): a transformer's
        time grows with the square of the length, so a mistyped duration is refused, not run
        for hours or until memory runs out."""
        limit = self.duration_limit(max_duration)
        if seconds > limit + 1e-6:
            raise ConfigError(f"{what} is {seconds:g} s, longer than max_duration={limit:g} s "
                              "(the XP's generate.max_duration; `--max-duration S` or "
                              "max_duration=S raises it, at a cost that grows with the square "
                              "of the length).")

    def number_setting(self, key: str, given: Any = None) -> float:
        """A setting that is a real number (cfg_scale, temperature, ...)."""
        return checked_number(self.setting(key, given), key)

    def interval_setting(self, key: str, given: Any = None) -> tuple[float, float]:
        """A setting that is a pair of numbers (cfg_interval)."""
        value = self.setting(key, given)
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
            raise ConfigError(f"{key}={value!r}: give two numbers (low, high).")
        return checked_number(value[0], f"{key}[0]"), checked_number(value[1], f"{key}[1]")

    def sampling_keywords(self, method: str, sampling: Mapping[str, Any]) -> Mapping[str, Any]:
        """`sampling`, the keywords a method passes on to sampling, if `generate` takes
        them all (else the error names the method the caller called, and the valid ones)."""
        valid = [name for name, parameter in inspect.signature(self.generate).parameters.items()
                 if parameter.kind is parameter.KEYWORD_ONLY and name != "seed"]
        unknown = sorted(set(sampling) - set(valid))
        if unknown:
            raise TypeError(f"{method}() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, unknown))}; its sampling settings are "
                            f"{', '.join(valid)} (and seed).")
        return sampling

    def guidance_scale(self, given: Any, negative: Values | None,
                       ) -> tuple[float, dict[str, Any] | None]:
        """The cfg_scale a call samples with and its `negative` values checked and typed, as
        `conditions` are; refused where it cannot guide: outside [0, MAX_CFG_SCALE], other
        than 1 on a model without conditioners, and 1 beside `negative` (only the guidance's
        unconditional branch reads it, which a scale of 1 never runs)."""
        scale = self.number_setting("cfg_scale", given)
        if not 0 <= scale <= MAX_CFG_SCALE:
            raise ConfigError(f"cfg_scale={scale:g} must be from 0 to {MAX_CFG_SCALE:g} (1: no "
                              "guidance; 1 to about 20 is the useful range).")
        if scale != 1.0 and not self.conditioners.names():
            raise ConfigError(f"cfg_scale={scale}: this model has no conditioners to guide by; "
                              "use cfg_scale=1.")
        if negative is None:
            return scale, None
        if scale == 1.0:
            raise ConfigError(f"negative={negative!r} steers guidance, and cfg_scale is 1 "
                              "(no guidance): give cfg_scale above 1, or no negative.")
        if not isinstance(negative, Mapping):
            raise ConfigError(f"negative={negative!r}: give a mapping of conditioner values "
                              "(those of the unconditional branch), or None.")
        return scale, checked_values(negative, describe_conditioners(self.conditioners),
                                     "negative")

    def whole_setting(self, key: str, given: Any = None) -> int:
        """A setting that counts (steps, top_k): 2.5 would otherwise be cut to 2 unsaid."""
        value = self.setting(key, given)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or value != int(value):
            raise ConfigError(f"{key}={value!r}: give a whole number.")
        return int(value)

    def value_sets(self, conditions: Values | Sequence[Values] | None,
                   ) -> tuple[list[Values], bool]:
        """(one value set per item, whether a single clip was asked for); None: the null
        condition of every conditioner."""
        if conditions is None:
            return [{name: None for name in self.conditioners.names()}], True
        single = isinstance(conditions, Mapping)
        if not single and (isinstance(conditions, str) or not isinstance(conditions, Sequence)
                           or not conditions
                           or not all(isinstance(values, Mapping) for values in conditions)):
            raise ConfigError(f"conditions={conditions!r}: give a mapping of conditioner values "
                              "(one clip), a non-empty list of them (a batch), or None.")
        # Checked as the command line and the web page check theirs: a list for a text
        # conditioner is refused (a batch is a list of mappings), not joined into one prompt.
        infos = describe_conditioners(self.conditioners)
        sets = [conditions] if single else list(conditions)
        # A conditioner left out takes its default, else its null condition (as the command
        # line and the web page complete theirs).
        return [complete(checked_values(values, infos, "conditions"), infos)
                for values in sets], single
