"""The diffusion solver as a user runs it: every debug recipe through `dora run` (train, valid
at fixed noise levels, evaluate, generate), latent diffusion on data `audiotools pre-encode`
wrote, exact resume, export -> `audiotools.load` -> DiffusionPipeline (generate, inpaint,
continue), the full-size recipes, and bad input refused before training."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

import audiotools
from audiotools.cli import main as cli
from audiotools.data.audio import audio_info
from audiotools.environment import CONFIG_DIR, DATASETS_DIR
from audiotools.errors import CheckpointError, ConfigError, NonFiniteLossError
from audiotools.families import FAMILIES
from audiotools.inference.diffusion import DiffusionPipeline
from audiotools.io import export
from audiotools.models.diffusion import DiffusionModel, build_diffusion_model, preset
from tests.conftest import dora_command
from tests.solvers.helpers import (
    ENSEMBLES,
    assert_resume_matches_uninterrupted,
    build,
    make_xp,
    train,
    write_tones_dset,
)
from tests.test_diffusion_models import SAT_STABLE_AUDIO_DIT_PARAMETERS
from tests.test_families import TRAINING_STACK

VAE = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/autoencoder/debug.yaml"))
# A judge with the ensembles as classes (untrained: the accuracy path, not its value).
JUDGE_CNN = {"channels": [4], "pools": [[2, 2]], "n_mels": 16, "num_classes": len(ENSEMBLES)}
JUDGE_MEL = {"sample_rate": 16000, "n_fft": 256, "hop_length": 160, "n_mels": 16,
             "num_frames": 32}
QUIET = ["evaluate.every=0", "generate.every=0"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _history(folder):
    return json.loads((folder / "history.json").read_text())


def _judge(path):
    torch.manual_seed(0)
    model = FAMILIES["classifier"].new_model(JUDGE_CNN, "test")
    return export.write(path, export.Export("classifier", JUDGE_CNN, {"model": model.state_dict()},
                                            {"class_names": ENSEMBLES, "mel": JUDGE_MEL}))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["debug", "debug_cond", "debug_inpaint", "debug_autoencoder"])
def test_debug_recipe_runs_every_stage_through_dora(recipe, dora_dir, tmp_path):
    args = [f"solver=diffusion/{recipe}"]
    if recipe == "debug_cond":
        args += [f"evaluate.judge={_judge(tmp_path / 'judge.safetensors')}",
                 "evaluate.label=ensemble"]
    dora_command("run", *args)
    [folder] = (dora_dir / "xps").iterdir()
    history = _history(folder)
    assert len(history) == 2 and set(history[1]) == {"train", "valid", "evaluate", "generate"}
    valid = history[1]["valid"]
    levels = [valid[f"loss_t{level}"] for level in (0.1, 0.5, 0.9)]
    assert valid["loss"] == pytest.approx(sum(levels) / 3, rel=1e-5)
    evaluate = history[1]["evaluate"]
    assert {"fd", "fd_heldout_real", "fd_white_noise", "fd_pink_noise"} <= evaluate.keys()
    assert "fd_via_codec" not in evaluate  # on the audio itself: no codec to reconstruct with
    if recipe == "debug_cond":
        assert {"accuracy", "accuracy_heldout_real", "accuracy_white_noise"} <= evaluate.keys()
    if recipe == "debug_autoencoder":
        assert history[1]["train"]["kl"] > 0

    samples = folder / "samples" / "2"
    records = json.loads((samples / "conditions.json").read_text())
    scales = [1.0, 3.0] if recipe == "debug_cond" else [1.0]
    assert [(r["batch_index"], r["cfg_scale"]) for r in records] == [
        (index, scale) for scale in scales for index in range(2)]
    for record in records:
        info = audio_info(samples / record["audio"])
        assert (info.sample_rate, info.channels, info.frames) == (16000, 1, 16000)
        assert (samples / record["spectrogram"]).stat().st_size > 0
        assert record["seed"] == 0 and record["steps"] == 4 and record["duration"] == 1.0
    if recipe == "debug_cond":
        assert records[0]["conditions"] == {"ensemble": "brass quartet", "seconds_total": 8.0}
    assert len(list((folder / "outputs" / "generate_2").glob("*_spectrogram.png"))) == len(records)
    if recipe == "debug":
        assert "All 2 epochs are done" in dora_command("run", *args).stderr


def test_a_held_out_label_the_judge_does_not_know_stops_the_run_at_start(dora_dir, tmp_path):
    """The valid split's clips are judged as held-out real audio: a label the judge lacks
    there stopped the run at its first evaluate, after training."""
    shipped = DATASETS_DIR / "music_ensembles"
    lines = []
    for index, line in enumerate((shipped / "valid.jsonl").read_text().splitlines()):
        entry = json.loads(line)
        entry["path"] = str(shipped / entry["path"])
        if index == 0:
            entry["meta"]["ensemble"] = "kazoo band"
        lines.append(json.dumps(entry))
    manifest = tmp_path / "valid.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    xp = make_xp("solver=diffusion/debug", f"dataset.valid.manifest={manifest}",
                 f"evaluate.judge={_judge(tmp_path / 'judge.safetensors')}",
                 "evaluate.label=ensemble")
    with pytest.raises(ConfigError, match=r"the valid items hold \['kazoo band'\], which the "
                                          "judge .* does not know"):
        build(xp)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(dora_dir, monkeypatch):
    args = ["solver=diffusion/debug_cond", *QUIET]
    assert_resume_matches_uninterrupted(monkeypatch, dora_dir, *args,
                                        names=("model", "conditioners", "ema.model"))


def test_export_generates_reproducibly_inpaints_and_continues(dora_dir, tmp_path):
    solver = train("solver=diffusion/debug_inpaint", "optim.epochs=1", *QUIET)
    out = tmp_path / "inpaint.safetensors"
    assert cli(["export", str(solver.folder), str(out)]) == 0
    pipeline = audiotools.load(out)
    assert isinstance(pipeline, DiffusionPipeline) and pipeline.export.family == "diffusion"
    assert pipeline.codec is None and not pipeline.model.training
    audio, rate = pipeline.generate(duration=0.7, seed=3, steps=3)
    assert rate == 16000 and audio.shape == (1, round(0.7 * 16000))
    assert torch.equal(audio, pipeline.generate(duration=0.7, seed=3, steps=3)[0])
    assert not torch.equal(audio, pipeline.generate(duration=0.7, seed=4, steps=3)[0])
    steps = []
    pipeline.generate(duration=0.5, steps=3, callback=lambda step, total: steps.append(step))
    assert steps == [1, 2, 3]

    time = torch.arange(16000) / 16000
    clip = 0.3 * torch.sin(2 * math.pi * 330 * time)[None]
    inpainted, rate = pipeline.inpaint(clip, 16000, 0.25, 0.5, steps=3, seed=1)
    assert inpainted.shape == clip.shape and rate == 16000
    assert torch.equal(inpainted[:, :4000], clip[:, :4000])
    assert torch.equal(inpainted[:, 8000:], clip[:, 8000:])
    assert not torch.equal(inpainted[:, 4000:8000], clip[:, 4000:8000])
    continued, _ = pipeline.continue_(clip[:, :8000], 16000, 0.3, steps=3)
    assert continued.shape == (1, 8000 + 4800) and torch.equal(continued[:, :8000], clip[:, :8000])
    with pytest.raises(ConfigError, match="mask_start=0.5, mask_end=0.25"):
        pipeline.inpaint(clip, 16000, 0.5, 0.25)
    with pytest.raises(ConfigError, match="cfg_scale=3.0: this model has no conditioners"):
        pipeline.generate(cfg_scale=3.0)

    code = f"""
import sys, torch, audiotools
pipeline = audiotools.load({str(out)!r})
audio, rate = pipeline.generate(duration=0.25, steps=2)
assert audio.shape == (1, 4000) and rate == 16000
print(sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_STACK!r}
             or m.startswith({TRAINING_STACK!r})))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_exported_diffusion_autoencoder_reconstructs_clips_and_batches(dora_dir, tmp_path):
    solver = train("solver=diffusion/debug_autoencoder", "optim.epochs=1", *QUIET)
    out = tmp_path / "dae.safetensors"
    assert cli(["export", str(solver.folder), str(out)]) == 0
    pipeline = audiotools.load(out)
    time = torch.arange(8000) / 16000
    clip = 0.3 * torch.sin(2 * math.pi * 330 * time)[None]
    audio, rate = pipeline.reconstruct(clip, 16000, steps=2, seed=1)
    assert rate == 16000 and audio.shape == clip.shape and torch.isfinite(audio).all()
    assert torch.equal(audio, pipeline.reconstruct(clip, 16000, steps=2, seed=1)[0])
    batch, _ = pipeline.reconstruct(torch.stack([clip, -clip]), 16000, steps=2, seed=1)
    assert batch.shape == (2, *clip.shape)
    assert torch.allclose(batch[0], audio, atol=1e-5)  # the same noise per item, either way
    with pytest.raises(ConfigError, match="1 value sets of conditions for 2 clips"):
        pipeline.reconstruct(torch.stack([clip, clip]), 16000, [{}], steps=2)
    with pytest.raises(TypeError, match=r"^reconstruct\(\) got unexpected keyword argument"):
        pipeline.reconstruct(clip, 16000, step=2)
    with pytest.raises(ConfigError, match="a diffusion autoencoder decodes latents"):
        pipeline.generate(duration=0.5, steps=2)


@pytest.fixture
def tones(tmp_path, monkeypatch):
    """Six labelled 1.5 s clips (one per ensemble) with train/valid/evaluate/generate
    manifests, a dset `tones` in the test's config tree, a tiny VAE export, and its
    pre-encoded latents of every split."""
    write_tones_dset(tmp_path)
    torch.manual_seed(0)
    vae = FAMILIES["autoencoder"].new_model(VAE, "test")
    codec = export.write(tmp_path / "vae.safetensors",
                         export.Export("autoencoder", VAE, {"model": vae.state_dict()}))
    with monkeypatch.context() as patched:
        patched.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'config'}")
        assert cli(["pre-encode", str(codec), "tones", str(tmp_path / "latents")]) == 0
    return tmp_path


@pytest.mark.slow
def test_latent_diffusion_on_pre_encoded_latents_through_dora(tones, dora_dir):
    args = ["solver=diffusion/debug_latent", f"codec.source={tones / 'vae.safetensors'}",
            f"dataset.pre_encoded={tones / 'latents'}",
            f"model.network.io_channels={VAE['latent_dim']}"]
    result = dora_command("run", *args)
    assert "Frozen codec:" in result.stderr
    [folder] = (dora_dir / "xps").iterdir()
    state = torch.load(folder / "checkpoint.th", weights_only=True)
    assert state["frozen"]["codec"]["stats"] is not None
    assert sorted(state["best_state"]) == ["conditioners", "model"]
    evaluate = _history(folder)[1]["evaluate"]
    assert {"fd", "fd_heldout_real", "fd_via_codec"} <= evaluate.keys()
    assert evaluate["fd_via_codec"] != evaluate["fd_heldout_real"]
    records = json.loads((folder / "samples/2/conditions.json").read_text())
    assert [r["conditions"]["ensemble"] for r in records[:2]] == ENSEMBLES[4:]

    out = tones / "latent.safetensors"
    assert cli(["export", str(folder), str(out)]) == 0
    pipeline = audiotools.load(out)
    assert pipeline.codec.identity == state["frozen"]["codec"]["identity"]
    conditions = [{"ensemble": "piano", "seconds_total": 1.0},
                  {"ensemble": None, "seconds_total": None}]
    audio, rate = pipeline.generate(conditions, 0.5, seed=2, steps=2, cfg_scale=3.0)
    assert audio.shape == (2, 1, 8000) and rate == 16000 and torch.isfinite(audio).all()
    assert torch.equal(audio, pipeline.generate(conditions, 0.5, seed=2, steps=2,
                                                cfg_scale=3.0)[0])
    torch.manual_seed(5)  # other weights where the model's codec was
    other = FAMILIES["autoencoder"].new_model(VAE, "test")
    (tones / "vae.safetensors").unlink()
    export.write(tones / "vae.safetensors",
                 export.Export("autoencoder", VAE, {"model": other.state_dict()}))
    with pytest.raises(CheckpointError, match="now holds other weights"):
        audiotools.load(out)
    (tones / "vae.safetensors").unlink()  # the codec gone: said to be the model's codec
    with pytest.raises(CheckpointError, match=r"was trained on the codec .*vae.safetensors, "
                                              r"which cannot be loaded \(.*does not exist"):
        audiotools.load(out)


@pytest.mark.slow
def test_latent_diffusion_on_a_recipe_codec_encoding_audio_through_dora(dora_dir):
    """diffusion/base's path: a `//recipe/` codec found from inside `dora run`, audio encoded
    on the fly, latents normalised with statistics measured on training clips."""
    train("solver=autoencoder/debug")  # the XP //recipe/autoencoder/debug names
    result = dora_command("run", "solver=diffusion/debug_latent", "dataset.source=files",
                          "codec.source=//recipe/autoencoder/debug", "stats_clips=8",
                          f"model.network.io_channels={VAE['latent_dim']}")
    assert "measured on 8 training segments" in result.stderr
    [folder] = [path for path in (dora_dir / "xps").iterdir()
                if "diffusion" in (path / ".argv.json").read_text()]
    stats = torch.load(folder / "checkpoint.th", weights_only=True)["frozen"]["codec"]["stats"]
    assert len(stats["mean"]) == VAE["latent_dim"]
    assert {"fd", "fd_heldout_real"} <= _history(folder)[1]["evaluate"].keys()
    pipeline = audiotools.load(folder)
    assert pipeline.codec.stats.mean == stats["mean"]
    assert pipeline.generate({"ensemble": "piano", "seconds_total": 1.0}, 0.25,
                             steps=2)[0].shape == (1, 4000)


def test_data_in_another_format_than_the_codec_is_refused(tones, dora_dir):
    with pytest.raises(ConfigError, match=r"dataset.sample_rate=22050 \(split train\) but the "
                                          r"codec .* has sample_rate 16000"):
        build(make_xp("solver=diffusion/debug_latent", f"codec.source={tones / 'vae.safetensors'}",
                      "codec.normalize=false", "dataset.source=files",
                      "dataset.sample_rate=22050", "model.network.io_channels=8"))
    with pytest.raises(ConfigError, match=r"model.network.io_channels=4 but the model reads 8 "
                                          r"channels \(the codec's latent_dim\)"):
        build(make_xp("solver=diffusion/debug_latent", f"codec.source={tones / 'vae.safetensors'}",
                      f"dataset.pre_encoded={tones / 'latents'}", "model.network.io_channels=4"))


def test_what_the_stages_read_is_refused_before_training(dora_dir, caplog):
    """An embedder or generate condition the evaluate or generate stage would refuse stops the
    run when it starts, not after the first epoch's training."""
    cases = {("debug", "evaluate.embedder=bogus"): "embedder='bogus' is not known",
             ("debug", "evaluate.embedder=vggish:/nowhere/v.pth"): "VGGish weights",
             ("debug_cond", "+generate.conditions=[{ensemble: kazoo}]"):
                 r"generate.conditions\[0\]: ensemble='kazoo' is not valid",
             ("debug_cond", "+generate.conditions=[{seconds_total: 500}]"):
                 r"seconds_total=500 is not valid; seconds_total \(number in \[0, 16\]\)",
             # These failed after training, at the generate stage.
             ("debug", "generate.duration=0.00001"):
                 r"generate.duration \(else the generate split's segment_duration\)=1e-05: "
                 "less than one sample at 16000 Hz",
             ("debug", "generate.max_duration=0.5"):
                 r"generate.duration \(else the generate split's segment_duration\) is 1 s, "
                 "longer than generate.max_duration=0.5 s",
             ("debug", "generate.steps=20000"): "generate.steps = 20000: Input should be "
                                                "less than or equal to 10000",
             ("debug", "generate.cfg_scale=[1e39]"): r"generate.cfg_scale.0 = 1e\+39: Input "
                                                     "should be less than or equal to 1000"}
    for (recipe, override), message in cases.items():
        with pytest.raises((ConfigError, CheckpointError), match=message):
            build(make_xp(f"solver=diffusion/{recipe}", override))
    # A conditioner left out of a set takes its null condition, as the command line gives it
    # (seconds_total has no default): it failed at the generate stage, after training.
    solver = build(make_xp("solver=diffusion/debug_cond",
                           "+generate.conditions=[{ensemble: piano}]"))
    assert solver.generate()["samples"] == 2  # one set at CFG 1 and 3
    # An XP that generates past 300 s (made before the limit) keeps its own length as limit.
    long = build(make_xp("solver=diffusion/debug", "generate.duration=400"))
    assert long.max_duration == 400 and long.pipeline.setting("max_duration") == 400
    build(make_xp("solver=diffusion/debug", "generate.num_samples=5", "timesteps.mean=0.5"))
    assert "generate.num_samples=5: the generate split holds 2 items" in caplog.text
    assert "timesteps.mean=0.5: not read, timesteps.type=uniform does not use them" \
        in caplog.text


def test_an_export_samples_as_long_as_its_xp_did(dora_dir, tmp_path):
    """generate.duration null: the generate split's segment, in the XP and in its export."""
    solver = train("solver=diffusion/debug", "optim.epochs=1", *QUIET)
    # The recipe trains on 0.5 s segments and generates 1 s ones (its generate split's).
    assert solver.split_duration("train") == 0.5 and solver.generate_duration() == 1.0
    out = tmp_path / "debug.safetensors"
    assert cli(["export", str(solver.folder), str(out)]) == 0
    audio, rate = audiotools.load(out).generate(steps=1)
    assert audio.shape[-1] == rate


def test_bad_config_is_one_error_naming_the_key(dora_dir):
    from audiotools.train import main
    cases = {
        ("debug", "generate.cfg_scale=[-1.0]"): r"generate.cfg_scale",
        ("debug", "generate.steps=0"): r"generate.steps",
        ("debug", "generate.sampler=plms"): r"generate.sampler.*dpmpp_2m",
        ("debug", "generate.cfg_scale=[3.0]"): r"guidance needs conditioners",
        # Two scales that name their files alike wrote over each other's samples.
        ("debug_cond", "generate.cfg_scale=[2.0,2.0000001]"):
            r"generate.cfg_scale = \[2.0, 2.0000001\]: scale 2 appears twice as the sample "
            r"files name it",
        ("debug_cond", "model.cross_attention_cond_ids=[ensemble,bpm]"):
            r"model.cross_attention_cond_ids name \['bpm'\], which are not conditioners",
        ("debug_cond", "conditioning.dim=8"):
            r"conditioning.dim=8 does not fit the model: model.network.cond_token_dim=16 "
            r"\(expected 8\)",
        ("debug_cond", "+generate.conditions=[{bpm: 3}]"): r"generate.conditions\[0\] name",
        ("debug_inpaint", "inpainting.full=0.5"): r"must sum to 1",
        ("debug_autoencoder", "model.input_concat_ids=[]"): r"encoder_latents",
    }
    for (recipe, override), message in cases.items():
        with pytest.raises(ConfigError, match=message):
            main.get_xp([f"solver=diffusion/{recipe}", override])
    assert not (dora_dir / "xps").exists() or not any((dora_dir / "xps").iterdir())


def test_data_the_model_cannot_take_is_refused_before_training(dora_dir):
    with pytest.raises(ConfigError, match=r"dataset.train: conditioner 'ensemble': item .*\.ogg "
                                          r"has no 'instrument_family'"):
        build(make_xp("solver=diffusion/debug_cond",
                      "+conditioners.ensemble.key=instrument_family"))
    # A value the conditioner refuses: it stopped the run when its item was first drawn.
    with pytest.raises(ConfigError, match=r"dataset.train: conditioner 'ensemble': item .* "
                                          r"\(ensemble\) holds '.*', not one of the options "
                                          r"\['piano'\]"):
        build(make_xp("solver=diffusion/debug_cond", "conditioners.ensemble.options=[piano]"))
    with pytest.raises(ConfigError, match=r"dataset.segment_duration=0.5 \(split train\) is 8000 "
                                          r"frames .* not a multiple of 48 "
                                          r"\(model.network.patch_size=48\)"):
        build(make_xp("solver=diffusion/debug_cond", "model.network.patch_size=48"))
    # A diffusion autoencoder's latents stretch to the data by whole frames.
    with pytest.raises(ConfigError, match=r"8000 frames .* not a multiple of 192 \(model.network"
                                          r".patch_size=64, and the hop of model.encoder.encoder, "
                                          r"12\)"):
        build(make_xp("solver=diffusion/debug_autoencoder", "model.encoder.encoder.strides=[4,3]"))


def test_base_recipe_validates_and_names_the_codec_to_train(dora_dir):
    from audiotools.train import main
    xp = main.get_xp(["solver=diffusion/base"])
    assert xp.cfg.codec.source == "//recipe/autoencoder/magnitude_base"
    with pytest.raises(ConfigError, match=r"//recipe/autoencoder/magnitude_base is XP \w+, "
                                          r"which has not been trained here.*dora run "
                                          r"solver=autoencoder/magnitude_base"):
        build(make_xp("solver=diffusion/base"))


def test_stable_audio_recipe_is_stable_audio_open_architecture(dora_dir):
    from audiotools.train import main
    xp = main.get_xp(["solver=diffusion/stable_audio", "codec.source=vae.ckpt"])
    section = OmegaConf.to_container(xp.cfg.model, resolve=True)
    with torch.device("meta"):
        model = build_diffusion_model(section)
    assert model.config == preset("stable_audio")
    assert sum(p.numel() for p in model.parameters()) == SAT_STABLE_AUDIO_DIT_PARAMETERS


def test_non_finite_loss_stops_naming_the_step(dora_dir, monkeypatch):
    xp = make_xp("solver=diffusion/debug", *QUIET)
    solver = build(xp)
    original = DiffusionModel.forward

    def diverge_in_epoch_two(model, x, t, **inputs):
        output = original(model, x, t, **inputs)
        return output * float("nan") if solver.epoch == 2 else output

    monkeypatch.setattr(DiffusionModel, "forward", diverge_in_epoch_two)
    with xp.enter(), pytest.raises(NonFiniteLossError, match="epoch 2, step 1"):
        solver.run()
    assert len(torch.load(xp.folder / "checkpoint.th", weights_only=True)["history"]) == 1


def test_heldout_clips_are_the_valid_segments_that_hold_the_evaluate_duration(dora_dir):
    """A valid split cut into 0.5 s segments, clips of 8 s judged: only the segments that start
    a whole 8 s are read (the others would end at their file's end, shorter)."""
    solver = build(make_xp("solver=diffusion/debug_cond", "dataset.valid.num_samples=null"))
    try:
        every = solver._items("valid")
        whole = solver._heldout_items(8.0)
        assert len(every) == 16 * len(whole) and len(whole) == 24  # 24 clips of 8 s
        assert {item["seconds_start"] for item in whole} == {0.0}
        assert solver._heldout_items(0.5) == every
        assert solver._heldout_items(100.0) == every  # none holds it: all of them
    finally:
        solver.close()
