"""The parts StandardSolver composes, each on its own: optimizer unit, best state, XP lock,
precision, result logger."""
from __future__ import annotations

import fcntl
import logging
import os

import pytest
import torch

from audiotools import distributed
from audiotools.config import LoggingConfig, OptimConfig, PlateauConfig, ScheduleConfig
from audiotools.errors import ConfigError, XPLockedError
from audiotools.solvers import precision
from audiotools.solvers.best_state import BestState
from audiotools.solvers.lock import XPLock
from audiotools.solvers.optimizer_unit import OptimizerUnit
from audiotools.solvers.results import ResultLogger
from tests.solvers.helpers import build, make_xp


# ---------------------------------------------------------------------- optimizer unit
def _unit(schedule: ScheduleConfig | None = None, scale_gradients: bool = False,
          **optim: object) -> tuple[torch.nn.Parameter, OptimizerUnit]:
    weight = torch.nn.Parameter(torch.zeros(3))
    unit = OptimizerUnit(torch.optim.SGD([weight], lr=0.1), OptimConfig(**optim),
                         schedule or ScheduleConfig(), total_updates=10, device_type="cpu",
                         scale_gradients=scale_gradients)
    return weight, unit


def _loss(weight: torch.Tensor, inputs: list[float]) -> torch.Tensor:
    return (weight * torch.tensor(inputs)).sum()


def test_unit_accumulates_the_mean_gradient_and_updates_at_the_window_end():
    weight, unit = _unit(accumulation=2)
    assert unit.backward(_loss(weight, [1.0, 2.0, 3.0]), batch_index=0) is False
    assert torch.equal(weight.detach(), torch.zeros(3))
    assert unit.backward(_loss(weight, [3.0, 2.0, 1.0]), batch_index=1) is True
    assert torch.allclose(weight.detach(), torch.full((3,), -0.2))
    assert weight.grad is None  # zeroed after the update


def test_unit_clips_to_max_norm():
    weight, unit = _unit(max_norm=0.5)
    unit.backward(_loss(weight, [30.0, 40.0, 0.0]), batch_index=0)
    assert torch.linalg.vector_norm(weight.detach()).item() == pytest.approx(0.1 * 0.5)


def test_unit_averages_gradients_across_ranks_before_stepping(monkeypatch):
    seen = []

    def halve(params):
        seen.append(len(params))
        for param in params:
            param.grad.div_(2)

    monkeypatch.setattr(distributed, "average_gradients", halve)
    weight, unit = _unit()
    unit.backward(_loss(weight, [2.0, 2.0, 2.0]), batch_index=0)
    assert seen == [1]
    assert torch.allclose(weight.detach(), torch.full((3,), -0.1))


def test_unit_states_and_schedule_steps_per_update():
    _, constant = _unit()
    assert set(constant.states()) == {"scaler"} and constant.scheduler is None
    weight, unit = _unit(ScheduleConfig(name="none", warmup_steps=4))
    assert set(unit.states()) == {"scaler", "scheduler"}
    lrs = []
    for index in range(3):
        lrs.append(unit.optimizer.param_groups[0]["lr"])
        unit.backward(_loss(weight, [1.0, 1.0, 1.0]), batch_index=index)
    assert lrs == pytest.approx([0.025, 0.05, 0.075])


def test_unit_plateau_steps_on_the_valid_metric_only():
    schedule = ScheduleConfig(name="plateau", plateau=PlateauConfig(metric="mel", patience=0))
    weight, unit = _unit(schedule)
    assert unit.on_plateau
    unit.backward(_loss(weight, [1.0, 1.0, 1.0]), batch_index=0)
    assert unit.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # not per update
    unit.step_plateau({"mel": 1.0})
    unit.step_plateau({"mel": 2.0})  # no improvement, patience 0: halve
    assert unit.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="schedule.plateau.metric=.mel..*.loss."):
        unit.step_plateau({"loss": 1.0})


def test_unit_without_plateau_ignores_valid_metrics():
    _, unit = _unit(ScheduleConfig(name="cosine"))
    assert not unit.on_plateau
    unit.step_plateau({})
    assert unit.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_unit_scales_gradients_in_16_mixed_only():
    _, plain = _unit()
    assert not plain.scaler.is_enabled() and plain.scaler.state_dict() == {}
    weight, scaled = _unit(scale_gradients=True, max_norm=1e6)
    assert scaled.scaler.is_enabled()
    scaled.backward(_loss(weight, [1.0, 2.0, 3.0]), batch_index=0)
    # The scaled loss is unscaled before the step: the update is the plain SGD one.
    assert torch.allclose(weight.detach(), torch.tensor([-0.1, -0.2, -0.3]))
    assert scaled.scaler.state_dict()["scale"] > 1


# ---------------------------------------------------------------------- best state
def _history(*values: float | None, metric: str = "loss") -> list[dict]:
    return [{"train": {}} if value is None else {"valid": {metric: value}} for value in values]


def test_best_state_direction_and_margin():
    lower, higher = BestState("loss", "min"), BestState("accuracy", "max")
    assert lower.is_better(1.0, 2.0) and not lower.is_better(1.9, 2.0, margin=0.5)
    assert higher.is_better(2.0, 1.0) and not higher.is_better(1.4, 1.0, margin=0.5)
    assert lower.improves(5.0, []) and higher.improves(0.0, [])
    assert lower.improves(0.5, [1.0, 0.7]) and not lower.improves(0.7, [1.0, 0.7])
    assert higher.improves(0.9, [0.5, 0.8]) and not higher.improves(0.6, [0.5, 0.8])
    with pytest.raises(ValueError, match="best_mode='lowest'"):
        BestState("loss", "lowest")


def test_best_state_values_skip_epochs_without_the_metric():
    history = [*_history(3.0, None, 2.0), {"valid": {"other": 1.0}}]
    assert BestState("loss", "min").values(history) == [3.0, 2.0]


def test_best_state_snapshot_is_a_cpu_copy():
    best = BestState("loss", "min")
    live = {"weight": torch.ones(2)}
    best.snapshot({"model": live})
    live["weight"].add_(1)
    assert torch.equal(best.weights["model"]["weight"], torch.ones(2))
    best.load_state_dict({"other": {"bias": torch.zeros(1)}})
    assert set(best.state_dict()) == {"other"}


@pytest.mark.parametrize("values,patience,min_delta,stops", [
    ([3.0, 2.0, 2.5, 2.6], None, 0.0, False),
    ([3.0, 2.0, 2.5], 2, 0.0, False),
    ([3.0, 2.0, 2.5, 2.6], 2, 0.0, True),
    ([3.0, 2.0, 2.5, 1.9], 2, 0.0, False),
    ([3.0, 2.0, 2.5, 1.9], 2, 0.5, True),  # 2.0 and 1.9 are no improvement by more than 0.5
])
def test_best_state_early_stop(values, patience, min_delta, stops):
    assert BestState("loss", "min", patience, min_delta).should_stop(values) is stops


# ---------------------------------------------------------------------- XP lock
def test_lock_holds_the_pid_refuses_a_second_run_and_releases(tmp_path):
    lock = XPLock(tmp_path, "abc123")
    assert lock.held and (tmp_path / "lock").read_text() == str(os.getpid())
    with pytest.raises(XPLockedError, match=rf"XP abc123 is already running \(pid {os.getpid()}"):
        XPLock(tmp_path, "abc123")
    lock.release()
    lock.release()
    assert not lock.held
    with open(tmp_path / "lock", "a+") as handle:  # free again for anyone
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_lock_is_taken_by_rank_zero_only(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "is_rank_zero", lambda: False)
    lock = XPLock(tmp_path, "abc123")
    assert not lock.held and not (tmp_path / "lock").exists()


# ---------------------------------------------------------------------- precision
@pytest.fixture
def no_probe(monkeypatch):
    def refuse(dtype):
        raise AssertionError("probed")

    monkeypatch.setattr(precision, "cpu_slowdown", refuse)


@pytest.mark.parametrize("bf16_hardware,expected", [(True, "bf16-mixed"), (False, "32")])
def test_auto_precision_follows_the_device(monkeypatch, caplog, bf16_hardware, expected):
    monkeypatch.setattr(precision, "computes_in_bf16", lambda device: bf16_hardware)
    monkeypatch.setattr(precision, "cpu_slowdown", lambda dtype: 1.0)
    with caplog.at_level(logging.INFO):
        assert precision.resolve_precision("auto", torch.device("cpu")) == expected
    assert f"precision=auto: {expected} on this cpu." in caplog.text


def test_full_precision_is_never_probed(no_probe, caplog):
    assert precision.resolve_precision("32", torch.device("cpu")) == "32"
    assert precision.resolve_precision("16-mixed", torch.device("meta")) == "16-mixed"
    assert not caplog.records


@pytest.mark.parametrize("requested,bf16_hardware,factor,remedy", [
    ("16-mixed", True, 120.0, "set precision=32 or precision=auto (bf16-mixed on this CPU)."),
    ("16-mixed", False, 120.0, "set precision=32 or precision=auto (32 on this CPU)."),
    ("bf16-mixed", False, 5.0, "set precision=32 or precision=auto (32 on this CPU)."),
    ("auto", True, 2.0, "set precision=32."),
])
def test_slow_precision_warns_with_the_factor_and_the_remedy(monkeypatch, caplog, requested,
                                                              bf16_hardware, factor, remedy):
    monkeypatch.setattr(precision, "computes_in_bf16", lambda device: bf16_hardware)
    probed = []
    monkeypatch.setattr(precision, "cpu_slowdown", lambda dtype: probed.append(dtype) or factor)
    with caplog.at_level(logging.WARNING):
        resolved = precision.resolve_precision(requested, torch.device("cpu"))
    assert probed == [precision.DTYPES[resolved]]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"precision={requested}")
    assert f"{factor:.1f}x slower than float32" in record.getMessage()
    assert record.getMessage().endswith(remedy)


def test_fast_mixed_precision_says_nothing(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_slowdown", lambda dtype: 0.8)
    with caplog.at_level(logging.WARNING):
        assert precision.resolve_precision("bf16-mixed", torch.device("cpu")) == "bf16-mixed"
    assert not caplog.records


def test_probe_measures_and_leaves_the_rng_alone():
    before = torch.get_rng_state()
    factor = precision.cpu_slowdown(torch.bfloat16)
    assert factor > 0 and torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("name,dtype", [("32", torch.float32), ("bf16-mixed", torch.bfloat16),
                                        ("16-mixed", torch.float16)])
def test_autocast_computes_in_the_precision(name, dtype):
    with precision.autocast(name, torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == dtype


def test_solver_warns_about_a_slow_precision_before_training(dora_dir, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_slowdown", lambda dtype: 42.0)
    with caplog.at_level(logging.WARNING):
        solver = build(make_xp("precision=16-mixed"))
    solver.close()
    assert "precision=16-mixed: this CPU" in caplog.text and "42.0x slower" in caplog.text
    assert not solver.history


# ---------------------------------------------------------------------- result logger
class _Recorder:
    """An experiment logger that records its calls, with a writer to close."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.writer = self

    def __getattr__(self, name: str):
        if name.startswith("log_") or name in ("close", "finish"):
            return lambda *args, **kwargs: self.calls.append((name, *args))
        raise AttributeError(name)


def test_result_logger_summarises_and_forwards(caplog):
    recorder = _Recorder()
    results = ResultLogger(logging.getLogger("test.results"), {"recorder": recorder})
    with caplog.at_level(logging.INFO):
        results.log_metrics("valid", {"loss": 0.5}, step=3)
    assert "Valid Summary | Epoch 3 | loss=0.5" in caplog.text
    audio = torch.zeros(1, 4)
    results.log_audio("generate", "tone", audio, 16000, 3)
    results.log_text("generate", "note", "hi", 3)
    results.close()
    assert recorder.calls == [("log_metrics", "valid", {"loss": 0.5}, 3),
                              ("log_audio", "generate", "tone", audio, 16000, 3),
                              ("log_text", "generate", "note", "hi", 3),
                              ("close",), ("finish",)]


def test_result_logger_for_xp_builds_our_loggers_on_rank_zero(tmp_path, monkeypatch):
    from audiotools.solvers.loggers import LocalFSLogger
    console = logging.getLogger("test.results")
    settings = LoggingConfig(tensorboard=False)
    results = ResultLogger.for_xp(console, tmp_path, settings)
    assert list(results.loggers) == ["local"]
    assert isinstance(results.loggers["local"], LocalFSLogger)
    assert (tmp_path / "outputs").is_dir()
    stage = tmp_path / "outputs" / "generate_2"  # a run killed while it wrote a clip
    stage.mkdir()
    (stage / ".000.wav.123.tmp.wav").write_bytes(b"RIFF")
    (stage / "001.wav").write_bytes(b"RIFF")
    ResultLogger.for_xp(console, tmp_path, settings)
    assert [p.name for p in stage.iterdir()] == ["001.wav"]
    monkeypatch.setattr(distributed, "is_rank_zero", lambda: False)
    assert ResultLogger.for_xp(console, tmp_path / "other", settings).loggers == {}


@pytest.mark.parametrize("total,lines", [(23, [3, 5, 7, 10, 12, 14, 17, 19, 21, 23]),
                                         (5, [1, 2, 3, 4, 5]), (7, [])])
def test_progress_logs_log_updates_evenly_spaced_lines(caplog, total, lines):
    """logging.log_updates=10 over 23 batches logged 12 lines (every 23 // 10 = 2); a stream
    of unknown length logs none."""
    from audiotools.logs import Progress
    caplog.set_level(logging.INFO)
    test_logger = logging.getLogger("progress-test")
    progress = Progress(test_logger, "Train", range(total), None if not lines else total,
                        10, lambda metrics: {})
    list(progress)
    assert [int(r.message.split(" | ")[1].split("/")[0]) for r in caplog.records] == lines
