"""The shipped grids `diffusion.debug` and `musicgen.debug` (audiotools/grids/) on the real
SLURM test cluster, as a user runs them: `dora grid NAME` submits one job per XP, every job
completes, and `dora grid NAME` again keeps them and shows each XP done with its metrics.
SLURM settings: the test team file, as in tests/slurm/test_slurm.py."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.slurm.test_slurm import Grid, scheduled, table_state
from tests.solvers.helpers import tiny_codec

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def grid(slurm_conf, tmp_path, monkeypatch) -> Iterator[Grid]:
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    monkeypatch.setenv("AUDIOTOOLS_TEAM", "slurm_test")
    grid = Grid(tmp_path, slurm_conf)
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", grid.env["AUDIOTOOLS_CONFIG_PATH"])
    yield grid
    if grid.jobs:  # whatever a failed test left queued or running
        subprocess.run(["scancel", *grid.jobs], env={**os.environ, "SLURM_CONF": slurm_conf})


def _runs_on_slurm(grid: Grid, name: str, metric: str) -> None:
    from audiotools.local_grid import grid_sheeps, load_explorer
    sigs = [sheep.xp.sig for sheep in grid_sheeps(load_explorer(name))]
    assert len(sigs) == 2
    jobs = scheduled(grid.dora("grid", name, "--no_monitoring"))
    assert sorted(jobs) == sorted(sigs)  # every XP went through submitit
    assert set(grid.wait(jobs.values(), timeout=300).values()) == {"COMPLETED"}

    table = grid.dora("grid", name, "--no_monitoring")
    assert not scheduled(table)  # done XPs are kept, not resubmitted
    for sig in sigs:
        history = grid.history(sig)
        assert len(history) == 2 and {"evaluate", "generate"} <= history[1].keys()
        assert (grid.folder(sig) / "samples" / "2" / "conditions.json").exists()
        assert table_state(table, sig) == "COM"
        [row] = [line for line in table.splitlines() if f" {sig} " in line and "|" in line]
        best = min(epoch["valid"][metric] for epoch in history)
        assert f"{best:.4f}" in row and f"{history[1]['evaluate']['fd']:.1f}" in row


def test_diffusion_grid_runs_on_slurm(grid):
    _runs_on_slurm(grid, "diffusion.debug", "loss")


def test_musicgen_grid_runs_on_slurm_with_the_codec_it_is_given(grid, tmp_path, monkeypatch):
    codec = tiny_codec(tmp_path / "rvq.safetensors")
    grid.env["AUDIOTOOLS_MUSICGEN_CODEC"] = str(codec)
    monkeypatch.setenv("AUDIOTOOLS_MUSICGEN_CODEC", str(codec))
    _runs_on_slurm(grid, "musicgen.debug", "ce")
