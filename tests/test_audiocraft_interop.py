"""AudioCraft packages without AudioCraft: `state_dict.bin` / `compression_state_dict.bin`
written here in AudioCraft's layout from audiotools' own modules. The renaming below is the
contract audiotools.audiocraft implements (scripts/check_audiocraft_parity.py checks it against
AudioCraft itself); bad packages give one error naming the key or file."""
from __future__ import annotations

import copy
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from torch import nn

import audiotools
from audiotools.audiocraft import load_compression_model, load_lm
from audiotools.audiocraft.loading import AUDIOCRAFT_FORMAT, LM_FAMILY
from audiotools.audiocraft.package import COMPRESSION_FILE, LM_FILE
from audiotools.cli import main as cli
from audiotools.conditioning import ConditionerSet, Conditioning
from audiotools.errors import CheckpointError, ConfigError
from audiotools.families import FAMILIES
from audiotools.inference.musicgen import MusicGenPipeline
from audiotools.io.codecs import load_codec
from audiotools.io.loading import load_model, training_source
from audiotools.models.autoencoder import build_autoencoder
from audiotools.models.lm import LMConfig, LMModel, build_lm
from tests.conditioning.conftest import cache_tiny_t5

T5_DIM = 768
TINY_T5_DIM = 16  # save_tiny_t5's d_model


def lm_xp_config() -> dict:
    """What AudioCraft's Hydra tree composes for a tiny MusicGen (the keys its builder reads)."""
    return {
        "lm_model": "transformer_lm", "sample_rate": 32000, "channels": 1,
        "dataset": {"segment_duration": 30},
        "transformer_lm": {
            "dim": 32, "num_heads": 2, "num_layers": 2, "hidden_scale": 4, "n_q": 4,
            "card": 16, "dropout": 0.0, "activation": "gelu", "norm_first": True,
            "bias_ff": False, "bias_attn": False, "bias_proj": False, "past_context": None,
            "causal": True, "custom": False, "memory_efficient": True, "layer_scale": None,
            "positional_embedding": "sin", "xpos": False, "norm": "layer_norm",
            "cross_attention": False, "qk_layer_norm": False, "qk_layer_norm_cross": False,
            "attention_dropout": None, "kv_repeat": 1},
        "codebooks_pattern": {"modeling": "delay", "delay": {
            "delays": [0, 1, 2, 3], "flatten_first": 0, "empty_initial": 0}},
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
        "attribute_dropout": {"args": {"active_on_eval": False}, "text": {"description": 0.1}},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1,
                  "sum": [], "prepend": [], "cross": ["description"], "input_interpolate": []},
        "conditioners": {"description": {"model": "t5", "t5": {
            "name": "t5-base", "finetune": False, "word_dropout": 0.0,
            "normalize_text": False}}}}


def our_lm(**changes) -> LMModel:
    section = {"num_codebooks": 4, "cardinality": 16, "dim": 32, "num_heads": 2,
               "num_layers": 2, "ffn_dim": 128, "pattern": {"type": "delay"},
               "fuser": {"cross": ["description"]}, **changes}
    torch.manual_seed(0)
    return build_lm(section).eval()


def audiocraft_lm_state(model: LMModel, t5_dim: int = T5_DIM) -> dict[str, torch.Tensor]:
    """The contract: LMModel keys as they are, the text conditioner's projection (of T5's
    `t5_dim` states) as AudioCraft's condition provider names it."""
    state = dict(model.state_dict())
    state["condition_provider.conditioners.description.output_proj.weight"] = torch.randn(
        model.dim, t5_dim)
    state["condition_provider.conditioners.description.output_proj.bias"] = torch.randn(
        model.dim)
    return state


def save_package(path: Path, config: dict, state: dict[str, torch.Tensor]) -> Path:
    """As AudioCraft's utils/export.py writes it: the config as YAML text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"best_state": state, "xp.cfg": OmegaConf.to_yaml(OmegaConf.create(config)),
                "version": "1.3.0", "exported": True}, path)
    return path


def _conditions(model: LMModel, batch: int = 2) -> dict[str, Conditioning]:
    mask = torch.ones(batch, 3, dtype=torch.bool)
    return {"description": Conditioning(torch.randn(batch, 3, model.dim), mask)}


def test_an_lm_package_converts_config_and_weights_key_for_key(tmp_path):
    model = our_lm()
    state = audiocraft_lm_state(model)
    path = save_package(tmp_path / "state_dict.bin", lm_xp_config(), state)
    converted = load_lm(tmp_path)  # the folder: its state_dict.bin
    assert converted.config == LMConfig(
        num_codebooks=4, cardinality=16, dim=32, num_heads=2, num_layers=2, ffn_dim=128,
        pattern={"type": "delay", "delays": [0, 1, 2, 3]},
        fuser={"cross": ["description"], "cross_mask": True})
    assert converted.config.fuser.cross_mask  # see audiotools/audiocraft/lm.py
    assert converted.conditioners == {"description": {"type": "text", "model": "t5-base",
                                                      "dropout": 0.1}}
    assert converted.joint_dropout == 0.3 and converted.cfg_scale == 3.0
    assert converted.info == {"sample_rate": 32000, "channels": 1, "segment_duration": 30}
    assert torch.equal(converted.conditioner_weights["conditioners.description.proj.weight"],
                       state["condition_provider.conditioners.description.output_proj.weight"])
    sequence = torch.randint(0, 17, (2, 4, 9))
    conditions = _conditions(model)
    with torch.no_grad():
        assert torch.equal(converted.model(sequence, conditions), model(sequence, conditions))
    assert load_lm(path).config == converted.config


def test_half_precision_weights_torch_mha_keys_and_rotary_buffers_load(tmp_path):
    model = our_lm(positional_embedding="rope", bias_attn=True)
    state = {}
    for key, value in audiocraft_lm_state(model).items():
        # PyTorch's own attention (custom: false) nests its weights one level deeper.
        key = key.replace("self_attn.in_proj", "self_attn.mha.in_proj")
        state[key] = value.half() if value.is_floating_point() else value
    state["transformer.rope.frequencies"] = torch.ones(8)
    state["transformer.layers.0.self_attn.rope.frequencies"] = torch.ones(8)
    config = lm_xp_config()
    config["transformer_lm"].update(positional_embedding="rope", bias_attn=True,
                                    custom=True)
    converted = load_lm(save_package(tmp_path / "state_dict.bin", config, state))
    assert converted.config.positional_embedding == "rope"
    for key, value in converted.model.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, model.state_dict()[key].half().float())


@pytest.mark.parametrize(("section", "key", "value"), [
    ("transformer_lm", "activation", "relu"),
    ("transformer_lm", "norm_first", False),
    ("transformer_lm", "causal", False),
    ("transformer_lm", "layer_scale", 0.1),
    ("transformer_lm", "kv_repeat", 2),
    ("transformer_lm", "norm", "rms_norm"),
    ("codebooks_pattern", "modeling", "musiclm"),
    ("fuser", "cross_attention_pos_emb", True),
    ("fuser", "input_interpolate", ["description"]),
    (None, "lm_model", "transformer_lm_magnet"),
])
def test_unsupported_lm_options_are_named(tmp_path, section, key, value):
    config = lm_xp_config()
    (config[section] if section else config)[key] = value
    path = save_package(tmp_path / "state_dict.bin", config, audiocraft_lm_state(our_lm()))
    name = f"{section}.{key}" if section else key
    with pytest.raises(CheckpointError, match=f"xp.cfg {name}="):
        load_lm(path)


@pytest.mark.parametrize(("change", "words"), [
    (lambda c: c["codebooks_pattern"]["delay"].update(flatten_first=2),
     "xp.cfg codebooks_pattern.delay.flatten_first="),
    (lambda c: c["conditioners"]["description"].update(model="lut"),
     "xp.cfg conditioners.description.model="),
    (lambda c: c["conditioners"]["description"]["t5"].update(finetune=True),
     "xp.cfg conditioners.description.t5.finetune="),
    (lambda c: c["transformer_lm"].update(positional_embedding="rope", positional_scale=0.5),
     "xp.cfg transformer_lm.positional_scale="),
    # Values of another type than the model takes: one error naming the package.
    (lambda c: c["transformer_lm"].update(dim="abc"), "its xp.cfg .*invalid literal for int"),
    (lambda c: c["transformer_lm"].update(hidden_scale="x"),
     "its xp.cfg .*could not convert string"),
    (lambda c: c["classifier_free_guidance"].update(inference_coef="high"), "its xp.cfg .*high"),
    (lambda c: c["transformer_lm"].update(num_heads=3), "its xp.cfg .*audiotools refuses"),
    (lambda c: c.update(conditioners=["description"]), "its xp.cfg .*'list' object"),
])
def test_nested_lm_options_audiotools_cannot_take_are_named(tmp_path, change, words):
    config = lm_xp_config()
    change(config)
    path = save_package(tmp_path / "state_dict.bin", config, audiocraft_lm_state(our_lm()))
    with pytest.raises(CheckpointError, match=f"{re.escape(str(path))}: .*{words}"):
        load_lm(path)


def test_lm_weights_that_do_not_fit_are_named(tmp_path):
    state = audiocraft_lm_state(our_lm())
    extra = dict(state, **{"transformer.layers.0.layer_scale_1.scale": torch.ones(32)})
    with pytest.raises(CheckpointError, match="unexpected.*layer_scale_1"):
        load_lm(save_package(tmp_path / "a" / "state_dict.bin", lm_xp_config(), extra))
    missing = {k: v for k, v in state.items() if k != "out_norm.weight"}
    with pytest.raises(CheckpointError, match="missing.*out_norm.weight"):
        load_lm(save_package(tmp_path / "b" / "state_dict.bin", lm_xp_config(), missing))
    wider = lm_xp_config()
    wider["transformer_lm"]["card"] = 32
    with pytest.raises(CheckpointError, match="wrong shape.*linears.0.weight"):
        load_lm(save_package(tmp_path / "c" / "state_dict.bin", wider, state))
    finetuned = dict(state, **{
        "condition_provider.conditioners.description.t5.shared.weight": torch.ones(2)})
    with pytest.raises(CheckpointError, match="t5.shared.weight"):
        load_lm(save_package(tmp_path / "d" / "state_dict.bin", lm_xp_config(), finetuned))


def test_files_that_are_not_audiocraft_packages_are_named(tmp_path):
    not_dict = tmp_path / "list.bin"
    torch.save([1, 2], not_dict)
    with pytest.raises(CheckpointError, match="holds a list"):
        load_lm(not_dict)
    bare = tmp_path / "bare.bin"
    torch.save({"best_state": {"x": torch.ones(1)}}, bare)
    with pytest.raises(CheckpointError, match="no 'xp.cfg'"):
        load_lm(bare)
    pretrained = tmp_path / "pretrained.bin"
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True}, pretrained)
    with pytest.raises(CheckpointError, match="facebook/encodec_32khz"):
        load_compression_model(pretrained)
    pickled = tmp_path / "checkpoint.bin"
    torch.save({"xp.cfg": OmegaConf.create(lm_xp_config()), "best_state": {}}, pickled)
    with pytest.raises(CheckpointError, match="export_lm or export_encodec"):
        load_lm(pickled)
    cut = tmp_path / "cut" / "state_dict.bin"
    cut.parent.mkdir()
    cut.write_bytes(pickled.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="damaged or cut short") as error:
        load_lm(cut)
    assert "export_lm" not in str(error.value)
    lm = save_package(tmp_path / "lm" / "state_dict.bin", lm_xp_config(),
                      audiocraft_lm_state(our_lm()))
    with pytest.raises(CheckpointError, match="holds an AudioCraft lm model"):
        load_compression_model(lm)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_lm(tmp_path / "nothing")


def test_an_lm_package_through_audiotools_loading(tmp_path, monkeypatch):
    model = our_lm()
    save_package(tmp_path / "state_dict.bin", lm_xp_config(), audiocraft_lm_state(model))
    assert AUDIOCRAFT_FORMAT.accepts(tmp_path)
    monkeypatch.delitem(FAMILIES, LM_FAMILY, raising=False)
    with pytest.raises(CheckpointError, match="audiotools.audiocraft.load_lm"):
        audiotools.load(tmp_path)

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = our_lm()
            self.conditioners = ConditionerSet({}, 32)

    weights = AUDIOCRAFT_FORMAT.weights_for(tmp_path / "state_dict.bin", Wrapper())
    assert torch.equal(weights["lm.out_norm.weight"], model.out_norm.weight)
    assert "conditioners.conditioners.description.proj.bias" in weights
    assert set(AUDIOCRAFT_FORMAT.weights_for(tmp_path, our_lm())) == set(model.state_dict())
    with pytest.raises(CheckpointError, match="holds none"):
        AUDIOCRAFT_FORMAT.weights_for(tmp_path, nn.Linear(2, 2))


# ------------------------------------------------------------------ EnCodec
def encodec_xp_config(ratios: tuple[int, ...] = (4, 2)) -> dict:
    """A tiny EnCodec's config; `ratios` in AudioCraft's (decoder) order."""
    return {
        "compression_model": "encodec", "sample_rate": 16000, "channels": 1,
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": "${sample_rate}",
                    "channels": "${channels}", "causal": False, "renormalize": False},
        "seanet": {"dimension": 8, "channels": "${channels}", "causal": "${encodec.causal}",
                   "n_filters": 4, "n_residual_layers": 1, "ratios": list(ratios),
                   "activation": "ELU", "activation_params": {"alpha": 1.0},
                   "norm": "weight_norm", "norm_params": {}, "kernel_size": 7,
                   "residual_kernel_size": 3, "last_kernel_size": 7, "dilation_base": 2,
                   "pad_mode": "constant", "true_skip": True, "compress": 2, "lstm": 1,
                   "disable_norm_outer_blocks": 0,
                   "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                               "final_activation_params": None},
                   "encoder": {}},
        "rvq": {"n_q": 3, "q_dropout": False, "bins": 16, "decay": 0.99, "kmeans_init": True,
                "kmeans_iters": 5, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0}}


def our_encodec_section(ratios: tuple[int, ...] = (4, 2)) -> dict:
    """What the conversion of encodec_xp_config(ratios) must build (SEANet ratios in encoder
    order)."""
    network = {"type": "seanet", "n_filters": 4, "n_residual_layers": 1,
               "ratios": list(reversed(ratios)), "activation": "ELU",
               "activation_params": {"alpha": 1.0}, "norm": "weight_norm", "kernel_size": 7,
               "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_base": 2,
               "causal": False, "pad_mode": "constant", "true_skip": True, "compress": 2,
               "lstm": 1, "latent_dim": 8}
    return {"sample_rate": 16000, "channels": 1, "latent_dim": 8, "encoder": network,
            "decoder": {**network, "final_activation": None},
            "bottleneck": {"type": "rvq", "num_quantizers": 3, "codebook_size": 16,
                           "decay": 0.99, "kmeans_init": True, "kmeans_iters": 5,
                           "threshold_ema_dead_code": 2.0}}


OUR_ENCODEC = our_encodec_section()
_CODEBOOK = {"initted": "inited", "cluster_size": "cluster_size", "embed": "embed",
             "embed_avg": "embed_avg"}


def our_encodec(section: dict = OUR_ENCODEC):
    torch.manual_seed(0)
    model = build_autoencoder(section)
    model.train()
    hop = math.prod(section["encoder"]["ratios"])
    model(0.3 * torch.randn(2, 1, hop * 64))  # k-means init of the codebooks
    return model.eval()


def audiocraft_encodec_state(model) -> dict[str, torch.Tensor]:
    """The contract: old-style weight norm (weight_g, weight_v), AudioCraft's quantizer names
    and shapes (no codebook-head axis, `inited` a float flag)."""
    state = {}
    for key, value in model.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v")
        if key.startswith("bottleneck.quantizer.layers."):
            layer, _, name = key[len("bottleneck.quantizer.layers."):].partition("._codebook.")
            key = f"quantizer.vq.layers.{layer}._codebook.{_CODEBOOK[name]}"
            value = value.float().reshape(1) if name == "initted" else value[0]
        state[key] = value
    return state


def test_an_encodec_package_gives_the_same_tokens_and_audio(tmp_path):
    model = our_encodec()
    path = save_package(tmp_path / "compression_state_dict.bin", encodec_xp_config(),
                        audiocraft_encodec_state(model))
    converted = load_compression_model(path)
    assert converted.config == build_autoencoder(OUR_ENCODEC).config
    audio = 0.3 * torch.randn(2, 1, 8 * 16)
    with torch.no_grad():
        tokens = model.encode_to_tokens(audio)
        assert torch.equal(converted.encode_to_tokens(audio), tokens)
        assert torch.equal(converted.decode_tokens(tokens), model.decode_tokens(tokens))
        codec = load_codec(tmp_path, discrete=True)  # a folder with the codec alone
        assert torch.equal(codec.encode_to_tokens(audio), tokens)
        pipeline = audiotools.load(path)
        assert torch.equal(pipeline.model.encode_to_tokens(audio), tokens)
    weights = AUDIOCRAFT_FORMAT.weights_for(path, build_autoencoder(OUR_ENCODEC))
    assert set(weights) == set(model.state_dict())


@pytest.mark.parametrize(("change", "name"), [
    (lambda c: c["encodec"].update(renormalize=True), "encodec.renormalize"),
    (lambda c: c.update(compression_model="dac"), "compression_model"),
    (lambda c: c["seanet"].update(disable_norm_outer_blocks=1),
     "seanet.disable_norm_outer_blocks"),
    (lambda c: c["seanet"].update(norm="time_group_norm"), "seanet.norm"),
    (lambda c: c["seanet"].update(pad_mode="circular"), "seanet.pad_mode"),
    (lambda c: c["seanet"]["decoder"].update(final_activation="ELU",
                                             final_activation_params={"alpha": 2.0}),
     "seanet.decoder.final_activation_params"),
    (lambda c: c["seanet"]["decoder"].update(trim_right_ratio=0.5),
     "seanet.decoder.trim_right_ratio"),
])
def test_unsupported_encodec_options_are_named(tmp_path, change, name):
    config = copy.deepcopy(encodec_xp_config())
    change(config)
    path = save_package(tmp_path / "compression_state_dict.bin", config,
                        audiocraft_encodec_state(our_encodec()))
    with pytest.raises(CheckpointError, match=f"xp.cfg {name}="):
        load_compression_model(path)


def test_encodec_options_of_the_wrong_type_are_one_error_naming_the_file(tmp_path):
    state = audiocraft_encodec_state(our_encodec())
    for number, change in enumerate((lambda c: c["encodec"].update(sample_rate="fast"),
                                     lambda c: c.update(seanet=["x"]))):
        config = copy.deepcopy(encodec_xp_config())
        change(config)
        path = save_package(tmp_path / f"{number}.bin", config, state)
        with pytest.raises(CheckpointError, match=f"{re.escape(str(path))}: its xp.cfg holds"):
            load_compression_model(path)


def test_continue_from_a_compression_package_takes_what_fits(tmp_path):
    """continue_from loads what fits (and logs the rest), as from any checkpoint; only
    reading the package as its own model requires every tensor."""
    path = save_package(tmp_path / "compression_state_dict.bin", encodec_xp_config(),
                        audiocraft_encodec_state(our_encodec()))
    section = our_encodec_section()
    section["bottleneck"] = {**section["bottleneck"], "num_quantizers":
                             section["bottleneck"]["num_quantizers"] + 1}
    model = build_autoencoder(section)
    weights = training_source(str(path), {"model": model})[0]["model"]
    assert weights and not any(".layers.3." in key for key in weights)


def test_encodec_weights_that_do_not_fit_are_named(tmp_path):
    state = audiocraft_encodec_state(our_encodec())
    state["quantizer.vq.layers.0.project_in.weight"] = torch.ones(8, 8)
    path = save_package(tmp_path / "compression_state_dict.bin", encodec_xp_config(), state)
    with pytest.raises(CheckpointError, match="project_in"):
        load_compression_model(path)
    config = encodec_xp_config()
    config["seanet"]["encoder"] = {"channels": 2}
    with pytest.raises(CheckpointError, match="encoder channels=2"):
        load_compression_model(save_package(tmp_path / "b.bin", config, state))


# ------------------------------------------------------------------ MusicGen folders
# AudioCraft's order: 320 samples a frame, 50 Hz at 16 kHz (MusicGen's frame rate).
MUSICGEN_RATIOS = (8, 5, 4, 2)
PROMPT = {"description": "piano solo"}


def musicgen_xp_config() -> dict:
    """lm_xp_config() over the tokens of the 50 Hz EnCodec (3 codebooks of 16 codes, 16 kHz
    mono); its text conditioner is MusicGen's, `t5-base` by name."""
    config = lm_xp_config()
    config["sample_rate"] = 16000
    config["transformer_lm"]["n_q"] = 3
    config["codebooks_pattern"]["delay"]["delays"] = [0, 1, 2]
    return config


@pytest.fixture
def musicgen(tmp_path, monkeypatch, one_thread) -> SimpleNamespace:
    """A folder as MusicGen's are released (state_dict.bin, compression_state_dict.bin) and
    the modules written to it; `t5-base` is a tiny T5 in the Hugging Face cache."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE",
                        str(cache_tiny_t5(tmp_path / "hub", "t5-base")))
    folder = tmp_path / "musicgen"
    lm = our_lm(num_codebooks=3)
    save_package(folder / LM_FILE, musicgen_xp_config(), audiocraft_lm_state(lm, TINY_T5_DIM))
    codec = our_encodec(our_encodec_section(MUSICGEN_RATIOS))
    save_package(folder / COMPRESSION_FILE, encodec_xp_config(MUSICGEN_RATIOS),
                 audiocraft_encodec_state(codec))
    return SimpleNamespace(folder=folder, lm=lm, codec=codec)


def test_a_musicgen_folder_loads_in_one_call_with_its_codec(musicgen):
    pipeline = audiotools.load(musicgen.folder)
    codec_file = musicgen.folder / COMPRESSION_FILE
    assert isinstance(pipeline, MusicGenPipeline)
    assert pipeline.codec.source == str(codec_file) and pipeline.sample_rate == 16000
    assert pipeline.codec.frame_rate == 50 and pipeline.defaults["cfg_scale"] == 3.0
    # What the two pieces give loaded apart (the way before the one call).
    loaded = load_model(musicgen.folder)
    apart = MusicGenPipeline.from_model(loaded.model, loaded.export,
                                        codec=load_codec(codec_file, discrete=True))
    assert pipeline.codec.identity == apart.codec.identity
    clip = 0.3 * torch.randn(1, 3200)
    tokens = pipeline.encode(clip, 16000)
    with torch.no_grad():
        assert torch.equal(tokens, musicgen.codec.encode_to_tokens(clip[None]))
    assert torch.equal(tokens, apart.encode(clip, 16000))
    audio, rate = pipeline.generate(PROMPT, 0.2, seed=3)
    assert (rate, audio.shape) == (16000, (1, 3200))
    assert torch.equal(audio, apart.generate(PROMPT, 0.2, seed=3)[0])
    # Fine-tuning (continue_from=FOLDER) still starts from the folder's LM.
    weights, _ = training_source(str(musicgen.folder), {"model": our_lm(num_codebooks=3)})
    assert all(torch.equal(value, musicgen.lm.state_dict()[key])
               for key, value in weights["model"].items())
    assert set(weights["model"]) == set(musicgen.lm.state_dict())


def test_generate_and_continue_a_musicgen_folder_from_the_command_line(musicgen, tmp_path):
    out, longer = tmp_path / "x.wav", tmp_path / "longer.wav"
    assert cli(["generate", str(musicgen.folder), "--prompt", "piano solo", "--duration", "1",
                "--out", str(out)]) == 0
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
    expected, _ = audiotools.load(musicgen.folder).generate(PROMPT, 1.0, seed=0)
    written, _ = sf.read(out, dtype="float32")
    assert np.abs(written - expected[0].clamp(-1, 1).numpy()).max() < 1 / 16000
    assert cli(["continue", str(musicgen.folder), str(out), "--duration", "0.5",
                "--out", str(longer)]) == 0
    assert sf.info(longer).frames == 16000 + 8000


def test_an_lm_without_its_codec_names_the_missing_file(musicgen, tmp_path, capsys):
    folder = tmp_path / "lm_only"
    folder.mkdir()
    shutil.copy(musicgen.folder / LM_FILE, folder)
    message = (f"{folder / LM_FILE} takes its codec from {folder / COMPRESSION_FILE}, which "
               "does not exist: put the codec there, or pass one: the pipeline's "
               "from_model(loaded.model, loaded.export, codec=load_codec(PATH, ...)) with "
               "loaded = load_model(MODEL).")
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        audiotools.load(folder)
    out = tmp_path / "x.wav"
    assert cli(["generate", str(folder), "--duration", "1", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {message}\n" and not out.exists()
    loaded = load_model(folder)  # what the message says to pass
    pipeline = MusicGenPipeline.from_model(
        loaded.model, loaded.export,
        codec=load_codec(musicgen.folder / COMPRESSION_FILE, discrete=True))
    assert pipeline.generate(PROMPT, 0.1)[0].shape == (1, 1600)


def _beside_the_codec(musicgen, folder: Path, config: dict, lm: torch.nn.Module) -> Path:
    """A MusicGen folder holding this LM package next to the fixture's compression package."""
    save_package(folder / LM_FILE, config, audiocraft_lm_state(lm, TINY_T5_DIM))
    shutil.copy(musicgen.folder / COMPRESSION_FILE, folder)
    return folder


def test_a_codec_that_does_not_fit_and_a_missing_t5_are_named(musicgen, tmp_path,
                                                               monkeypatch):
    lm_file = musicgen.folder / LM_FILE
    four = _beside_the_codec(musicgen, tmp_path / "four_codebooks", lm_xp_config(), our_lm())
    with pytest.raises(ConfigError, match=re.escape(
            f"{four / LM_FILE}: model.num_codebooks=4 but the codec "
            f"({four / COMPRESSION_FILE}) has num_codebooks 3: give it the codec it was "
            "trained on.")):
        audiotools.load(four)
    config = musicgen_xp_config()
    config["sample_rate"] = 32000
    at_32k = _beside_the_codec(musicgen, tmp_path / "32k", config, musicgen.lm)
    with pytest.raises(ConfigError, match=re.escape(
            f"{at_32k / LM_FILE} was trained on audio of sample_rate 32000, but the codec "
            f"({at_32k / COMPRESSION_FILE}) has sample_rate 16000: give it the codec it was "
            "trained on.")):
        audiotools.load(at_32k)
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=re.escape(
            f"{lm_file}: text conditioner model='t5-base': not in the Hugging Face cache at "
            f"{tmp_path / 'empty'}")):
        audiotools.load(musicgen.folder)
