"""`dora grid` on a real SLURM cluster (tests/slurm/cluster.sh), driven as a user drives it:
`dora grid`, `dora info`, sacct. The grids are the classifier k-fold over the debug recipe,
written where Dora finds them (tests/grid_package.py); the SLURM settings come from the test
team file tests/slurm/config/teams/slurm_test.yaml and the grid."""
from __future__ import annotations

import json
import os
import pickle
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, dora_command
from tests.grid_package import write_grid
from tests.solvers.helpers import assert_same_state

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RECIPE = ["solver=classifier/debug", "optim.epochs=1"]
# XPs whose jobs stay RUNNING (sleeping, no CPU used) until a test cancels them.
SLEEPING = [["solver=classifier/debug", "seed=1"], ["solver=classifier/debug", "seed=2"]]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}
BIN = Path(sys.executable).parent


class Grid:
    """One test's grid `classifier.kfold`, its XP folder and the user's commands on it."""

    def __init__(self, root: Path, slurm_conf: str):
        self.root = root
        self.dora_dir = root / "dora"
        self.env = {"SLURM_CONF": slurm_conf, "AUDIOTOOLS_DORA_DIR": str(self.dora_dir),
                    "AUDIOTOOLS_CONFIG_PATH": f"file://{REPO}/tests/slurm/config",
                    "AUDIOTOOLS_TEAM": "slurm_test"}
        self.jobs: list[str] = []

    def write(self, folds: int, extra: Iterable[list[str]] = (),
              sleeping: Iterable[list[str]] = (), **slurm) -> None:
        self.env.update(write_grid(self.root / "grids", "classifier.kfold", RECIPE, folds,
                                   list(extra), slurm, list(sleeping)))

    def dora(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run([str(BIN / "dora"), *args], cwd=REPO, input=stdin,
                                env={**os.environ, **self.env}, capture_output=True,
                                text=True, timeout=240)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"dora {' '.join(args)} failed:\n{output}"
        self.jobs += scheduled(output).values()
        return output

    def grid(self, *flags: str, stdin: str | None = None) -> str:
        return self.dora("grid", "classifier.kfold", "--no_monitoring", *flags, stdin=stdin)

    def audiotools(self, *args: str) -> str:
        result = subprocess.run([str(BIN / "audiotools"), *args], cwd=REPO, capture_output=True,
                                env={**os.environ, **self.env}, text=True, timeout=240)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def sig(self, argv: list[str]) -> str:
        from audiotools.train import main
        return main.get_xp(argv).sig

    def folder(self, sig: str) -> Path:
        return self.dora_dir / "xps" / sig

    def sacct(self, jobs: Iterable[str], fields: str) -> dict[str, list[str]]:
        result = subprocess.run(["sacct", "-n", "-X", "-P", "-o", f"JobID,{fields}",
                                 "-j", ",".join(jobs)], capture_output=True, text=True,
                                env={**os.environ, **self.env}, check=True)
        rows = [line.split("|") for line in result.stdout.splitlines() if line]
        return {row[0]: row[1:] for row in rows}

    def wait(self, jobs: Iterable[str], until: set[str] = TERMINAL,
             timeout: float = 240) -> dict[str, str]:
        """Poll sacct until every job is in one of the `until` states."""
        jobs = list(jobs)
        deadline = time.time() + timeout
        while True:
            states = {job: row[0].split()[0] for job, row in self.sacct(jobs, "State").items()}
            if len(states) == len(jobs) and all(state in until for state in states.values()):
                return states
            assert time.time() < deadline, f"jobs still {states} after {timeout}s"
            time.sleep(0.5)

    def history(self, sig: str) -> list[dict]:
        path = self.folder(sig) / "history.json"
        return json.loads(path.read_text() or "[]") if path.exists() else []


def scheduled(output: str) -> dict[str, str]:
    """sig -> job id, from dora's 'Scheduled job N for sheep SIG/name' lines."""
    return {sig: job for job, sig in re.findall(r"Scheduled job (\d+) for sheep (\w+)/", output)}


def table_state(output: str, sig: str) -> str:
    [row] = [line for line in output.splitlines() if f" {sig} " in line and "|" in line]
    words = row.split("|")[0].split()
    return words[words.index(sig) - 1]


@pytest.fixture
def grid(slurm_conf, tmp_path, monkeypatch) -> Iterator[Grid]:
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    monkeypatch.setenv("AUDIOTOOLS_TEAM", "slurm_test")
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{REPO}/tests/slurm/config")
    grid = Grid(tmp_path, slurm_conf)
    yield grid
    if grid.jobs:  # whatever a failed test left queued or running
        subprocess.run(["scancel", *grid.jobs], env={**os.environ, "SLURM_CONF": slurm_conf})


def test_kfold_grid_runs_every_fold_on_slurm(grid):
    from audiotools.kfold import fold_argvs
    # The grid's own slurm_ (time) wins over the team file (time: 10).
    grid.write(folds=5, time=7)
    fold_sigs = [grid.sig(argv) for argv in fold_argvs(RECIPE)]
    jobs = scheduled(grid.grid())
    assert sorted(jobs) == sorted(fold_sigs)  # every fold went through submitit
    assert set(grid.wait(jobs.values()).values()) == {"COMPLETED"}

    # SLURM received the team file's partition, CPUs, memory and constraint, the grid's time,
    # and ran the team's setup line in each job.
    fields = grid.sacct(jobs.values(), "Partition,AllocCPUS,ReqMem,Timelimit,Constraints")
    assert set(map(tuple, fields.values())) == {("debug", "1", "1G", "00:07:00", "local")}
    for job in jobs.values():
        assert (grid.dora_dir / f"setup_ran_{job}").exists()

    best = []
    for sig in fold_sigs:
        history = grid.history(sig)
        assert len(history) == 1 and "accuracy" in history[0]["valid"]
        assert (grid.folder(sig) / "checkpoint.th").exists()
        best.append(history[0]["valid"]["accuracy"])

    table = grid.grid()
    assert not scheduled(table)  # finished XPs are kept, not resubmitted
    for sig, accuracy in zip(fold_sigs, best, strict=True):
        assert table_state(table, sig) == "COM"
        [row] = [line for line in table.splitlines() if f" {sig} " in line and "|" in line]
        assert f"{accuracy:.2%}" in row

    summary = grid.audiotools("grid", "classifier.kfold", "--dry-run")
    expected = f"{statistics.mean(best):.2%} ± {statistics.stdev(best):.2%}"
    assert f"best valid accuracy over 5/5 folds: {expected}" in summary

    info = grid.dora("info", "-f", fold_sigs[2])
    assert f"state=COMPLETED, sid={jobs[fold_sigs[2]]}" in info
    assert str(grid.folder(fold_sigs[2])) in info
    log = grid.dora("info", "-f", fold_sigs[2], "-l")
    assert "Train Summary | Epoch 1" in log and "Job completed successfully" in log


def test_changed_grid_cancel_and_clear(grid):
    from audiotools.kfold import fold_argvs
    fold0 = grid.sig(fold_argvs(RECIPE)[0])
    running, dropped = (grid.sig(argv) for argv in SLEEPING)
    grid.write(folds=1, sleeping=SLEEPING)
    jobs = scheduled(grid.grid())
    assert jobs.keys() == {fold0, running, dropped}
    grid.wait([jobs[running], jobs[dropped]], until={"RUNNING"})
    grid.wait([jobs[fold0]], until={"COMPLETED"})
    finished = (grid.folder(fold0) / "history.json").stat().st_mtime_ns

    # The grid file changes: one running XP is dropped, its job cancelled; the finished fold
    # and the other running XP stay as they are.
    grid.write(folds=1, sleeping=SLEEPING[:1])
    output = grid.grid()
    assert f"Canceling job {jobs[dropped]} for no longer required sheep {dropped}" in output
    assert not scheduled(output)
    assert grid.wait([jobs[dropped]]) == {jobs[dropped]: "CANCELLED"}
    assert grid.sacct([jobs[running]], "State")[jobs[running]] == ["RUNNING"]

    # --cancel stops the grid's running jobs.
    assert f"Canceling job {jobs[running]} for sheep {running}" in grid.grid("--cancel")
    assert grid.wait([jobs[running]]) == {jobs[running]: "CANCELLED"}
    assert (grid.folder(fold0) / "history.json").stat().st_mtime_ns == finished

    # --clear deletes the grid's XP folders and starts them again from scratch.
    grid.write(folds=1)
    (grid.folder(fold0) / "mark").touch()
    cleared = scheduled(grid.grid("--clear", stdin="y\n"))
    assert cleared.keys() == {fold0} and cleared[fold0] != jobs[fold0]
    assert grid.wait(cleared.values()) == {cleared[fold0]: "COMPLETED"}
    assert not (grid.folder(fold0) / "mark").exists()
    assert len(grid.history(fold0)) == 1


def test_killed_job_is_rescheduled_and_resumes_from_its_checkpoint(grid):
    argv = ["solver=classifier/debug", "optim.epochs=4"]
    sig = grid.sig(argv)
    grid.write(folds=0, extra=[argv])
    [first] = scheduled(grid.grid()).values()
    deadline = time.time() + 180
    while not grid.history(sig):
        assert time.time() < deadline, "the job never finished an epoch"
        time.sleep(0.05)
    # The training process dies (as on an OOM kill or a crash), mid-run.
    pid = int((grid.folder(sig) / "lock").read_text())
    os.kill(pid, signal.SIGKILL)
    assert grid.wait([first]) == {first: "FAILED"}
    done = len(grid.history(sig))
    assert 1 <= done < 4, "the kill must land before the last epoch"
    assert table_state(grid.grid(), sig) == "FAI"  # shown, not resubmitted without -r

    [second] = scheduled(grid.grid("--retry")).values()
    assert second != first
    assert grid.wait([second]) == {second: "COMPLETED"}
    log = (grid.folder(sig) / "submitit" / f"{second}_0_log.out").read_text()
    assert f"Resuming from {grid.folder(sig) / 'checkpoint.th'} after epoch {done}." in log
    assert len(grid.history(sig)) == 4


def test_two_task_job_trains_as_dora_ddp_does(slurm_conf, dora_dir, tmp_path, monkeypatch):
    """A SLURM job of 2 tasks (submitit sets each task's rank) runs Dora's own job target:
    the same code path as `dora run -d --ddp_workers 2`, so the same weights bit for bit."""
    import submitit
    from dora.shep import _SubmitItTarget

    from audiotools.train import main
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    argv = ["solver=toy/debug"]
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit", max_num_timeout=0)
    executor.update_parameters(partition="debug", ntasks_per_node=2, cpus_per_task=1,
                               mem="2GB", time=5, stderr_to_stdout=True, job_name="ddp_test")
    job = executor.submit(_SubmitItTarget(), pickle.dumps(main), argv, True, False)
    try:
        job.results()
    finally:
        job.cancel(check=False)
    assert len(list((tmp_path / "submitit").glob(f"{job.job_id}_*_log.out"))) == 2

    reference_dir = tmp_path / "reference"
    dora_command("run", "-d", "--ddp_workers", "2", *argv,
                 env={"AUDIOTOOLS_DORA_DIR": str(reference_dir)})
    sig = main.get_xp(argv).sig
    from_slurm = torch.load(dora_dir / "xps" / sig / "checkpoint.th", weights_only=True)
    from_dora = torch.load(reference_dir / "xps" / sig / "checkpoint.th", weights_only=True)
    assert len(from_slurm["rng_by_rank"]) == 2
    assert_same_state(from_slurm["model"], from_dora["model"])
