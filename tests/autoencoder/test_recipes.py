"""The full-size recipes build on a CPU and take a real training step through the solver."""
from __future__ import annotations

import math

import pytest
import torch

from tests.solvers.helpers import build, make_xp

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
