"""The full-size recipes build on a CPU and take a real training step through the solver."""
from __future__ import annotations

import math

import pytest
import torch

from tests.solvers.helpers import assert_same_state, build, crash_then_resume, make_xp, train

TINY_DATA = ["dataset.batch_size=1", "dataset.segment_duration=0.2",
             "dataset.train.num_samples=2", "dataset.num_workers=0", "device=cpu",
             "optim.updates_per_epoch=1", "adversarial.warmup_steps=0"]


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "parameters"), [("oobleck_vae", 156_112_514),
                                                    ("encodec_rvq", 56_884_674)])
def test_full_size_recipe_builds_and_takes_one_step(dora_dir, recipe, parameters):
    xp = make_xp(f"solver=autoencoder/{recipe}", *TINY_DATA)
    solver = build(xp)
    assert sum(p.numel() for p in solver.model.parameters()) == parameters
    name, before = next(iter(solver.model.state_dict().items()))
    before = before.clone()
    with xp.enter():
        metrics = solver.run_stage("train", solver.train_stage)
        solver.close()
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["d_loss"])
    assert solver._updates_done == 1
    assert not torch.equal(solver.model.state_dict()[name], before)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["base", "rvq_base", "magnitude_base"])
def test_cpu_recipe_is_deterministic_and_resumes_exactly(dora_dir, monkeypatch, recipe):
    """The main job, the tokenizer and the latent codec, on a few updates: the same command
    gives the same weights, and a run interrupted mid-epoch and resumed ends where an
    uninterrupted one does."""
    args = [f"solver=autoencoder/{recipe}", "dataset.train.num_samples=24",
            "dataset.valid.num_samples=8", "dataset.num_workers=0", "optim.epochs=2",
            "evaluate.every=0", "generate.every=0"]
    states = []
    for name in ("first", "second"):
        solver = train(*args)
        states.append(torch.load(solver.folder / "checkpoint.th", weights_only=True))
        solver.folder.rename(dora_dir / name)
    resumed = crash_then_resume(monkeypatch, *args, epoch=2, step=1)
    states.append(torch.load(resumed.folder / "checkpoint.th", weights_only=True))
    for state in states[1:]:
        for name in ("model", "ema.model"):
            assert_same_state(state[name], states[0][name])
