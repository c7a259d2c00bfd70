"""Shared fixtures: every test gets its own XP directory, and the toy recipe is on the
config search path (as a user's own recipes would be, through AUDIOTOOLS_CONFIG_PATH)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from audiotools import environment

REPO = Path(__file__).resolve().parent.parent
TOY_CONFIG = REPO / "tests" / "toy" / "config"


@pytest.fixture(scope="session", autouse=True)
def session_temp_dir(tmp_path_factory) -> Iterator[Path]:
    """Temporary files of the tests and of every process they start under pytest's own
    temporary folder, which pytest prunes: processes the tests kill (signals, DDP) never
    remove theirs (wandb's `tmp*wandb-media`, torchelastic's), and the web UI's results
    folder outlives its server by design. The test SLURM cluster keeps the state folder it
    would have had, so a cluster a root started stays findable."""
    folder = tmp_path_factory.mktemp("tmp")
    saved = {key: os.environ.get(key) for key in ("TMPDIR", "AUDIOTOOLS_SLURM_DIR")}
    os.environ.setdefault("AUDIOTOOLS_SLURM_DIR",
                          os.path.join(os.environ.get("TMPDIR") or "/tmp", "audiotools-slurm"))
    os.environ["TMPDIR"] = str(folder)
    saved_tempdir, tempfile.tempdir = tempfile.tempdir, str(folder)
    yield folder
    tempfile.tempdir = saved_tempdir
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def use_dora_dir(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XPs under `folder` and the toy recipes on the config path, until `monkeypatch` undoes
    it (a module-scoped fixture passes a `pytest.MonkeyPatch.context()`)."""
    monkeypatch.setenv("AUDIOTOOLS_DORA_DIR", str(folder))
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{TOY_CONFIG}")
    from audiotools.train import main
    monkeypatch.setattr(main.dora, "dir", environment.dora_dir())
    return folder


@pytest.fixture
def dora_dir(tmp_path, monkeypatch) -> Path:
    return use_dora_dir(tmp_path / "dora", monkeypatch)


def dora_command(*args: str, env: dict[str, str] | None = None, timeout: float = 240,
                 check: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run `dora ...` as a user would, from the repo root, in the test's environment."""
    full_env = {**os.environ, **(env or {})}
    dora = Path(sys.executable).parent / "dora"
    result = subprocess.run([str(dora), *args], cwd=cwd, env=full_env, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"dora {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def one_thread():
    """In-process runs on one thread, as the debug recipes' `num_threads: 1` runs them under
    `dora run` (tiny models gain nothing from more, and lose much beside other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> SimpleNamespace:
    """Exports of a model of every family, trained once per session by its debug recipe
    in-process on one thread (seconds; nothing here is worth listening to):
    - diffusion: diffusion/debug_cond (raw audio, 16 kHz mono; an `ensemble` option and a
      `seconds_total` number as conditions);
    - musicgen: musicgen/debug on `codec` (an untrained tiny RVQ autoencoder);
    - autoencoder: autoencoder/debug (with its reconstructions under samples/);
    - classifier: classifier/debug (the shipped spoken digits).
    Their XPs stay in `dora_dir`, for tests of what reads a dora dir."""

    from audiotools.cli import main as cli
    from tests.solvers.helpers import tiny_codec, train
    folder = tmp_path_factory.mktemp("tiny_models")
    quiet = ["optim.epochs=1", "evaluate.every=0", "generate.every=0"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    exports = {}
    with pytest.MonkeyPatch.context() as patch:
        dora = use_dora_dir(folder / "dora", patch)
        codec = tiny_codec(folder / "rvq.safetensors")
        for family, overrides in (("diffusion", ["solver=diffusion/debug_cond", *quiet]),
                                  ("musicgen", ["solver=musicgen/debug",
                                                f"codec.source={codec}", *quiet]),
                                  ("autoencoder", ["solver=autoencoder/debug"]),
                                  ("classifier", ["solver=classifier/debug"])):
            solver = train(*overrides)
            exports[family] = str(folder / f"{family}.safetensors")
            assert cli(["export", str(solver.folder), exports[family]]) == 0
    torch.set_num_threads(threads)
    return SimpleNamespace(**exports, codec=str(codec), dora_dir=dora)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: a worker per core this process may run on, no more than the memory holds
    (a worker reached 4.2 GB resident on a 2-core VM: the full-size model tests)."""
    cores = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min(cores, memory // (5 << 30)))


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker computes on one thread: the workers already share the
    cores, and torch's default (one thread per core in each) oversubscribes them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
