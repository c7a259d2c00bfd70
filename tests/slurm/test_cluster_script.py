"""tests/slurm/cluster.sh itself: a second cluster beside the session's, with its own state
folder and ports; `start` is idempotent, `stop` ends exactly the processes it started."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.slurm.conftest import CLUSTER

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_second_cluster_start_is_idempotent_and_stop_ends_only_its_processes(slurm_conf,
                                                                             tmp_path):
    if os.geteuid() != 0:
        pytest.skip("starting a cluster needs root")
    state = tmp_path / "cluster"
    env = {**os.environ, "AUDIOTOOLS_SLURM_DIR": str(state), "AUDIOTOOLS_SLURM_PORT": "17917"}

    def script(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(CLUSTER), *args], env=env, capture_output=True, text=True,
                              timeout=300)

    pids: list[int] = []
    try:
        started = script("start")
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().endswith(f"SLURM_CONF={state}/etc/slurm.conf")
        begin = time.monotonic()
        again = script("start")
        assert "already running" in again.stderr and time.monotonic() - begin < 3
        status = script("status")
        assert status.returncode == 0
        pids = [int(pid) for pid in re.findall(r"running \(pid (\d+)\)", status.stdout)]
        assert len(pids) == 5  # munged, mariadbd, slurmdbd, slurmctld, slurmd
        sinfo = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True,
                               env={**env, "SLURM_CONF": str(state / "etc/slurm.conf")})
        assert sinfo.stdout.split() == ["debug*", "idle"]
    finally:
        stopped = script("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not any(_running(pid) for pid in pids) and not state.exists()
    assert script("status").returncode == 1
    # The session's cluster (same daemons, other state and ports) is untouched.
    session = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True)
    assert session.returncode == 0, session.stdout
