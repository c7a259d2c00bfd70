"""`audiotools generate`, `continue` and `inpaint` as a user runs them, on a tiny conditional
diffusion model and a tiny MusicGen LM trained in-process: exact durations, seeds that
reproduce, typed conditions, batches equal to single runs, and every mistake one error naming
the option (exit 2, nothing written)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audiotools
from audiotools.cli import main as cli
from audiotools.data.audio import audio_read, audio_write
from audiotools.errors import ConfigError
from audiotools.inference.conditions import (
    ConditionerInfo,
    checked_values,
    complete,
    parse_assignments,
    text_conditioner,
)

PIANO = ["--condition", "ensemble=piano", "--condition", "seconds_total=1.5"]


@pytest.fixture
def models(tiny_models):
    """The session's tiny diffusion (diffusion/debug_cond: an `ensemble` option and a
    `seconds_total` number) and MusicGen models, and the codec of the latter."""
    return tiny_models


pytestmark = pytest.mark.usefixtures("one_thread")


def _refused(argv, capsys, *fragments):
    """The command exits 2 with one `error:` line holding every fragment."""
    capsys.readouterr()
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _clip(path, seconds=0.5, rate=16000):
    time = torch.arange(round(seconds * rate)) / rate
    return audio_write(path, 0.3 * torch.sin(2 * torch.pi * 330 * time)[None], rate)


def test_generate_writes_the_exact_duration_and_a_seed_reproduces_it(models, tmp_path,
                                                                     capsys):
    out = tmp_path / "a.wav"
    assert cli(["generate", models.diffusion, *PIANO, "--duration", "0.3", "--seed", "1",
                "--steps", "3", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(out)) and "0.30 s" in line
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 4800)
    # The typed conditions are those of the API: an option and a float.
    pipeline = audiotools.load(models.diffusion)
    expected, _ = pipeline.generate({"ensemble": "piano", "seconds_total": 1.5}, 0.3, seed=1,
                                    steps=3)
    written, _ = sf.read(out, dtype="float32")
    assert np.abs(written - expected[0].clamp(-1, 1).numpy()).max() < 1 / 16000
    again, other = tmp_path / "b.wav", tmp_path / "c.wav"
    assert cli(["generate", models.diffusion, *PIANO, "--duration", "0.3", "--seed", "1",
                "--steps", "3", "--out", str(again)]) == 0
    assert cli(["generate", models.diffusion, *PIANO, "--duration", "0.3", "--seed", "2",
                "--steps", "3", "--out", str(other)]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert other.read_bytes() != out.read_bytes()

    before = out.read_bytes()
    _refused(["generate", models.diffusion, "--seed", "5", "--out", str(out)], capsys,
             f"{out} exists", "--force")
    assert out.read_bytes() == before
    assert cli(["generate", models.diffusion, "--seed", "5", "--duration", "0.3", "--steps",
                "2", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != before


def test_bad_conditions_and_options_are_refused_with_what_is_valid(models, tmp_path, capsys):
    out = tmp_path / "x.wav"
    model = models.diffusion
    _refused(["generate", model, "--condition", "ensemble=tuba", "--out", str(out)], capsys,
             "ensemble='tuba' is not valid", "'piano'", "'mallets'")
    _refused(["generate", model, "--condition", "bpm=120", "--out", str(out)], capsys,
             "no conditioner 'bpm'", "ensemble (options:", "seconds_total (number in [0, 16])")
    _refused(["generate", model, "--condition", "seconds_total=many", "--out", str(out)],
             capsys, "seconds_total='many' is not valid", "number in [0, 16]")
    _refused(["generate", model, "--prompt", "a piano", "--out", str(out)], capsys,
             "--prompt", "no text conditioner", "--condition", "ensemble (options:",
             "seconds_total (number")
    _refused(["generate", model, "--temperature", "0.5", "--out", str(out)], capsys,
             "--temperature does not apply to a diffusion model", "--steps")
    _refused(["generate", models.musicgen, "--steps", "3", "--out", str(out)], capsys,
             "--steps does not apply to a musicgen model", "--temperature, --top-k, --top-p")
    _refused(["generate", models.codec, "--out", str(out)], capsys,
             "generates with a diffusion or musicgen model", "autoencoder")
    _refused(["generate", model, "--out", str(tmp_path / "x.txt")], capsys,
             "cannot write .txt", ".wav")
    _refused(["generate", model, "--sampler", "magic", "--out", str(out)], capsys,
             "sampler='magic'", "euler")
    assert not out.exists()


def test_reconstruct_streams_a_file_and_checks_before_loading(models, tmp_path, monkeypatch,
                                                              capsys):
    """--chunk-seconds S reads, reconstructs and writes a block at a time (a file of any
    length takes a window's memory) and gives what the pipeline gives for the whole clip;
    a bad input or output is refused before the model loads (it failed after the work)."""
    import audiotools
    from audiotools.data import audio as audio_module
    from audiotools.io import loading
    rate = 44100
    clip = 0.1 * torch.randn(2, rate * 3 + 7, generator=torch.Generator().manual_seed(0))
    source = audio_write(tmp_path / "in.wav", clip, rate, subtype="FLOAT")
    expected, _ = audiotools.load(models.autoencoder).reconstruct(clip, rate, 1.0)
    out = tmp_path / "out.wav"
    with monkeypatch.context() as patch:
        patch.setattr(audio_module, "audio_read", None)  # the whole file is never read
        assert cli(["reconstruct", models.autoencoder, str(source), str(out),
                    "--chunk-seconds", "1"]) == 0
    back, back_rate = audio_read(out)
    assert back_rate == rate and back.shape == clip.shape
    torch.testing.assert_close(back, expected, atol=1.5 / 32768, rtol=0)

    monkeypatch.setattr(loading, "load_pipeline", None)  # nothing below gets that far
    for target, fragment in ((tmp_path / "x.xyz", "cannot write .xyz"),
                             (tmp_path, "is a folder"),
                             (source / "x.wav", "in.wav is a file"),
                             (out, "out.wav exists")):
        _refused(["reconstruct", models.autoencoder, str(source), str(target)], capsys,
                 f"OUTPUT {target}" if "exists" not in fragment else "", fragment)
    broken = tmp_path / "nan.wav"
    sf.write(broken, np.array([0.0, np.nan, 0.0], dtype=np.float32), 16000, subtype="FLOAT")
    monkeypatch.undo()
    for chunk in ("1", "0"):
        _refused(["reconstruct", models.autoencoder, str(broken), str(tmp_path / "n.wav"),
                  "--chunk-seconds", chunk], capsys, "nan.wav: holds NaN or infinite samples")
        assert not (tmp_path / "n.wav").exists()


def test_bad_numbers_devices_and_paths_are_one_error(models, tmp_path, capsys):
    out = tmp_path / "x.wav"

    def usage_error(argv, fragment):
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            cli(argv)
        assert stopped.value.code == 2 and fragment in capsys.readouterr().err

    # NaN passes every range check (it compares false): a NaN cfg scale gave silent audio.
    usage_error(["generate", models.diffusion, "--cfg-scale", "nan", "--out", str(out)],
                "argument --cfg-scale: 'nan' is not a finite number")
    usage_error(["generate", models.diffusion, "--duration", "inf", "--out", str(out)],
                "argument --duration: 'inf' is not a finite number")
    usage_error(["reconstruct", models.codec, "in.wav", str(out), "--device", "tpu"],
                "argument --device: 'tpu': use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        usage_error(["pre-encode", models.codec, "music_small", str(tmp_path / "pe"),
                     "--device", "cuda"], "argument --device: cuda: no CUDA device is visible")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    _refused(["reconstruct", models.codec, str(empty), str(out)], capsys,
             "empty.wav: the file holds no samples")
    _refused(["reconstruct", models.codec, str(tmp_path / "none.wav"), str(out)], capsys,
             "none.wav: no such audio file")
    clip = _clip(tmp_path / "in.wav")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    _refused(["reconstruct", models.codec, str(clip), str(notes / "x.wav")], capsys,
             "notes.txt is a file")
    assert notes.read_text() == "mine" and not out.exists()
    # Windows shorter than twice the overlap they share were mostly overlap (slow, no gain).
    _refused(["reconstruct", models.codec, str(clip), str(out), "--chunk-seconds", "0.001"],
             capsys, "chunk_seconds=0.001 is 0 frames", "windows need at least 64 frames")
    _refused(["pre-encode", models.codec, str(tmp_path / "none.jsonl"), str(tmp_path / "pe"),
              "--chunk-seconds", "0"], capsys, "--chunk-seconds=0.0", "longer than 0 s")
    assert cli(["reconstruct", models.codec, str(clip), str(tmp_path / "new/r.wav")]) == 0
    assert sf.info(tmp_path / "new/r.wav").frames == 8000


def test_conditions_are_typed_by_conditioner():
    infos = [ConditionerInfo("ensemble", "options", options=("piano", "100")),
             ConditionerInfo("bars", "int", default=4, min=1, max=8),
             ConditionerInfo("seconds_total", "number", min=0, max=16),
             ConditionerInfo("prompt", "text")]
    values = parse_assignments(["bars=3", "seconds_total=2.5", "prompt=a=b", "ensemble=100"],
                               infos)
    assert values == {"bars": 3, "seconds_total": 2.5, "prompt": "a=b", "ensemble": "100"}
    assert type(values["bars"]) is int
    assert checked_values({"ensemble": 100, "bars": 2.0, "prompt": None}, infos, "line 1") == {
        "ensemble": "100", "bars": 2, "prompt": None}
    assert complete({"prompt": "x"}, infos) == {"ensemble": None, "bars": 4,
                                                "seconds_total": None, "prompt": "x"}
    assert text_conditioner(infos) == "prompt"
    for wrong in (["bars=2.5"], ["bars=9"], ["seconds_total=nan"], ["ensemble"]):
        with pytest.raises(ConfigError):
            parse_assignments(wrong, infos)
    with pytest.raises(ConfigError, match="2 text conditioners"):
        text_conditioner([*infos, ConditionerInfo("style", "text")])


def test_a_batch_item_is_the_single_command_with_seed_plus_its_index(models, tmp_path,
                                                                     capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text('{"ensemble": "piano"}\n\n{"ensemble": "mallets", "seconds_total": 3}\n')
    batch = tmp_path / "batch"
    common = ["--condition", "seconds_total=1.5", "--duration", "0.25", "--steps", "2"]
    assert cli(["generate", models.diffusion, "--prompts", str(prompts), *common, "--seed",
                "7", "--out", str(batch)]) == 0
    assert sorted(path.name for path in batch.iterdir()) == ["000.wav", "001.wav"]
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    singles = [(["--condition", "ensemble=piano"], "7"),
               (["--condition", "ensemble=mallets", "--condition", "seconds_total=3"], "8")]
    for index, (conditions, seed) in enumerate(singles):
        single = tmp_path / f"single{index}.wav"
        argv = ["generate", models.diffusion, "--condition", "seconds_total=1.5", *conditions,
                "--duration", "0.25", "--steps", "2", "--seed", seed, "--out", str(single)]
        assert cli(argv) == 0
        assert (batch / f"{index:03d}.wav").read_bytes() == single.read_bytes()
    assert (batch / "000.wav").read_bytes() != (batch / "001.wav").read_bytes()

    argv = ["generate", models.diffusion, "--prompts", str(prompts), *common,
            "--out", str(batch)]
    _refused(argv, capsys, "000.wav", "001.wav", "--force")
    assert cli([*argv, "--force"]) == 0
    prompts.write_text("a piano\n")
    _refused(argv, capsys, "prompts.txt:1", "no text conditioner")
    prompts.write_text('{"ensemble": "tuba"}\n')
    _refused(argv, capsys, "prompts.txt:1", "ensemble='tuba' is not valid")
    _refused([*argv[:-1], str(tmp_path / "one.wav")], capsys, "--out", "is a folder")
    # The last item's seed past 2**63 - 1 was refused after the first ones were written.
    prompts.write_text('{"ensemble": "piano"}\n{"ensemble": "mallets"}\n')
    fresh = tmp_path / "fresh"
    _refused([*argv[:-1], str(fresh), "--seed", str(2**63 - 1)], capsys,
             f"--seed {2**63 - 1}: the 2 items use seeds up to {2**63}",
             f"give --seed {2**63 - 2} or less")
    assert not fresh.exists()


def test_continue_keeps_the_input_and_adds_the_duration(models, tmp_path, capsys):
    clip = _clip(tmp_path / "in.wav", 0.25)
    out = tmp_path / "longer.wav"
    assert cli(["continue", models.diffusion, str(clip), "--duration", "0.3", *PIANO,
                "--steps", "2", "--out", str(out)]) == 0
    given, _ = sf.read(clip, dtype="int16")
    longer, rate = sf.read(out, dtype="int16")
    assert rate == 16000 and len(longer) == len(given) + 4800
    assert np.array_equal(longer[:len(given)], given)

    tokens = tmp_path / "tokens.wav"
    assert cli(["continue", models.musicgen, str(clip), "--duration", "0.2", *PIANO,
                "--temperature", "0.8", "--top-k", "4", "--out", str(tokens)]) == 0
    info = sf.info(tokens)
    assert info.frames == round(0.25 * info.samplerate) + round(0.2 * info.samplerate)
    _refused(["continue", models.musicgen, str(tmp_path / "none.wav"), "--duration", "1",
              "--out", str(tmp_path / "y.wav")], capsys, "none.wav")
    _refused(["continue", models.musicgen, str(clip), "--duration", "0", "--out",
              str(tmp_path / "y.wav")], capsys, "--duration 0")


def test_musicgen_generates_with_its_own_sampling_options(models, tmp_path):
    out, again = tmp_path / "m.wav", tmp_path / "n.wav"
    for path in (out, again):
        assert cli(["generate", models.musicgen, *PIANO, "--duration", "0.2", "--top-k", "4",
                    "--cfg-scale", "2", "--seed", "3", "--out", str(path)]) == 0
    assert sf.info(out).frames == round(0.2 * sf.info(out).samplerate)
    assert out.read_bytes() == again.read_bytes()


def test_inpaint_regenerates_the_region_only_and_needs_a_diffusion_model(models, tmp_path,
                                                                        capsys):
    clip = _clip(tmp_path / "in.wav", 0.5)
    out = tmp_path / "filled.wav"
    assert cli(["inpaint", models.diffusion, str(clip), "--start", "0.125", "--end", "0.25",
                *PIANO, "--steps", "2", "--seed", "1", "--out", str(out)]) == 0
    given, _ = sf.read(clip, dtype="int16")
    filled, _ = sf.read(out, dtype="int16")
    assert filled.shape == given.shape
    assert np.array_equal(filled[:2000], given[:2000])
    assert np.array_equal(filled[4000:], given[4000:])
    assert not np.array_equal(filled[2000:4000], given[2000:4000])
    other = tmp_path / "other.wav"
    _refused(["inpaint", models.musicgen, str(clip), "--start", "0.1", "--end", "0.2",
              "--out", str(other)], capsys, "inpainting needs a diffusion model", "musicgen")
    _refused(["inpaint", models.diffusion, str(clip), "--start", "0.3", "--end", "0.2",
              "--out", str(other)], capsys, "--start 0.3 --end 0.2", "0.5")
    assert not other.exists()
    _refused(["inpaint", models.diffusion, str(clip), "--start", "0.1", "--end", "0.2",
              "--out", str(tmp_path / "." / "in.wav")], capsys, "(it is the input file)",
             "--force")
