"""Run a recipe in-process, the way `dora run` does, for fast tests of the solver base."""
from __future__ import annotations

import pytest
import torch

from audiotools.distributed import seed_everything
from audiotools.families import build_solver
from audiotools.solvers.base import StandardSolver


def make_xp(*overrides: str):
    from audiotools.train import main
    xp = main.get_xp(["solver=toy/debug", *overrides])
    main.init_xp(xp)
    return xp


def build(xp) -> StandardSolver:
    """What audiotools.train.main does before `solver.run()`: seed, then build."""
    seed_everything(xp.cfg.seed)
    with xp.enter():
        return build_solver(xp.cfg)


def train(*overrides: str) -> StandardSolver:
    """Build and run a solver; the returned solver is closed (lock released)."""
    xp = make_xp(*overrides)
    solver = build(xp)
    with xp.enter():
        solver.run()
    return solver


def model_state(xp) -> dict[str, torch.Tensor]:
    state = torch.load(xp.folder / "checkpoint.th", weights_only=True)
    return state["model"]


def assert_same_state(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), f"{key} differs"


def crash_then_resume(monkeypatch, *overrides: str, epoch: int, step: int) -> StandardSolver:
    """Run the XP until training step `step` of `epoch`, interrupt it there (as Ctrl-C does),
    check that only the epochs before were committed, then resume it to the end."""
    xp = make_xp(*overrides)
    solver = build(xp)
    original = type(solver).run_step

    def interrupted(self, idx, batch, metrics):
        if self.is_training and self.epoch == epoch and idx == step:
            raise KeyboardInterrupt
        return original(self, idx, batch, metrics)

    monkeypatch.setattr(type(solver), "run_step", interrupted)
    with xp.enter(), pytest.raises(KeyboardInterrupt):
        solver.run()
    assert len(solver.history) == epoch - 1
    monkeypatch.setattr(type(solver), "run_step", original)
    return train(*overrides)


def assert_resume_matches_uninterrupted(monkeypatch, dora_dir, *overrides: str,
                                        names: tuple[str, ...]) -> None:
    """An XP interrupted at step 1 of epoch 2 and resumed ends with the same `names` states
    and the same history (durations aside) as the same XP run without interruption."""
    reference = train(*overrides)
    expected = torch.load(reference.folder / "checkpoint.th", weights_only=True)
    reference.folder.rename(dora_dir / "reference")
    resumed = crash_then_resume(monkeypatch, *overrides, epoch=2, step=1)
    state = torch.load(resumed.folder / "checkpoint.th", weights_only=True)
    for name in names:
        assert_same_state(state[name], expected[name])

    def without_durations(history):
        return [{stage: {key: value for key, value in metrics.items() if key != "duration"}
                 for stage, metrics in epoch.items()} for epoch in history]

    assert without_durations(state["history"]) == without_durations(expected["history"])
