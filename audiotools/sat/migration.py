"""A stable-audio-tools run (options + model config + dataset configs) as one audiotools XP.

`convert` reads everything SAT's `train.py` would read and returns the three config sections
of the equivalent recipe (the solver keys, `model:`, `dataset:`), the manifests to write and
the Notes of what does not carry over; `recipe.write` puts them in the config tree.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.manifest import Rejection
from ..errors import ConfigError
from ..families import family_for_sat_model_type
from . import values
from .dataset import DataSource, read_source
from .model import (
    check_model_type,
    convert_architecture,
    ignored_keys,
    note_frozen,
    parse_model_config,
    read_json,
)
from .notes import Notes
from .options import TrainingOptions
from .training import convert_training

# Fixed segments of the training data used for valid/evaluate when SAT has no val set.
VALID_ITEMS_FROM_TRAIN = 64
GENERATE_ITEMS = 4
PRECISIONS = {"32": "32", "16": "16-mixed", "bf16": "bf16-mixed", "16-mixed": "16-mixed",
              "bf16-mixed": "bf16-mixed"}


@dataclass
class Migration:
    family: str                 # the audiotools family (solver=<family>/<recipe>)
    solver: dict[str, Any]      # recipe keys (package _global_)
    model: dict[str, Any]       # the `model:` section
    dataset: dict[str, Any]     # the `dataset:` section (manifest paths filled by `recipe`)
    manifests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # split: entries
    notes: Notes = field(default_factory=Notes)
    sources: list[str] = field(default_factory=list)  # the SAT files it was made from
    rejected: list[Rejection] = field(default_factory=list)  # unreadable audio files
    # Parameters of what the model config builds, per part and "total" (diffusion only).
    parameters: dict[str, int] = field(default_factory=dict)


def _required(value: str | None, flag: str) -> Path:
    if not value:
        raise ConfigError(f"{flag} is required (a stable-audio-tools JSON config).")
    return Path(value).expanduser()


def _existing(value: str | None, key: str) -> str | None:
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"--{key.replace('_', '-')}={value}: no such file.")
    return str(path)


def _every(steps: int, checkpoint_every: int, what: str, notes: Notes) -> int:
    """SAT's step interval as a number of audiotools epochs (checkpoint_every updates each)."""
    epochs = max(1, round(steps / checkpoint_every))
    if epochs * checkpoint_every != steps:
        notes.difference(f"{what}={steps} steps is not a multiple of checkpoint_every="
                         f"{checkpoint_every}: every {epochs} epoch(s) "
                         f"({epochs * checkpoint_every} updates)")
    return epochs


def _run_keys(options: TrainingOptions, epochs: int, demo_every: int,
              notes: Notes) -> dict[str, Any]:
    """Solver keys from SAT's train.py options."""
    every = options.checkpoint_every
    keys: dict[str, Any] = {
        "device": "auto", "seed": options.seed, "precision": _precision(options, notes),
        "optim": {"epochs": epochs, "updates_per_epoch": every,
                  "accumulation": options.accum_batches,
                  "max_norm": options.gradient_clip_val},
        "checkpoint": {"keep_last": epochs if options.save_top_k == -1 else options.save_top_k},
        "generate": {"every": _every(demo_every, every, "training.demo.demo_every", notes)}}
    valid_every = (_every(options.val_every, every, "val_every", notes)
                   if options.val_every > 0 else 1)
    keys["valid"] = keys["evaluate"] = {"every": valid_every}
    notes.difference(f"SAT trains until stopped; audiotools runs {epochs} epoch(s) of "
                     f"checkpoint_every={every} updates (--epochs, or optim.epochs=N)")
    if options.save_top_k not in (-1, 0):
        notes.difference(f"save_top_k={options.save_top_k}: the last {options.save_top_k} "
                         "epoch checkpoints are kept (the best weights are always kept)")
    if options.logger == "wandb":
        online = options.chosen("logger")
        keys["logging"] = {"wandb": {"mode": "online" if online else "offline",
                                     "project": options.project or options.name}}
        if not online:
            notes.difference("logger=wandb is SAT's default: logging.wandb.mode=offline (the run "
                             "is kept under <xp>/wandb, needs no account; `wandb sync` uploads "
                             "it). --logger wandb logs online, after `wandb login`")
    notes.unsupported_if(options.logger == "comet", "logger=comet: audiotools logs to "
                         "TensorBoard and W&B (logging.wandb)")
    return keys


def _precision(options: TrainingOptions, notes: Notes) -> str:
    """The precision the user chose; SAT's untouched default (16-mixed, a GPU setting that a
    CPU runs slowly) becomes `auto`: bf16-mixed where the device computes in bf16, else 32."""
    if options.chosen("precision"):
        return PRECISIONS[options.precision]
    notes.difference(f"precision={options.precision} is SAT's default: precision=auto "
                     "(bf16-mixed where the device computes in bf16, else 32); "
                     f"--precision {options.precision} keeps it")
    return "auto"


def _loader_workers(options: TrainingOptions, notes: Notes) -> int:
    """SAT's `num_workers`, capped at this machine's CPUs: more DataLoader workers than cores
    compete with training (SAT's default is 6, whatever the machine)."""
    cpus = len(os.sched_getaffinity(0))
    if options.num_workers <= cpus:
        return options.num_workers
    notes.difference(f"num_workers={options.num_workers} is more than this machine's {cpus} "
                     f"CPU(s): dataset.num_workers={cpus} (out of the XP signature: set "
                     "dataset.num_workers=N on a machine with more cores)")
    return cpus


def _gpus(options: TrainingOptions) -> int:
    return (options.num_gpus or 1) * options.num_nodes


def _cluster_keys(options: TrainingOptions, keys: dict[str, Any], notes: Notes) -> None:
    """Global batch and SLURM GPUs: SAT's batch_size is per GPU, audiotools' is global."""
    gpus = _gpus(options)
    if options.num_gpus:
        keys["slurm"] = {"gpus": gpus}
    elif options.num_nodes > 1:
        notes.difference(f"num_nodes={options.num_nodes} without num_gpus: set slurm.gpus "
                         "(all GPUs of all nodes) and dataset.batch_size yourself")
    notes.difference(f"batch_size={options.batch_size} is per GPU in SAT; dataset.batch_size="
                     f"{options.batch_size * gpus} is the global batch ({gpus} GPU(s); "
                     "--num-gpus sets the count)")
    if options.strategy != "auto" or gpus > 1:
        notes.difference(f"strategy={options.strategy}: data parallel is DDP through "
                         "`dora run -d` or SLURM (`dora grid`)")


def _weights_keys(options: TrainingOptions, keys: dict[str, Any], notes: Notes,
                  family: str) -> None:
    if family != "autoencoder" and "codec" not in keys:
        for key in ("pretransform_ckpt_path", "remove_pretransform_weight_norm"):
            if getattr(options, key):
                raise ConfigError(f"{key}={getattr(options, key)}: this diffusion model has no "
                                  "pretransform (the model config's model.pretransform), so "
                                  "there is nothing to load it into (stable-audio-tools fails "
                                  "here too); remove the option or add the pretransform.")
    ckpt = _existing(options.ckpt_path, "ckpt_path")
    pretrained = _existing(options.pretrained_ckpt_path, "pretrained_ckpt_path")
    if ckpt:
        keys["continue_from"] = ckpt
        notes.unsupported.append("ckpt_path: the live weights start the run; optimizer, "
                                 "scheduler, step and discriminator states are not restored")
        notes.unsupported_if(pretrained, "pretrained_ckpt_path is overridden by ckpt_path, as "
                             "Lightning's resume overrides it in stable-audio-tools")
    elif pretrained:
        keys["continue_from"] = pretrained
    if family != "autoencoder":
        notes.unsupported_if(options.remove_pretransform_weight_norm, "remove_pretransform_"
                             f"weight_norm={options.remove_pretransform_weight_norm}: not "
                             "needed, the frozen codec gives the same outputs either way")
    else:
        notes.unsupported_if(options.accum_batches > 1 or options.gradient_clip_val > 0,
                             "accum_batches / gradient_clip_val: Lightning refuses both for "
                             "SAT's autoencoder (manual optimization); audiotools applies them")
        notes.unsupported_if(options.pretransform_ckpt_path, "pretransform_ckpt_path: an "
                             "autoencoder has no pretransform")
        notes.unsupported_if(options.remove_pretransform_weight_norm, "remove_pretransform_"
                             f"weight_norm={options.remove_pretransform_weight_norm}: this "
                             "autoencoder has no pretransform (stable-audio-tools fails here); "
                             "audiotools.sat.load_autoencoder(remove_norm=...) folds weight "
                             "norm when loading a checkpoint")
    notes.unsupported_if(options.recover, "recover=true: not needed, re-running the dora "
                         "command always resumes its XP")
    notes.unsupported_if(options.save_dir, f"save_dir={options.save_dir}: XPs live in "
                         "AUDIOTOOLS_DORA_DIR (or the team file's dora_dir)")


def _metadata_modules(train: DataSource, valid: DataSource | None,
                      conditioners: dict[str, Any], notes: Notes) -> None:
    """SAT's custom metadata modules are checked, not run: what they would feed is named."""
    for module in train.metadata_modules + (valid.metadata_modules if valid else []):
        if not conditioners:
            notes.difference(f"{module}: checked, not run: its metadata feeds conditioning, "
                             "which this model does not have")
            continue
        notes.unsupported.append(
            f"{module}: not run; the conditioners {', '.join(sorted(conditioners))} read each "
            "item's own metadata here (its sidecar .json or manifest `meta`, docs/data.md), "
            "and an item without a value takes the conditioner's default or is an error")


def _split(source: DataSource, manifest: str, items: int | None,
           random: bool) -> dict[str, Any]:
    """A split's keys; `manifest` names the manifest (train or valid) a file split reads,
    which `recipe.write` replaces by its path."""
    split: dict[str, Any] = {"source": source.kind, "random_segments": random}
    if source.kind == "files":
        split["manifest"] = manifest
    elif random or items is None:
        split["shards"] = source.shards
    else:  # a bounded fixed pass: the first shard only
        split["shards"] = source.shards[:1]
    if items is not None:
        split["num_samples"] = items
    return split


def _dataset(train: DataSource, valid: DataSource | None, sample_rate: int, channels: int,
             segment: float, batch_size: int, workers: int, notes: Notes) -> dict[str, Any]:
    reference = valid or train
    own_valid = valid is not None
    name = "valid" if own_valid else "train"
    items = (reference.size if own_valid and reference.kind == "files"
             else None if own_valid else min(VALID_ITEMS_FROM_TRAIN, train.size))
    if train.kind == "files":
        train_items = len(train.entries)
    else:
        train_items = train.epoch_steps * batch_size
    dataset = {"sample_rate": sample_rate, "channels": channels, "segment_duration": segment,
               "min_segment_ratio": _min_ratio(train, valid, segment, notes),
               "weighted": False, "batch_size": batch_size, "num_workers": workers,
               "train": _split(train, "train", train_items, train.random_crop),
               "valid": _split(reference, name, items, False),
               "evaluate": _split(reference, name, items, False),
               "generate": _split(reference, name, GENERATE_ITEMS, False)}
    if not own_valid:
        notes.difference(f"no val_dataset_config: valid/evaluate use {items} fixed segments of "
                         "the training data (audiotools needs a valid split for the best "
                         "state and export)")
    notes.unsupported_if(not train.random_crop, "random_crop=false: SAT takes each file's "
                         "first segment; audiotools cycles through fixed segments of the files")
    notes.unsupported.append("SAT's training-set augmentation (random polarity flip) and its "
                             "re-draw of silent segments (< -60 dBFS)")
    return dataset


def _min_ratio(train: DataSource, valid: DataSource | None, segment: float,
               notes: Notes) -> float:
    """1.0 (segments wholly inside a file, as SAT crops) unless a file is shorter than a
    segment; then the smallest ratio that keeps every file (SAT pads short files)."""
    durations = [e["duration"] for source in (train, valid) if source
                 for e in source.entries]
    if not durations or min(durations) >= segment:
        return 1.0
    ratio = max(0.001, math.floor(min(durations) / segment * 1000) / 1000)
    notes.difference(f"files shorter than sample_size: min_segment_ratio={ratio} keeps them "
                     "(padded, as SAT pads them); random segments of longer files may then "
                     "run past their end (padded) where SAT's stay inside")
    return ratio


@dataclass
class _ModelPart:
    """What the model config gives a recipe, whatever the family."""

    model: dict[str, Any]
    solver: dict[str, Any]
    sample_rate: int
    sample_size: int
    channels: int
    demo_every: int
    parameters: dict[str, int] = field(default_factory=dict)


def _audio_shape(raw: dict[str, Any], model_path: Path) -> tuple[int, int]:
    """(sample_size, channels) as SAT's train.py reads them."""
    if raw.get("sample_size") is None:
        raise ConfigError(f"{model_path}: sample_size is missing (stable-audio-tools' train.py "
                          "reads the segment length from it).")
    # SAT feeds mono, or stereo otherwise.
    return (values.whole(raw["sample_size"], f"{model_path}: sample_size", low=1),
            1 if raw.get("audio_channels", 2) == 1 else 2)


def _autoencoder_part(raw: dict[str, Any], model_path: Path, notes: Notes) -> _ModelPart:
    config = parse_model_config(raw, str(model_path))
    notes.unsupported_if(ignored_keys(raw), f"model config keys {ignored_keys(raw)}: ignored "
                         "(stable-audio-tools' autoencoder does not read them either)")
    model = convert_architecture(config)
    sample_size, channels = _audio_shape(raw, model_path)
    if channels != model.channels:
        raise ConfigError(f"{model_path}: audio_channels={config.audio_channels} gives "
                          f"{channels}-channel audio but model.io_channels={model.channels}.")
    note_frozen({part: getattr(config.model, part)
                 for part in ("encoder", "decoder", "bottleneck")}, notes)
    training = convert_training(config.training, model.bottleneck.type, notes)
    return _ModelPart(model.model_dump(mode="json"), training.sections, config.sample_rate,
                      sample_size, channels, training.demo_every)


def _codec_source(options: TrainingOptions) -> str:
    """Where the pretransform's weights are: SAT's pretransform_ckpt_path, else the diffusion
    checkpoint the run starts from (it holds them under `pretransform.`); none is refused
    here, naming SAT's flag (the recipe's own check named only codec.source)."""
    for key in ("pretransform_ckpt_path", "ckpt_path", "pretrained_ckpt_path"):
        path = _existing(getattr(options, key), key)
        if path:
            return path
    raise ConfigError("model.pretransform has no weights here: pass --pretransform-ckpt-path "
                      "CKPT (the SAT autoencoder's checkpoint), or --ckpt-path / "
                      "--pretrained-ckpt-path of a SAT diffusion checkpoint that holds them.")


def _check_whole_latent_frames(converted: Any, sample_size: int, model_path: Path) -> None:
    """A diffusion autoencoder's segments hold whole latent frames: SAT's encoder would drop
    the samples past the last one and stretch the rest over the segment, audiotools' stretches
    each latent frame over exactly the frames it encodes."""
    from ..models.diffusion import validate_diffusion_config
    model = validate_diffusion_config(converted.model)
    if model.encoder is None:
        return
    codec = (converted.pretransform["model"].get("downsampling_ratio", 1)
             if converted.pretransform else 1)
    multiple = model.length_multiple * codec
    if sample_size % multiple:
        raise ConfigError(f"{model_path}: sample_size={sample_size} is not a multiple of "
                          f"{multiple} samples (the encoder's downsampling_ratio, with the DiT's "
                          "patch_size, in samples): stable-audio-tools' encoder would drop the "
                          "last partial latent frame, audiotools takes whole frames only. Use a "
                          f"multiple of {multiple}.")


def _diffusion_part(raw: dict[str, Any], model_path: Path, options: TrainingOptions,
                    notes: Notes) -> _ModelPart:
    from ..models.diffusion import validate_diffusion_config
    from .diffusion import convert_diffusion_model, parameter_counts
    from .diffusion_training import convert_diffusion_training
    converted = convert_diffusion_model(raw, notes)
    sample_size, channels = _audio_shape(raw, model_path)
    network = converted.model["network"]
    solver: dict[str, Any] = {}
    if converted.pretransform is not None:
        latent_dim = converted.pretransform["model"].get("latent_dim")
        if latent_dim != network["io_channels"]:
            raise ConfigError(f"{model_path}: the network's io_channels={network['io_channels']} "
                              f"but the pretransform's latent_dim={latent_dim}.")
        solver["codec"] = {"source": _codec_source(options), **converted.codec,
                           "normalize": False, "sat_model_config": str(model_path.resolve())}
    elif network["io_channels"] != channels:
        raise ConfigError(f"{model_path}: the network reads {network['io_channels']} channels but "
                          f"audio_channels={raw.get('audio_channels', 2)} gives {channels}.")
    _check_whole_latent_frames(converted, sample_size, model_path)
    training = convert_diffusion_training(
        raw.get("training"), raw["model_type"], converted.model["objective"],
        converted.conditioners, notes,
        inpainting=validate_diffusion_config(converted.model).inpainting)
    solver.update(training.sections)
    solver["conditioners"] = converted.conditioners
    solver["conditioning"] = {**solver.get("conditioning", {}), **converted.conditioning}
    parameters = parameter_counts(converted)
    return _ModelPart(converted.model, solver, int(raw["sample_rate"]), sample_size, channels,
                      training.demo_every, parameters)


def convert(options: TrainingOptions, epochs: int = 100, workers: int = 8) -> Migration:
    """Everything SAT's train.py would read, as the sections of one audiotools recipe."""
    notes = Notes()
    model_path = _required(options.model_config_path, "--model-config")
    raw = read_json(model_path, "--model-config")
    check_model_type(raw, str(model_path))
    family = family_for_sat_model_type(raw["model_type"]).name
    part = (_autoencoder_part(raw, model_path, notes) if family == "autoencoder"
            else _diffusion_part(raw, model_path, options, notes))
    solver = {**part.solver}
    run = _run_keys(options, epochs, part.demo_every, notes)
    for key, value in run.items():
        solver[key] = {**solver.get(key, {}), **value} if isinstance(value, dict) else value
    _cluster_keys(options, solver, notes)
    _weights_keys(options, solver, notes, family)
    train = read_source(read_json(_required(options.dataset_config, "--dataset-config"),
                                  "--dataset-config"), "dataset_config", notes, workers)
    valid = None
    if options.val_dataset_config:
        valid = read_source(read_json(options.val_dataset_config, "--val-dataset-config"),
                            "val_dataset_config", notes, workers)
    _metadata_modules(train, valid, solver.get("conditioners") or {}, notes)
    dataset = _dataset(train, valid, part.sample_rate, part.channels,
                       part.sample_size / part.sample_rate,
                       options.batch_size * _gpus(options), _loader_workers(options, notes),
                       notes)
    manifests = {"train": train.entries} if train.kind == "files" else {}
    if valid is not None and valid.kind == "files":
        manifests["valid"] = valid.entries
    sources = [str(Path(path).expanduser().resolve()) for path in (
        model_path, options.dataset_config, options.val_dataset_config) if path]
    rejected = train.rejections + (valid.rejections if valid else [])
    return Migration(family, solver, part.model, dataset, manifests, notes, sources, rejected,
                     part.parameters)
