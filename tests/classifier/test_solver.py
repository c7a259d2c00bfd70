"""The classifier solver end to end: recipes, metrics, export, k-fold."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiotools.cli import main as cli
from audiotools.data.audio import audio_write
from audiotools.errors import ConfigError
from audiotools.io import export
from audiotools.metrics.classification import accuracy, confusion_matrix, macro_f1
from tests.conftest import dora_command
from tests.solvers.helpers import build, make_xp, train


def _features_dir(tmp_path, classes=3, per_class=24, folds=3):
    """Separable synthetic log-mels: each class lights up its own band of mel bins."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), per_class)
    features = rng.normal(0, 0.3, (len(labels), 16, 8)).astype(np.float32)
    for index, label in enumerate(labels):
        features[index, label * 4:(label + 1) * 4] += 2.0
    folder = tmp_path / "features"
    folder.mkdir()
    np.save(folder / "features.npy", features)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "folds.npy", np.arange(len(labels)) % folds)
    (folder / "class_mapping.json").write_text(json.dumps(["low", "mid", "high"]))
    return folder


FEATURE_RECIPE = ["solver=classifier/features", "model/cnn=tiny", "model.pools=[[2,2],[2,2]]",
                  "optim.lr=0.01", "model.dropout=0.0", "optim.ema.use=false",
                  "dataset.batch_size=8", "evaluate.every=1"]


def test_metrics_from_confusion_matrix():
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    predictions = torch.tensor([0, 1, 1, 1, 2, 0])
    matrix = confusion_matrix(targets, predictions, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert accuracy(matrix) == pytest.approx(4 / 6)
    # per-class F1: 2*1/(2+1+1)=0.5, 2*2/(4+1+0)=0.8, 2*1/(2+0+1)=0.667
    assert macro_f1(matrix) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_features_recipe_trains_evaluates_and_exports(dora_dir, tmp_path):
    folder = _features_dir(tmp_path)
    solver = train(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "optim.epochs=6",
                   "dataset.fold=1")
    valid = solver.history[-1]["valid"]
    assert set(valid) >= {"loss", "accuracy", "macro_f1"}
    assert max(epoch["valid"]["accuracy"] for epoch in solver.history) >= 0.9
    assert (solver.folder / "confusion_matrix.png").exists()
    assert (solver.folder / "outputs" / "evaluate_6" / "confusion_matrix.png").exists()

    out = tmp_path / "model.safetensors"
    assert cli(["export", str(solver.folder), str(out)]) == 0
    exported = export.read(out)
    assert exported.family == "classifier"
    assert exported.info["class_names"] == ["low", "mid", "high"]
    assert exported.model["n_mels"] == 16 and exported.model["num_classes"] == 3


def test_continuing_from_classes_in_another_order_is_refused(dora_dir, tmp_path, caplog):
    """The head's rows were loaded under other classes' names (accuracy 0.90 -> 0.11 after a
    step of lr 1e-9) with "loaded 27/27 tensors" logged; now refused, naming the order."""
    folder = _features_dir(tmp_path)
    source = train(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "optim.epochs=1",
                   "dataset.fold=1")
    (folder / "class_mapping.json").write_text(json.dumps(["mid", "low", "high"]))
    with pytest.raises(ConfigError, match=r"trained on the classes \['low', 'mid', 'high'\] "
                                          r"in this order, and this run's data gives \['mid', "
                                          r"'low', 'high'\]"):
        train(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "optim.epochs=1",
              "dataset.fold=1", f"continue_from={source.folder}")
    (folder / "class_mapping.json").write_text(json.dumps(["a", "b", "c"]))
    train(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "optim.epochs=1",
          "dataset.fold=1", f"continue_from={source.folder}")
    assert "was trained on the classes ['low', 'mid', 'high']; this run's are ['a', 'b', 'c']" \
        in caplog.text


def test_the_other_sources_dataset_keys_are_said_unread(dora_dir, tmp_path, caplog):
    """A features run read no dataset.classes or sample_rate, and said nothing."""
    folder = _features_dir(tmp_path)
    build(make_xp(*FEATURE_RECIPE, f"dataset.features_dir={folder}")).close()
    assert "dataset.source=features does not use them" not in caplog.text
    build(make_xp(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "dataset.sample_rate=44100",
                  "dataset.classes=[a,b]")).close()
    assert ("dataset.classes=['a', 'b'], dataset.sample_rate=44100: not read, "
            "dataset.source=features does not use them") in caplog.text


def test_evaluate_computes_in_the_configured_precision_as_valid_does(dora_dir, tmp_path,
                                                                     monkeypatch):
    """Valid and evaluate measure one model on one fold: both under the recipe's autocast."""
    from audiotools.solvers.classifier import ClassifierSolver
    seen: dict[str, set[bool]] = {}
    original = ClassifierSolver.run_step

    def spy(self, idx, batch, metrics):
        seen.setdefault(self.current_stage, set()).add(torch.is_autocast_enabled("cpu"))
        return original(self, idx, batch, metrics)

    monkeypatch.setattr(ClassifierSolver, "run_step", spy)
    folder = _features_dir(tmp_path)
    train(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "optim.epochs=1",
          "precision=bf16-mixed")
    assert seen == {"train": {True}, "valid": {True}, "evaluate": {True}}


def test_model_size_must_match_the_data(dora_dir, tmp_path):
    folder = _features_dir(tmp_path)
    with pytest.raises(ConfigError, match="model.num_classes=5 but .*names 3 classes"):
        build(make_xp(*FEATURE_RECIPE, f"dataset.features_dir={folder}",
                      "model.num_classes=5"))
    with pytest.raises(ConfigError, match="model.n_mels=40 but the data has 16"):
        build(make_xp(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "model.n_mels=40"))


def test_features_recipe_needs_its_path(dora_dir):
    result = dora_command("run", "solver=classifier/features", check=False)
    assert result.returncode != 0
    assert ("dataset.source, dataset.features_dir: dataset.source=features needs "
            "dataset.features_dir=PATH.") in result.stderr


@pytest.mark.slow
def test_debug_recipe_through_dora_with_resume(dora_dir):
    first = dora_command("run", "solver=classifier/debug")
    assert "Valid Summary | Epoch 2" in first.stderr and "macro_f1=" in first.stderr
    again = dora_command("run", "solver=classifier/debug", "optim.epochs=3")
    assert "Train Summary | Epoch 1" in again.stderr  # another signature: a new XP
    resumed = dora_command("run", "solver=classifier/debug")
    assert "All 2 epochs are done" in resumed.stderr


@pytest.mark.slow
def test_kfold_runs_every_fold_and_summarises(dora_dir, tmp_path, capsys):
    folder = _features_dir(tmp_path)
    args = [*FEATURE_RECIPE, f"dataset.features_dir={folder}", "optim.epochs=2"]
    assert cli(["kfold", *args]) == 0
    output = capsys.readouterr().out
    assert "Fold 2: XP" in output
    assert "best valid accuracy over 3/3 folds:" in output and "±" in output
    assert cli(["kfold", *args, "--summary"]) == 0
    assert "Fold 0: XP" not in capsys.readouterr().out


@pytest.mark.slow
def test_classify_files_with_an_exported_model(dora_dir, tmp_path, capsys):
    from audiotools.environment import DATASETS_DIR
    solver = train("solver=classifier/debug", "optim.epochs=1")
    out = tmp_path / "digits.safetensors"
    assert cli(["export", solver.xp.sig, str(out)]) == 0
    files = [DATASETS_DIR / "digits" / "seven" / "en-us-m1_0.ogg",
             DATASETS_DIR / "digits" / "zero" / "en-gb-x-rp-f2_1.ogg"]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF nonsense")
    capsys.readouterr()
    assert cli(["classify", str(out), *map(str, files), str(broken), "--top", "2"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        fields = line.split("\t")
        assert fields[1] in {"zero", "one", "two", "three", "four", "five", "six", "seven",
                             "eight", "nine"}
        assert 0.0 <= float(fields[2]) <= 1.0 and float(fields[2]) >= float(fields[4])
    assert f"{broken}\terror:" in captured.err
    assert "note:" not in captured.err  # the digits fit the model's window
    long = tmp_path / "long.wav"
    audio_write(long, torch.zeros(1, 16000 * 5), 16000)
    assert cli(["classify", str(out), str(long)]) == 0
    assert (f"{long}\tnote: classified its first 1.00 s of 5.00 s (the model's window; the "
            "rest is not heard)") in capsys.readouterr().err


def test_digits_labels_follow_the_digit_order(dora_dir):
    solver = build(make_xp("solver=classifier/debug"))
    assert solver.arrays.class_names[:3] == ["zero", "one", "two"]
    solver.close()


def test_kfold_runs_the_other_folds_when_one_fails(dora_dir, monkeypatch, capsys):
    """As `audiotools grid` does: the failing fold is named, the rest run, the exit is 1."""
    from audiotools import local_grid
    from audiotools.errors import XPLockedError
    ran = []

    def run_xp(xp):
        ran.append(xp.cfg.dataset.fold)
        if xp.cfg.dataset.fold == 1:
            raise XPLockedError("another process is running this XP")

    monkeypatch.setattr(local_grid, "run_xp", run_xp)
    assert cli(["kfold", "solver=classifier/debug"]) == 1
    out = capsys.readouterr().out
    assert ran == [0, 1, 2, 3, 4]
    assert "error: fold 1, XP " in out and "another process is running this XP" in out
    assert "best valid accuracy" in out and out.count("not trained") == 5  # the summary


def test_kfold_refuses_a_recipe_of_another_family(dora_dir, capsys):
    assert cli(["kfold", "solver=diffusion/debug"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: kfold runs classifier recipes (solver=classifier/...); "
                   "solver=diffusion/debug is a diffusion recipe.\n")


def test_kfold_refuses_a_fold_of_the_user(dora_dir, capsys):
    assert cli(["kfold", "solver=classifier/debug", "dataset.fold=2"]) == 2
    err = capsys.readouterr().err
    assert "kfold sets dataset.fold itself" in err and "drop dataset.fold=2" in err
    assert not list(dora_dir.glob("xps/*"))  # refused before any XP is made


def test_num_folds_that_disagrees_with_the_folds_file_is_said_to_be_unused(dora_dir, caplog):
    """The digits' folds file decides the folds (docs/solvers/classifier.md): a num_folds
    that counts others is not silently dropped."""
    solver = build(make_xp("solver=classifier/debug", "dataset.num_folds=2"))
    assert sorted(set(solver.arrays.folds.tolist())) == [0, 1, 2, 3, 4]
    solver.close()
    assert ("dataset.num_folds=2 is not used: dataset.folds_file=//datasets/digits/folds.csv "
            "assigns 5 fold(s), which are the folds (dataset.num_folds=5 says so)") in caplog.text


@pytest.mark.parametrize("top", ["0", "-1"])
def test_classify_refuses_top_below_one(tmp_path, capsys, top):
    with pytest.raises(SystemExit) as stopped:
        cli(["classify", str(tmp_path / "none.safetensors"), str(tmp_path / "a.wav"),
             "--top", top])
    assert stopped.value.code == 2
    assert f"argument --top: {top}: give 1 or more" in capsys.readouterr().err


def test_classify_refuses_a_missing_file_before_loading_the_model(tmp_path, capsys):
    """It loaded the model, then said "System error" on the file's line."""
    (tmp_path / "a.wav").write_bytes(b"")
    assert cli(["classify", str(tmp_path / "none.safetensors"), str(tmp_path / "a.wav"),
                str(tmp_path / "gone.wav")]) == 2
    assert f"{tmp_path / 'gone.wav'}: no such audio file." in capsys.readouterr().err


def test_upload_sends_the_best_export_and_keeps_nothing_in_the_xp(dora_dir, tmp_path,
                                                                  monkeypatch):
    """An export inside the XP folder is refused, so the upload's export goes elsewhere (it
    was written into the XP folder, and the refusal stopped every run that set a repo)."""
    from audiotools.data import hub
    sent = []

    def upload(repo, path, path_in_repo):
        sent.append((repo, path_in_repo, export.read(path).family))
        return True

    monkeypatch.setattr(hub, "upload_model", upload)
    folder = _features_dir(tmp_path)
    solver = train(*FEATURE_RECIPE, f"dataset.features_dir={folder}", "optim.epochs=1",
                   "upload.hf_repo_id=me/cnn")
    assert sent == [("me/cnn", f"{solver.xp.sig}/fold0_best.safetensors", "classifier")]
    assert not list(solver.folder.glob("*.safetensors"))
