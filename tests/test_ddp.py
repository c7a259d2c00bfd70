"""Distributed data parallel on CPU (gloo), launched as users launch it: `dora run -d
--ddp_workers 2` and torchrun. (SLURM multi-task jobs: tests/slurm/test_slurm.py.)

`dataset.batch_size` is the global batch: each of 2 ranks takes half of every global batch and
the gradients are averaged, so 2 processes train what 1 process trains, up to what depends on
the split itself (BatchNorm statistics per rank, per-rank dropout seeds, summation order).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, dora_command
from tests.solvers.helpers import assert_same_state

pytestmark = pytest.mark.slow

DDP = ["run", "-d", "--ddp_workers", "2"]


def _xp_folder(dora_dir: Path) -> Path:
    [folder] = (dora_dir / "xps").iterdir()
    return folder


def _losses(folder: Path, stage: str) -> list[float]:
    return [epoch[stage]["loss"] for epoch in json.loads((folder / "history.json").read_text())]


def _run(dora_dir: Path, *args: str) -> Path:
    dora_command(*args, env={"AUDIOTOOLS_DORA_DIR": str(dora_dir)})
    return _xp_folder(dora_dir)


def _killed_in_epoch_2(dora_dir: Path, args: list[str]) -> Path:
    """The XP folder of `dora run -d --ddp_workers 2 ARGS` killed (dora and both ranks) soon
    after its first epoch was committed, inside epoch 2."""
    dora = Path(sys.executable).parent / "dora"
    process = subprocess.Popen([str(dora), *DDP, *args], cwd=REPO, env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    history: list = []
    deadline = time.time() + 120
    while time.time() < deadline and not history:
        files = list((dora_dir / "xps").glob("*/history.json"))
        if files:
            history = json.loads(files[0].read_text() or "[]")
        time.sleep(0.01)
    time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    folder = _xp_folder(dora_dir)
    assert len(json.loads((folder / "history.json").read_text())) == 1, "kill missed epoch 2"
    return folder


def test_ddp_trains_what_one_process_trains_and_rank_zero_alone_writes(dora_dir, tmp_path):
    """Toy regression without dropout: nothing depends on how the batch is split, so only the
    order of float sums differs (all-reduce of two halves vs one mean): 1e-5 relative."""
    args = ["solver=toy/debug", "model.dropout=0"]
    single = _run(tmp_path / "single", "run", *args)
    ddp = _run(tmp_path / "ddp", *DDP, *args)
    assert ddp.name == single.name  # the process count is not part of the XP
    for stage in ("train", "valid"):
        assert _losses(ddp, stage) == pytest.approx(_losses(single, stage), rel=1e-5)
    # Rank 0 alone writes the checkpoint, history, solver.log and TensorBoard; rank 1's stderr
    # is kept by dora in worker_1.log.
    assert (ddp / "solver.log.0").exists() and not (ddp / "solver.log.1").exists()
    assert len(list((ddp / "tensorboard").iterdir())) == 1
    assert (ddp / "worker_1.log").exists()
    state = torch.load(ddp / "checkpoint.th", weights_only=True)
    assert len(state["rng_by_rank"]) == 2


def test_ddp_classifier_reaches_the_single_process_loss(dora_dir, tmp_path):
    """classifier/debug (dropout off, so only BatchNorm depends on the split): each rank
    normalises its 16 items with their own mean and variance instead of the 32 of the global
    batch, so gradients differ slightly. Measured after 2 epochs: 7.6e-4 relative on the train
    loss; dropping the gradient averaging (a real DDP bug) moves it by 1.3e-2. 3e-3 sits
    between the two with a 4x margin on each side."""
    args = ["solver=classifier/debug", "model.dropout=0", "optim.epochs=2"]
    single = _losses(_run(tmp_path / "single", "run", *args), "train")
    ddp = _losses(_run(tmp_path / "ddp", *DDP, *args), "train")
    assert ddp[-1] == pytest.approx(single[-1], rel=3e-3)
    assert ddp[-1] < ddp[0]  # it trains


def test_ddp_killed_mid_run_resumes_bit_exact_and_torchrun_is_the_same_path(dora_dir, tmp_path):
    """Every rank's RNG state is checkpointed (dropout differs per rank), so a `dora run -d`
    killed mid-epoch and resumed ends with the weights of an uninterrupted run; that run is
    launched by torchrun (it sets RANK/WORLD_SIZE itself), which must train bit for bit what
    dora's launcher trains."""
    args = ["solver=toy/debug", "optim.epochs=3", "dataset.num_samples=4096"]
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "AUDIOTOOLS_DORA_DIR": str(tmp_path / "torchrun")}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m",
                             "dora", "run", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    reference = _xp_folder(tmp_path / "torchrun")

    folder = _killed_in_epoch_2(dora_dir, args)

    resumed = dora_command(*DDP, *args)
    assert "Resuming from" in resumed.stderr and "after epoch 1" in resumed.stderr
    final = torch.load(folder / "checkpoint.th", weights_only=True)
    expected = torch.load(reference / "checkpoint.th", weights_only=True)
    assert_same_state(final["model"], expected["model"])
    assert_same_state(final["optimizer"]["state"][0], expected["optimizer"]["state"][0])


def test_indivisible_global_batch_is_a_clear_error(dora_dir):
    result = dora_command(*DDP, "solver=toy/debug", "dataset.batch_size=15", check=False)
    assert result.returncode != 0
    assert ("dataset.batch_size=15 is the global batch, split over 2 processes, so it must be "
            "divisible by 2: use 14 or 16.") in result.stderr


def test_ddp_resume_with_batchnorm_and_ema_repeats_the_uninterrupted_history(dora_dir, tmp_path):
    """Each rank's BatchNorm statistics move with its own batches, and so did each rank's EMA
    of them: valid scored another model on each rank, and a resumed run (every rank loading
    rank 0's EMA) logged other valid losses than the uninterrupted one. The EMA's buffers are
    averaged over the ranks after each training stage, as the model's are."""
    args = ["solver=classifier/debug", "optim.epochs=3", "early_stop.patience=100"]
    reference = _run(tmp_path / "reference", *DDP, *args)
    folder = _killed_in_epoch_2(dora_dir, args)
    dora_command(*DDP, *args)
    assert _losses(folder, "valid") == _losses(reference, "valid")
    assert _losses(folder, "train") == _losses(reference, "train")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_workers_stop_when_the_launcher_is_killed_alone(dora_dir):
    """`kill -9` of `dora run -d` (not of its process group) left both workers training as
    orphans, writing checkpoints to the end."""
    args = ["solver=classifier/debug", "optim.epochs=200", "early_stop.patience=1000"]
    dora = Path(sys.executable).parent / "dora"
    launcher = subprocess.Popen([str(dora), *DDP, *args], cwd=REPO, env=dict(os.environ),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((dora_dir / "xps").glob("*/history.json")):
            time.sleep(0.05)
        workers = _children(launcher.pid)
        assert len(workers) == 2
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
