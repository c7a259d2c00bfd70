"""`audiotools migrate` and `audiotools train`: SAT runs as recipes that dora accepts and
trains, SAT checkpoints as continue_from, and the command-line errors."""
from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from audiotools.cli import main as cli
from audiotools.errors import ConfigError
from audiotools.sat import load_autoencoder
from tests.conftest import dora_command
from tests.sat.conftest import CONFIGS, FIXTURES, sat_config, write_json

TINY = str(CONFIGS / "tiny_vae.json")


@pytest.fixture
def sat_run(tmp_path, audio_dir, monkeypatch):
    """SAT-style arguments for the tiny VAE on six clips; recipes go to tmp/config."""
    dataset = write_json(tmp_path / "dataset.json", {
        "dataset_type": "audio_dir", "datasets": [{"id": "music", "path": str(audio_dir)}],
        "random_crop": True})
    config_dir = tmp_path / "config"
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{config_dir}")
    return ["--model-config", TINY, "--dataset-config", str(dataset), "--config-dir",
            str(config_dir), "--manifest-dir", str(tmp_path / "manifests"), "--name", "tiny"]


def _recipe(config_dir, stem: str, kind: str = "solver") -> dict:
    folder = {"solver": "solver/autoencoder", "model": "model/autoencoder", "dset": "dset"}
    return yaml.safe_load((config_dir / folder[kind] / f"{stem}.yaml").read_text())


def test_migrate_writes_the_recipe_and_lists_what_is_not_reproduced(sat_run, tmp_path, capsys):
    ini = tmp_path / "defaults.ini"
    ini.write_text("[DEFAULTS]\nbatch_size = 2\nlogger = comet\nrecover = true\n")
    assert cli(["migrate", *sat_run, "--defaults-ini", str(ini), "--num-gpus", "2",
                "--num-nodes", "2", "--checkpoint-every", "3", "--val-every", "6",
                "--epochs", "4", "--precision", "bf16", "--gradient-clip-val", "1.0",
                "--remove-pretransform-weight-norm", "post_load"]) == 0
    out = capsys.readouterr().out
    config_dir = tmp_path / "config"
    solver = _recipe(config_dir, "tiny")
    assert solver["defaults"] == ["/solver/autoencoder/default",
                                  {"override /model/autoencoder": "tiny"},
                                  {"override /dset": "tiny"}, "_self_"]
    assert solver["optim"]["updates_per_epoch"] == 3 and solver["optim"]["epochs"] == 4
    assert solver["optim"]["max_norm"] == 1.0 and solver["precision"] == "bf16-mixed"
    assert solver["valid"] == solver["evaluate"] == {"every": 2}
    assert solver["generate"] == {"every": 1}  # demo_every 4 ~ 1 epoch of 3 updates
    assert solver["checkpoint"] == {"keep_last": 4} and solver["slurm"] == {"gpus": 4}
    assert solver["adversarial"]["stride"] == [1, 1] and solver["adversarial"]["warmup_steps"] == 2
    dset = _recipe(config_dir, "tiny", "dset")
    assert dset["batch_size"] == 8  # 2 per GPU x 2 GPUs x 2 nodes
    assert dset["train"]["manifest"] == str(tmp_path / "manifests" / "tiny" / "train.jsonl")
    assert dset["valid"]["num_samples"] == 6 and dset["segment_duration"] == 0.512
    assert _recipe(config_dir, "tiny", "model")["encoder"]["strides"] == [4, 8]
    manifest = (tmp_path / "manifests" / "tiny" / "train.jsonl").read_text().splitlines()
    assert len(manifest) == 6
    for words in ("logger=comet", "recover=true: not needed", "remove_pretransform_weight_norm"
                  "=post_load: this autoencoder has no pretransform", "accum_batches / "
                  "gradient_clip_val", "Run it with:\n  dora run solver=autoencoder/tiny\n"):
        assert words in out, words
    assert "logger=comet" in (config_dir / "solver/autoencoder/tiny.yaml").read_text()
    assert cli(["migrate", *sat_run]) == 2
    assert "already exist(s); pass --force" in capsys.readouterr().err
    assert cli(["migrate", *sat_run, "--force"]) == 0


def test_manifests_another_recipe_reads_are_not_overwritten(sat_run, audio_dir, tmp_path,
                                                           capsys):
    """Manifests of one --name are shared by every config dir: a second migration of the same
    data may rewrite them, one of other data may not without --force."""
    assert cli(["migrate", *sat_run]) == 0
    manifest = tmp_path / "manifests" / "tiny" / "train.jsonl"
    first = manifest.read_text()
    elsewhere = [*sat_run[:5], str(tmp_path / "config2"), *sat_run[6:]]
    assert cli(["migrate", *elsewhere]) == 0 and manifest.read_text() == first
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    for clip in sorted(audio_dir.iterdir())[:2]:
        (fewer / clip.name).write_bytes(clip.read_bytes())
    other = write_json(tmp_path / "other.json", {
        "dataset_type": "audio_dir", "datasets": [{"id": "music", "path": str(fewer)}],
        "random_crop": True})
    moved = [*elsewhere[:3], str(other), "--config-dir", str(tmp_path / "config3"),
             *elsewhere[6:]]
    capsys.readouterr()
    assert cli(["migrate", *moved]) == 2
    assert f"{manifest} already exist(s); pass --force" in capsys.readouterr().err
    assert manifest.read_text() == first and not (tmp_path / "config3").exists()
    assert cli(["migrate", *moved, "--force"]) == 0
    assert len(manifest.read_text().splitlines()) == 2


@pytest.mark.slow
def test_migrated_recipe_trains_with_dora(sat_run, dora_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'config'}")
    assert cli(["migrate", *sat_run, "--checkpoint-every", "3", "--epochs", "1", "--batch-size",
                "2", "--precision", "32", "--num-workers", "0", "--logger", ""]) == 0
    result = dora_command("run", "solver=autoencoder/tiny")
    # The networks SAT builds from tiny_vae.json: 14,105 (model) and 3,468 (discriminator)
    # parameters, measured with stable-audio-tools 0.0.19.
    assert "Model model: 14,105 parameters" in result.stderr
    assert "Model discriminator: 3,468 parameters" in result.stderr
    folder = next((dora_dir / "xps").iterdir())
    history = json.loads((folder / "history.json").read_text())
    assert len(history) == 1 and "mel_distance" in history[0]["valid"]
    assert {"si_snr", "mel_distance"} <= history[0]["evaluate"].keys()
    assert "d_loss" in history[0]["train"]  # discriminator on after ceil(3 / 2) updates
    state = torch.load(folder / "checkpoint.th", weights_only=True)
    assert state["xp.cfg"]["schedule"]["name"] == "inverse"
    assert state["xp.cfg"]["optim"]["ema"]["warmup_power"] == 0.75


@pytest.mark.parametrize("form", ["safetensors", "lightning"])
def test_continue_from_a_sat_checkpoint(form, sat_run, dora_dir, tmp_path, monkeypatch):
    from audiotools.families import build_solver
    from audiotools.train import main
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'config'}")
    weights = FIXTURES / "tiny_vae.safetensors"
    if form == "lightning":  # a training checkpoint: continue_from takes its live weights
        live = load_file(str(weights))
        weights = tmp_path / "last.ckpt"
        torch.save({"state_dict": {f"autoencoder.{k}": v for k, v in live.items()},
                    "pytorch-lightning_version": "2.1.0", "global_step": 4}, weights)
    assert cli(["migrate", *sat_run, "--pretrained-ckpt-path", str(weights), "--num-workers",
                "0", "--logger", ""]) == 0
    xp = main.get_xp(["solver=autoencoder/tiny"])
    main.init_xp(xp)
    with xp.enter():
        solver = build_solver(xp.cfg)
        solver.restore()
        solver.close()
    expected = load_autoencoder(FIXTURES / "tiny_vae.safetensors", TINY).state_dict()
    for key, value in solver.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.slow
def test_train_runs_the_equivalent_xp_and_the_same_command_resumes(sat_run, dora_dir, tmp_path,
                                                                   monkeypatch, capsys):
    assert cli(["train", *sat_run]) == 2  # dora_dir points AUDIOTOOLS_CONFIG_PATH elsewhere
    assert "is neither the project's config tree nor AUDIOTOOLS_CONFIG_PATH" in \
        capsys.readouterr().err
    assert not (tmp_path / "config").exists()
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'config'}")
    argv = ["train", *sat_run, "--checkpoint-every", "2", "--epochs", "1", "--batch-size", "2",
            "--precision", "32", "--num-workers", "0", "--logger", ""]
    assert cli(argv) == 0
    first = capsys.readouterr().out
    assert "solver=autoencoder/sat_tiny_" in first
    folders = list((dora_dir / "xps").iterdir())
    assert len(folders) == 1
    checkpoint = folders[0] / "checkpoint.th"
    written = checkpoint.stat().st_mtime_ns
    assert cli(argv) == 0
    assert first.splitlines()[-1] == capsys.readouterr().out.splitlines()[-1]  # same XP
    assert checkpoint.stat().st_mtime_ns == written  # resumed: all epochs were done


def test_validation_set_and_shards(sat_run, audio_dir, dora_dir, tmp_path, monkeypatch):
    """A val_dataset_config gets its own manifest; shard datasets become shard splits that
    the schema accepts (the recipe composes and validates as `dora run` would)."""
    from audiotools.train import main
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'config'}")
    val = write_json(tmp_path / "val.json", {"dataset_type": "audio_dir", "datasets": [
        {"id": "val", "path": str(audio_dir)}]})
    assert cli(["migrate", *sat_run, "--val-dataset-config", str(val)]) == 0
    dset = _recipe(tmp_path / "config", "tiny", "dset")
    assert dset["valid"]["manifest"].endswith("tiny/valid.jsonl")
    assert dset["valid"]["num_samples"] == 6 and dset["generate"]["num_samples"] == 4
    shards = tmp_path / "shards"
    shards.mkdir()
    for index in range(2):
        (shards / f"{index}.tar").write_bytes(b"")
    wds = write_json(tmp_path / "wds.json", {"dataset_type": "wds", "epoch_steps": 5,
                                             "datasets": [{"id": "w", "path": str(shards)}]})
    assert cli(["migrate", *sat_run, "--dataset-config", str(wds), "--name", "wds",
                "--batch-size", "3"]) == 0
    cfg = main.get_xp(["solver=autoencoder/wds"]).cfg
    assert cfg.dataset.train.source == "shards" and cfg.dataset.train.num_samples == 15
    assert list(cfg.dataset.train.shards) == [str(shards / "0.tar"), str(shards / "1.tar")]
    assert list(cfg.dataset.valid.shards) == [str(shards / "0.tar")]


def test_train_recipe_names_follow_the_content(sat_run, tmp_path):
    """`audiotools train` names its recipe after everything converted: the same options give
    the same recipe (and XP), another option another one."""
    from audiotools.commands.sat_train import add_arguments
    from audiotools.sat import command, recipe

    def stem(*extra: str) -> str:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([*sat_run, *extra])
        migration, name = command.convert_from_args(args)
        return recipe.train_stem(migration, name, tmp_path / "empty", args.manifest_dir)

    assert stem() == stem() and stem().startswith("sat_tiny_")
    assert len({stem(), stem("--seed", "7"), stem("--batch-size", "3")}) == 3
    # DataLoader workers are a machine's setting (capped at its CPUs), outside the XP.
    assert stem("--num-workers", "0") == stem("--num-workers", "1") == stem()


def _migration(sat_run):
    from audiotools.commands.sat_train import add_arguments
    from audiotools.sat import command
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(sat_run)
    migration, name = command.convert_from_args(args)
    return migration, name, args


def test_a_recipe_already_in_the_project_tree_is_checked_under_another_name(
        sat_run, tmp_path, monkeypatch):
    """The same `audiotools train` again, its recipe written into the project's tree the
    first time: the check wrote its scratch copy under the same name, which the project's
    file shadowed, and the run that should resume was refused (migrate --force too)."""
    from audiotools import environment
    from audiotools.sat import recipe
    migration, name, args = _migration(sat_run)
    stem = recipe.train_stem(migration, name, tmp_path / "config", args.manifest_dir)
    written = recipe.write(migration, tmp_path / "config", stem, args.manifest_dir, reuse=True)
    project = tmp_path / "project"  # the first run's files, where the project's tree is
    shutil.copytree(environment.CONFIG_DIR, project)
    for path in written.files.values():
        if path.suffix == ".yaml":
            target = project / path.relative_to(tmp_path / "config")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    monkeypatch.setattr(environment, "CONFIG_DIR", project)
    again = recipe.write(migration, tmp_path / "config", stem, args.manifest_dir, reuse=True)
    assert again.stem == stem


def test_train_takes_another_recipe_when_the_data_changed_file_for_file(sat_run, audio_dir,
                                                                        tmp_path):
    """One file replaced by another, the count the same: the old recipe was found (only its
    settings were compared), and the refusal's fix then resumed its XP on the new files."""
    from audiotools.sat import recipe
    migration, name, args = _migration(sat_run)
    config = tmp_path / "config"
    stem = recipe.train_stem(migration, name, config, args.manifest_dir)
    recipe.write(migration, config, stem, args.manifest_dir, reuse=True)
    assert recipe.train_stem(migration, name, config, args.manifest_dir) == stem
    first = sorted(audio_dir.glob("*.ogg"))[0]
    first.rename(first.with_name("renamed_" + first.name))
    changed, _, _ = _migration(sat_run)
    other = recipe.train_stem(changed, name, config, args.manifest_dir)
    assert other != stem and other.startswith("sat_tiny_")
    assert recipe.write(changed, config, other, args.manifest_dir, reuse=True).stem == other


def test_train_prints_the_command_a_shell_without_the_config_dir_needs(sat_run, dora_dir,
                                                                       tmp_path, monkeypatch,
                                                                       capsys):
    """--config-dir outside the project: train made it visible to itself first, then printed
    a `dora run` without AUDIOTOOLS_CONFIG_PATH, which failed as printed."""
    from audiotools import local_grid
    monkeypatch.delenv("AUDIOTOOLS_CONFIG_PATH")
    monkeypatch.setattr(local_grid, "run_xp", lambda xp: None)  # the printed line is the test
    assert cli(["train", *sat_run, "--num-workers", "0", "--logger", ""]) == 0
    printed = capsys.readouterr().out
    assert f"Run it with:\n  AUDIOTOOLS_CONFIG_PATH=file://{(tmp_path / 'config').resolve()} " \
           "dora run solver=autoencoder/sat_tiny_" in printed


def test_train_finds_the_recipe_of_its_settings_whoever_wrote_it(sat_run, tmp_path):
    from audiotools.commands.sat_train import add_arguments
    from audiotools.sat import command, recipe
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config_dir = tmp_path / "trained"

    def convert(*extra: str):
        args = parser.parse_args([*sat_run, "--config-dir", str(config_dir), *extra])
        migration, name = command.convert_from_args(args)
        return migration, name, args.manifest_dir

    def written(*extra: str) -> recipe.Written:
        migration, name, manifests = convert(*extra)
        stem = recipe.train_stem(migration, name, config_dir, manifests)
        return recipe.write(migration, config_dir, stem, manifests, reuse=True)

    first = written("--num-workers", "0")
    dset = first.files["dset"].read_text()
    assert "num_workers: 0" in dset
    again = written("--num-workers", "1")  # another machine's workers: the same recipe
    assert again.stem == first.stem and first.files["dset"].read_text() == dset
    # A recipe of these settings under another name of this run (an earlier version's
    # naming, or notes worded otherwise) is found, so its XP resumes.
    migration, name, manifests = convert("--seed", "5")
    recipe.write(migration, config_dir, "sat_tiny_0123abcd", manifests, reuse=True)
    solver = config_dir / "solver" / "autoencoder" / "sat_tiny_0123abcd.yaml"
    solver.write_text("# notes of another version\n" + solver.read_text())
    assert written("--seed", "5").stem == "sat_tiny_0123abcd"
    # Other settings under the name train would use are refused with what to do.
    solver = first.files["solver"]
    assert "\nseed: " in solver.read_text()
    solver.write_text(solver.read_text().replace("\nseed: ", "\nseed: 1"))
    migration, name, manifests = convert("--num-workers", "0")
    with pytest.raises(ConfigError, match="delete them to convert again, or choose another"):
        recipe.write(migration, config_dir, first.stem, manifests, reuse=True)


@pytest.mark.parametrize("extra, words", [
    (["--strategy", "deepspeed"], "DeepSpeed is not supported"),
    (["--model-config", ""], "--model-config is required"),
    (["--epochs", "0"], "--epochs=0: give at least 1"),
    (["--ckpt-path", "/nonexistent.ckpt"], "--ckpt-path=/nonexistent.ckpt: no such file"),
])
def test_command_line_errors(sat_run, extra, words, capsys):
    assert cli(["migrate", *sat_run, *extra]) == 2
    assert words in capsys.readouterr().err


def test_frozen_parts_and_ignored_keys_are_listed(sat_run, tmp_path, capsys):
    config = sat_config("tiny_vae")
    config["model"]["encoder"]["requires_grad"] = False
    config["model"]["comment"] = "SAT does not read this"
    config["conditioning"] = {}
    config["training"]["demo"]["demo_cfg_scales"] = [3]
    frozen = write_json(tmp_path / "frozen.json", config)
    assert cli(["migrate", *sat_run, "--model-config", str(frozen)]) == 0
    out = capsys.readouterr().out
    assert "model.encoder.requires_grad=false: audiotools trains every part" in out
    assert "model config keys ['conditioning', 'model.comment']: ignored" in out
    assert "training.demo keys ['demo_cfg_scales']" in out


def test_not_yet_supported_model_types(sat_run, tmp_path, capsys):
    lm = write_json(tmp_path / "lm.json", {**sat_config("tiny_vae"), "model_type": "lm"})
    assert cli(["migrate", *sat_run, "--model-config", str(lm)]) == 2
    assert "model_type='lm' is not yet supported" in capsys.readouterr().err
    assert not (tmp_path / "config").exists()


def test_sat_defaults_that_do_not_fit_the_run_are_not_carried_over(sat_run, tmp_path, capsys,
                                                                    monkeypatch):
    """SAT's defaults are GPU settings nobody chose (16-mixed, logger wandb, 6 workers):
    precision becomes auto, W&B logs offline (no account needed), workers are capped at the
    machine's CPUs; each is listed with the flag that keeps SAT's value."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert cli(["migrate", *sat_run]) == 0
    out = capsys.readouterr().out
    solver = _recipe(tmp_path / "config", "tiny")
    assert solver["precision"] == "auto"
    assert solver["logging"]["wandb"] == {"mode": "offline", "project": "tiny"}
    assert _recipe(tmp_path / "config", "tiny", "dset")["num_workers"] == 2
    for words in ("precision=16-mixed is SAT's default: precision=auto",
                  "--precision 16-mixed keeps it",
                  "logger=wandb is SAT's default: logging.wandb.mode=offline",
                  "num_workers=6 is more than this machine's 2 CPU(s): dataset.num_workers=2"):
        assert words in out, words
    # What the user chose is kept (the worker count is still capped: it is a machine limit).
    assert cli(["migrate", *sat_run, "--force", "--precision", "16-mixed", "--logger", "wandb",
                "--num-workers", "1"]) == 0
    solver = _recipe(tmp_path / "config", "tiny")
    assert solver["precision"] == "16-mixed"
    assert solver["logging"]["wandb"]["mode"] == "online"
    assert _recipe(tmp_path / "config", "tiny", "dset")["num_workers"] == 1
    assert "SAT's default" not in capsys.readouterr().out
