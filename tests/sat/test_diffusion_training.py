"""The `training` section of SAT diffusion configs as stable-audio-tools 0.0.19 reads it per
model type (training/factory.py): the unconditional wrapper's fixed Adam, EMA and uniform noise
levels; ARC post-training listed as not reproduced; inpainting masks for every conditional
model that reads them; and values of the wrong type refused naming their key."""
from __future__ import annotations

import copy

import pytest

from audiotools.cli import main as cli
from audiotools.errors import ConfigError
from audiotools.families import validate_config
from audiotools.sat.diffusion_training import SAT_UNCOND_DEMOS, convert_diffusion_training
from audiotools.sat.notes import Notes
from tests.sat.conftest import FIXTURES, write_json
from tests.sat.test_diffusion import small_config

UNCOND = {"model_type": "diffusion_uncond", "sample_rate": 16000, "sample_size": 4096,
          "audio_channels": 1, "model": {"type": "dit", "config": {
              "in_channels": 1, "embed_dim": 32, "depth": 1, "num_heads": 2}}}


def _training(training: dict, model_type: str = "diffusion_cond", inpainting: bool = False,
              conditioners: dict | None = None):
    notes = Notes()
    conversion = convert_diffusion_training(training, model_type, "v",
                                            {"genre": {}} if conditioners is None
                                            else conditioners, notes, inpainting=inpainting)
    return conversion, notes


def test_unconditional_training_is_sats_fixed_wrapper_and_lists_the_rest():
    training = {"learning_rate": 3e-4, "use_ema": False, "timestep_sampler": "logit_normal",
                "optimizer_configs": {"diffusion": {"optimizer": {"type": "AdamW"}}},
                "demo": {"demo_every": 100, "demo_steps": 20, "demo_cfg_scales": [3]}}
    conversion, notes = _training(training, "diffusion_uncond", conditioners={})
    sections = conversion.sections
    assert sections["optim"]["optimizer"] == "adam" and sections["optim"]["lr"] == 3e-4
    assert sections["optim"]["ema"]["use"] and sections["schedule"] == {"name": "none"}
    assert sections["timesteps"] == {"type": "uniform"}
    assert sections["generate"] == {"steps": 20, "sampler": "ddim",
                                    "num_samples": SAT_UNCOND_DEMOS}
    assert conversion.demo_every == 100
    listed = " ".join(notes.differences + notes.unsupported)
    for key in ("use_ema", "timestep_sampler", "optimizer_configs", "demo_cfg_scales"):
        assert key in listed
    with pytest.raises(ConfigError, match="training.learning_rate is required"):
        _training({"optimizer_configs": {}}, "diffusion_uncond", conditioners={})


def test_arc_post_training_is_listed_as_not_reproduced():
    training = copy.deepcopy(small_config()["training"])
    training.update(arc={"use_model_as_discriminator": True}, clip_grad_norm=1.0)
    _, notes = _training(training)
    [arc] = [line for line in notes.unsupported if line.startswith("training.arc")]
    assert "adversarial post-training" in arc and "clip_grad_norm" in arc
    assert not any("clip_grad_norm: not read" in line for line in notes.differences)


def test_inpainting_masks_convert_for_every_model_that_reads_them():
    training = {"learning_rate": 1e-4, "inpainting": {"mask_kwargs": {
        "max_mask_segments": 4, "mask_type_probabilities": [0.2, 0.6, 0.2]}}}
    expected = {"max_segments": 4, "random_segments": 0.2, "full": 0.6, "causal": 0.2}
    for model_type in ("diffusion_cond", "diffusion_cond_inpaint"):
        conversion, _ = _training(training, model_type, inpainting=True)
        assert conversion.sections["inpainting"] == expected
    conversion, notes = _training(training, "diffusion_cond", inpainting=False)
    assert "inpainting" not in conversion.sections
    assert any("training.inpainting: ignored, the model reads no inpaint_mask" in line
               for line in notes.unsupported)


@pytest.mark.parametrize("change, words", [
    ({"learning_rate": "fast"}, "training.learning_rate='fast': give a number > 0"),
    ({"learning_rate": -1}, "training.learning_rate=-1: give a number > 0"),
    ({"cfg_dropout_prob": 2.0}, "training.cfg_dropout_prob=2.0: give a number >= 0 and <= 1"),
    ({"cfg_dropout_prob": "x"}, "training.cfg_dropout_prob='x'"),
    ({"demo": {"demo_every": "often"}}, "training.demo.demo_every='often': give a number"),
    ({"demo": {"demo_every": 2.5}}, "training.demo.demo_every=2.5: give a whole number"),
    ({"demo": {"demo_cfg_scales": 3}}, "training.demo.demo_cfg_scales=3: give a list"),
    ({"demo": {"demo_cond": ["jazz"]}}, r"training.demo.demo_cond\[0\]: holds str"),
    ({"demo": {"num_demos": "a"}}, "training.demo.num_demos='a'"),
    ({"demo": 5}, "training.demo: holds int 5; give a JSON object"),
    ({"inpainting": {"mask_kwargs": {"mask_type_probabilities": [0.5, 0.5]}}},
     "mask_type_probabilities=.*: give a list of 3 numbers"),
    ({"inpainting": {"mask_kwargs": {"mask_type_probabilities": [0.5, 0.5, 0.5]}}},
     "must sum to 1"),
    ({"optimizer_configs": {"diffusion": {"optimizer": {"type": "AdamW",
                                                        "config": {"betas": 0.9}}}}},
     "optimizer.config.betas=0.9: give a list of 2 numbers"),
    ({"optimizer_configs": {"diffusion": {"optimizer": {"type": "AdamW",
                                                        "config": {"lr": "x"}}}}},
     "optimizer.config.lr='x': give a number > 0"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_its_key(change, words):
    training = {"learning_rate": 1e-4, **change}
    with pytest.raises(ConfigError, match=words):
        _training(training, inpainting=True)


def test_a_training_section_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigError, match=r"training: holds list \[1\]"):
        _training([1])


def _migrate(tmp_path, model: dict, *extra: str) -> int:
    dataset = write_json(tmp_path / "data.json", {"dataset_type": "audio_dir", "datasets": [
        {"id": "m", "path": str(tmp_path / "audio")}]})
    return cli(["migrate", "--model-config", str(write_json(tmp_path / "model.json", model)),
                "--dataset-config", str(dataset), "--config-dir", str(tmp_path / "config"),
                "--manifest-dir", str(tmp_path / "m"), "--name", "t", *extra])


def test_a_migrated_unconditional_recipe_composes_and_validates(tmp_path, audio_dir,
                                                                monkeypatch):
    from audiotools.train import main
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{tmp_path / 'config'}")
    training = {"learning_rate": 1e-4, "demo": {"demo_cfg_scales": [1, 3], "num_demos": 2}}
    assert _migrate(tmp_path, {**UNCOND, "training": training}) == 0
    settings = validate_config(main.get_xp(["solver=diffusion/t"]).cfg)
    assert settings.generate.num_samples == SAT_UNCOND_DEMOS
    assert settings.optim.optimizer == "adam" and settings.optim.ema.use


def test_migrate_refuses_pretransform_options_for_a_model_without_one(tmp_path, audio_dir,
                                                                       capsys):
    model = {**UNCOND, "training": {"learning_rate": 1e-4}}
    assert _migrate(tmp_path, model, "--pretransform-ckpt-path",
                    str(FIXTURES / "tiny_vae.safetensors")) == 2
    error = capsys.readouterr().err
    assert "pretransform_ckpt_path=" in error and "has no pretransform" in error
    assert not (tmp_path / "config").exists()
    # SAT's diffusion wrappers optimise automatically: Lightning applies both options.
    assert _migrate(tmp_path, model, "--accum-batches", "2", "--gradient-clip-val", "1") == 0
    assert "accum_batches / gradient_clip_val" not in capsys.readouterr().out


def test_a_metadata_module_names_the_conditioners_it_would_feed(tmp_path, audio_dir, capsys):
    module = tmp_path / "meta.py"
    module.write_text("def get_custom_metadata(info, audio):\n    return {'genre': 'rock'}\n")
    dataset = write_json(tmp_path / "data.json", {"dataset_type": "audio_dir", "datasets": [
        {"id": "m", "path": str(audio_dir), "custom_metadata_module": str(module)}]})
    model = write_json(tmp_path / "model.json", small_config())
    assert cli(["migrate", "--model-config", str(model), "--dataset-config", str(dataset),
                "--pretransform-ckpt-path", str(FIXTURES / "tiny_vae.safetensors"),
                "--config-dir", str(tmp_path / "config"), "--manifest-dir",
                str(tmp_path / "m"), "--name", "t"]) == 0
    out = capsys.readouterr().out
    notes = out[out.index("Not supported"):out.index("Differences")]
    assert "custom_metadata_module=" in notes
    assert "the conditioners bpm, genre, seconds_total read each item's own metadata" in notes


def test_keys_sat_does_not_read_are_listed():
    from audiotools.sat.diffusion import convert_diffusion_model
    config = copy.deepcopy(small_config())
    config["baz"] = 1
    config["model"]["foo"] = 2
    config["model"]["diffusion"]["bar"] = 3
    notes = Notes()
    convert_diffusion_model(config, notes)
    [line] = [line for line in notes.unsupported if line.startswith("model config keys")]
    assert "['baz', 'model.foo', 'model.diffusion.bar']: ignored" in line
    notes = Notes()
    convert_diffusion_model(small_config(), notes)
    assert not any(line.startswith("model config keys") for line in notes.unsupported)


def test_migrate_writes_nothing_the_solver_would_refuse(tmp_path, audio_dir, capsys):
    """Conditioning without configs converts (SAT reads `configs` with a default), but the ids
    then name no conditioner and its demo guides by none: the recipe is checked as `dora run`
    reads it, before writing."""
    config = small_config()
    config["model"]["conditioning"] = {"cond_dim": 32}
    assert _migrate(tmp_path, config, "--pretransform-ckpt-path",
                    str(FIXTURES / "tiny_vae.safetensors")) == 2
    error = capsys.readouterr().err
    assert "the converted recipe does not validate, so nothing was written" in error
    assert "guidance needs conditioners" in error
    assert not (tmp_path / "config").exists() and not (tmp_path / "m").exists()


def test_prefigure_flags_are_taken_or_refused_by_name(tmp_path, audio_dir, capsys):
    ini = tmp_path / "defaults.ini"
    ini.write_text("[DEFAULTS]\nbatch_size = 3\n")
    model = {**UNCOND, "training": {"learning_rate": 1e-4}}
    assert _migrate(tmp_path, model, "--config-file", str(ini)) == 0
    assert "dataset.batch_size=3 is the global batch" in capsys.readouterr().out
    assert _migrate(tmp_path, model, "--wandb-config", "https://wandb.ai/x/y", "--force") == 2
    assert "--wandb-config=https://wandb.ai/x/y: pulling a run's config from W&B is not " \
           "supported" in capsys.readouterr().err
