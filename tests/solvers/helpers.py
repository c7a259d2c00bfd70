"""Run a recipe in-process, the way `dora run` does, for fast tests of the solver base."""
from __future__ import annotations

import torch

from audiotools.distributed import seed_everything
from audiotools.solvers.base import StandardSolver
from audiotools.solvers.builders import get_solver


def make_xp(*overrides: str):
    from audiotools.train import main
    xp = main.get_xp(["solver=toy/debug", *overrides])
    main.init_xp(xp)
    return xp


def build(xp) -> StandardSolver:
    """What audiotools.train.main does before `solver.run()`: seed, then build."""
    seed_everything(xp.cfg.seed)
    with xp.enter():
        return get_solver(xp.cfg)


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
