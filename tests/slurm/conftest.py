"""The SLURM cluster the tests in this folder submit to: tests/slurm/cluster.sh, started once
per session (as root) and stopped at the end if this session started it."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CLUSTER = Path(__file__).resolve().parent / "cluster.sh"


def _conf_from(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("SLURM_CONF=")]
    assert lines, f"cluster.sh printed no SLURM_CONF line:\n{output}"
    return lines[-1].split("=", 1)[1]


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[str]:
    """SLURM_CONF of the running test cluster. As root the cluster is started (and must start:
    a failure fails the tests); another user can only use one a root already started."""
    if os.geteuid() != 0:
        status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True)
        if status.returncode == 0:
            started = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True)
            yield _conf_from(started.stdout)
            return
        if shutil.which("sbatch") is None:
            pytest.skip("SLURM tests: not root (cannot start tests/slurm/cluster.sh) and no "
                        "sbatch on PATH")
        pytest.fail("SLURM tests submit to the local test cluster only, not to this machine's "
                    "SLURM: start it first with `sudo tests/slurm/cluster.sh start`.")
    result = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        pytest.fail(f"tests/slurm/cluster.sh start failed (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}")
    started_here = "already running" not in result.stderr
    try:
        yield _conf_from(result.stdout)
    finally:
        if started_here:
            subprocess.run([str(CLUSTER), "stop"], capture_output=True, timeout=120)
