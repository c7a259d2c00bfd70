"""Reading a dora dir for people (audiotools.experiments) and the figures made from it
(audiotools.plotting): XP states, best metrics, ordering, damaged XPs, curves, spectrograms."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiotools import experiments
from audiotools.errors import ConfigError
from audiotools.experiments import (
    find_xps,
    is_running,
    load_history,
    metric_names,
    resolve_xp,
    samples,
)
from audiotools.plotting import figure_image, figure_png, plot_curves, spectrogram_figure
from audiotools.solvers.lock import XPLock


def epoch(loss: float, accuracy: float | None = None, evaluate: dict | None = None) -> dict:
    valid = {"loss": loss, "duration": 0.5}
    if accuracy is not None:
        valid["accuracy"] = accuracy
    entry = {"train": {"loss": loss + 0.1, "duration": 2.0}, "valid": valid}
    if evaluate is not None:
        entry["evaluate"] = {**evaluate, "duration": 1.0}
    return entry


def make_xp(dora: Path, sig: str, argv: list[str] | None = None,
            history: list[dict] | str | None = None, epochs: int | None = 3,
            solver: str = "classifier", mtime: float | None = None) -> Path:
    """A fake XP folder written by hand, as Dora and the solver base would leave it."""
    folder = dora / "xps" / sig
    folder.mkdir(parents=True)
    (folder / ".argv.json").write_text(json.dumps(argv if argv is not None
                                                  else ["solver=classifier/digits"]))
    if epochs is not None:
        (folder / "config.json").write_text(json.dumps({"solver": solver,
                                                        "optim": {"epochs": epochs}}))
    if history is not None:
        path = folder / "history.json"
        path.write_text(history if isinstance(history, str) else json.dumps(history))
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    return folder


def by_sig(dora: Path) -> dict[str, experiments.XPSummary]:
    return {xp.sig: xp for xp in find_xps(dora)}


def test_states_epochs_and_arguments(tmp_path):
    make_xp(tmp_path, "done1", ["solver=classifier/digits", "optim.lr=1e-3"],
            [epoch(1.0), epoch(0.5), epoch(0.4)])
    make_xp(tmp_path, "stop1", history=[epoch(1.0)], epochs=4)
    make_xp(tmp_path, "new1", ["optim.lr=1e-3"])
    xps = by_sig(tmp_path)
    assert xps["done1"].state == "done"
    assert (xps["done1"].recipe, xps["done1"].overrides) == ("classifier/digits", ["optim.lr=1e-3"])
    assert (xps["done1"].epochs_done, xps["done1"].epochs) == (3, 3)
    assert xps["stop1"].state == "stopped at epoch 1 of 4"
    assert xps["new1"].state == "not started"
    assert (xps["new1"].recipe, xps["new1"].epochs_done) == (None, 0)
    assert xps["done1"].folder == tmp_path / "xps" / "done1"


def test_epochs_from_the_hydra_config_of_older_xps(tmp_path):
    folder = make_xp(tmp_path, "old1", history=[epoch(1.0), epoch(0.9)], epochs=None)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text(
        "solver: classifier\noptim:\n  epochs: 5\n  lr: ${oc.env:NOT_SET_ANYWHERE}\n")
    xp = by_sig(tmp_path)["old1"]
    assert (xp.epochs, xp.state) == (5, "stopped at epoch 2 of 5")


def test_no_config_at_all_leaves_epochs_unknown(tmp_path):
    make_xp(tmp_path, "bare1", history=[epoch(1.0)], epochs=None)
    xp = by_sig(tmp_path)["bare1"]
    assert (xp.epochs, xp.state) == (None, "stopped at epoch 1")


def test_running_while_the_lock_is_held_and_not_after(tmp_path):
    folder = make_xp(tmp_path, "run1", history=[epoch(1.0)], epochs=4)
    lock = XPLock(folder, "run1")
    try:
        assert is_running(folder)
        assert by_sig(tmp_path)["run1"].state == "running"
        assert by_sig(tmp_path)["run1"].running
    finally:
        lock.release()
    assert not is_running(folder)
    assert by_sig(tmp_path)["run1"].state == "stopped at epoch 1 of 4"
    # Looking left the lock free for the next run.
    XPLock(folder, "run1").release()


def test_running_seen_by_asking_the_lock_where_proc_locks_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "_flocks_held", lambda: None)
    folder = make_xp(tmp_path, "run2", history=[epoch(1.0)])
    handle = open(folder / "lock", "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert is_running(folder)
    finally:
        handle.close()
    assert not is_running(folder)
    XPLock(folder, "run2").release()


def test_a_run_in_another_process_is_running(tmp_path):
    folder = make_xp(tmp_path, "run3", history=[epoch(1.0)])
    code = ("import fcntl, sys, time; h = open(sys.argv[1], 'a+'); "
            "fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder / "lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert is_running(folder)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert not is_running(folder)


def test_looking_creates_no_lock_file(tmp_path):
    folder = make_xp(tmp_path, "nolock", history=[epoch(1.0)])
    assert not is_running(folder)
    assert not (folder / "lock").exists()


def test_best_metric_of_the_solver_and_latest_evaluate(tmp_path):
    # The classifier's best metric is valid.accuracy, higher is better.
    make_xp(tmp_path, "cls1", history=[
        epoch(1.0, 0.5, evaluate={"accuracy": 0.4}), epoch(0.8, 0.9), epoch(0.7, 0.8),
        epoch(0.6, 0.85, evaluate={"accuracy": 0.8, "macro_f1": 0.7})])
    xp = by_sig(tmp_path)["cls1"]
    assert xp.best == {"valid.accuracy": 0.9, "evaluate.accuracy": 0.8, "evaluate.macro_f1": 0.7}
    assert xp.best_epoch == 2


def test_best_falls_back_to_valid_loss(tmp_path):
    history = [epoch(1.0), epoch(0.3), epoch(0.6)]
    # A solver that cannot be imported, and a classifier that never reported accuracy.
    make_xp(tmp_path, "unk1", history=history, solver="not_installed.module:Solver")
    make_xp(tmp_path, "noacc", history=history)
    for sig in ("unk1", "noacc"):
        xp = by_sig(tmp_path)[sig]
        assert (xp.best, xp.best_epoch) == ({"valid.loss": 0.3}, 2)


def test_newest_first(tmp_path):
    make_xp(tmp_path, "aaa", history=[epoch(1.0)], mtime=1_000_000)
    make_xp(tmp_path, "bbb", history=[epoch(1.0)], mtime=3_000_000)
    make_xp(tmp_path, "ccc", history=[epoch(1.0)], mtime=2_000_000)
    assert [xp.sig for xp in find_xps(tmp_path)] == ["bbb", "ccc", "aaa"]
    assert find_xps(tmp_path)[0].updated == 3_000_000


def test_malformed_history_does_not_break_the_listing(tmp_path):
    make_xp(tmp_path, "bad1", history="[{not json")
    make_xp(tmp_path, "bad2", history=json.dumps({"train": 1}))
    make_xp(tmp_path, "good", history=[epoch(1.0)])
    (tmp_path / "xps" / "not_an_xp").mkdir()
    (tmp_path / "xps" / "stray.txt").write_text("")
    xps = by_sig(tmp_path)
    assert set(xps) == {"bad1", "bad2", "good"}
    assert xps["bad1"].state == xps["bad2"].state == "unreadable history"
    with pytest.raises(ConfigError, match="bad1.*history.json"):
        load_history(tmp_path / "xps" / "bad1")


def test_no_dora_dir_is_no_xps(tmp_path):
    assert find_xps(tmp_path / "missing") == []


def test_resolve_xp(tmp_path, monkeypatch):
    folder = make_xp(tmp_path, "abc12345", history=[epoch(1.0)])
    assert resolve_xp("abc12345", tmp_path) == folder
    assert resolve_xp("//sig/abc12345", tmp_path) == folder
    assert resolve_xp(str(folder), tmp_path) == folder
    monkeypatch.setenv("AUDIOTOOLS_DORA_DIR", str(tmp_path))
    assert resolve_xp("abc12345") == folder


def test_resolve_xp_errors_name_it_and_known_xps(tmp_path):
    make_xp(tmp_path, "abc12345", history=[epoch(1.0)])
    with pytest.raises(ConfigError, match=r"'nope'.*abc12345"):
        resolve_xp("nope", tmp_path)
    with pytest.raises(ConfigError, match=r"//sig/nope.*abc12345"):
        resolve_xp("//sig/nope", tmp_path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="not an XP folder"):
        resolve_xp(str(tmp_path / "plain"), tmp_path)
    with pytest.raises(ConfigError, match="has no XPs"):
        resolve_xp("abc12345", tmp_path / "empty")


def test_metric_names_and_samples(tmp_path):
    history = [epoch(1.0, 0.5), epoch(0.9, 0.6, evaluate={"accuracy": 0.5}),
               {**epoch(0.8), "generate": {"samples": 4, "duration": 1.0}}]
    assert metric_names(history) == ["train.loss", "valid.loss", "valid.accuracy",
                                     "evaluate.accuracy", "generate.samples"]
    assert "train.duration" in metric_names(history, durations=True)
    folder = make_xp(tmp_path, "smp1")
    for name in ("10/001.wav", "10/000.flac", "5/001.wav", "5/000.wav", "5/notes.txt",
                 "loose.wav", "5/.002.wav.123.tmp.wav"):  # the last: a killed write's
        path = folder / "samples" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert [str(p.relative_to(folder / "samples")) for p in samples(folder)] == [
        "5/000.wav", "5/001.wav", "10/000.flac", "10/001.wav", "loose.wav"]
    assert samples(tmp_path / "xps") == []


# ------------------------------------------------------------------------ plotting
HISTORIES = {
    "first": [epoch(1.0, 0.5), epoch(0.5, 0.7), epoch(0.25, 0.8)],
    "second": [epoch(2.0, 0.4), epoch(1.5, 0.6)],
}


def test_plot_curves_default_valid_metrics_one_line_per_xp():
    figure = plot_curves(HISTORIES)
    assert [ax.get_title() for ax in figure.axes] == ["valid.loss", "valid.accuracy"]
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["first", "second"]
    assert list(lines[0].get_xdata()) == [1, 2, 3]
    assert list(lines[0].get_ydata()) == [1.0, 0.5, 0.25]
    assert list(figure.axes[1].get_lines()[1].get_ydata()) == [0.4, 0.6]


def test_plot_curves_chosen_metrics_and_sparse_stages():
    histories = {"x": [epoch(1.0), epoch(0.9, evaluate={"si_snr": 3.0}), epoch(0.8),
                       epoch(0.7, evaluate={"si_snr": 5.0})]}
    figure = plot_curves(histories, ["evaluate.si_snr", "train.loss", "train.duration"])
    assert len(figure.axes) == 3
    line = figure.axes[0].get_lines()[0]
    assert (list(line.get_xdata()), list(line.get_ydata())) == ([2, 4], [3.0, 5.0])
    assert list(figure.axes[1].get_lines()[0].get_ydata()) == pytest.approx([1.1, 1.0, 0.9, 0.8])


def test_plot_curves_unknown_metric_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"'valid.nope'.*valid\.loss.*valid\.accuracy"):
        plot_curves(HISTORIES, ["valid.nope"])
    with pytest.raises(ConfigError, match="No finished epoch.*empty"):
        plot_curves({"empty": [], **HISTORIES})


def test_spectrogram_figure_axes_and_images(tmp_path):
    rate = 16_000
    time = torch.arange(rate * 2) / rate
    stereo = torch.stack([torch.sin(2 * torch.pi * 440 * time),
                          torch.sin(2 * torch.pi * 1000 * time)])
    figure = spectrogram_figure(stereo, rate, title="two tones")
    ax = figure.axes[0]
    assert ax.get_xlim() == pytest.approx((0.0, 2.0))
    assert ax.get_ylim() == pytest.approx((0.0, 8000.0))
    assert ax.get_title() == "two tones"
    image = figure_image(spectrogram_figure(np.zeros(4000, dtype=np.float32), 8000))
    assert image.mode == "RGB" and image.width > image.height > 0
    path = figure_png(figure, tmp_path / "sub" / "spec.png")
    assert path.stat().st_size > 0
    with pytest.raises(ConfigError, match=r"\.png"):
        figure_png(figure, tmp_path / "spec.nope")
    with pytest.raises(ConfigError, match="shape"):
        spectrogram_figure(torch.zeros(2, 2, 100), rate)


# ------------------------------------------------------------------------ a real XP
def test_a_trained_xp_is_done_with_its_best_metric(dora_dir):
    from audiotools.train import train
    from tests.solvers.helpers import make_xp as make_real_xp
    # The toy recipe through what `dora run` calls (it records config.json), one thread.
    xp = make_real_xp("optim.epochs=2", "num_threads=1")
    with xp.enter():
        train(xp.cfg)
    history = json.loads((xp.folder / "history.json").read_text())
    found = find_xps(dora_dir)
    assert [summary.sig for summary in found] == [xp.sig]
    summary = found[0]
    assert (summary.state, summary.epochs_done, summary.epochs) == ("done", 2, 2)
    assert (summary.recipe, summary.overrides) == ("toy/debug", ["optim.epochs=2", "num_threads=1"])
    losses = [entry["valid"]["loss"] for entry in history]
    assert summary.best["valid.loss"] == min(losses)
    assert summary.best_epoch == losses.index(min(losses)) + 1
    assert resolve_xp(xp.sig) == xp.folder.resolve()
