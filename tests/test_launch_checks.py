"""What `dora run` refuses before Dora creates the XP folder, so the user reads one message and
nothing is left behind: a device this machine lacks, `-d` without GPUs or `--ddp_workers`,
W&B online without credentials. And the DataLoader warning about too many workers."""
from __future__ import annotations

import logging
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import TensorDataset

from audiotools.distributed import _dora_args, check_launch
from audiotools.errors import ConfigError, XPLockedError
from audiotools.solvers.loading import EpochLoader
from audiotools.solvers.loggers import check_wandb_login
from tests.conftest import dora_command

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without GPU")


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch) -> dict[str, str]:
    """An environment in which W&B finds no credentials (its own lookup: env, netrc)."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return {"HOME": str(tmp_path), "NETRC": str(tmp_path / "netrc")}


def _refused(dora_dir, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `dora run ARGS`; it must fail with its message printed once and no XP folder."""
    result = dora_command("run", *args, env=env, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and "FATAL" not in result.stderr
    assert not (dora_dir / "xps").exists()
    return errors[0]


@pytest.mark.slow
@no_gpu
def test_cuda_without_a_gpu_is_one_error_and_no_folder(dora_dir):
    line = _refused(dora_dir, "solver=toy/debug", "device=cuda")
    assert line.startswith("error: device=cuda but no CUDA device is visible here")


@pytest.mark.slow
@no_gpu
def test_ddp_on_cpu_names_ddp_workers(dora_dir):
    line = _refused(dora_dir, "-d", "solver=toy/debug")
    assert "`dora run -d --ddp_workers 2 ...`" in line


@pytest.mark.slow
def test_wandb_online_without_credentials_is_refused_before_any_work(dora_dir, no_wandb_login):
    line = _refused(dora_dir, "solver=toy/debug", "logging.wandb.mode=online",
                    env=no_wandb_login)
    assert "logging.wandb.mode=online but there are no W&B credentials" in line
    assert "`wandb login`" in line and "logging.wandb.mode=offline" in line


def test_wandb_credentials_are_found_where_wandb_finds_them(no_wandb_login, monkeypatch):
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib.wbauth import HostUrl
    check_wandb_login("offline")  # needs nothing
    check_wandb_login("disabled")
    with pytest.raises(ConfigError, match="`wandb login`.*logging.wandb.mode=offline"):
        check_wandb_login("online")
    host = HostUrl(wandb_setup.singleton().settings.base_url)
    with open(no_wandb_login["NETRC"], "w") as netrc:
        netrc.write(f"machine {host.url.split('://')[1]} login user password {'k' * 40}\n")
    os.chmod(no_wandb_login["NETRC"], 0o600)
    check_wandb_login("online")
    os.remove(no_wandb_login["NETRC"])
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    check_wandb_login("online")
    monkeypatch.setenv("WANDB_API_KEY", "short")
    with pytest.raises(ConfigError, match="credentials for .* are not usable"):
        check_wandb_login("online")


def test_every_launch_path_checks_wandb_in_train(dora_dir, no_wandb_login):
    """SLURM tasks, DDP ranks and `audiotools grid` reach `train()` without `dora run`'s
    check at XP creation: train() refuses before building the solver."""
    from audiotools.train import train
    from tests.solvers.helpers import make_xp
    xp = make_xp("logging.wandb.mode=online")
    with xp.enter(), pytest.raises(ConfigError, match="logging.wandb.mode=online"):
        train(xp.cfg)
    assert not (xp.folder / "checkpoint.th").exists()


@pytest.mark.parametrize("argv, run", [
    (["/venv/bin/dora", "run", "-d", "solver=x"], True),
    (["/venv/lib/python3.11/site-packages/dora/__main__.py", "-P", "audiotools", "run", "--",
      "solver=x"], True),
    (["/venv/bin/dora", "grid", "classifier.kfold"], False),
    (["/venv/bin/dora", "info", "-f", "abc"], False),
    (["/venv/bin/audiotools", "grid", "classifier.kfold"], False),
    (["/venv/bin/pytest", "run", "-d"], False),
])
def test_only_dora_run_is_checked(argv, run):
    assert (_dora_args(argv) is not None) == run


@no_gpu
def test_dora_grid_may_prepare_cuda_xps_on_a_cpu_login_node(dora_dir):
    from tests.solvers.helpers import make_xp
    cfg = make_xp("device=cuda").cfg
    check_launch(cfg, ["/venv/bin/dora", "grid", "mine.sweep"])
    with pytest.raises(ConfigError, match="device=cuda"):
        check_launch(cfg, ["/venv/bin/dora", "run", "solver=toy/debug", "device=cuda"])


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # torch's, naming no key
def test_more_loader_workers_than_cpus_is_a_warning_naming_the_key(caplog, monkeypatch):
    monkeypatch.setattr("audiotools.solvers.loading._WARNED_WORKERS", set())
    cpus = len(os.sched_getaffinity(0))
    data = TensorDataset(torch.zeros(8, 1))
    with caplog.at_level(logging.WARNING, logger="audiotools.solvers.loading"):
        EpochLoader(data, 4, shuffle=True, num_workers=cpus, seed=0)
        assert not caplog.records
        for _ in range(2):  # once per process, not once per split
            EpochLoader(data, 4, shuffle=True, num_workers=cpus + 1, seed=0)
    [record] = caplog.records
    assert f"dataset.num_workers={cpus + 1} DataLoader workers on {cpus} CPU(s)" in \
        record.getMessage()


@pytest.mark.parametrize("argv,message", [
    (["dora", "run", "-d", "--ddp_workers=-1"], r"--ddp_workers=-1: give the number of "
                                                r"processes, 1 or more"),
    (["dora", "run", "-d", "--ddp_workers", "0"], "--ddp_workers=0: give the number"),
    (["dora", "run", "--ddp_workers", "2"], r"--ddp_workers=2 without -d runs one process"),
])
def test_a_worker_count_that_starts_no_ddp_is_refused(argv, message):
    """Dora started no worker for -1 and exited 0, having trained nothing."""
    cfg = OmegaConf.create({"device": "cpu", "logging": {"wandb": {"mode": "disabled"}}})
    with pytest.raises(ConfigError, match=message):
        check_launch(cfg, argv)


def test_a_running_xp_is_refused_before_ddp_workers_meet_at_its_port(tmp_path):
    """The second `dora run -d` of a running XP failed with EADDRINUSE from the rendezvous,
    a traceback, before the solver could take the lock."""
    import fcntl

    cfg = OmegaConf.create({"device": "cpu", "logging": {"wandb": {"mode": "disabled"}}})
    with open(tmp_path / "lock", "a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242")
        holder.flush()
        with pytest.raises(XPLockedError, match=r"is already running \(pid 4242 holds"):
            check_launch(cfg, ["dora", "run", "-d", "--ddp_workers", "2"], folder=tmp_path)
    check_launch(cfg, ["dora", "run", "-d", "--ddp_workers", "2"], folder=tmp_path)


def test_clearing_an_xp_folder_that_is_a_link_is_refused(tmp_path):
    """Dora's rmtree refuses a link, logs that things "should be okay" and resumes the XP."""
    cfg = OmegaConf.create({"device": "cpu", "logging": {"wandb": {"mode": "disabled"}}})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "checkpoint.th").write_bytes(b"kept")
    (tmp_path / "xp").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ConfigError, match=(
            rf"cannot delete {tmp_path}/xp: it is a link \(to {tmp_path}/elsewhere\).*"
            r"then run without --clear")):
        check_launch(cfg, ["dora", "run", "--clear", "solver=toy/debug"], folder=tmp_path / "xp")
    check_launch(cfg, ["dora", "run", "solver=toy/debug"], folder=tmp_path / "xp")
    check_launch(cfg, ["dora", "run", "--clear"], folder=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "checkpoint.th").read_bytes() == b"kept"
    (tmp_path / "broken").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(ConfigError, match=r"It links to nothing: remove the link, then run"):
        check_launch(cfg, ["dora", "run", "--clear"], folder=tmp_path / "broken")
