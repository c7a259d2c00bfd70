"""`audiotools grid NAME`: a grid's XPs in turn on this machine, resumable, with the grid's table
and the k-fold summary; run as a user runs it (a subprocess from the repo root)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from audiotools.cli import main as cli
from tests.conftest import REPO
from tests.grid_package import write_grid

pytestmark = pytest.mark.slow

RECIPE = ["solver=classifier/debug", "optim.epochs=1"]
# Valid config, but the loader refuses it when the solver is built: a runtime failure.
FAILING = [*RECIPE, "dataset.batch_size=4096"]


def audiotools(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "audiotools"), *args]
    return subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=300)


def _table_state(output: str, sig: str) -> str:
    """The state column (just before the signature) of the grid table's row for `sig`."""
    [row] = [line for line in output.splitlines() if f" {sig} " in line and "|" in line]
    words = row.split("|")[0].split()
    return words[words.index(sig) - 1]


def _best_accuracy(folder: Path) -> float:
    history = json.loads((folder / "history.json").read_text())
    return max(epoch["valid"]["accuracy"] for epoch in history)


def test_local_grid_runs_in_turn_resumes_and_summarises(dora_dir, tmp_path):
    from audiotools.kfold import fold_argvs
    from audiotools.train import main
    env = write_grid(tmp_path / "grids", "classifier.kfold", RECIPE, folds=2, extra=[FAILING])
    first = audiotools("grid", "classifier.kfold", env=env)
    assert first.returncode == 1, first.stdout + first.stderr  # one XP failed
    out = first.stdout
    fold_sigs = [main.get_xp(argv).sig for argv in fold_argvs(RECIPE)[:2]]
    failing_sig = main.get_xp(FAILING).sig
    assert f"[1/3] XP {fold_sigs[0]}" in out and f"[3/3] XP {failing_sig}" in out
    assert f"error: XP {failing_sig}: dataset.batch_size=4096 is larger" in out

    # Each fold is the XP `dora run` would make: same folder, history and checkpoint.
    folders = [dora_dir / "xps" / sig for sig in fold_sigs]
    for folder in folders:
        assert len(json.loads((folder / "history.json").read_text())) == 1
        assert (folder / "checkpoint.th").exists()
    assert [_table_state(out, sig) for sig in [*fold_sigs, failing_sig]] == ["COM", "COM", "FAI"]

    best = [_best_accuracy(folder) for folder in folders]
    expected = f"{statistics.mean(best):.2%} ± {statistics.stdev(best):.2%}"
    assert f"best valid accuracy over 2/2 folds: {expected}" in out

    again = audiotools("grid", "classifier.kfold", env=env)
    assert again.stderr.count("All 1 epochs are done; nothing to run.") == 2
    assert "Train Summary" not in again.stderr

    # A new fold in the grid file: --dry-run lists it, trains nothing, creates no folder.
    write_grid(tmp_path / "grids", "classifier.kfold", RECIPE, folds=3)
    new_sig = main.get_xp(fold_argvs(RECIPE)[2]).sig
    dry = audiotools("grid", "classifier.kfold", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert new_sig in dry.stdout and "[1/" not in dry.stdout
    assert not (dora_dir / "xps" / new_sig).exists()
    assert "over 2/3 folds" in dry.stdout


def test_unknown_grid_lists_the_available_ones(dora_dir, capsys):
    assert cli(["grid", "classifier.nope"]) == 2
    err = capsys.readouterr().err
    assert "grid 'classifier.nope': no module audiotools.grids.classifier.nope" in err
    assert "Available grids: classifier.kfold" in err


def test_dora_grid_without_slurm_points_to_the_local_grid(dora_dir, tmp_path):
    env = write_grid(tmp_path / "grids", "classifier.kfold", RECIPE, folds=1)
    empty = tmp_path / "bin"
    empty.mkdir()
    result = subprocess.run([str(Path(sys.executable).parent / "dora"), "grid",
                             "classifier.kfold", "--no_monitoring"], cwd=REPO,
                            env={**os.environ, **env, "PATH": str(empty)},  # no srun
                            capture_output=True, text=True, timeout=240)
    assert result.returncode != 0
    assert "this machine has no srun" in result.stderr
    assert "`audiotools grid NAME`" in result.stderr and "Traceback" not in result.stderr


def test_dora_grid_clear_without_a_cluster_deletes_nothing(dora_dir, tmp_path):
    """--clear deletes the grid's XPs before submitting them again: with no cluster answering,
    the submission would fail after the deletion."""
    env = write_grid(tmp_path / "grids", "classifier.kfold", RECIPE, folds=1)
    assert audiotools("grid", "classifier.kfold", env=env).returncode == 0
    [folder] = (dora_dir / "xps").iterdir()
    empty = tmp_path / "bin"
    empty.mkdir()
    for clear in ("--clear", "--cl"):  # Dora takes an abbreviation as the flag
        result = subprocess.run([str(Path(sys.executable).parent / "dora"), "grid",
                                 "classifier.kfold", clear, "--no_monitoring"], cwd=REPO,
                                env={**os.environ, **env, "PATH": str(empty)}, input="y\n",
                                capture_output=True, text=True, timeout=240)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "no SLURM cluster answers here (sinfo), so nothing was deleted" in result.stderr
        assert (folder / "checkpoint.th").is_file() and (folder / "history.json").is_file()


def test_dora_grid_with_a_bad_override_is_one_error(dora_dir, tmp_path):
    """Dora's process pool passes the config error on as its repr: printed as the message."""
    env = write_grid(tmp_path / "grids", "classifier.kfold", RECIPE, folds=0,
                     extra=[[*RECIPE, "optim.lrr=1e-3"]])
    result = subprocess.run([str(Path(sys.executable).parent / "dora"), "grid",
                             "classifier.kfold", "--dry_run"], cwd=REPO,
                            env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: optim.lrr: unknown key in section 'optim'" in result.stderr


def test_grid_mistakes_are_one_error(dora_dir, tmp_path):
    env = write_grid(tmp_path / "grids", "classifier.kfold", RECIPE, folds=0)
    empty = audiotools("grid", "classifier.kfold", "--dry-run", env=env)
    assert empty.returncode == 2 and "Traceback" not in empty.stderr
    assert "grid 'classifier.kfold' launches no XP" in empty.stderr
    missing = audiotools("grid", "classifier.kfold", env={**env,
                                                          "AUDIOTOOLS_GRID_PACKAGE": "nosuchpkg"})
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "AUDIOTOOLS_GRID_PACKAGE=nosuchpkg: no such importable package" in missing.stderr


def test_a_damaged_history_is_named_not_a_json_traceback(dora_dir, monkeypatch):
    from audiotools import kfold
    from audiotools.errors import ConfigError
    from audiotools.solvers import classifier
    from audiotools.train import main
    xp = main.get_xp([*RECIPE, "dataset.fold=0"])
    xp.folder.mkdir(parents=True)
    (xp.folder / "history.json").write_text('[{"train": {"loss"')  # cut mid-write
    for read in (lambda: kfold.results([xp]), lambda: main.get_xp_history(xp)):
        with pytest.raises(ConfigError, match="history.json: unreadable history"):
            read()
    # A folds file of one fold: nothing to hold out in turn.
    monkeypatch.setattr(classifier, "load_arrays", lambda settings: type(
        "Arrays", (), {"folds": [0, 0, 0]})())
    with pytest.raises(ConfigError, match="folds.csv assigns 1 fold: cross-validation holds"):
        kfold.fold_ids(RECIPE)


def test_the_classifier_table_leaves_metrics_a_recipe_does_not_log_blank():
    from audiotools.grids.classifier._explorers import ClassifierExplorer
    full = [{"valid": {"accuracy": 0.5, "macro_f1": 0.4, "loss": 1.2}},
            {"valid": {"accuracy": 0.7, "macro_f1": 0.6, "loss": 0.9}}]
    assert ClassifierExplorer.process_history(None, full) == {"valid": {
        "epoch": 2, "best_acc": 0.7, "acc": 0.7, "macro_f1": 0.6, "loss": 0.9}}
    assert ClassifierExplorer.process_history(None, [{"valid": {"loss": 1.0}}]) == {
        "valid": {"epoch": 1, "best_acc": None, "loss": 1.0}}


def test_a_failure_the_user_can_mend_is_one_line_and_the_sequence_goes_on(monkeypatch, capsys):
    """kfold stopped every later fold on an OSError (a file where a fold's folder goes), and
    the grid printed its traceback."""
    from audiotools import local_grid

    def fails(xp):
        raise FileExistsError(17, "File exists", "/x/xps/abc/tensorboard")

    monkeypatch.setattr(local_grid, "run_xp", fails)
    assert local_grid.run_reporting(object(), "fold 1, XP abc") is False
    assert capsys.readouterr().out == (
        "error: fold 1, XP abc: /x/xps/abc/tensorboard: a file stands where a folder is needed "
        "for the output; choose another path or move the file.\n")


def test_folds_group_by_their_config_and_short_folds_are_marked(dora_dir):
    """`optim.lr=0.03` in one fold and `3e-2` in the others split the cross-validation, and
    a group of one was dropped in silence; a fold short of its epochs counted as done."""
    from audiotools import kfold
    from audiotools.train import main

    base = ["solver=classifier/debug", "optim.epochs=3"]
    xps = [main.get_xp([*base, f"dataset.fold={fold}", lr])
           for fold, lr in ((0, "optim.lr=3e-2"), (1, "optim.lr=0.03"), (2, "optim.lr=3e-2"))]
    assert [len(group) for group in kfold.fold_groups(xps)] == [3]
    rows = [kfold.FoldResult(0, "aaa", 3, 0.5, 3), kfold.FoldResult(1, "bbb", 1, 0.7, 3)]
    text = kfold.summary(rows)
    assert "   1       bbb      1/3  70.00%" in text
    assert ("best valid accuracy over 2/2 folds: 60.00% ± 14.14%; 1 of them short of their "
            "epochs (early stop, or not finished)") in text
    assert kfold.summary(rows[:1]).endswith("over 1/1 folds: 50.00% (one fold: no spread)")


def test_dora_grid_with_a_grid_package_it_cannot_import_is_one_error(dora_dir):
    result = subprocess.run([str(Path(sys.executable).parent / "dora"), "grid",
                             "classifier.kfold", "--dry_run"], cwd=REPO,
                            env={**os.environ, "AUDIOTOOLS_GRID_PACKAGE": "nosuch"},
                            capture_output=True, text=True, timeout=240)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "AUDIOTOOLS_GRID_PACKAGE=nosuch: no such importable package" in result.stderr


def test_grids_of_two_packages_keep_their_own_dora_folders(tmp_path):
    """Dora keys a grid's folder by the grid's name: another package's `sweep` cancelled this
    one's running jobs as no longer required."""
    from audiotools.environment import grid_package_folder
    for user in ("alice", "bob"):
        (tmp_path / user / "mygrids").mkdir(parents=True)
        (tmp_path / user / "mygrids" / "__init__.py").write_text("")
    folders = []
    for user in ("alice", "bob"):
        sys.path.insert(0, str(tmp_path / user))
        try:
            sys.modules.pop("mygrids", None)
            folders.append(grid_package_folder("mygrids"))
        finally:
            sys.path.remove(str(tmp_path / user))
            sys.modules.pop("mygrids", None)
    assert folders[0].startswith("grids/mygrids-") and folders[0] != folders[1]
    sys.path.insert(0, str(tmp_path / "alice"))
    try:
        assert grid_package_folder("mygrids") == folders[0]  # the same package, the same one
    finally:
        sys.path.remove(str(tmp_path / "alice"))
        sys.modules.pop("mygrids", None)
