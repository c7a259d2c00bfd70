"""stable-audio-tools' ADP U-Nets (`adp_cfg_1d`, `adp_1d`, `adp_uncond_1d`) as audiotools'
`adp_unet` network: the conversion of the two small configs in configs/ (sections, SAT's
parameter counts), options refused by name, the network's SAT behaviours (null embedding,
padding keys zeroed), checkpoints in SAT's layouts (made here from our own modules) loading to
the same outputs, and `audiotools train` on the migrated recipe. Parity against SAT itself:
scripts/check_sat_diffusion_parity.py."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from audiotools.cli import main as cli
from audiotools.conditioning import ConditionerSet
from audiotools.errors import ConfigError
from audiotools.models.diffusion import ADPUNet, ADPUNetConfig, validate_diffusion_config
from audiotools.sat import load_diffusion
from audiotools.sat.diffusion import convert_diffusion_model, parameter_counts
from audiotools.sat.loading import SAT_FORMAT
from audiotools.sat.notes import Notes
from tests.sat.conftest import sat_config, write_json
from tests.sat.test_diffusion import _sat_conditioners, randomised, write_sat_checkpoints
from tests.sat.test_diffusion_autoencoder import _set

# SAT's own parameter counts of the two configs' networks (its factory, measured by
# scripts/check_sat_diffusion_parity.py).
SAT_CFG_PARAMETERS = 617_804
SAT_UNCOND_PARAMETERS = 245_268
SAT_STABLE_AUDIO_1_PARAMETERS = 906_679_744  # txt2audio/stable_audio_1_0.json's network


def cfg_config() -> dict:
    return sat_config("adp_cfg_1d_tiny")


def uncond_config() -> dict:
    return sat_config("adp_uncond_1d_tiny")


def test_adp_cfg_1d_converts_to_an_adp_unet_with_sats_parameter_count():
    notes = Notes()
    converted = convert_diffusion_model(cfg_config(), notes)
    network = converted.model["network"]
    assert network["type"] == "adp_unet"
    assert (network["io_channels"], network["cond_token_dim"], network["global_cond_dim"],
            network["null_embedding_length"], network["input_concat_dim"]) == (1, 32, 32, 4, 0)
    assert network["attentions"] == [0, 1, 1] and network["patch_size"] == 2
    assert converted.model["cross_attention_cond_ids"] == ["genre", "seconds_total"]
    assert converted.model["global_cond_ids"] == ["seconds_total"]
    assert converted.conditioning == {"dim": 32} and converted.codec is None
    assert any("learned null embedding" in line for line in notes.differences)
    assert any("also nulls the global condition" in line for line in notes.differences)
    model = validate_diffusion_config(converted.model)
    assert model.length_multiple == 8  # patch 2 x factors 2 x 2
    counts = parameter_counts(converted)
    assert counts["diffusion model"] == SAT_CFG_PARAMETERS
    # number: 128 Fourier frequencies + 257 x 32; list: 2 rows of 32 (SAT has a third).
    assert counts["conditioners"] == 128 + 257 * 32 + 32 + 2 * 32


def test_adp_uncond_1d_converts_with_sats_parameter_count():
    converted = convert_diffusion_model(uncond_config(), Notes())
    network = validate_diffusion_config(converted.model).network
    assert isinstance(network, ADPUNetConfig)
    assert network.hop_length == 6 and network.attention_features == 16
    assert not network.use_skip_scale and network.cond_token_dim == 0
    assert converted.conditioners == {} and converted.conditioning == {"joint_dropout": 0.0}
    assert parameter_counts(converted) == {"diffusion model": SAT_UNCOND_PARAMETERS,
                                           "conditioners": 0, "total": SAT_UNCOND_PARAMETERS}


def test_stable_audio_1_0s_network_converts_with_sats_parameter_count():
    """SAT's own Stable Audio 1.0 config: its DAC pretransform is refused (audiotools converts
    oobleck and seanet encoders); without it the adp_cfg_1d converts, CLAP listed."""
    config = sat_config("stable_audio_1_0")
    with pytest.raises(ConfigError, match="encoder.type='dac' is not supported"):
        parameter_counts(convert_diffusion_model(config, Notes()))  # as migrate counts it
    del config["model"]["pretransform"]
    notes = Notes()
    converted = convert_diffusion_model(config, notes)
    assert converted.model["cross_attention_cond_ids"] == ["seconds_start", "seconds_total"]
    assert converted.model["network"]["null_embedding_length"] == 79
    assert parameter_counts(converted)["diffusion model"] == SAT_STABLE_AUDIO_1_PARAMETERS
    assert any("'prompt' (type clap_text): not built here" in line for line in notes.unsupported)


def test_an_attentions_list_of_one_entry_per_level_gives_the_middle_the_last():
    config = uncond_config()
    config["model"]["config"]["attentions"] = [0, 2, 1]
    converted = convert_diffusion_model(config, Notes())
    assert converted.model["network"]["attentions"] == [0, 2, 1, 1]


_CFG = "model.diffusion.config"


@pytest.mark.parametrize("make, change, words", [
    (cfg_config, _set(f"{_CFG}.use_stft", True),
     r"model.diffusion.config.use_stft=true is not supported: .* STFT mode"),
    (cfg_config, _set(f"{_CFG}.use_xattn_time", True),
     r"use_xattn_time=true is not supported: .* the time as an extra cross-attention token"),
    (cfg_config, _set(f"{_CFG}.stft_num_fft", 1023), r"stft_num_fft not supported"),
    (cfg_config, _set(f"{_CFG}.context_channels", [2, 3]),
     r"context_channels=\[2, 3\]: audiotools joins input-concat channels at the input only"),
    (cfg_config, _set(f"{_CFG}.out_channels", 2), r"out_channels=2: a diffusion network outputs"),
    (cfg_config, _set(f"{_CFG}.magic", 1), r"magic not supported by audiotools' ADP U-Net"),
    (cfg_config, _set(f"{_CFG}.context_embedding_max_length", None),
     r"context_embedding_max_length is missing \(stable-audio-tools' adp_cfg_1d requires it\)"),
    (cfg_config, _set(f"{_CFG}.channels", None), r"model.diffusion.config.channels is missing"),
    (cfg_config, _set("model.diffusion.cross_attention_cond_ids", []),
     r"cross_attention_cond_ids is empty: stable-audio-tools' adp_cfg_1d needs"),
    (cfg_config, _set("model.diffusion.prepend_cond_ids", ["genre"]),
     r"prepend_cond_ids: an ADP U-Net takes no prepended tokens"),
    (cfg_config, _set("model.diffusion.type", "adp_1d"),
     r"cross_attention_cond_ids: stable-audio-tools' adp_1d wrapper never passes them"),
    (uncond_config, _set("model.config.context_features", 16),
     r"context_features=16: stable-audio-tools' adp_uncond_1d wrapper never feeds"),
    (uncond_config, _set("model.type", "adp_cfg_1d"),
     r"model.type='adp_cfg_1d' is not supported here: audiotools converts type dit and type "
     r"adp_uncond_1d"),
    (uncond_config, _set("model.type", "DAU1d"), r"DAU1d configs fail to build"),
])
def test_what_audiotools_does_not_build_is_refused_naming_the_key(make, change, words):
    config = make()
    change(config)
    with pytest.raises(ConfigError, match=words):
        convert_diffusion_model(config, Notes())


def test_an_attention_width_sats_group_norm_cannot_take_is_refused():
    config = convert_diffusion_model(uncond_config(), Notes()).model
    config["network"]["channels"] = 8  # attention over 16 channels; SAT's norm has 32 groups
    with pytest.raises(ConfigError, match="needs a multiple of 32 channels"):
        validate_diffusion_config(config)


# ------------------------------------------------------------------ the network's behaviour
def _network(**changes) -> ADPUNet:
    torch.manual_seed(0)
    section = {**convert_diffusion_model(cfg_config(), Notes()).model["network"], **changes}
    network = ADPUNet(ADPUNetConfig.model_validate(section)).eval()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0, 0.3)
    return network


def test_a_null_condition_cross_attends_to_the_learned_null_embedding():
    network = _network()
    x, t, features = torch.randn(2, 1, 16), torch.rand(2), torch.randn(2, 32)
    tokens = torch.randn(2, 3, 32)
    null = torch.tensor([[False] * 3, [True] * 3])
    rows = network.fixed_embedding.embedding.weight[:3].expand(2, 3, 32)
    with torch.no_grad():
        got = network(x, t, cross_attn_cond=tokens, cross_attn_mask=null, global_cond=features)
        expected = network(x, t, cross_attn_cond=torch.stack([rows[0], tokens[1]]),
                           cross_attn_mask=torch.ones(2, 3, dtype=torch.bool),
                           global_cond=features)
        zeros = _network(null_embedding_length=0)(
            x, t, cross_attn_cond=tokens, cross_attn_mask=null, global_cond=features)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got[0], zeros[0], atol=1e-3)
    with pytest.raises(ValueError, match=r"5 cross-attention tokens, but the null embedding has 4"):
        network(x, t, cross_attn_cond=torch.randn(2, 5, 32),
                cross_attn_mask=torch.zeros(2, 5, dtype=torch.bool), global_cond=features)


def test_padding_tokens_are_zeroed_keys_and_values_as_in_sat():
    """A padding token's content does not matter, but it still takes a share of the
    attention (its key is zero, not masked out): the output differs from having no token."""
    network = _network()
    x, t, features = torch.randn(1, 1, 16), torch.rand(1), torch.randn(1, 32)
    tokens = torch.randn(1, 3, 32)
    mask = torch.tensor([[True, True, False]])
    other = tokens.clone()
    other[0, 2] = 100.0
    with torch.no_grad():
        first = network(x, t, cross_attn_cond=tokens, cross_attn_mask=mask, global_cond=features)
        second = network(x, t, cross_attn_cond=other, cross_attn_mask=mask, global_cond=features)
        shorter = network(x, t, cross_attn_cond=tokens[:, :2], cross_attn_mask=mask[:, :2],
                          global_cond=features)
    assert torch.allclose(first, second, atol=1e-5)
    assert not torch.allclose(first, shorter, atol=1e-3)


def test_the_network_refuses_inputs_it_was_not_built_for():
    network = _network()
    x, t = torch.randn(1, 1, 16), torch.rand(1)
    with pytest.raises(ValueError, match="not a multiple of patch_size x prod\\(factors\\) = 8"):
        network(torch.randn(1, 1, 12), t)
    with pytest.raises(ValueError, match="built with cross_attn_cond \\(width 32\\) and needs it"):
        network(x, t, global_cond=torch.randn(1, 32))
    with pytest.raises(ValueError, match="got input_concat_cond but was built without it"):
        network(x, t, cross_attn_cond=torch.randn(1, 2, 32), global_cond=torch.randn(1, 32),
                input_concat_cond=torch.randn(1, 1, 16))


# ------------------------------------------------------------------ checkpoints
def _conditional_outputs(model, conditioners) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 1, 16, generator=generator)
    t = torch.rand(3, generator=generator)
    conditions = conditioners.encode([{"seconds_total": 3.0, "genre": "jazz"},
                                      {"seconds_total": 50.0, "genre": "pop"},
                                      {"seconds_total": None, "genre": None}])
    with torch.no_grad():
        return model(x, t, **model.condition_inputs(conditions))


def test_adp_cfg_1d_checkpoints_in_sats_layouts_load_to_the_same_outputs(tmp_path):
    converted, model = randomised(cfg_config())
    conditioners = ConditionerSet(converted.conditioners, 32).eval()
    network = {f"model.model.{k}": v for k, v in model.model.state_dict().items()}
    state = {**network, **_sat_conditioners(conditioners)}
    unwrapped, wrapped = write_sat_checkpoints(tmp_path, network, state)
    expected = _conditional_outputs(model, conditioners)
    assert expected.abs().max() > 1e-3
    for path, prefer_ema in ((unwrapped, True), (wrapped, False)):
        loaded = load_diffusion(path, cfg_config(), prefer_ema=prefer_ema)
        assert torch.equal(_conditional_outputs(loaded.model, loaded.conditioners), expected)
    halved = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in halved.parameters():
            parameter.mul_(0.5)
    loaded = load_diffusion(wrapped, cfg_config())
    assert torch.equal(_conditional_outputs(loaded.model, loaded.conditioners),
                       _conditional_outputs(halved, conditioners))
    # continue_from: the live network, every tensor of the model.
    weights = SAT_FORMAT.weights_for(wrapped, halved)
    assert set(weights) == set(model.state_dict())
    assert all(torch.equal(weights[key], value) for key, value in model.state_dict().items())


def test_adp_uncond_1d_state_dict_round_trips_through_sats_layout(tmp_path):
    _, model = randomised(uncond_config())
    state = {f"model.model.{k}": v for k, v in model.model.state_dict().items()}
    # SAT's unconditional EMA keeps the online copy too.
    path = tmp_path / "uncond.ckpt"
    torch.save({"state_dict": {**{f"diffusion.{k}": v for k, v in state.items()},
                               **{k.replace("model.", "diffusion_ema.ema_model.", 1): v
                                  for k, v in state.items()},
                               **{k.replace("model.", "diffusion_ema.online_model.", 1): v
                                  for k, v in state.items()}}}, path)
    loaded = load_diffusion(path, uncond_config())
    x, t = torch.randn(2, 1, 24), torch.rand(2)
    with torch.no_grad():
        assert torch.equal(loaded.model(x, t), model(x, t))
    assert set(loaded.model.state_dict()) == set(model.state_dict())


def test_a_checkpoint_of_another_adp_network_is_refused(tmp_path):
    _, model = randomised(uncond_config())
    path = tmp_path / "uncond.ckpt"
    torch.save({"state_dict": {f"model.model.{k}": v
                               for k, v in model.model.state_dict().items()}}, path)
    config = uncond_config()
    config["model"]["config"]["num_blocks"] = [1, 1, 1]
    with pytest.raises(Exception, match="does not fit"):
        load_diffusion(path, config)


# ------------------------------------------------------------------ training
@pytest.mark.slow
def test_train_trains_the_migrated_adp_cfg_1d_recipe(dora_dir, tmp_path, audio_dir,
                                                     monkeypatch, capsys):
    model = write_json(tmp_path / "adp.json", cfg_config())
    dataset = write_json(tmp_path / "data.json", {
        "dataset_type": "audio_dir", "datasets": [{"id": "m", "path": str(audio_dir)}]})
    config_dir = tmp_path / "config"
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{config_dir}")
    argv = ["train", "--model-config", str(model), "--dataset-config", str(dataset),
            "--config-dir", str(config_dir), "--manifest-dir", str(tmp_path / "m"),
            "--name", "adp", "--checkpoint-every", "2", "--epochs", "1", "--batch-size", "2",
            "--precision", "32", "--num-workers", "0", "--logger", ""]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert f"  diffusion model: {SAT_CFG_PARAMETERS:,}\n" in out
    [folder] = (dora_dir / "xps").iterdir()
    history = json.loads((folder / "history.json").read_text())
    assert len(history) == 1 and history[0]["train"]["loss"] > 0
    assert {"loss", "loss_t0.5"} <= history[0]["valid"].keys()
    records = json.loads((folder / "samples" / "1" / "conditions.json").read_text())
    assert sorted(record["cfg_scale"] for record in records) == [1.0, 3.0]
    assert all(record["steps"] == 3 for record in records)
