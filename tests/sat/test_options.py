"""stable-audio-tools' defaults.ini and train.py flags as typed options."""
from __future__ import annotations

import argparse

import pytest

from audiotools.errors import ConfigError
from audiotools.sat.options import FIELDS, TrainingOptions, add_flags, read_defaults_ini, resolve

# SAT's current defaults.ini, key for key (the list plus num_gpus of older versions).
SAT_DEFAULTS_INI = """
[DEFAULTS]

#name of the run
name = stable_audio_tools

# name of the project
project = None

# the batch size
batch_size = 4

# If `true`, attempts to resume training from latest checkpoint.
recover = false

# Save top K model checkpoints during training.
save_top_k = -1

# number of nodes to use for training
num_nodes = 1

# Multi-GPU strategy for PyTorch Lightning
strategy = "auto"

# Precision to use for training
precision = "16-mixed"

# number of CPU workers for the DataLoader
num_workers = 6

# the random seed
seed = 42

# Batches for gradient accumulation
accum_batches = 1

# Number of steps between checkpoints
checkpoint_every = 10000

# Number of steps between validation runs
val_every = -1

# trainer checkpoint file to restart training from
ckpt_path = ''

# model checkpoint file to start a new training run from
pretrained_ckpt_path = ''

# Checkpoint path for the pretransform model if needed
pretransform_ckpt_path = ''

# configuration model specifying model hyperparameters
model_config = ''

# configuration for datasets
dataset_config = ''

# configuration for validation datasets
val_dataset_config = ''

# directory to save the checkpoints in
save_dir = ''

# gradient_clip_val passed into PyTorch Lightning Trainer
gradient_clip_val = 0.0

# remove the weight norm from the pretransform model
remove_pretransform_weight_norm = ''

# Logger type to use
logger = 'wandb'
"""


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


def test_sat_defaults_ini_reads_as_the_built_in_defaults(tmp_path):
    ini = tmp_path / "defaults.ini"
    ini.write_text(SAT_DEFAULTS_INI)
    values = read_defaults_ini(ini)
    assert set(values) == set(FIELDS) - {"num_gpus"}
    assert values["precision"] == "16-mixed" and values["ckpt_path"] == ""
    options = resolve(_parse("--defaults-ini", str(ini)))
    assert options.model_dump() == TrainingOptions().model_dump()
    # SAT's own defaults.ini chooses nothing; a flag, or an edited ini value, does.
    assert not any(options.chosen(key) for key in ("precision", "logger", "num_workers"))
    ini.write_text(SAT_DEFAULTS_INI.replace("num_workers = 6", "num_workers = 2"))
    options = resolve(_parse("--defaults-ini", str(ini), "--precision", "16-mixed"))
    assert options.chosen("precision") and options.chosen("num_workers")
    assert not options.chosen("logger")


def test_flags_override_the_ini_in_both_spellings(tmp_path):
    ini = tmp_path / "defaults.ini"
    ini.write_text("[DEFAULTS]\nbatch_size = 8 \nlogger = ''\nproject = None\nrecover = true\n")
    options = resolve(_parse("--defaults-ini", str(ini), "--batch-size", "16",
                             "--model_config", "m.json", "--precision", "bf16", "--strategy", ""))
    assert options.batch_size == 16 and options.model_config_path == "m.json"
    assert options.logger is None and options.project is None and options.recover is True
    assert options.precision == "bf16" and options.strategy == "auto"


def test_bad_values_are_refused_together_with_their_source(tmp_path):
    ini = tmp_path / "defaults.ini"
    ini.write_text("[DEFAULTS]\nval_every = 0\nsave_top_k = -2\nbatch_size_typo = 3\n")
    with pytest.raises(ConfigError) as error:
        resolve(_parse("--defaults-ini", str(ini), "--precision", "64", "--seed", "-1"))
    message = str(error.value)
    assert f"val_every = '0' ({ini}): steps between validations must not be 0" in message
    assert "save_top_k = '-2'" in message and "greater than or equal to -1" in message
    assert "precision = '64' (--precision)" in message and "'bf16-mixed'" in message
    assert "seed = '-1' (--seed)" in message
    assert f"batch_size_typo ({ini}): unknown key; valid keys: name, project" in message


def test_deepspeed_is_refused_with_what_to_use():
    with pytest.raises(ConfigError, match="DeepSpeed is not supported: audiotools trains with "
                                          r"DDP .* use auto or ddp"):
        resolve(_parse("--strategy", "deepspeed"))


def test_ini_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_defaults_ini(tmp_path / "missing.ini")
    bad = tmp_path / "bad.ini"
    bad.write_text("[TRAIN]\nbatch_size = 4\n")
    with pytest.raises(ConfigError, match=r"no \[DEFAULTS\] section \(found: \['TRAIN'\]\)"):
        read_defaults_ini(bad)
