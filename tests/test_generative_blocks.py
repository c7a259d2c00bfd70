"""The generative building blocks used by real callers: a tiny latent model and a tiny token
model (tests/toy/generative.py) trained through `dora run` on data `audiotools pre-encode`
wrote, with a frozen codec and conditioners from the items' metadata; their checkpoints
record the codec instead of copying it, and resuming refuses a codec that changed."""
from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from audiotools.cli import main as cli
from audiotools.data.audio import audio_write
from audiotools.data.manifest import write_manifest
from audiotools.environment import CONFIG_DIR
from audiotools.errors import CheckpointError, ConfigError
from audiotools.families import FAMILIES
from audiotools.io import export
from tests.conftest import dora_command
from tests.solvers.helpers import build, make_xp, train

VAE = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/autoencoder/debug.yaml"))
RVQ = {**VAE, "bottleneck": {"type": "rvq", "num_quantizers": 2, "codebook_size": 16,
                             "kmeans_init": False}}


def _codec(path, section, seed=0):
    torch.manual_seed(seed)
    model = FAMILIES["autoencoder"].new_model(section, "test")
    path.unlink(missing_ok=True)
    return export.write(path, export.Export("autoencoder", section,
                                            {"model": model.state_dict()}))


@pytest.fixture
def music(tmp_path):
    """Four labelled clips of 1.5 s and their manifests (train = all, valid, generate)."""
    entries = []
    (tmp_path / "audio").mkdir()
    for number in range(4):
        time = torch.arange(24000) / 16000
        wave = 0.3 * torch.sin(2 * torch.pi * (220 * (number + 1)) * time)[None]
        path = audio_write(tmp_path / f"audio/{number}.wav", wave, 16000)
        entries.append({"path": str(path), "duration": 1.5, "sample_rate": 16000,
                        "channels": 1, "meta": {"label": f"tone{number}"}})
    for split, chosen in (("train", entries), ("valid", entries[:2]), ("generate", entries[2:])):
        write_manifest(chosen, tmp_path / f"{split}.jsonl")
    dset = tmp_path / "config/dset/tones.yaml"
    dset.parent.mkdir(parents=True)
    dset.write_text("\n".join(f"{split}:\n  manifest: {tmp_path / f'{split}.jsonl'}"
                              for split in ("train", "valid", "generate")) + "\n")
    return tmp_path


def _pre_encode(music, codec, monkeypatch, name):
    with monkeypatch.context() as patched:  # the dset `tones` lives in the test's tree
        patched.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{music / 'config'}")
        assert cli(["pre-encode", str(codec), "tones", str(music / name)]) == 0
    return music / name


@pytest.mark.slow
def test_latent_and_token_models_train_on_pre_encoded_data_through_dora(
        music, dora_dir, monkeypatch):
    vae = _codec(music / "vae.safetensors", VAE)
    latents = _pre_encode(music, vae, monkeypatch, "latents")
    args = ["solver=latent_toy/debug", f"codec.source={vae}", f"dataset.pre_encoded={latents}"]
    first = dora_command("run", *args)
    assert "Frozen codec:" in first.stderr and "Valid Summary | Epoch 2" in first.stderr
    [folder] = (dora_dir / "xps").iterdir()
    state = torch.load(folder / "checkpoint.th", weights_only=True)
    frozen = state["frozen"]["codec"]
    assert frozen["source"] == str(vae) and frozen["stats"] is not None
    assert frozen["identity"] == json.loads((latents / "codec.json").read_text())["identity"]
    assert not any(key.startswith("codec") for key in state["best_state"])  # not copied
    assert sorted(state["best_state"]) == ["conditioners", "model"]
    assert list((folder / "outputs").glob("generate_2/*.wav"))  # decoded through the codec
    evaluate = json.loads((folder / "history.json").read_text())[-1]["evaluate"]
    assert set(evaluate) >= {"fd", "fd_heldout_real", "fd_white_noise", "fd_pink_noise"}
    # Held-out tones are nearer the valid tones than noise is (the metric's own sanity).
    assert evaluate["fd_heldout_real"] < evaluate["fd_white_noise"]
    again = dora_command("run", *args)
    assert "All 2 epochs are done" in again.stderr

    rvq = _codec(music / "rvq.safetensors", RVQ)
    tokens = _pre_encode(music, rvq, monkeypatch, "tokens")
    result = dora_command("run", "solver=token_toy/debug", f"codec.source={rvq}",
                          f"dataset.pre_encoded={tokens}")
    assert "Valid Summary | Epoch 2" in result.stderr
    [token_xp] = [p for p in (dora_dir / "xps").iterdir() if p != folder]
    history = json.loads((token_xp / "history.json").read_text())
    # Cross-entropy over 16 codes: finite and below guessing (log 16 = 2.77) after training.
    assert 0 < history[-1]["valid"]["loss"] < 2.77


def test_data_of_another_codec_or_kind_is_refused(music, dora_dir, monkeypatch):
    vae = _codec(music / "vae.safetensors", VAE)
    latents = _pre_encode(music, vae, monkeypatch, "latents")
    other = _codec(music / "other.safetensors", VAE, seed=5)
    with pytest.raises(Exception, match="encoded by another codec"):
        build(make_xp("solver=latent_toy/debug", f"codec.source={other}",
                      f"dataset.pre_encoded={latents}"))
    with pytest.raises(Exception, match="continuous latents"):
        build(make_xp("solver=token_toy/debug", f"codec.source={vae}",
                      f"dataset.pre_encoded={latents}"))
    # Tokens to a latent model: it said they held no statistics, or failed in its first step.
    rvq = _codec(music / "rvq.safetensors", RVQ)
    tokens = _pre_encode(music, rvq, monkeypatch, "tokens")
    (tokens / "evaluate.jsonl").write_text((tokens / "valid.jsonl").read_text())  # the recipe's
    with pytest.raises(ConfigError, match="dataset.train: pre-encoded tokens, and this family "
                                          "trains on latents"):
        build(make_xp("solver=diffusion/debug_latent", f"codec.source={rvq}",
                      f"dataset.pre_encoded={tokens}"))


def test_resuming_with_a_changed_codec_is_refused(music, dora_dir):
    codec = _codec(music / "vae.safetensors", VAE)
    args = ["solver=latent_toy/debug", f"codec.source={codec}", "codec.normalize=false",
            "dataset.source=files", f"+dataset.train.manifest={music / 'train.jsonl'}",
            f"+dataset.valid.manifest={music / 'valid.jsonl'}",
            f"+dataset.generate.manifest={music / 'generate.jsonl'}",
            "+dataset.sample_rate=16000", "+dataset.channels=1", "optim.epochs=1"]
    trained = train(*args)  # audio encoded on the fly
    assert trained.frozen["codec"]["identity"]
    _codec(codec, VAE, seed=9)  # the same path now holds other weights
    solver = build(make_xp(*args))
    with pytest.raises(CheckpointError, match="trained with codec=.*now holds other weights"):
        solver.restore()
    solver.close()


def test_resuming_on_data_that_normalises_otherwise_is_refused(music, dora_dir, monkeypatch):
    """Pre-encoded data measured again (another train split) changed the latents' statistics
    under a resumed XP without a word: it trained on two normalisations."""
    vae = _codec(music / "vae.safetensors", VAE)
    latents = _pre_encode(music, vae, monkeypatch, "latents")
    args = ["solver=latent_toy/debug", f"codec.source={vae}", f"dataset.pre_encoded={latents}",
            "optim.epochs=1"]
    assert train(*args).frozen["codec"]["stats"]
    codec_file = latents / "codec.json"
    recorded = json.loads(codec_file.read_text())
    recorded["stats"]["mean"][0] += 0.01
    codec_file.write_text(json.dumps(recorded))
    solver = build(make_xp(*args))
    with pytest.raises(CheckpointError, match=r"latents normalised by mean\[0\]=.*the data "
                                              r"\(pre-encoded statistics, or the train split\) "
                                              r"changed"):
        solver.restore()
    solver.close()


def test_pre_encoded_items_whose_audio_is_gone_are_refused_before_training(
        music, dora_dir, monkeypatch):
    """Evaluate reads the audio the items were encoded from: latents moved to another
    machine trained their epochs and then stopped at the first evaluate, every rerun again."""
    vae = _codec(music / "vae.safetensors", VAE)
    latents = _pre_encode(music, vae, monkeypatch, "latents")
    (latents / "evaluate.jsonl").write_text((latents / "valid.jsonl").read_text())
    (music / "audio" / "1.wav").unlink()
    with pytest.raises(ConfigError, match=r"dataset.evaluate: evaluate reads the audio these "
                                          r"pre-encoded items were encoded from, and .*1.wav is "
                                          r"missing"):
        build(make_xp("solver=diffusion/debug_latent", f"codec.source={vae}",
                      f"dataset.pre_encoded={latents}", "+conditioners.ensemble.default=piano"))
