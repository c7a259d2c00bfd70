"""The user's commands, as subprocesses from the repo root: `dora run`, `dora info`, errors."""
from __future__ import annotations

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


def _xp_folders(dora_dir: Path) -> list[Path]:
    return sorted((dora_dir / "xps").glob("*")) if (dora_dir / "xps").exists() else []


def test_run_resume_info_and_clear(dora_dir):
    first = dora_command("run", "solver=toy/debug")
    assert "Valid Summary | Epoch 3" in first.stderr
    [folder] = _xp_folders(dora_dir)
    sig = folder.name
    checkpoint_written = (folder / "checkpoint.th").stat().st_mtime_ns
    again = dora_command("run", "solver=toy/debug")
    assert "All 3 epochs are done" in again.stderr
    # Recognised from the XP folder before the solver (and the training stack) is built.
    assert "Train Summary" not in again.stderr and "Model model:" not in again.stderr
    assert (folder / "checkpoint.th").stat().st_mtime_ns == checkpoint_written
    more = dora_command("run", "solver=toy/debug", "optim.epochs=4")  # another XP
    assert "Train Summary | Epoch 4" in more.stderr

    info = dora_command("info", "-f", sig)
    assert str(folder) in info.stdout + info.stderr
    assert "solver=toy/debug" in info.stdout + info.stderr

    rerun = dora_command("run", "-f", sig)
    assert "All 3 epochs are done" in rerun.stderr
    cleared = dora_command("run", "--clear", "solver=toy/debug", "optim.epochs=1")
    assert "Train Summary | Epoch 1" in cleared.stderr

    other = dora_command("run", "solver=toy/debug", "optim.lr=0.02", "optim.epochs=1")
    assert len(_xp_folders(dora_dir)) == 4
    assert "Train Summary | Epoch 1" in other.stderr


def test_kill_9_mid_epoch_then_resume_is_bit_exact(dora_dir, tmp_path):
    args = ["solver=toy/debug", "optim.epochs=3", "dataset.num_samples=4096"]
    reference_dir = tmp_path / "reference"
    dora_command("run", *args, env={"AUDIOTOOLS_DORA_DIR": str(reference_dir)})
    [reference] = _xp_folders(reference_dir)

    dora = Path(sys.executable).parent / "dora"
    process = subprocess.Popen([str(dora), "run", *args], cwd=REPO, env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    history = None
    deadline = time.time() + 120
    while time.time() < deadline:
        folders = _xp_folders(dora_dir)
        if folders and (folders[0] / "history.json").exists():
            history = json.loads((folders[0] / "history.json").read_text() or "[]")
            if len(history) >= 1:
                break
        time.sleep(0.01)
    time.sleep(0.05)  # well inside epoch 2 (192 batches)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert history is not None and len(history) == 1, "the kill must land in epoch 2"
    [folder] = _xp_folders(dora_dir)
    assert len(json.loads((folder / "history.json").read_text())) < 3

    resumed = dora_command("run", *args)
    assert "Resuming from" in resumed.stderr
    final = torch.load(folder / "checkpoint.th", weights_only=True)
    expected = torch.load(reference / "checkpoint.th", weights_only=True)
    assert_same_state(final["model"], expected["model"])
    assert_same_state(final["optimizer"]["state"][0], expected["optimizer"]["state"][0])


LONG_RUN = ["solver=toy/debug", "optim.epochs=50", "dataset.num_samples=4096"]


def _started(dora_dir: Path, args: list[str]) -> subprocess.Popen:
    """`dora run ARGS` in its own session, once its first epoch is committed (stderr piped,
    as text)."""
    dora = Path(sys.executable).parent / "dora"
    run = subprocess.Popen([str(dora), "run", *args], cwd=REPO, env=dict(os.environ),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(
            (f / "history.json").exists() and (f / "history.json").read_text().strip(" []")
            for f in _xp_folders(dora_dir)):
        time.sleep(0.05)
    return run


def test_second_concurrent_run_is_refused(dora_dir):
    args = LONG_RUN
    first = _started(dora_dir, args)
    try:
        second = dora_command("run", *args, check=False)
        assert second.returncode != 0
        assert "is already running" in second.stderr
        assert "Traceback" not in second.stderr
        # --clear would delete the folder under the first run, which would go on writing.
        cleared = dora_command("run", "--clear", *args, check=False)
        assert cleared.returncode != 0 and "Traceback" not in cleared.stderr
        assert "would delete" in cleared.stderr and "Stop that run first" in cleared.stderr
        assert any((f / "checkpoint.th").exists() for f in _xp_folders(dora_dir))
        assert first.poll() is None, "the first run must be unharmed"
        # Ctrl-C: one line saying where the run will resume, not a traceback.
        os.killpg(first.pid, signal.SIGINT)
        _, stderr = first.communicate(timeout=60)
        assert first.returncode == 130, stderr[-2000:]
        assert "interrupted; the same command resumes after epoch" in stderr
        assert "Traceback" not in stderr
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGTERM)
            first.wait()


def test_sigterm_stops_a_run_as_ctrl_c_does(dora_dir):
    """The loggers close (W&B offline had written nothing of a session killed by SIGTERM)."""
    run = _started(dora_dir, LONG_RUN)
    try:
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 128 + signal.SIGTERM, stderr[-2000:]
        assert "interrupted; the same command resumes after epoch" in stderr
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_a_second_signal_during_the_cleanup_stops_at_once():
    """Raised into the cleanup of the first (a DataLoader's shutdown), it printed a traceback."""
    done = _python(
        "import os, signal, time\n"
        "from audiotools.train import _stop_on_signals\n"
        "_stop_on_signals()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "    print('cleanup went on')\n")
    assert done.returncode == 130 and "cleanup went on" not in done.stdout
    assert done.stderr.strip().endswith("error: interrupted again; stopping now.")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argv,line", [
    (["dora", "run", "solver=toy/debug"], "interrupted before the XP started; nothing was run."),
    (["dora", "grid", "classifier.kfold"], "interrupted; the jobs already submitted go on"),
    (["dora", "info", "-f", "abc"], "interrupted."),
])
def test_ctrl_c_outside_a_running_xp_is_one_line(argv, line):
    done = _python("import sys\n"
                   f"sys.argv = {argv!r}\n"
                   "from audiotools.train import _print_user_errors\n"
                   "_print_user_errors(KeyboardInterrupt, KeyboardInterrupt(), None)\n"
                   "print('not reached')\n")
    assert done.returncode == 130 and "not reached" not in done.stdout
    assert done.stderr.strip().startswith(f"error: {line}") and "Traceback" not in done.stderr


@pytest.mark.parametrize("override,expected", [
    ("solver=nope/recipe", "solver=nope/recipe: no such recipe"),
    ("optim.lrr=0.1", "optim.lrr: unknown key in section 'optim'. Valid keys: accumulation"),
    ("optimm.lr=0.1", "optimm: unknown key in the root config. Valid keys: checkpoint"),
    ("optim.lr=fast", "optim.lr = 'fast'"),
    ("precision=bf16", "Input should be '32', 'bf16-mixed', '16-mixed' or 'auto'"),
    # Dora's own assertions, which printed a traceback naming neither the key nor the fix:
    ("optim.lr", "optim.lr: an override is KEY=VALUE"),
    ("optim=adam", "'optim' is a section of keys, not a value; set its keys one at a time"),
    ("~optim.lr", "Dora takes removals as ~KEY=VALUE"),
    ("~optim.lr=0.01", "an XP cannot remove a key the base config has"),
    ("~optim.lr=1", "~optim.lr=1: an XP cannot remove a key the base config has"),
])
def test_bad_config_gives_one_clear_error_and_no_xp(dora_dir, override, expected):
    args = ["solver=toy/debug", override] if not override.startswith("solver=") else [override]
    result = dora_command("run", *args, check=False)
    assert result.returncode != 0
    assert expected in result.stderr
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.stderr
    assert _xp_folders(dora_dir) == []


def test_a_key_of_the_schema_that_the_recipe_leaves_unset_is_added_with_plus(dora_dir):
    """docs/data.md lists the keys a split may set; the recipe's YAML sets few of them, and
    the refusal listed only those."""
    result = dora_command("run", "solver=autoencoder/debug", "dataset.train.weighted=true",
                          check=False)
    assert result.returncode != 0
    assert ("dataset.train.weighted: a key this recipe's YAML does not set, so Hydra takes it "
            "as an addition: +dataset.train.weighted=true") in result.stderr
    result = dora_command("run", "solver=autoencoder/debug", "dataset.valid.weightd=true",
                          check=False)
    assert ("dataset.valid.weightd: unknown key in section 'dataset.valid'. Valid keys: "
            "channels, manifest") in result.stderr  # the schema's keys, not the recipe's


def test_missing_solver_lists_recipes(dora_dir):
    result = dora_command("run", check=False)
    assert result.returncode != 0
    assert "solver: missing mandatory value" in result.stderr
    assert "toy/debug" in result.stderr


def test_xps_default_to_outputs_in_the_current_directory(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "AUDIOTOOLS_DORA_DIR"}
    code = "from audiotools import environment; print(environment.dora_dir())"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(tmp_path / "outputs")


def test_wandb_offline_needs_no_account(dora_dir, tmp_path):
    env = {"WANDB_API_KEY": "", "HOME": str(tmp_path), "WANDB_CONFIG_DIR": str(tmp_path)}
    result = dora_command("run", "solver=toy/debug", "optim.epochs=1",
                          "logging.wandb.mode=offline", env=env)
    assert "deprecated" not in result.stderr  # wandb's warning about a boolean reinit
    [folder] = _xp_folders(dora_dir)
    [run] = (folder / "wandb").glob("offline-run-*")
    assert list(run.glob("*.wandb"))
