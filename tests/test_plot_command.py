"""`audiotools plot`: the curves of XPs to an image file, and its refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from audiotools.cli import main


def make_xp(dora: Path, sig: str, losses: list[float]) -> Path:
    folder = dora / "xps" / sig
    folder.mkdir(parents=True)
    (folder / ".argv.json").write_text(json.dumps(["solver=classifier/digits"]))
    (folder / "config.json").write_text(json.dumps({"solver": "classifier",
                                                    "optim": {"epochs": len(losses)}}))
    history = [{"train": {"loss": loss, "duration": 1.0},
                "valid": {"loss": loss, "accuracy": 1 - loss, "duration": 0.1}}
               for loss in losses]
    (folder / "history.json").write_text(json.dumps(history))
    return folder


def test_plot_writes_an_image_and_refuses_to_overwrite(tmp_path, capsys):
    make_xp(tmp_path, "aaa111", [1.0, 0.5, 0.3])
    folder = make_xp(tmp_path, "bbb222", [0.9, 0.6])
    out = tmp_path / "plots" / "curves.png"
    args = ["plot", "aaa111", str(folder), "--metric", "valid.loss", "--out", str(out),
            "--dora-dir", str(tmp_path)]
    assert main(args) == 0
    assert out.stat().st_size > 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "valid.loss" in printed and "aaa111" in printed
    before = out.read_bytes()
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*args, "--force", "--metric", "train.loss"]) == 0
    assert "train.loss" in capsys.readouterr().out
    # A render that fails part-way leaves the earlier image whole, and no temporary file.
    from matplotlib.figure import Figure
    before = out.read_bytes()

    def failing(self, name, **kwargs):
        Path(name).write_bytes(b"half an image")
        raise RuntimeError("the renderer failed")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(Figure, "savefig", failing)
        main([*args, "--force"])
    assert out.read_bytes() == before and sorted(out.parent.iterdir()) == [out]


def test_plot_errors_name_the_xp_or_metric(tmp_path, capsys, monkeypatch):
    make_xp(tmp_path, "aaa111", [1.0, 0.5])
    monkeypatch.setenv("AUDIOTOOLS_DORA_DIR", str(tmp_path))
    out = tmp_path / "curves.png"
    assert main(["plot", "nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'nope'") and "aaa111" in err
    assert main(["plot", "//sig/aaa111", "--metric", "valid.f1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'valid.f1'" in err and "valid.accuracy" in err
    assert not out.exists()


def test_each_xp_keeps_its_colour_in_every_subplot_under_one_legend(tmp_path):
    """An XP with no value of a metric shifted the colours of the XPs after it in that
    subplot, while the only legend, the first subplot's, named them by its own colours."""
    from audiotools.plotting import plot_curves

    first = [{"train": {"loss": 1.0}, "valid": {"loss": 1.0}}]
    second = [{"train": {"loss": 0.5, "ce": 2.0}, "valid": {"loss": 0.4}}]
    figure = plot_curves({"aaa": first, "bbb": second}, ["train.loss", "train.ce"])
    loss, ce = figure.axes
    colours = {line.get_label(): line.get_color() for line in loss.get_lines()}
    assert [line.get_color() for line in ce.get_lines()] == [colours["bbb"]]
    assert colours["aaa"] != colours["bbb"]
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["aaa", "bbb"]


def test_two_xps_of_one_signature_are_refused(tmp_path, capsys):
    """The same SIG in two dora dirs: the second's curves replaced the first's."""
    one = make_xp(tmp_path / "a", "aaa111", [1.0, 0.5])
    two = make_xp(tmp_path / "b", "aaa111", [0.9, 0.4])
    assert main(["plot", str(one), str(two), "--out", str(tmp_path / "c.png")]) == 2
    assert "are both XP aaa111" in capsys.readouterr().err


def test_a_metric_of_one_epoch_gets_whole_epoch_ticks():
    from audiotools.plotting import plot_curves

    figure = plot_curves({"aaa": [{"evaluate": {"si_snr": 3.0}, "valid": {"loss": 1.0}}]},
                         ["evaluate.si_snr"])
    ax = figure.axes[0]
    assert ax.get_xlim() == (0.5, 1.5)
    assert list(ax.get_xticks()) == [1.0]
