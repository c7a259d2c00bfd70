"""What a solver says or refuses when it starts: settings the run will not read (they still
name another XP), settings that cannot act in this run, and settings that would fail only
after training started."""
from __future__ import annotations

import pytest

from audiotools.errors import ConfigError
from tests.solvers.helpers import build, make_xp

pytestmark = pytest.mark.usefixtures("one_thread")


def _warnings(caplog, *overrides: str) -> str:
    caplog.clear()
    build(make_xp(*overrides)).close()
    return caplog.text


def test_shared_settings_a_run_will_not_read_are_said(dora_dir, caplog):
    text = _warnings(caplog, "solver=autoencoder/debug", "schedule.gamma=0.1",
                     "schedule.plateau.factor=0.1", "optim.ema.use=false", "optim.ema.decay=0.5",
                     "valid.every=0")
    assert ("schedule.gamma=0.1, schedule.plateau.factor=0.1: not read, schedule.name=none "
            "does not use them") in text
    assert "optim.ema.decay=0.5, optim.ema.buffers='copy': not read, optim.ema.use=false" in text
    assert "valid.every=0: no valid stage runs, so no best state is kept" in text
    text = _warnings(caplog, "solver=classifier/debug", "valid.every=0")
    assert "schedule.name=plateau, early_stop.patience=6 never act" in text
    text = _warnings(caplog, "solver=autoencoder/debug", "schedule.name=cosine",
                     "schedule.warmup_steps=100")
    assert "schedule.warmup_steps=100: the run has 8 updates" in text
    text = _warnings(caplog, "solver=autoencoder/debug", "+dataset.manifest=mine.jsonl")
    assert "dataset.manifest='mine.jsonl': not read, every split sets its own" in text
    # The shipped recipe states nothing it does not read.
    assert "not read" not in _warnings(caplog, "solver=autoencoder/debug")


def test_autoencoder_terms_the_run_leaves_out_are_said(dora_dir, caplog):
    text = _warnings(caplog, "solver=autoencoder/debug", "losses.weights.commitment=50",
                     "losses.complex.power=1.0", "losses.spectral.n_bins=7",
                     "adversarial.warmup_steps=1000")
    assert "losses.complex.power=1.0: not read, losses.weights.complex=0" in text
    assert "losses.spectral.n_bins=7: not read, losses.spectral.scale=null" in text
    assert "losses.weights.commitment=50.0: not read, a vae bottleneck gives no such term" in text
    assert "adversarial.warmup_steps=1000: the run has 8 updates, so the discriminator never " \
           "trains" in text


def test_what_would_fail_after_training_started_is_refused_at_start(dora_dir):
    with pytest.raises(ConfigError, match=r"adversarial.n_ffts=\[4096, 64\]: the "
                                          r"discriminator's largest STFT needs 4096 samples, "
                                          r"a training segment holds 3200"):
        build(make_xp("solver=autoencoder/debug", "dataset.segment_duration=0.2",
                      "adversarial.n_ffts=[4096,64]", "adversarial.hop_lengths=[1024,16]",
                      "adversarial.win_lengths=[4096,64]"))
    with pytest.raises(ConfigError, match=r"model.pools: their time pools need 4 frames, the "
                                          r"features have 3 \(dataset.num_frames\)"):
        build(make_xp("solver=classifier/debug", "dataset.num_frames=3"))
