"""StandardSolver behaviour, run in-process on the toy recipe."""
from __future__ import annotations

import fcntl
import json
import logging

import pytest
import torch

from audiotools.errors import CheckpointError, NonFiniteLossError, XPLockedError
from audiotools.io import checkpoint
from tests.solvers.helpers import (
    assert_same_state,
    build,
    crash_then_resume,
    make_xp,
    model_state,
    train,
)


def test_run_writes_history_checkpoint_logs_and_media(dora_dir):
    solver = train()
    folder = solver.folder
    history = json.loads((folder / "history.json").read_text())
    assert len(history) == 3
    assert set(history[-1]) == {"train", "valid", "evaluate", "generate"}
    assert history[-1]["valid"]["loss"] < history[0]["valid"]["loss"]
    assert (folder / "checkpoint.th").exists()
    log = (folder / "solver.log.0").read_text()
    assert "Valid Summary | Epoch 3" in log
    assert "\x1b[" not in log  # flashy's bold summaries read as ^[[1m in a file
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert (folder / "outputs" / "generate_3" / "tone.wav").exists()


def test_rerun_of_a_finished_xp_does_no_work(dora_dir):
    first = train()
    before = (first.folder / "checkpoint.th").stat().st_mtime_ns
    second = train()
    assert len(second.history) == 3
    assert (first.folder / "checkpoint.th").stat().st_mtime_ns == before


def test_crash_mid_epoch_then_resume_gives_identical_weights(dora_dir, monkeypatch):
    reference = train("optim.ema.use=true", "seed=7")
    reference_state = model_state(reference.xp)
    (reference.folder).rename(dora_dir / "reference")

    resumed = crash_then_resume(monkeypatch, "optim.ema.use=true", "seed=7", epoch=2, step=5)
    assert_same_state(model_state(resumed.xp), reference_state)


def test_override_gives_a_new_signature(dora_dir):
    assert make_xp().sig != make_xp("optim.lr=0.02").sig
    assert make_xp().sig == make_xp("device=cpu", "logging.level=DEBUG").sig


def test_keep_last_prunes_numbered_checkpoints(dora_dir):
    solver = train("optim.epochs=4", "checkpoint.keep_last=2")
    assert sorted(p.name for p in solver.folder.glob("checkpoint_*.th")) == [
        "checkpoint_3.th", "checkpoint_4.th"]
    solver = train("optim.epochs=2", "checkpoint.keep_last=0")
    assert not list(solver.folder.glob("checkpoint_*.th"))


def test_checkpoint_loads_with_weights_only(dora_dir):
    solver = train("optim.epochs=1")
    state = torch.load(solver.folder / "checkpoint.th", weights_only=True)
    assert {"model", "optimizer", "rng", "history", "best_state"} <= set(state)
    assert isinstance(state["xp.cfg"], dict)


def test_corrupt_checkpoint_is_refused_and_kept(dora_dir):
    solver = train("optim.epochs=2", "checkpoint.keep_last=2")
    path = solver.folder / "checkpoint.th"
    path.unlink()  # checkpoint.th is a hard link to checkpoint_2.th: write a new torn file
    path.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CheckpointError) as error:
        train("optim.epochs=2", "checkpoint.keep_last=2")
    message = str(error.value)
    assert str(path) in message and "--clear" in message and "checkpoint_2.th" in message
    assert path.read_bytes() == b"PK\x03\x04 torn"


def test_a_checkpoint_damaged_in_place_is_not_offered_as_its_own_copy(dora_dir):
    """keep_last=1: checkpoint_2.th is a hard link of checkpoint.th, damaged with it."""
    solver = train("optim.epochs=2", "checkpoint.keep_last=1")
    path = solver.folder / "checkpoint.th"
    assert path.samefile(solver.folder / "checkpoint_2.th")
    with open(path, "r+b") as handle:  # in place: both names see it
        handle.truncate(100)
    with pytest.raises(CheckpointError) as error:
        train("optim.epochs=2", "checkpoint.keep_last=1")
    assert "--clear" in str(error.value) and "cp " not in str(error.value)


def test_kill_during_checkpoint_write_keeps_previous(dora_dir, monkeypatch):
    solver = train("optim.epochs=1")
    path = solver.folder / "checkpoint.th"
    before = path.read_bytes()

    def killed_mid_write(state, handle):
        handle.write(b"half a checkpoint")
        raise SystemExit("killed")

    with monkeypatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(checkpoint.torch, "save", killed_mid_write)
        checkpoint.save({"x": 1}, solver.folder, epoch=2, keep_last=1)
    assert path.read_bytes() == before
    checkpoint.save({"x": 1}, solver.folder, epoch=2, keep_last=1)
    assert not list(solver.folder.glob(".checkpoint.th.*.tmp"))


def test_history_without_checkpoint_is_an_error_not_a_restart(dora_dir):
    solver = train("optim.epochs=1")
    (solver.folder / "checkpoint.th").unlink()
    with pytest.raises(CheckpointError, match="history.json records 1 epochs"):
        train("optim.epochs=1")


def test_a_kill_between_checkpoint_and_history_is_mended_by_the_rerun(dora_dir):
    """The last epoch's checkpoint written, its history.json line not: the rerun resumes
    from the checkpoint and writes the history it holds (the epoch was lost for good)."""
    solver = train("optim.epochs=2")
    path = solver.folder / "history.json"
    whole = json.loads(path.read_text())
    path.write_text(json.dumps(whole[:1]))
    train("optim.epochs=2")
    assert json.loads(path.read_text()) == whole


def test_second_run_of_the_same_xp_is_refused(dora_dir):
    xp = make_xp()
    with open(xp.folder / "lock", "a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242")
        holder.flush()
        with pytest.raises(XPLockedError, match="already running .pid 4242"):
            build(xp)
    assert not (xp.folder / "checkpoint.th").exists()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(dora_dir):
    with pytest.raises(NonFiniteLossError, match="stage 'train', epoch 2, step 3"):
        train("dataset.fail_at_epoch=2")
    xp = make_xp("dataset.fail_at_epoch=2")
    state = torch.load(xp.folder / "checkpoint.th", weights_only=True)
    assert len(state["history"]) == 1


def test_parameter_counts_are_logged(dora_dir, caplog):
    with caplog.at_level(logging.INFO):
        build(make_xp())
    assert "Model model: 161 parameters" in caplog.text
    assert "model.0: 144" in caplog.text


def test_accumulation_and_updates_per_epoch(dora_dir):
    solver = train("optim.epochs=2", "optim.accumulation=3")
    assert solver._updates_done == 2 * (12 // 3)
    solver = train("optim.epochs=2", "optim.updates_per_epoch=20")
    assert solver._updates_done == 40  # 20 updates > one pass of 12 batches: the loader cycles


def test_clipping_applies_max_norm(dora_dir, monkeypatch):
    seen = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        seen.append(max_norm)
        return original(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train("optim.epochs=1", "optim.max_norm=0.5")
    assert seen == [0.5] * 12


def _record_output_dtypes(monkeypatch) -> list[torch.dtype]:
    """The dtype of the toy model's output at each training and valid step (autocast's)."""
    from tests.toy.solver import ToySolver
    dtypes: list[torch.dtype] = []
    original = ToySolver.run_step

    def spy(self, idx, batch, metrics):
        dtypes.append(self.model(batch[0]).dtype)
        return original(self, idx, batch, metrics)

    monkeypatch.setattr(ToySolver, "run_step", spy)
    return dtypes


@pytest.mark.parametrize("precision,dtype", [("bf16-mixed", torch.bfloat16),
                                             ("16-mixed", torch.float16)])
def test_mixed_precision_on_cpu(dora_dir, monkeypatch, precision, dtype):
    dtypes = _record_output_dtypes(monkeypatch)
    solver = train("optim.epochs=1", f"precision={precision}")
    assert set(dtypes) == {dtype}
    assert torch.isfinite(torch.tensor(solver.history[-1]["valid"]["loss"]))


@pytest.mark.parametrize("bf16_hardware,dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_precision_follows_the_hardware(dora_dir, monkeypatch, bf16_hardware, dtype):
    from audiotools.solvers import precision
    dtypes = _record_output_dtypes(monkeypatch)
    monkeypatch.setattr(precision, "computes_in_bf16", lambda device: bf16_hardware)
    solver = train("optim.epochs=1", "precision=auto")
    assert solver.precision == ("bf16-mixed" if bf16_hardware else "32")
    assert set(dtypes) == {dtype}


def test_early_stopping_uses_patience_and_min_delta(dora_dir):
    solver = train("optim.epochs=6", "early_stop.patience=2", "early_stop.min_delta=1000")
    assert len(solver.history) == 3
    solver = train("optim.epochs=3", "early_stop.patience=2")
    assert len(solver.history) == 3


def test_every_gates_stages_and_last_epoch_always_runs(dora_dir):
    solver = train("optim.epochs=3", "evaluate.every=2", "generate.every=0")
    stages = [set(epoch) for epoch in solver.history]
    assert stages == [{"train", "valid"}, {"train", "valid", "evaluate"},
                      {"train", "valid", "evaluate"}]


def test_ema_weights_are_used_for_best_state(dora_dir):
    solver = train("optim.epochs=2", "optim.ema.use=true", "optim.ema.decay=0.9")
    best = solver.best_state["model"]
    live = solver.model.state_dict()
    assert not torch.equal(best["0.weight"], live["0.weight"])
    assert torch.equal(best["0.weight"], solver.ema["model"].weights()["0.weight"])


def test_plateau_schedule_reduces_lr(dora_dir):
    solver = train("optim.epochs=4", "schedule.name=plateau", "schedule.plateau.patience=0",
                   "schedule.plateau.threshold=10", "schedule.plateau.mode=min")
    lrs = [epoch["train"]["lr"] for epoch in solver.history]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] < lrs[0]


def test_best_metric_direction(dora_dir, monkeypatch):
    from tests.toy.solver import ToySolver
    monkeypatch.setattr(ToySolver, "best_mode", "max")
    solver = train("optim.epochs=3")
    losses = [epoch["valid"]["loss"] for epoch in solver.history]
    assert losses[0] == max(losses)  # loss decreases: the first epoch is the "best" for max
    xp_first = torch.load(solver.folder / "checkpoint_3.th", weights_only=True)
    assert not torch.equal(xp_first["best_state"]["model"]["0.weight"],
                           solver.model.state_dict()["0.weight"])


def test_early_stop_epoch_runs_evaluate_and_generate(dora_dir):
    solver = train("optim.epochs=10", "early_stop.patience=1", "early_stop.min_delta=1000",
                   "evaluate.every=5", "generate.every=5")
    assert len(solver.history) == 2
    assert set(solver.history[-1]) == {"train", "valid", "evaluate", "generate"}


def test_a_killed_write_leaves_no_temporary_for_the_next_generate(tmp_path):
    """SIGKILL runs no `finally`: a generate stage first removes what atomic_path left in its
    samples folder, and nothing else."""
    from audiotools.io.atomic import remove_temporaries

    for name in (".000_cfg1.wav.999.tmp.wav", ".000_cfg1.png.999.tmp.png", "000_cfg1.wav",
                 ".keep"):
        (tmp_path / name).write_bytes(b"x")
    remove_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep", "000_cfg1.wav"]


def test_a_resumed_run_logs_the_interrupted_epoch_to_tensorboard_once(dora_dir, monkeypatch):
    """Interrupted in epoch 2's valid stage, after its train summary went to TensorBoard: the
    resumed run logs epoch 2 again, and TensorBoard showed it twice."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    xp = make_xp("optim.epochs=3")
    solver = build(xp)
    original = type(solver).run_step

    def interrupted(self, idx, batch, metrics):
        if not self.is_training and self.epoch == 2:
            raise KeyboardInterrupt
        return original(self, idx, batch, metrics)

    monkeypatch.setattr(type(solver), "run_step", interrupted)
    with xp.enter(), pytest.raises(KeyboardInterrupt):
        solver.run()
    monkeypatch.setattr(type(solver), "run_step", original)
    resumed = train("optim.epochs=3")
    events = EventAccumulator(str(resumed.folder / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3]


def test_the_interrupted_line_names_the_epoch_the_checkpoint_holds(tmp_path):
    """Interrupted between the checkpoint and history.json, it said "before the first
    checkpoint" (history.json still empty) though the rerun resumes from one."""
    from audiotools.train import _where_it_resumes

    assert _where_it_resumes(tmp_path).startswith("interrupted before the first checkpoint")
    (tmp_path / "checkpoint.th").write_bytes(b"x")
    (tmp_path / "checkpoint_2.th").write_bytes(b"x")
    (tmp_path / "history.json").write_text(json.dumps([{"train": {"loss": 1.0}}]))
    assert _where_it_resumes(tmp_path) == ("interrupted; the same command resumes after "
                                           "epoch 2, the last one checkpointed.")


def test_valid_metrics_are_means_over_items_not_over_batches(dora_dir):
    """64 valid items in batches of 24, 24 and 16: the short last batch counted as much as a
    full one, and the best state was picked on that figure."""
    solver = train("optim.epochs=1", "dataset.batch_size=24", "optim.ema.use=false")
    model = solver.model.eval()
    errors = [torch.nn.functional.mse_loss(model(x[None]), y[None]).item()
              for x, y in solver.loaders["valid"].dataset]
    assert len(errors) == 64
    assert solver.history[-1]["valid"]["loss"] == pytest.approx(sum(errors) / 64, rel=1e-5)
