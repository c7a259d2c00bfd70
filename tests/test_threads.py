"""How many torch threads a process takes when several share a machine or a SLURM task."""
from __future__ import annotations

import os

import pytest
import torch
from dora.distrib import DistribSpec

from audiotools.distributed import set_num_threads


def _spec(world_size: int, num_nodes: int = 1) -> DistribSpec:
    return DistribSpec(0, world_size, 0, 0, num_nodes, "env")


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_configured_threads_win():
    set_num_threads(3, _spec(2))
    assert torch.get_num_threads() == 3


def test_ranks_sharing_a_machine_split_its_cpus(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    set_num_threads(None, _spec(2))
    assert torch.get_num_threads() == max(1, cpus // 2)
    # torchrun over 4 nodes, one rank each (Dora's env spec says 1 node): LOCAL_WORLD_SIZE
    # tells the ranks on this machine.
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    set_num_threads(None, _spec(4))
    assert torch.get_num_threads() == cpus


def test_slurm_task_uses_its_cpus_and_omp_setting_is_respected(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    set_num_threads(None, _spec(1))
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    set_num_threads(None, _spec(1))
    assert torch.get_num_threads() == 2  # the user's OMP_NUM_THREADS: left alone


def test_one_process_outside_slurm_keeps_torch_default():
    torch.set_num_threads(2)
    set_num_threads(None, _spec(1))
    assert torch.get_num_threads() == 2
