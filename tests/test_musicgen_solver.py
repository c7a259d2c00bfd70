"""The MusicGen solver as a user runs it: the debug recipe through `dora run` (train, valid,
evaluate with cross-entropy and generation metrics, generate with continuations), pre-encoded
tokens, exact resume, export -> `audiotools.load` -> MusicGenPipeline (generate, continue_),
the full-size recipes, DDP, and bad input refused with one error naming the key or file."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torch import nn

import audiotools
from audiotools.cli import main as cli
from audiotools.conditioning import ConditionerSet
from audiotools.data.audio import audio_info
from audiotools.errors import ConfigError, NonFiniteLossError
from audiotools.families import FAMILIES
from audiotools.inference.musicgen import MusicGenPipeline
from audiotools.models.lm import LMModel, build_lm, musicgen_small
from tests.conftest import dora_command
from tests.solvers.helpers import (
    AUTOENCODER,
    assert_resume_matches_uninterrupted,
    build,
    make_xp,
    tiny_codec,
    train,
    write_tones_dset,
)
from tests.test_families import TRAINING_STACK
from tests.test_lm_model import AUDIOCRAFT_MUSICGEN_SMALL_PARAMETERS

QUIET = ["evaluate.every=0", "generate.every=0"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def codec(tmp_path):
    return tiny_codec(tmp_path / "rvq.safetensors")


def _debug(codec, *overrides):
    return ["solver=musicgen/debug", f"codec.source={codec}", *overrides]


def _history(folder):
    return json.loads((folder / "history.json").read_text())


@pytest.mark.slow
def test_debug_recipe_runs_every_stage_through_dora(codec, dora_dir):
    dora_command("run", *_debug(codec))
    [folder] = (dora_dir / "xps").iterdir()
    history = _history(folder)
    assert len(history) == 2 and set(history[1]) == {"train", "valid", "evaluate", "generate"}
    valid = history[1]["valid"]
    assert valid["ce"] == pytest.approx((valid["ce_q0"] + valid["ce_q1"]) / 2, rel=1e-5)
    assert valid["ppl_q1"] == pytest.approx(math.exp(valid["ce_q1"]), rel=1e-5)
    assert history[1]["train"]["ce"] < math.log(16)  # it learns: below chance (16 codes)
    evaluate = history[1]["evaluate"]
    assert {"ce", "ppl", "ce_q0", "ppl_q1", "fd", "fd_heldout_real", "fd_via_codec",
            "fd_white_noise", "fd_pink_noise"} <= evaluate.keys()
    assert evaluate["fd_via_codec"] != evaluate["fd_heldout_real"]
    state = torch.load(folder / "checkpoint.th", weights_only=True)
    assert sorted(state["best_state"]) == ["conditioners", "model"] and "ema.model" in state

    samples = folder / "samples" / "2"
    records = json.loads((samples / "conditions.json").read_text())
    assert [(r["audio"], r["cfg_scale"]) for r in records] == [
        (f"{index:03d}_cfg{scale:g}{kind}.wav", scale) for scale in (1.0, 3.0)
        for kind in ("", "_continued") for index in range(2)]
    for record in records:
        info = audio_info(samples / record["audio"])
        assert (info.sample_rate, info.channels, info.frames) == (16000, 1, 16000)
        assert (samples / record["spectrogram"]).stat().st_size > 0
        assert record["top_k"] == 8 and record["duration"] == 1.0
    assert records[0]["conditions"] == {"ensemble": "brass quartet", "seconds_total": 8.0}
    assert records[2]["prompt_seconds"] == pytest.approx(62 / 250)
    assert records[2]["source"]["path"].endswith(".ogg")


def test_resume_after_an_interruption_equals_an_uninterrupted_run(codec, dora_dir, monkeypatch):
    args = _debug(codec, *QUIET)
    assert_resume_matches_uninterrupted(monkeypatch, dora_dir, *args,
                                        names=("model", "conditioners", "ema.model"))


def test_an_fsq_codec_gives_the_tokens_too(tmp_path, dora_dir):
    fsq = tiny_codec(tmp_path / "fsq.safetensors",
                 {**AUTOENCODER, "bottleneck": {"type": "fsq", "levels": [5, 3]}})
    solver = train(*_debug(fsq, "optim.epochs=1", "model.num_codebooks=1",
                           "model.cardinality=15", *QUIET))
    assert solver.codec.cardinality == 15
    assert {"ce", "ce_q0", "ppl_q0"} <= solver.history[0]["valid"].keys()


@pytest.fixture
def tones(tmp_path, codec, monkeypatch):
    """Six labelled 1.5 s tones (one per ensemble) as a dset `tones` in the test's config tree,
    and their tokens pre-encoded by the tiny RVQ codec."""
    write_tones_dset(tmp_path)
    with monkeypatch.context() as patched:
        patched.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'config'}")
        assert cli(["pre-encode", str(codec), "tones", str(tmp_path / "tokens")]) == 0
    return tmp_path


def test_pre_encoded_tokens_export_generate_reproducibly_and_continue(tones, codec, dora_dir,
                                                                      tmp_path):
    solver = train(*_debug(codec, "optim.epochs=1", "dataset.source=pre_encoded",
                           f"+dataset.pre_encoded={tones / 'tokens'}", *QUIET))
    assert math.isfinite(solver.history[0]["valid"]["ce"])
    out = tmp_path / "lm.safetensors"
    assert cli(["export", str(solver.folder), str(out)]) == 0
    pipeline = audiotools.load(out)
    assert isinstance(pipeline, MusicGenPipeline) and pipeline.export.family == "musicgen"
    assert not pipeline.model.training and pipeline.defaults["top_k"] == 8
    piano = {"ensemble": "piano", "seconds_total": 1.0}
    audio, rate = pipeline.generate(piano, duration=0.3, seed=3, cfg_scale=3.0)
    assert rate == 16000 and audio.shape == (1, 4800) and torch.isfinite(audio).all()
    assert torch.equal(audio, pipeline.generate(piano, duration=0.3, seed=3, cfg_scale=3.0)[0])
    assert not torch.equal(audio, pipeline.generate(piano, duration=0.3, seed=4,
                                                    cfg_scale=3.0)[0])
    steps = []
    batch, _ = pipeline.generate([piano, {"ensemble": None, "seconds_total": None}], 0.1,
                                 callback=lambda step, total: steps.append((step, total)))
    assert batch.shape == (2, 1, 1600) and steps[-1] == (26, 26)  # 25 frames + 1 delay

    clip = 0.3 * torch.sin(2 * math.pi * 330 * torch.arange(8000) / 16000)[None]
    prompt = pipeline.encode(clip, 16000)
    tokens = pipeline.generate_tokens(piano, 200, prompt=prompt, seed=1)
    assert tokens.shape == (1, 2, 200) and torch.equal(tokens[..., :125], prompt)
    continued, rate = pipeline.continue_(clip, 16000, 0.3, piano, seed=1)
    assert continued.shape == (1, 8000 + 4800) and rate == 16000
    resampled, _ = pipeline.continue_(clip[:, ::2], 8000, 0.3, piano, seed=1)
    assert resampled.shape == continued.shape

    code = f"""
import sys, audiotools
pipeline = audiotools.load({str(out)!r})
audio, rate = pipeline.generate(duration=0.1)
assert audio.shape == (1, 1600) and rate == 16000
print(sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_STACK!r}
             or m.startswith({TRAINING_STACK!r})))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"

    with pytest.raises(ConfigError, match=r"the prompt is 0.5 s, longer than "
                                          r"max_duration=0.4 s \(the XP's generate.max_duration;"
                                          r" `--max-duration S` or max_duration=S raises it"):
        MusicGenPipeline(pipeline.model, pipeline.conditioners, pipeline.codec,
                         {**pipeline.defaults, "max_duration": 0.4}).continue_(
            clip, 16000, 0.1, piano)
    with pytest.raises(ConfigError, match=r"duration is 31 s, longer than max_duration=30"):
        pipeline.generate(piano, 31.0)
    assert pipeline.generate(piano, 0.3, max_duration=0.3)[0].shape[-1] == 4800  # raised or
    with pytest.raises(ConfigError, match=r"max_duration=0.2 s"):  # lowered by the call
        pipeline.continue_(clip[..., :1600], 16000, 0.2, piano, max_duration=0.2)
    with pytest.raises(ConfigError, match=r"max_duration=0: give the longest clip"):
        pipeline.generate(piano, 0.1, max_duration=0)
    # A prompt ending inside a frame, continued to exactly max_duration: generate_tokens
    # samples one frame past it, which its frame limit refused.
    rate = pipeline.codec.frame_rate
    prompt_seconds = (math.floor(0.1 * rate) + 0.5) / rate
    added = 0.25 / rate  # ends inside the prompt's last frame: one more is sampled
    longer, _ = pipeline.continue_(clip[..., :round(prompt_seconds * 16000)], 16000, added,
                                   piano, max_duration=prompt_seconds + added)
    assert longer.shape[-1] == round(prompt_seconds * 16000) + round(added * 16000)
    with pytest.raises(ConfigError, match="top_k=-1"):
        pipeline.generate(piano, 0.1, top_k=-1)

    first = json.loads((tones / "tokens/train.jsonl").read_text().splitlines()[0])
    path = tones / "tokens" / first["file"]  # a corrupted file of the first tone
    path.unlink()
    save_file({"tokens": torch.full((2, 375), 16)}, str(path))
    with pytest.raises(ConfigError, match=r"dataset.train: .*tokens.*\.safetensors \(of .*0.wav\) "
                                          r"holds tokens in \[16, 16\], outside \[0, 16\)"):
        build(make_xp(*_debug(codec, "dataset.source=pre_encoded",
                              f"+dataset.pre_encoded={tones / 'tokens'}", *QUIET)))


def test_bad_config_is_one_error_naming_the_key(codec, dora_dir):
    from audiotools.train import main
    cases = {
        ("codec.source=null",): r"codec.source",
        ("codec.normalize=true",): r"codec.normalize=false",
        ("model.fuser.cross=[seconds_total,bpm]",): r"model.fuser names \['bpm'\], which are "
                                                    r"not conditioners",
        ("model.fuser.cross=[]",): r"conditioners \['seconds_total'\] feed nothing",
        ("conditioning.dim=16",): r"conditioning.dim=16: .* model.dim=32",
        ("generate.top_p=0",): r"generate.top_p",
        ("generate.prompt_fraction=1.0",): r"generate.prompt_fraction",
    }
    for overrides, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            main.get_xp(_debug(codec, *overrides))
    assert not (dora_dir / "xps").exists() or not any((dora_dir / "xps").iterdir())


def test_input_the_model_cannot_take_is_refused_before_training(codec, tmp_path, dora_dir,
                                                                 caplog):
    vae = tiny_codec(tmp_path / "vae.safetensors", AUTOENCODER)
    with pytest.raises(ConfigError, match=r"vae.safetensors: this codec has continuous latents "
                                          r"\(bottleneck 'vae'\); a token model needs a "
                                          r"discrete one"):
        build(make_xp(*_debug(vae)))
    with pytest.raises(ConfigError, match=r"model.num_codebooks=4 but the codec \(.*rvq"
                                          r".safetensors\) has num_codebooks 2: set "
                                          r"model.num_codebooks=2"):
        build(make_xp(*_debug(codec, "model.num_codebooks=4")))
    with pytest.raises(ConfigError, match=r"model.cardinality=2048 but the codec .* has "
                                          r"cardinality 16"):
        build(make_xp(*_debug(codec, "model.cardinality=2048")))
    with pytest.raises(ConfigError, match=r"dataset.train: conditioner 'ensemble': item .*\.ogg "
                                          r"has no 'instrument_family'"):
        build(make_xp(*_debug(codec, "+conditioners.ensemble.key=instrument_family")))

    # What generate and evaluate would sample past generate.max_duration (after training).
    with pytest.raises(ConfigError, match=r"generate.duration \(else the generate split's "
                                          r"segment_duration\) is 1 s, longer than "
                                          r"generate.max_duration=0.5 s"):
        build(make_xp(*_debug(codec, "generate.max_duration=0.5")))
    with pytest.raises(ConfigError, match=r"the evaluate split's segment_duration is 1 s"):
        build(make_xp(*_debug(codec, "generate.max_duration=0.5", "generate.every=0")))

    solver = build(make_xp(*_debug(codec, *QUIET, "model.positional_embedding=rope",
                                   "model.positional_scale=2.0", "generate.top_k=16")))
    assert "generate.top_k=16: not read, it keeps all of the model.cardinality=16 codes" \
        in caplog.text
    assert "model.positional_scale=2.0: not read, rotary positions" in caplog.text
    info = [{"path": "bad.safetensors", "seek_time": 0.0, "seconds_start": 0.0,
             "seconds_total": 1.0, "meta": {"ensemble": "piano"}}]
    batch = {"tokens": torch.full((1, 2, 5), 16), "padding_mask": torch.ones(1, 5, dtype=bool),
             "info": info}
    with pytest.raises(ConfigError, match=r"bad.safetensors: tokens in \[16, 16\], outside "
                                          r"\[0, 16\) \(model.cardinality=16\)"):
        solver.run_step(0, batch, {})
    solver.close()


@pytest.mark.parametrize("pattern", ["parallel", "unroll", "coarse_first"])
def test_every_pattern_can_be_chosen_from_the_command_line(codec, dora_dir, pattern):
    """The default recipe's `delays: null` merges into whichever type is chosen."""
    from audiotools.families import validate_config
    from audiotools.train import main
    settings = validate_config(main.get_xp(_debug(codec, f"model.pattern.type={pattern}")).cfg)
    assert settings.model.pattern.type == pattern
    if pattern != "coarse_first":
        with pytest.raises(ConfigError, match="model.pattern.delays"):
            main.get_xp(_debug(codec, f"model.pattern.type={pattern}",
                               "model.pattern.delays=[0,1]"))


def test_non_finite_loss_stops_naming_the_step(codec, dora_dir, monkeypatch):
    xp = make_xp(*_debug(codec, *QUIET))
    solver = build(xp)
    original = LMModel.predict

    def diverge_in_epoch_two(model, codes, conditions=None):
        logits = original(model, codes, conditions)
        return logits * float("nan") if solver.epoch == 2 else logits

    monkeypatch.setattr(LMModel, "predict", diverge_in_epoch_two)
    with xp.enter(), pytest.raises(NonFiniteLossError, match="epoch 2, step 1"):
        solver.run()
    assert len(torch.load(xp.folder / "checkpoint.th", weights_only=True)["history"]) == 1


def test_base_recipe_validates_and_names_the_codec_to_train(dora_dir):
    from audiotools.train import main
    xp = main.get_xp(["solver=musicgen/base"])
    assert xp.cfg.codec.source == "//recipe/autoencoder/rvq_base"
    assert (xp.cfg.generate.top_k, list(xp.cfg.generate.cfg_scale)) == (250, [1.0, 3.0])
    with torch.device("meta"):
        model = build_lm(OmegaConf.to_container(xp.cfg.model, resolve=True))
    assert (model.num_codebooks, model.cardinality, model.pattern.name) == (4, 1024, "delay")
    with pytest.raises(ConfigError, match=r"//recipe/autoencoder/rvq_base is XP \w+, which has "
                                          r"not been trained here.*dora run "
                                          r"solver=autoencoder/rvq_base"):
        build(make_xp("solver=musicgen/base"))


def test_small_recipe_is_the_musicgen_small_architecture(dora_dir, monkeypatch):
    from audiotools.train import main
    xp = main.get_xp(["solver=musicgen/small", "codec.source=compression_state_dict.bin"])
    section = OmegaConf.to_container(xp.cfg.model, resolve=True)
    # T5-base is frozen and not a parameter; stand in for it with its width.
    encoder = nn.Module()
    encoder.config = SimpleNamespace(d_model=768)
    monkeypatch.setattr("audiotools.conditioning.text.load_t5", lambda model: (None, encoder))
    with torch.device("meta"):
        model = build_lm(section)
        conditioners = ConditionerSet(OmegaConf.to_container(xp.cfg.conditioners),
                                      xp.cfg.conditioning.dim)
    count = sum(p.numel() for p in model.parameters())
    count += sum(p.numel() for p in conditioners.trainable_parameters())
    assert count == AUDIOCRAFT_MUSICGEN_SMALL_PARAMETERS
    assert FAMILIES["musicgen"].model_config(section, "test") == musicgen_small()


@pytest.mark.slow
def test_ddp_trains_what_one_process_trains(codec, tmp_path):
    """Dropout off: the two ranks' halves of each global batch give the single process's
    gradients up to the order of float sums (CFG dropout draws differ per rank, so none).
    `dataset.batch_size=2` and 3 generate items make evaluate 2 batches and generate 2 (of 2
    and 1 sets): each rank generates its share of both (evaluate's cross-entropy too) and
    rank 0 gathers them and writes, once."""
    args = [*_debug(codec), "conditioning.joint_dropout=0", "conditioners.ensemble.dropout=0",
            "dataset.batch_size=2", "generate.num_samples=3", "dataset.generate.num_samples=3"]
    runs, folders = {}, {}
    for name, command in (("single", ["run"]), ("ddp", ["run", "-d", "--ddp_workers", "2"])):
        dora_command(*command, *args, env={"AUDIOTOOLS_DORA_DIR": str(tmp_path / name)})
        [folders[name]] = (tmp_path / name / "xps").iterdir()
        runs[name] = _history(folders[name])
    # Valid and evaluate score the EMA weights, which every rank must start from rank 0's.
    for stage in ("train", "valid", "evaluate"):
        assert [epoch[stage]["ce"] for epoch in runs["ddp"] if stage in epoch] == pytest.approx(
            [epoch[stage]["ce"] for epoch in runs["single"] if stage in epoch], rel=1e-4)
    assert {"ce", "fd", "fd_heldout_real"} <= runs["ddp"][1]["evaluate"].keys()
    # 3 sets x 2 CFG scales x (from nothing, continued): not half, not double.
    assert runs["ddp"][1]["generate"]["samples"] == 12
    samples = {name: folder / "samples" / "2" for name, folder in folders.items()}
    assert len(list(samples["ddp"].glob("*.wav"))) == 12
    records = json.loads((samples["ddp"] / "conditions.json").read_text())
    assert records == json.loads((samples["single"] / "conditions.json").read_text())
    assert [(r["audio"], r["seed"]) for r in records[:6]] == [
        (f"{index:03d}_cfg1{kind}.wav", index // 2 * 2) for kind in ("", "_continued")
        for index in range(3)]
    log = (folders["ddp"] / "solver.log.0").read_text()
    assert "Evaluate: 4 clips in 2 batches, generated by rank 0: 1, 1: 1." in log
    assert "Generate: 3 clips in 2 batches, generated by rank 0: 1, 1: 1." in log
    assert log.count("Generation report, epoch 2") == 1
