"""continue_from (//sig/, checkpoint, exported model) and `audiotools export`."""
from __future__ import annotations

import logging

import pytest
import torch

from audiotools.cli import main as cli
from audiotools.errors import CheckpointError
from audiotools.io import export
from tests.solvers.helpers import build, make_xp, train


def test_continue_from_sig_loads_best_weights_and_logs_keys(dora_dir, caplog):
    source = train("optim.epochs=2")
    with caplog.at_level(logging.INFO):
        solver = build(make_xp("optim.epochs=1", f"continue_from=//sig/{source.xp.sig}"))
        solver.restore()
    for key, value in source.best_state["model"].items():
        assert torch.equal(solver.model.state_dict()[key], value)
    assert "loaded 4/4 tensors" in caplog.text
    solver.close()


def test_own_checkpoint_wins_over_continue_from(dora_dir, caplog):
    source = train("optim.epochs=1")
    own = train("optim.epochs=1", f"continue_from=//sig/{source.xp.sig}")
    with caplog.at_level(logging.INFO):
        again = train("optim.epochs=1", f"continue_from=//sig/{source.xp.sig}")
    assert again.xp.sig == own.xp.sig
    assert "own checkpoint wins" in caplog.text


def test_continue_from_other_architecture_reports_each_key(dora_dir, caplog):
    source = train("optim.epochs=1")
    with caplog.at_level(logging.INFO):
        solver = build(make_xp("model.hidden=32", f"continue_from=//sig/{source.xp.sig}"))
        solver.restore()
    assert "loaded 1/4 tensors" in caplog.text
    assert "3 wrong shape (kept as initialised): 0.bias, 0.weight, 3.weight" in caplog.text
    solver.close()


def test_continue_from_nothing_fitting_is_an_error(dora_dir, tmp_path):
    path = tmp_path / "foreign.th"
    torch.save({"best_state": {"model": {"other.weight": torch.zeros(2)}}}, path)
    solver = build(make_xp(f"continue_from={path}"))
    with pytest.raises(CheckpointError, match="no tensor of"):
        solver.restore()
    solver.close()


def test_continue_from_a_model_of_another_size_is_an_error(dora_dir, tmp_path):
    """The model takes nothing, though another module (or a fixed buffer) would: the run
    would train from scratch, a log line aside."""
    path = tmp_path / "other_size.th"
    torch.save({"best_state": {"model": {"0.weight": torch.zeros(3, 3)},
                               "extra": {"w": torch.zeros(1)}}}, path)
    solver = build(make_xp(f"continue_from={path}"))
    with pytest.raises(CheckpointError, match="no tensor of .* fits this model's model"):
        solver.restore()
    solver.close()


def test_two_exports_to_one_path_keep_the_first(dora_dir, tmp_path, monkeypatch):
    source = train("optim.epochs=1")
    out = tmp_path / "toy.safetensors"
    save_file = export.save_file

    def raced(flat, name, metadata):  # another export lands while this one writes
        save_file(flat, name, metadata=metadata)
        out.write_bytes(b"the other export")

    monkeypatch.setattr(export, "save_file", raced)
    with pytest.raises(CheckpointError, match="exists \\(written while this export ran\\)"):
        export.export_checkpoint(source.xp.sig, out)
    assert out.read_bytes() == b"the other export"
    assert not list(tmp_path.glob(".toy.safetensors.*"))  # no temporary file left


def test_export_roundtrip_and_continue_from_export(dora_dir, tmp_path, capsys):
    source = train("optim.epochs=2")
    out = tmp_path / "toy.safetensors"
    assert cli(["export", source.xp.sig, str(out)]) == 0
    exported = export.read(out)
    assert exported.config["solver"] == exported.family == "tests.toy.solver:ToySolver"
    assert exported.model == {"hidden": 16, "dropout": 0.1}
    assert exported.sig == source.xp.sig and exported.epoch == 2
    weights = exported.weights
    for key, value in source.best_state["model"].items():
        assert torch.equal(weights["model"][key], value)
    assert cli(["export", source.xp.sig, str(out)]) == 2
    assert "exists" in capsys.readouterr().err

    solver = build(make_xp("optim.epochs=1", f"continue_from={out}"))
    solver.restore()
    assert torch.equal(solver.model.state_dict()["3.bias"], weights["model"]["3.bias"])
    solver.close()


def test_export_errors_are_clear(dora_dir, tmp_path, capsys):
    assert cli(["export", "deadbeef", str(tmp_path / "x.safetensors")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="Cannot read"):
        export.read(bogus)


def test_export_refuses_what_is_no_xp_and_names_what_it_reads(dora_dir, tmp_path, capsys):
    source = train("optim.epochs=1")
    exported = tmp_path / "toy.safetensors"
    assert cli(["export", source.xp.sig, str(exported)]) == 0
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF not really audio")
    capsys.readouterr()
    for given, what in ((exported, "is already an exported model"),
                        (audio, "is not an XP checkpoint or XP folder")):
        assert cli(["export", str(given), str(tmp_path / "again.safetensors")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{given} {what}" in err
        assert "//sig/SIG, an XP folder or its checkpoint.th" in err
        assert "--clear" not in err and "deletes" not in err and "weights_only" not in err
    assert not (tmp_path / "again.safetensors").exists()


def test_export_refuses_an_output_not_named_safetensors(dora_dir, tmp_path, capsys):
    source = train("optim.epochs=1")
    out = tmp_path / "out.wav"
    assert cli(["export", source.xp.sig, str(out)]) == 2
    assert f"{out}: an export is a safetensors file" in capsys.readouterr().err
    assert not out.exists()


def test_an_export_is_as_readable_as_any_file_the_user_writes(dora_dir, tmp_path):
    """safetensors writes 0600 whatever the umask: a team could not read a shared export."""
    import os
    source = train("optim.epochs=1")
    umask = os.umask(0o022)
    try:
        out, _ = export.export_checkpoint(source.xp.sig, tmp_path / "toy.safetensors")
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644


def test_export_refuses_an_output_inside_an_xp_folder(dora_dir, capsys):
    """`dora run --clear` deletes an XP's folder whole, an export written there with it."""
    source = train("optim.epochs=1")
    out = source.folder / "exports" / "toy.safetensors"
    assert cli(["export", source.xp.sig, str(out)]) == 2
    assert f"is inside the XP folder {source.folder}" in capsys.readouterr().err
    assert not out.exists()


def test_unreadable_checkpoint_outside_an_xp_folder_advises_no_deletion(tmp_path):
    from audiotools.io import checkpoint
    path = tmp_path / "checkpoint.th"
    export.write(tmp_path / "m.safetensors", export.Export("toy", {}, {"model": {
        "w": torch.zeros(2)}}))
    path.write_bytes((tmp_path / "m.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    message = str(error.value)
    assert str(path) in message and "not the checkpoint of an XP folder" in message
    assert "--clear" not in message and "deletes" not in message
    assert "\n" not in message and "weights_only" not in message


def test_exporting_a_solver_of_ones_own_says_what_loads_it(dora_dir, tmp_path, capsys):
    """Its export was written without a word, then every command refused it."""
    source = train("optim.epochs=1")
    assert cli(["export", source.xp.sig, str(tmp_path / "toy.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "its solver tests.toy.solver:ToySolver is not one of audiotools' families" in out
    assert "audiotools' commands (classify, generate, ui, ...) do not load it" in out
