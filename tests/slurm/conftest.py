"""The SLURM cluster the tests in this folder submit to: tests/slurm/cluster.sh, started once
per session (as root) and stopped at the end if this session started it."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parent
CLUSTER = FOLDER / "cluster.sh"
# The pytest-xdist group of every test in this folder, which xdist appends to their ids.
GROUP = "slurm"


def _in_folder(item: pytest.Item) -> bool:
    return FOLDER in item.path.parents


def loadgroup_on(config: pytest.Config) -> bool:
    """Whether this is an xdist worker under `--dist loadgroup` (the option exists only there)."""
    return getattr(config.option, "loadgroup", False)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests in this folder share one test cluster, started and stopped by a session
    fixture: under pytest-xdist they all run on one worker (`--dist loadgroup`), so that no
    other worker starts or stops it. First among the hooks, so that xdist's own sees the
    marker."""
    for item in items:
        if _in_folder(item):
            item.add_marker(pytest.mark.xdist_group(GROUP))


def _conf_from(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("SLURM_CONF=")]
    assert lines, f"cluster.sh printed no SLURM_CONF line:\n{output}"
    return lines[-1].split("=", 1)[1]


def _check_one_worker(session: pytest.Session) -> None:
    """Under `--dist loadgroup` xdist names the group in the ids of the tests it keeps on one
    worker; without it (pytest 9.2 with pytest-xdist 3.8) every worker would start a cluster
    on the same ports."""
    if not loadgroup_on(session.config):
        return
    ungrouped = [item.nodeid for item in session.items
                 if _in_folder(item) and not item.nodeid.endswith(f"@{GROUP}")]
    if ungrouped:
        pytest.fail(f"pytest-xdist did not keep the SLURM tests on one worker ({ungrouped[0]} "
                    f"has no '@{GROUP}' suffix): this pytest and pytest-xdist do not work "
                    "together; install the versions pyproject.toml's dev extra allows")


@pytest.fixture(scope="session")
def slurm_conf(request: pytest.FixtureRequest) -> Iterator[str]:
    """SLURM_CONF of the running test cluster. As root the cluster is started (and must start:
    a failure fails the tests); another user can only use one a root already started."""
    _check_one_worker(request.session)
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
