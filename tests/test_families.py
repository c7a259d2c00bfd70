"""The family registry and the loading path built on it: every family's parts exist and agree,
exports carry family + model section + format version (older exports still load), and
inference imports nothing of the training stack."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

import audiotools
from audiotools.config import SolverConfig
from audiotools.environment import CONFIG_DIR
from audiotools.errors import CheckpointError, ConfigError
from audiotools.families import FAMILIES, config_schema, get_family, import_object
from audiotools.inference.autoencoder import AutoencoderPipeline
from audiotools.inference.classifier import ClassifierPipeline
from audiotools.io import export
from audiotools.io.loading import load_model, read_export

DEBUG_AUTOENCODER = OmegaConf.to_container(OmegaConf.load(
    CONFIG_DIR / "model" / "autoencoder" / "debug.yaml"))
TINY_CNN = {"channels": [4, 8], "pools": [[2, 2], [2, 2]], "n_mels": 16, "num_classes": 3}
MEL = {"sample_rate": 16000, "n_fft": 256, "hop_length": 160, "n_mels": 16, "num_frames": 32}
TRAINING_STACK = ("flashy", "dora", "hydra", "tensorboard", "wandb", "submitit",
                  "audiotools.solvers", "audiotools.sat", "audiotools.train")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_declares_parts_that_exist_and_agree(name):
    family = FAMILIES[name]
    solver = family.solver_class()
    assert solver.config_schema is family.config_class() is config_schema(name)
    assert issubclass(family.config_class(), SolverConfig)
    model_field = family.config_class().model_fields["model"].annotation
    assert model_field is import_object(family.model_schema)
    assert callable(import_object(family.build_model))
    assert hasattr(family.pipeline_class(), "from_model")
    assert (CONFIG_DIR / "solver" / name).is_dir()


def test_unknown_family_and_bad_target_are_clear():
    with pytest.raises(ConfigError, match="no such model family; known families: "
                                          "autoencoder, classifier, diffusion, musicgen"):
        get_family("vocoder")
    with pytest.raises(ImportError, match="has no attribute 'Nope'"):
        import_object("audiotools.families:Nope")


def _autoencoder_export(path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = FAMILIES["autoencoder"].new_model(DEBUG_AUTOENCODER, "test")
    export.write(path, export.Export("autoencoder", DEBUG_AUTOENCODER,
                                     {"model": model.state_dict()}, sig="abc", epoch=3))
    return path, model


def _cnn_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return FAMILIES["classifier"].new_model(TINY_CNN, "test").state_dict()


def _write_v1(path: Path, weights: dict[str, torch.Tensor], config: dict, info: dict) -> Path:
    """An export as format 1 wrote it (before families): no family or model keys."""
    save_file({f"model.{k}": v.contiguous() for k, v in weights.items()}, str(path), metadata={
        "format": "audiotools.export/1", "config": json.dumps(config), "sig": "old",
        "epoch": "5", "modules": json.dumps(["model"]), "info": json.dumps(info)})
    return path


def test_export_carries_family_model_and_format_version(tmp_path):
    path, model = _autoencoder_export(tmp_path / "ae.safetensors")
    assert export.export_version(path) == export.VERSION == 2
    read = export.read(path)
    assert (read.family, read.model, read.sig, read.epoch) == (
        "autoencoder", DEBUG_AUTOENCODER, "abc", 3)
    pipeline = audiotools.load(path)
    assert isinstance(pipeline, AutoencoderPipeline) and not pipeline.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(pipeline.model.state_dict()[key], value)
    with pytest.raises(CheckpointError, match="exists"):
        export.write(path, read)


def test_format_1_exports_still_load(tmp_path):
    ae = FAMILIES["autoencoder"].new_model(DEBUG_AUTOENCODER, "test")
    old_ae = _write_v1(tmp_path / "ae.safetensors", ae.state_dict(),
                       {"solver": "autoencoder", "model": {"ignored": True}},
                       {"family": "autoencoder", "model": DEBUG_AUTOENCODER})
    loaded = load_model(old_ae)
    assert loaded.family.name == "autoencoder" and loaded.export.epoch == 5
    old_cnn = _write_v1(tmp_path / "cnn.safetensors", _cnn_weights(), {"solver": "classifier"},
                        {"class_names": ["a", "b", "c"], "model_kwargs": TINY_CNN, "mel": MEL})
    classifier = audiotools.load(old_cnn)
    assert isinstance(classifier, ClassifierPipeline)
    assert classifier.class_names == ["a", "b", "c"]


def test_newer_format_unknown_family_and_wrong_family_are_refused(tmp_path):
    newer = tmp_path / "newer.safetensors"
    save_file({"model.x": torch.zeros(1)}, str(newer), metadata={"format": "audiotools.export/9"})
    with pytest.raises(CheckpointError, match="format 9 by a newer audiotools"):
        audiotools.load(newer)
    path = tmp_path / "odd.safetensors"
    export.write(path, export.Export("vocoder", {}, {"model": {}}))
    with pytest.raises(ConfigError, match="family='vocoder': no such model family"):
        audiotools.load(path)
    ae, _ = _autoencoder_export(tmp_path / "ae.safetensors")
    with pytest.raises(CheckpointError, match="is an autoencoder model; this needs a classifier"):
        load_model(ae, family="classifier")
    with pytest.raises(CheckpointError, match="needs no sat_model_config"):
        audiotools.load(ae, sat_model_config={"model_type": "autoencoder"})


def test_missing_and_unreadable_sources_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        audiotools.load(tmp_path / "missing.safetensors")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a model audiotools can read.*stable-audio"):
        audiotools.load(text)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_export(str(tmp_path / "xp_folder_that_is_not_there.th"))


def test_classifier_pipeline_ranks_a_clip_as_its_file(tmp_path):
    from audiotools.data.audio import audio_write
    path = tmp_path / "cnn.safetensors"
    export.write(path, export.Export("classifier", TINY_CNN, {"model": _cnn_weights()},
                                     {"class_names": ["a", "b", "c"], "mel": MEL}))
    classifier = audiotools.load(path)
    clip = torch.sin(torch.arange(8000) / 8000 * 2 * torch.pi * 440)[None] * 0.5
    wav = audio_write(tmp_path / "clip.wav", clip, 16000)
    from_clip = classifier.classify(clip, 16000)
    from_file = classifier.classify_file(wav)
    assert [name for name, _ in from_clip] == [name for name, _ in from_file]
    assert sum(p for _, p in from_clip) == pytest.approx(1.0, abs=1e-5)
    stereo_44k = torch.cat([clip, clip]).repeat_interleave(2, dim=1)  # 32 kHz stereo
    assert classifier.classify(stereo_44k, 32000)[0][0] == from_clip[0][0]


def test_inference_imports_nothing_of_the_training_stack(tmp_path):
    path, _ = _autoencoder_export(tmp_path / "ae.safetensors")
    code = f"""
import sys, torch, audiotools
pipeline = audiotools.load({str(path)!r})
audio, rate = pipeline.reconstruct(torch.zeros(2, 22050), 22050, chunk_seconds=None)
assert audio.shape == (2, 22050) and rate == 22050
print(sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_STACK!r}
             or m.startswith({TRAINING_STACK!r})))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
