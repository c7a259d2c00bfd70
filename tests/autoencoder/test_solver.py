"""The autoencoder solver end to end: the debug recipe through dora, exact resume with the
discriminator, export, `audiotools.load`, `audiotools reconstruct`, and its failure modes."""
from __future__ import annotations

import json

import pytest
import torch

import audiotools
from audiotools.cli import main as cli
from audiotools.data.audio import AudioFileError, audio_info, audio_write
from audiotools.errors import ConfigError, NonFiniteLossError
from audiotools.inference.autoencoder import AutoencoderPipeline
from tests.conftest import dora_command
from tests.solvers.helpers import assert_same_state, build, crash_then_resume, make_xp, train

DEBUG = ["solver=autoencoder/debug"]


@pytest.mark.slow
def test_debug_recipe_through_dora_then_rerun_does_nothing(dora_dir):
    first = dora_command("run", *DEBUG)
    assert "Valid Summary | Epoch 2" in first.stderr and "mel_distance=" in first.stderr
    assert "Evaluate Summary | Epoch 2" in first.stderr and "si_snr=" in first.stderr
    folders = list((dora_dir / "xps").iterdir())
    assert len(folders) == 1
    folder = folders[0]
    history = json.loads((folder / "history.json").read_text())
    assert len(history) == 2
    # The discriminator starts after 2 of the 4 updates of epoch 1.
    assert "d_loss" in history[0]["train"] and "adversarial" in history[1]["train"]
    assert {"si_snr", "mel_distance", "stft_distance"} <= history[1]["evaluate"].keys()
    samples = sorted(p.name for p in (folder / "samples" / "2").iterdir())
    assert samples == ["000_reconstruction.wav", "000_reference.wav",
                       "001_reconstruction.wav", "001_reference.wav"]
    info = audio_info(folder / "samples" / "2" / "000_reconstruction.wav")
    assert (info.sample_rate, info.channels, info.frames) == (16000, 1, 16000)
    assert list((folder / "outputs" / "generate_2").glob("*spectrogram*.png"))
    again = dora_command("run", *DEBUG)
    assert "All 2 epochs are done" in again.stderr


def test_crash_mid_epoch_then_resume_gives_identical_generator_and_discriminator(
        dora_dir, monkeypatch):
    args = [*DEBUG, "generate.every=0", "evaluate.every=0"]
    reference = train(*args)
    expected = torch.load(reference.folder / "checkpoint.th", weights_only=True)
    reference.folder.rename(dora_dir / "reference")

    resumed = crash_then_resume(monkeypatch, *args, epoch=2, step=2)
    state = torch.load(resumed.folder / "checkpoint.th", weights_only=True)
    for name in ("model", "discriminator", "ema.model"):
        assert_same_state(state[name], expected[name])


def test_evaluate_reports_each_codebooks_perplexity_and_dead_codes(dora_dir):
    solver = train(*DEBUG, "optim.epochs=1", "generate.every=0", "model.bottleneck.type=rvq",
                   "+model.bottleneck.num_quantizers=2", "+model.bottleneck.codebook_size=16",
                   "+model.bottleneck.kmeans_iters=2")
    evaluate = json.loads((solver.folder / "history.json").read_text())[0]["evaluate"]
    for k in range(2):
        assert 1.0 <= evaluate[f"perplexity_q{k}"] <= 16.0
        assert 0 <= evaluate[f"unused_codes_q{k}"] <= 15
        assert 0 <= evaluate[f"dead_codes_q{k}"] <= 16
    assert "perplexity_q2" not in evaluate


def test_export_load_and_reconstruct_any_rate_and_channels(dora_dir, tmp_path, capsys):
    solver = train(*DEBUG, "optim.epochs=1", "generate.every=0", "evaluate.every=0")
    out = tmp_path / "ae.safetensors"
    assert cli(["export", str(solver.folder), str(out)]) == 0
    pipeline = audiotools.load(out)
    assert isinstance(pipeline, AutoencoderPipeline) and not pipeline.model.training
    assert (pipeline.sample_rate, pipeline.channels) == (16000, 1)
    assert pipeline.export.family == "autoencoder" and pipeline.export.epoch == 1
    from_xp = audiotools.load(solver.folder)
    for key, value in pipeline.model.state_dict().items():
        assert torch.equal(value, from_xp.model.state_dict()[key])

    # A stereo 44.1 kHz file of 3.3 s comes back at its own rate, channels and length.
    time = torch.arange(int(3.3 * 44100)) / 44100
    stereo = torch.stack([torch.sin(2 * torch.pi * 220 * time),
                          torch.sin(2 * torch.pi * 330 * time)]) * 0.3
    source = audio_write(tmp_path / "in.flac", stereo, 44100)
    target = tmp_path / "out.wav"
    assert cli(["reconstruct", str(out), str(source), str(target),
                "--chunk-seconds", "1"]) == 0
    info = audio_info(target)
    assert (info.sample_rate, info.channels, info.frames) == (44100, 2, stereo.shape[1])
    assert "real time" in capsys.readouterr().out
    assert cli(["reconstruct", str(out), str(source), str(target)]) == 2  # no overwrite
    assert "exists" in capsys.readouterr().err


def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(dora_dir, monkeypatch):
    xp = make_xp(*DEBUG, "generate.every=0", "evaluate.every=0")
    solver = build(xp)
    original = type(solver.model).forward

    def diverge_in_epoch_two(model, audio):
        output = original(model, audio)
        if solver.epoch == 2:
            output.audio = output.audio * float("nan")
        return output

    monkeypatch.setattr(type(solver.model), "forward", diverge_in_epoch_two)
    with xp.enter(), pytest.raises(NonFiniteLossError, match="epoch 2, step 1"):
        solver.run()
    kept = torch.load(xp.folder / "checkpoint.th", weights_only=True)
    assert len(kept["history"]) == 1
    assert len(json.loads((xp.folder / "history.json").read_text())) == 1


def test_data_must_match_the_model(dora_dir):
    from audiotools.train import main
    with pytest.raises(ConfigError, match=r"dataset.sample_rate=22050 \(split train\) but "
                                          r"model.sample_rate=16000"):
        main.get_xp([*DEBUG, "dataset.sample_rate=22050"])
    with pytest.raises(ConfigError, match="losses.weights.klx: unknown key"):
        main.get_xp([*DEBUG, "+losses.weights.klx=1"])
    with pytest.raises(ConfigError, match="adversarial.loss"):
        main.get_xp([*DEBUG, "adversarial.loss=wasserstein"])
    assert not (dora_dir / "xps").exists() or not any((dora_dir / "xps").iterdir())


def test_a_batch_whose_files_all_failed_is_a_clear_error(dora_dir):
    from audiotools.data.audio import AudioFileError
    from audiotools.data.segments import collate_segments
    solver = build(make_xp(*DEBUG))
    failed = {"audio": torch.zeros(1, 8000), "padding_mask": torch.zeros(8000, dtype=torch.bool),
              "error": "gone"}
    with pytest.raises(AudioFileError, match="Every file of a batch failed to read"):
        solver.run_step(0, collate_segments([failed, failed]), {})
    solver.close()


def test_reconstruct_refuses_a_negative_chunk_length(tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert cli(["reconstruct", "model.safetensors", "in.wav", str(out),
                "--chunk-seconds", "-1"]) == 2
    assert "--chunk-seconds=-1.0 must be >= 0" in capsys.readouterr().err
    assert not out.exists()


def test_fixed_passes_over_shards_are_counted_as_read(dora_dir, tmp_path, monkeypatch):
    """`num_samples: null` on a shards split (music_small_shards' own valid and evaluate) is
    one pass over every fixed segment; valid and evaluate ran `len()` of it and raised."""
    from audiotools.data.manifest import read_manifest
    from audiotools.data.shards import write_shards
    from audiotools.environment import DATASETS_DIR

    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tmp_path))
    for split in ("train", "valid", "evaluate"):
        entries = read_manifest(DATASETS_DIR / "music_small" / f"{split}.jsonl")[:1]
        write_shards(entries, tmp_path / "music_small_shards" / split, samples_per_shard=1)
    solver = train("solver=autoencoder/debug", "dset=music_small_shards", "optim.epochs=1",
                   "dataset.valid.num_samples=null", "dataset.evaluate.num_samples=null",
                   "+dataset.valid.segment_duration=4", "+dataset.evaluate.segment_duration=4",
                   "generate.every=0")
    history = solver.history[-1]
    assert history["valid"]["loss"] > 0 and history["evaluate"]["si_snr"] < 100


def test_generate_writes_the_whole_split_whatever_the_ranks(dora_dir):
    """Under DDP the generate loader holds this rank's share; rank 0 wrote only that (one of
    the debug recipe's two clips with 2 ranks), renumbered. It reads the split whole."""
    solver = build(make_xp("solver=autoencoder/debug"))
    sampler = solver.loaders["generate"].sampler
    sampler.world = 2  # as rank 0 of 2 processes holds it
    assert len(list(solver.loaders["generate"])) == 1
    assert solver.generate() == {"samples": 2}
    names = sorted(p.name for p in (solver.folder / "samples" / str(solver.epoch)).iterdir())
    assert names == ["000_reconstruction.wav", "000_reference.wav", "001_reconstruction.wav",
                     "001_reference.wav"]
    solver.close()


def test_evaluate_scores_only_the_real_samples_of_segments_cut_short(dora_dir, tmp_path):
    """0.8 s files in 0.5 s segments: every second one is 0.2 s of zeros, which the metrics
    counted as if the file held them (mel distance 1.25 logged for 1.02 on the audio)."""
    from audiotools.metrics.audio import mel_distance, si_snr
    generator = torch.Generator().manual_seed(0)
    for name in ("a", "b"):
        audio_write(tmp_path / f"{name}.wav", 0.1 * torch.randn(1, 12800, generator=generator),
                    16000)
    assert cli(["manifest", str(tmp_path), str(tmp_path / "short.jsonl")]) == 0
    solver = build(make_xp(*DEBUG, f"dataset.evaluate.manifest={tmp_path / 'short.jsonl'}",
                           "dataset.evaluate.num_samples=null"))
    solver.model.eval()
    with torch.no_grad():
        metrics = solver.run_stage("evaluate", solver.evaluate)
        items = [item for batch in solver.loaders["evaluate"] for item in zip(
            batch["audio"], batch["padding_mask"].sum(-1).tolist(), strict=True)]
        assert sorted({length for _, length in items}) == [4800, 8000]
        expected = {"mel_distance": [], "si_snr": []}
        for audio, length in items:
            real = audio[None, :, :length]
            fake = solver.model(audio[None]).audio[..., :length]
            expected["mel_distance"].append(mel_distance(fake, real, 16000).item())
            expected["si_snr"].append(si_snr(fake, real).item())
    for key, values in expected.items():
        assert metrics[key] == pytest.approx(sum(values) / len(values), rel=1e-4), key


def test_evaluate_under_ddp_leaves_out_the_copies_that_pad_a_rank_share(dora_dir):
    """3 evaluate items on 2 ranks: rank 1 holds item 1 and a copy of item 0, which its
    figures counted (and a rank left with copies only would have failed as unreadable)."""
    from audiotools.metrics.audio import si_snr
    solver = build(make_xp(*DEBUG, "dataset.evaluate.num_samples=3"))
    solver.model.eval()
    loader = solver.loaders["evaluate"]
    items = [audio for batch in loader for audio in batch["audio"]]
    assert len(items) == 3
    with torch.no_grad():
        expected = si_snr(solver.model(items[1][None]).audio, items[1][None]).item()
        loader.sampler.world, loader.sampler.rank = 2, 1
        assert len([a for batch in loader for a in batch["audio"]]) == 2  # item 1, item 0
        metrics = solver.run_stage("evaluate", solver.evaluate)
    assert metrics["si_snr"] == pytest.approx(expected, rel=1e-4)
    # Item 1 unreadable: the batch holds only the copy, which it counted as a real item.
    dataset = loader.dataset
    read = type(dataset).__getitem__

    def failing(self, index):
        item = read(self, index)
        if self is dataset and index == 1:
            item["error"] = "unreadable"
        return item

    with pytest.MonkeyPatch.context() as patch, torch.no_grad():
        patch.setattr(type(dataset), "__getitem__", failing)
        assert [batch["rows"].tolist() for batch in loader] == [[1]]  # the copy, kept
        # This rank (alone here) has no real item left, not the copy's figures.
        with pytest.raises(AudioFileError, match="No file of the evaluate split"):
            solver.run_stage("evaluate", solver.evaluate)
    solver.close()


def test_dead_codes_counts_the_codes_kept_alive_by_replacement():
    """A training step gives each code whose usage fell below the threshold a batch vector
    and a usage of exactly the threshold, so counting codes below it read 0 right after."""
    from audiotools.models.autoencoder.bottlenecks import RVQBottleneck
    from audiotools.models.autoencoder.config import RVQBottleneckConfig
    torch.manual_seed(0)
    bottleneck = RVQBottleneck(RVQBottleneckConfig(
        num_quantizers=1, codebook_size=64, threshold_ema_dead_code=0.1, kmeans_init=False),
        dim=4).train()
    frames = torch.randn(8, 4, 50)
    bottleneck(frames)
    assert bottleneck.dead_codes() == [0]
    bottleneck.quantizer.layers[0]._codebook.cluster_size.data[..., 4:] = 0.0  # 60 fall dead
    bottleneck(frames)  # those the step did not use enough are replaced, at the threshold
    usage = bottleneck.quantizer.layers[0]._codebook.cluster_size
    assert int((usage < 0.1).sum()) == 0
    [dead] = bottleneck.dead_codes()
    assert 30 <= dead <= 60 and dead == int((usage[..., 4:] == usage.new_tensor(0.1)).sum())
