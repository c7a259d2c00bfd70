"""GenerativeSolver: what the generative families (diffusion, the LM) share, so a family says
only what its model is, what its loss is, and how it samples.

The base builds the data (audio, encoded on the fly by the frozen codec, or pre-encoded data
checked against it), the frozen codec (`codec:`, registered with `register_frozen`; its
latents' statistics measured on the training audio when `codec.normalize` asks and the data
does not record them), the conditioners (`conditioners:`, CFG dropout in training), the model
through `build_generative_model`, the optimizer over the model and the conditioners, and it
refuses bad input before any training: data in another format than the codec's, metadata a
conditioner needs and an item lacks, segment lengths the model cannot take.

Stages: `generate` writes one sample per condition set and CFG scale under
<xp>/samples/<epoch>/ (audio, spectrogram PNG, conditions.json) and logs them to TensorBoard /
W&B; `evaluate` generates for the evaluate split's items and reports the Fréchet distance to
that split's real audio beside the valid split's real audio, that audio through the codec
and white / pink noise (metrics.generation), and conditional accuracy when `evaluate.judge`
names a classifier. Both sample in float32 whatever `precision` says (it sets the train and
valid steps, MusicGen's evaluate cross-entropy too), as exported inference (`audiotools
generate`, the UI), which has no precision setting, samples: the XP's samples and figures are
of the arithmetic its export will run.

A family implements `build_generative_model`, `run_step`, `generate_audio` and optionally
`continue_audio`, `sampling_record` and `length_multiple`.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset

from .. import distributed
from ..conditioning import ConditionerSet, Conditions
from ..data.audio import AudioFileError, audio_read, audio_write
from ..data.builders import build_audio_datasets
from ..data.pre_encoded import EncodedData, PreEncodedDataset
from ..data.segments import collate_segments
from ..environment import resolve_path
from ..errors import ConfigError, building
from ..inference.conditions import checked_values, describe_conditioners
from ..inference.inputs import checked_duration
from ..io.atomic import remove_temporaries, write_image_atomic, write_text_atomic
from ..io.codecs import codec_from_config
from ..metrics.conditional import as_classifier
from ..metrics.embeddings import AudioEmbedder, get_embedder
from ..metrics.generation import format_report, generation_report, report_metrics
from ..metrics.spectrogram import render_spectrogram
from ..models.codec import FrozenCodec, LatentStats
from ..sampling.limits import DEFAULT_MAX_DURATION
from .base import StandardSolver
from .generative_config import GenerativeSolverConfig

logger = logging.getLogger(__name__)

Item = Mapping[str, Any]


class GenerativeSolver(StandardSolver):
    config_schema = GenerativeSolverConfig
    # Whether the model reads tokens of a discrete codec (an LM) instead of continuous data.
    discrete: ClassVar[bool] = False
    settings: GenerativeSolverConfig
    codec: FrozenCodec | None

    # ------------------------------------------------------------------ to implement
    def build_generative_model(self) -> torch.nn.Module:
        """The family's model, for data of `data_channels` channels at `frame_rate` (the
        codec, the conditioners and the datasets are built)."""
        raise NotImplementedError

    def generate_audio(self, values: Sequence[Mapping[str, Any]], items: Sequence[Item] | None,
                       duration: float, seed: int, cfg_scale: float) -> torch.Tensor:
        """Audio (B, channels, samples) at `sample_rate`, one clip per condition set of
        `values` ({conditioner: value}), `duration` seconds long, from `seed`. `items`: the
        dataset items the values come from (their info), when they come from data."""
        raise NotImplementedError

    def continue_audio(self, values: Sequence[Mapping[str, Any]], items: Sequence[Item],
                       duration: float, seed: int, cfg_scale: float,
                       ) -> tuple[torch.Tensor, float] | None:
        """(audio, prompt seconds): continuations of the start of each item's real segment,
        `duration` seconds long in all, which generate writes beside the samples from nothing;
        None (the default): the family writes none."""
        return None

    def sampling_record(self) -> dict[str, Any]:
        """How samples are drawn (sampler, steps...), recorded in conditions.json."""
        return {}

    def length_multiple(self) -> tuple[int, str]:
        """(N, why): training frames must be a multiple of N; `why` names the keys."""
        return 1, ""

    # ------------------------------------------------------------------ building
    def build_model(self) -> None:
        settings = self.settings
        self.datasets = build_audio_datasets(settings.dataset, settings.seed)
        self.codec = None
        # Where the codec is (//recipe/ and //sig/ resolved once), for exports.
        self.codec_location: dict[str, Any] = {}
        if settings.codec is not None:
            self.register_frozen("codec", self._frozen_codec())
            self.codec_location = {"path": str(resolve_path(settings.codec.source or "")),
                                   "sat_model_config": settings.codec.sat_model_config}
        with building("conditioners"):
            self.conditioners = ConditionerSet(
                settings.conditioners, settings.conditioning.dim, codec=self.codec,
                joint_dropout=settings.conditioning.joint_dropout).to(self.device)
        self._check_metadata()
        with building("model"):
            self.model = self.build_generative_model().to(self.device)
        self._check_lengths()
        self.judge = self._judge()
        self.embedder = self._embedder()
        self.optimizer = self.build_optimizer([*self.model.parameters(),
                                               *self.conditioners.trainable_parameters()])
        self.register_stateful("model", "conditioners", "optimizer")
        self.register_best_state("model", "conditioners")
        self.register_ema("model")

    def build_dataloaders(self) -> None:
        data = self.settings.dataset
        for split, dataset in self.datasets.items():
            self.loaders[split] = self.make_loader(
                dataset, data.batch_size, shuffle=split == "train", num_workers=data.num_workers,
                collate_fn=collate_segments, drop_last=split == "train")
        if "train" not in self.loaders:
            raise ConfigError("dataset.train is not defined: a generative model needs a "
                              "training split (see config/dset/music_ensembles.yaml).")

    def _stored_stats(self) -> LatentStats | None:
        for dataset in self.datasets.values():
            if isinstance(dataset, EncodedData) and dataset.codec.get("stats"):
                return LatentStats(**dataset.codec["stats"])
        return None

    def _frozen_codec(self) -> FrozenCodec:
        """The codec of `codec:`, normalised with the statistics pre-encoded data records or,
        on audio, measured on the first `stats_clips` training clips (a fixed draw: a resumed
        run measures the same)."""
        config = self.settings.codec
        assert config is not None
        wanted = "tokens" if self.discrete else "latents"
        for split, dataset in self.datasets.items():
            if isinstance(dataset, EncodedData) and dataset.kind != wanted:
                raise ConfigError(f"dataset.{split}: pre-encoded {dataset.kind}, and this "
                                  f"family trains on {wanted}; pre-encode the data with a "
                                  f"codec that gives {wanted}, into another folder.")
        stats = self._stored_stats()
        if not config.normalize or stats is not None:
            codec = codec_from_config(config, self.device, stats, discrete=self.discrete)
            self._check_data_format(codec)
        else:
            raw = codec_from_config(config.model_copy(update={"normalize": False}), self.device,
                                    discrete=self.discrete)
            self._check_data_format(raw)
            stats = self._measure_stats(raw)
            codec = FrozenCodec(raw.codec, raw.source, raw.scale, stats).to(self.device)
        for split, dataset in self.datasets.items():
            if isinstance(dataset, EncodedData):
                dataset.check_codec(codec, f"dataset.{split}")
        return codec

    def _measure_stats(self, codec: FrozenCodec) -> LatentStats:
        train = self.datasets["train"]
        if isinstance(train, EncodedData):
            raise ConfigError("codec.normalize=true: this pre-encoded data records no "
                              "statistics (its train split was not encoded); re-run "
                              "`audiotools pre-encode` with the train split.")
        train.set_epoch(0)
        count = min(self.settings.stats_clips, len(train))
        if count < self.settings.stats_clips:
            logger.warning("stats_clips=%d: the training split holds %d segments; the "
                           "statistics are measured on those.", self.settings.stats_clips, count)
        latents = []
        step = self.settings.dataset.batch_size
        for start in range(0, count, step):
            batch = collate_segments([train[i] for i in range(start, min(count, start + step))])
            if batch["audio"].shape[0]:
                raw = codec.encode_raw(batch["audio"].to(self.device)).float().cpu()
                latents.extend(raw.unbind(0))
        if not latents:
            raise AudioFileError("No training clip could be read to measure the codec's latent "
                                 "statistics (their paths are in the log above).")
        logger.info("Latent statistics of %s measured on %d training segments.",
                    codec.source, len(latents))
        return LatentStats.measure(latents)

    # ------------------------------------------------------------------ what the data is
    @property
    def sample_rate(self) -> int:
        if self.codec is not None:
            return self.codec.sample_rate
        return int(self._split_value("train", "sample_rate"))

    @property
    def channels(self) -> int:
        if self.codec is not None:
            return self.codec.channels
        return int(self._split_value("train", "channels"))

    @property
    def frame_rate(self) -> float:
        """Frames per second of what the model reads (codec frames, or audio samples)."""
        return self.codec.frame_rate if self.codec is not None else float(self.sample_rate)

    @property
    def data_channels(self) -> int:
        """Channels of what the model reads (codec latents, or audio channels)."""
        return self.codec.latent_dim if self.codec is not None else self.channels

    def _split_value(self, split: str, key: str) -> Any:
        """A split's own value of a dataset key, else the dataset's (as the builder merges)."""
        data = self.settings.dataset
        own = getattr(data, split)
        if own is not None and key in own.model_fields_set:
            return getattr(own, key)
        return getattr(data, key)

    def split_duration(self, split: str) -> float:
        """Segment seconds of a split (its own, else the dataset's)."""
        return float(self._split_value(split, "segment_duration"))

    def frames(self, duration: float) -> int:
        """Frames the model reads for `duration` seconds of audio."""
        return math.ceil(duration * self.frame_rate - 1e-6)

    # ------------------------------------------------------------------ checks before training
    def _check_data_format(self, codec: FrozenCodec) -> None:
        """Audio splits deliver the codec's sample rate and channel count."""
        for split in self.datasets:
            if self._split_value(split, "source") == "pre_encoded":
                continue
            for key in ("sample_rate", "channels"):
                value, expected = self._split_value(split, key), getattr(codec, key)
                if value is not None and value != expected:
                    raise ConfigError(
                        f"dataset.{key}={value} (split {split}) but the codec "
                        f"(codec.source={codec.source}) has {key} {expected}: set "
                        f"dataset.{key}={expected} (files are converted as they are read).")

    def _check_metadata(self) -> None:
        """Every item of every split with a manifest has what each conditioner reads (its
        key, its template's fields) or the conditioner has a default: the error names the
        item and the key now, not at some batch of some epoch."""
        if not self.conditioners.names():
            return
        for split, dataset in self.datasets.items():
            for entry in getattr(dataset, "entries", []):
                info = {"path": entry.get("source", entry.get("path")), "seek_time": 0.0,
                        "seconds_start": 0.0, "seconds_total": entry.get("duration"),
                        "sample_rate": entry.get("sample_rate"),
                        "channels": entry.get("channels"), "meta": entry.get("meta", {})}
                for name in self.conditioners.names():
                    try:
                        self.conditioners[name].check_item(info)
                    except ConfigError as error:
                        raise ConfigError(f"dataset.{split}: {error}") from None

    def _check_lengths(self) -> None:
        """Training and valid segments are whole multiples of what the model takes."""
        multiple, why = self.length_multiple()
        for split in ("train", "valid"):
            if split not in self.datasets:
                continue
            duration = self.split_duration(split)
            frames = self.frames(duration)
            if frames % multiple:
                step = multiple / self.frame_rate
                raise ConfigError(
                    f"dataset.segment_duration={duration:g} (split {split}) is {frames} frames "
                    f"at {self.frame_rate:g} frames/s, not a multiple of {multiple} ({why}): "
                    f"use a multiple of {step:g} s.")

    def _judge(self) -> Any:
        """The classifier of evaluate.judge, loaded now so that a missing one stops the run
        before training; the labels of the evaluate items and of the valid ones (the held-out
        real audio it also judges) must be among its classes."""
        evaluate = self.settings.evaluate
        if evaluate.judge is None or not evaluate.every:
            return None
        judge = as_classifier(evaluate.judge, self.device)
        for split in ("evaluate", "valid"):
            entries = getattr(self.datasets.get(split), "entries", [])
            labels = {str((entry.get("meta") or {}).get(evaluate.label)) for entry in entries}
            unknown = sorted(labels - set(judge.class_names))
            if unknown:
                raise ConfigError(f"evaluate.label={evaluate.label}: the {split} items hold "
                                  f"{unknown}, which the judge ({evaluate.judge}) does not "
                                  f"know; its classes: {list(judge.class_names)}.")
        return judge

    def _embedder(self) -> AudioEmbedder | None:
        """The embedder of evaluate.embedder, built now so that an unknown name or missing
        weights stop the run before training (evaluate first runs after an epoch of it)."""
        evaluate = self.settings.evaluate
        return get_embedder(evaluate.embedder) if evaluate.every else None

    def check_settings(self) -> None:
        """Also what the generate and evaluate stages read, found now and not after an epoch
        of training: the values of generate.conditions fit their conditioners (a number
        outside its range, an option it does not have), and what they sample holds a sample
        and fits generate.max_duration (inference refuses longer); more
        generate.num_samples than the generate split holds is said."""
        super().check_settings()
        generate = self.settings.generate
        infos = describe_conditioners(self.conditioners)
        for index, values in enumerate(generate.conditions):
            checked_values(values, infos, f"generate.conditions[{index}]")
        limit = self.max_duration
        for what, seconds in self._sampled_lengths().items():
            checked_duration(seconds, self.sample_rate, what)
            if seconds > limit + 1e-6:
                raise ConfigError(f"{what} is {seconds:g} s, longer than generate.max_duration="
                                  f"{limit:g} s, the longest audio inference generates: raise "
                                  "generate.max_duration or shorten it.")
        split = self.datasets.get("generate")
        if generate.every and not generate.conditions and split is not None \
                and not isinstance(split, IterableDataset) and len(split) < generate.num_samples:
            logger.warning("generate.num_samples=%d: the generate split holds %d items; each "
                           "generate stage makes %d samples per CFG scale.",
                           generate.num_samples, len(split), len(split))
        if self.settings.evaluate.every:
            self._check_sources(("evaluate", "valid"))

    def _check_sources(self, splits: Sequence[str]) -> None:
        """Evaluate reads the real audio of pre-encoded items (beside the model's, as held-out
        real audio): files missing there stopped the run after training, at its evaluate."""
        for split in splits:
            dataset = self.datasets.get(split)
            if not isinstance(dataset, PreEncodedDataset):
                continue
            sources = dict.fromkeys(entry["source"] for entry in dataset.entries)
            missing = [source for source in sources if not Path(source).is_file()]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise ConfigError(
                    f"dataset.{split}: evaluate reads the audio these pre-encoded items were "
                    f"encoded from, and {missing[0]}{more} is missing (recorded in "
                    f"{dataset.root}/{split}.jsonl); put the audio back where it was, or set "
                    "evaluate.every=0.")

    def _sampled_lengths(self) -> dict[str, float]:
        """The seconds the generate and evaluate stages sample, by what sets them."""
        lengths = {}
        if self.settings.generate.every:
            lengths["generate.duration (else the generate split's segment_duration)"] = \
                self.generate_duration()
        if self.settings.evaluate.every and "evaluate" in self.datasets:
            lengths["the evaluate split's segment_duration"] = self.split_duration("evaluate")
        return lengths

    @property
    def max_duration(self) -> float:
        """generate.max_duration; null: DEFAULT_MAX_DURATION, or the longest the stages
        sample when longer (an XP made before the limit existed still runs as it did)."""
        if self.settings.generate.max_duration is not None:
            return self.settings.generate.max_duration
        return max([DEFAULT_MAX_DURATION, *self._sampled_lengths().values()])

    def generate_duration(self) -> float:
        """Seconds of each sample: generate.duration, else the generate split's segment (the
        training split's without one)."""
        return self.settings.generate.duration or self.split_duration(
            "generate" if "generate" in self.datasets else "train")

    # ------------------------------------------------------------------ data and conditions
    def batch_weight(self, batch: Mapping[str, Any]) -> float:
        """Its real samples or frames: the losses are means over them, and segments cut
        short have fewer."""
        return float(batch["padding_mask"].sum())

    def data_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(data, frame mask): what the model reads for a batch (normalised latents, tokens
        or audio; (B, D, frames)) and which frames are real ((B, frames) bool)."""
        mask = batch["padding_mask"].to(self.device)
        if "latents" in batch:
            assert self.codec is not None
            return self.codec.normalise(batch["latents"].to(self.device).float()), mask
        if "tokens" in batch:
            return batch["tokens"].to(self.device), mask
        audio = batch["audio"].to(self.device)
        if audio.shape[0] == 0:
            raise AudioFileError("Every file of a batch failed to read (their paths are in the "
                                 "log above); fix or remove them and rebuild the manifest.")
        if self.codec is None:
            return audio, mask
        data = self.encode(audio)
        frames = data.shape[-1]
        first_samples = torch.arange(frames, device=mask.device) * mask.shape[-1] // frames
        return data, mask[:, first_samples]

    def conditions(self, info: Sequence[Item]) -> Conditions:
        """The conditions of a batch's items (CFG dropout in training)."""
        return self.conditioners(info)

    def condition_values(self, item: Item) -> dict[str, Any]:
        """{conditioner: value} an item gives (what inference would be asked for)."""
        return {name: self.conditioners[name].item_value(item)
                for name in self.conditioners.names()}

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """What the model reads (tokens or normalised latents) of audio (B, channels, samples)
        through the codec."""
        assert self.codec is not None
        return self.codec.encode_to_tokens(audio) if self.discrete else self.codec.encode(audio)

    def decode(self, data: torch.Tensor) -> torch.Tensor:
        """Audio (B, channels, samples) from what the model makes."""
        if self.codec is None:
            return data
        return self.codec.decode_tokens(data) if self.discrete else self.codec.decode(data)

    def through_codec(self, clips: Sequence[torch.Tensor]) -> list[torch.Tensor] | None:
        """Each clip (channels, samples) encoded and decoded by the codec at its own length:
        the best a model over this codec could make of it; None without a codec."""
        if self.codec is None:
            return None
        out = []
        for clip in clips:
            audio = self.decode(self.encode(clip[None].to(self.device)))[..., :clip.shape[-1]]
            out.extend(_clips(F.pad(audio, (0, clip.shape[-1] - audio.shape[-1]))))
        return out

    def real_audio(self, items: Sequence[Item], duration: float) -> list[torch.Tensor]:
        """The real audio (channels, samples) of items' segments, read from their files."""
        return [audio_read(item["path"], item["seconds_start"], duration, self.sample_rate,
                           self.channels)[0] for item in items]

    def _items(self, split: str, limit: int | None = None) -> list[Item]:
        """The info of a split's items in order (the whole split, whatever this process's
        share of it; streamed shards: this process's stream), up to `limit`."""
        items: list[Item] = []
        for batch in self.loaders[split].whole_pass(1):  # one at a time: no read past `limit`
            items.extend(batch["info"])
            if limit is not None and len(items) >= limit:
                break
        return items[:limit]

    # ------------------------------------------------------------------ generate
    def _condition_sets(self) -> tuple[list[dict[str, Any]], list[Item] | None]:
        generate = self.settings.generate
        if generate.conditions:
            return [dict(values) for values in generate.conditions], None
        if "generate" in self.loaders:
            items = self._items("generate", generate.num_samples)
            return [self.condition_values(item) for item in items], items
        null = {name: None for name in self.conditioners.names()}
        return [dict(null) for _ in range(generate.num_samples)], None

    def generate(self) -> dict[str, Any]:
        """Per CFG scale, one sample per condition set: `NNN_cfgS.<format>` and its spectrogram
        `NNN_cfgS.png` under <xp>/samples/<epoch>/, and conditions.json saying what each was
        generated from; logged as audio and images. A family that continues prompts
        (`continue_audio`) adds `NNN_cfgS_continued` files for sets taken from data. The sets
        go in batches of `dataset.batch_size`, the one at set `start` from `generate.seed +
        start` (one batch from `generate.seed` when they fit in one); under DDP each rank
        generates its share of the batches and rank 0 gathers them and writes, so the samples
        are those one process makes (streamed shards: rank 0 alone, from its stream)."""
        generate = self.settings.generate
        streamed = (not generate.conditions and "generate" in self.loaders
                    and isinstance(self.datasets["generate"], IterableDataset))
        if streamed and not distributed.is_rank_zero():
            return {}
        values, items = self._condition_sets()
        duration = self.generate_duration()
        batch_size = self.settings.dataset.batch_size
        starts = list(range(0, len(values), batch_size))
        share = starts if streamed else starts[distributed.rank()::distributed.world_size()]
        # (start, scale index) -> (clips, continued clips or None, prompt seconds)
        mine: dict[tuple[int, int], tuple[list[torch.Tensor], list[torch.Tensor] | None,
                                          float | None]] = {}
        for start in share:
            chunk_values = values[start:start + batch_size]
            chunk_items = None if items is None else items[start:start + batch_size]
            for number, scale in enumerate(generate.cfg_scale):
                seed = generate.seed + start
                audio = self.generate_audio(chunk_values, chunk_items, duration, seed, scale)
                continued = None if chunk_items is None else self.continue_audio(
                    chunk_values, chunk_items, duration, seed, scale)
                mine[start, number] = (
                    _clips(audio), None if continued is None else _clips(continued[0]),
                    None if continued is None else continued[1])
        shares = [mine] if streamed else distributed.all_gather_object(mine)
        if not distributed.is_rank_zero():
            return {}
        _log_shares("Generate", len(values), [len({start for start, _ in part})
                                              for part in shares])
        batches = {key: batch for gathered in shares for key, batch in gathered.items()}
        out_dir = self.folder / "samples" / str(self.epoch)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_temporaries(out_dir)
        records = []
        for number, scale in enumerate(generate.cfg_scale):
            common = {"cfg_scale": scale, "duration": duration, **self.sampling_record()}
            for kind in ("", "_continued"):
                for start in starts:
                    clips, continued, prompt = batches[start, number]
                    if kind and continued is None:
                        continue
                    extra = {"prompt_seconds": prompt} if kind else {}
                    records += self._write_samples(
                        out_dir, continued if kind else clips, f"_cfg{scale:g}{kind}", values,
                        items, {**common, "seed": generate.seed + start, **extra}, start)
        write_text_atomic(out_dir / "conditions.json", json.dumps(records, indent=1, default=str))
        return {"samples": float(len(records)), "seconds": duration}

    def _write_samples(self, out_dir: Path, audio: Sequence[torch.Tensor], suffix: str,
                       values: Sequence[Mapping[str, Any]], items: Sequence[Item] | None,
                       common: Mapping[str, Any], first: int = 0) -> list[dict[str, Any]]:
        """The clips of the batch of sets `first`, `first + 1`, ... as `NNN<suffix>.<format>`
        and their spectrograms, logged; their conditions.json records (`batch_index`: the
        clip's place in its batch)."""
        generate = self.settings.generate
        records = []
        for offset, clip in enumerate(audio):
            index = first + offset
            name = f"{index:03d}{suffix}"
            audio_write(out_dir / f"{name}.{generate.format}", clip, self.sample_rate)
            image = render_spectrogram(clip, self.sample_rate)
            write_image_atomic(out_dir / f"{name}.png", image)
            self.log_audio("generate", name, clip, self.sample_rate)
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
            self.log_image("generate", f"{name}_spectrogram", pixels)
            record = {"audio": f"{name}.{generate.format}", "spectrogram": f"{name}.png",
                      "conditions": values[index], "batch_index": offset, **common}
            if items is not None:
                record["source"] = {"path": str(items[index]["path"]),
                                    "seconds_start": items[index]["seconds_start"]}
            records.append(record)
        return records

    # ------------------------------------------------------------------ evaluate
    def evaluate(self) -> dict[str, Any]:
        """The generation report for the evaluate split's items (see the module docstring);
        its table goes to the log, its figures to history.json. Under DDP each rank generates
        its share of the batches (each from its own seed, so the clips are those one process
        makes) and rank 0 gathers them and reports; streamed shards: rank 0 alone."""
        evaluate = self.settings.evaluate
        streamed = isinstance(self.datasets["evaluate"], IterableDataset)
        if streamed and not distributed.is_rank_zero():
            return {}
        duration = self.split_duration("evaluate")
        items = self._items("evaluate")
        batch_size = self.settings.dataset.batch_size
        starts = list(range(0, len(items), batch_size))
        share = starts if streamed else starts[distributed.rank()::distributed.world_size()]
        mine: dict[int, list[torch.Tensor]] = {}
        for start in share:
            chunk = items[start:start + batch_size]
            audio = self.generate_audio([self.condition_values(item) for item in chunk], chunk,
                                        duration, evaluate.seed + start, evaluate.cfg_scale)
            mine[start] = _clips(audio)
        shares = [mine] if streamed else distributed.all_gather_object(mine)
        if not distributed.is_rank_zero():
            return {}
        _log_shares("Evaluate", len(items), [len(part) for part in shares])
        clips = {start: batch for gathered in shares for start, batch in gathered.items()}
        generated = [clip for start in starts for clip in clips[start]]
        heldout_items = self._heldout_items(duration)
        labels = heldout_labels = None
        if self.judge is not None:
            labels = [str(item["meta"].get(evaluate.label)) for item in items]
            heldout_labels = [str(item["meta"].get(evaluate.label)) for item in heldout_items]
        heldout = self.real_audio(heldout_items, duration)
        report = generation_report(generated, self.real_audio(items, duration), heldout,
                                   self.embedder or evaluate.embedder, self.sample_rate,
                                   classifier=self.judge,
                                   labels=labels, heldout_labels=heldout_labels,
                                   seed=evaluate.seed, via_codec=self.through_codec(heldout))
        logger.info("Generation report, epoch %d:\n%s", self.epoch, format_report(report))
        return report_metrics(report)

    def _heldout_items(self, duration: float) -> list[Item]:
        """The valid split's segments that hold `duration` seconds whole; all of them when
        none does. A valid split cut shorter than the evaluate duration (an LM validated on
        the segments it trains on) would otherwise give clips cut short at their file's end."""
        items = self._items("valid")
        whole = [item for item in items
                 if item["seconds_start"] + duration <= item["seconds_total"] + 1e-6]
        return whole or items

    # ------------------------------------------------------------------ export
    def export_info(self) -> dict[str, Any]:
        """What inference needs besides the model section: the conditioners, the codec it was
        trained on (source, identity, statistics), the audio format."""
        settings = self.settings
        return {"model": settings.model.model_dump(mode="json"),
                "conditioners": {name: conditioner.config.model_dump(mode="json")
                                 for name, conditioner in self.conditioners.conditioners.items()},
                "conditioning_dim": settings.conditioning.dim,
                "codec": ({**self.codec.describe(), **self.codec_location}
                          if self.codec is not None else None),
                "sample_rate": self.sample_rate, "channels": self.channels}


def _clips(audio: torch.Tensor) -> list[torch.Tensor]:
    """A batch of generated audio as clips in [-1, 1] on the CPU (what ranks gather)."""
    return list(audio.float().clamp(-1, 1).cpu().unbind(0))


def _log_shares(stage: str, count: int, batches: list[int]) -> None:
    """Rank 0's record of how many of a stage's batches each rank generated."""
    logger.info("%s: %d clips in %d batches, generated by rank %s.", stage, count, sum(batches),
                ", ".join(f"{rank}: {made}" for rank, made in enumerate(batches)))
