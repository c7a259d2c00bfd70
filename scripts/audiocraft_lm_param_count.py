"""Count the parameters of AudioCraft's own MusicGen-small `LMModel`: the oracle that
tests/test_lm_model.py hard-codes for `audiotools.models.lm.config.musicgen_small`.

AudioCraft is not a dependency. `bash scripts/make_reference_venvs.sh audiocraft` installs it
beside the project in reference/audiocraft (1.3.0, reusing the project's torch), then

    reference/audiocraft/bin/python scripts/audiocraft_lm_param_count.py

The model is built on the CPU (AudioCraft moves its conditioners to a real device) by
AudioCraft's `builders.get_lm_model`, from the keys of its config/model/lm/default.yaml,
model_scale/small.yaml, musicgen_lm.yaml and config/conditioner/text2music.yaml. Imports this
path never calls (xformers, spacy, librosa, transformers, torchmetrics) are stubbed, T5 by an
empty module: AudioCraft keeps its frozen T5 encoder out of the parameters anyway, while the
projection of its 768-dim output to the model's width (`output_proj`, sized by AudioCraft's
own `T5Conditioner.MODELS_DIMS`) is counted. Prints JSON: the total and the count of each
top-level part; `--keys FILE` also writes every state-dict key with its shape (the names a
checkpoint mapping starts from).

`--parity` also builds the same config at a tiny width (64, 2 layers, 32 codes) in both
projects, loads AudioCraft's state dict into `audiotools.models.lm.LMModel` strictly (all but
the condition provider, whose projection is the text conditioner's here) and compares the
logits of one random sequence and condition (`fuser.cross_mask: false`, AudioCraft's
unmasked cross-attention); exits non-zero above 1e-5.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import json
import sys
import types
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent


class _NoT5(nn.Module):
    """Stands for T5's tokenizer and encoder: nothing is downloaded or counted."""

    @classmethod
    def from_pretrained(cls, name: str) -> _NoT5:
        return cls()


def _stub_unused_imports() -> None:
    transformers = types.ModuleType("transformers")
    for name in ("RobertaTokenizer", "T5EncoderModel", "T5Tokenizer", "EncodecModel"):
        setattr(transformers, name, _NoT5)
    xformers = types.ModuleType("xformers")
    ops = types.ModuleType("xformers.ops")
    ops.unbind = torch.unbind
    ops.memory_efficient_attention = None
    ops.LowerTriangularMask = type("LowerTriangularMask", (), {})  # only a causal flag here
    xformers.ops = ops
    librosa = types.ModuleType("librosa")
    librosa.filters = types.ModuleType("librosa.filters")
    torchmetrics = types.ModuleType("torchmetrics")
    torchmetrics.Metric = nn.Module  # base class of AudioCraft's metrics, unused here
    stubs = {"torchmetrics": torchmetrics, "xformers": xformers, "xformers.ops": ops,
             "spacy": types.ModuleType("spacy"), "librosa": librosa,
             "librosa.filters": librosa.filters, "transformers": transformers}
    for name, module in stubs.items():  # a spec: availability checks look for one
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    sys.modules.update(stubs)


def musicgen_small_config() -> object:
    from omegaconf import OmegaConf
    transformer_lm = {  # default.yaml, then model_scale/small.yaml, then musicgen_lm.yaml
        "dim": 1024, "num_heads": 16, "num_layers": 24, "hidden_scale": 4, "n_q": 4,
        "card": 2048, "dropout": 0.0, "emb_lr": None, "activation": "gelu", "norm_first": True,
        "bias_ff": False, "bias_attn": False, "bias_proj": False, "past_context": None,
        "causal": True, "custom": False, "memory_efficient": True,
        "attention_as_float32": False, "layer_scale": None, "positional_embedding": "sin",
        "xpos": False, "checkpointing": "none", "weight_init": "gaussian",
        "depthwise_init": "current", "zero_bias_init": True, "norm": "layer_norm",
        "cross_attention": False, "qk_layer_norm": False, "qk_layer_norm_cross": False,
        "attention_dropout": None, "kv_repeat": 1, "two_step_cfg": False}
    return OmegaConf.create({
        "device": "cpu", "dtype": "float32", "lm_model": "transformer_lm",
        "dataset": {"segment_duration": 30},
        "codebooks_pattern": {"modeling": "delay",
                              "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0,
                                        "empty_initial": 0}},
        "transformer_lm": transformer_lm,
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1,
                  "sum": [], "prepend": [], "cross": ["description"], "input_interpolate": []},
        "conditioners": {"description": {"model": "t5", "t5": {
            "name": "t5-base", "finetune": False, "word_dropout": 0.3,
            "normalize_text": False}}}})


def tiny_parity() -> float:
    """Max |logits difference| of AudioCraft's and audiotools' tiny LM with the same weights."""
    from audiocraft.models import builders
    sys.path.insert(0, str(REPO))
    from audiotools.conditioning.base import Conditioning
    from audiotools.models.lm import build_lm
    config = musicgen_small_config()
    config.transformer_lm.update(dim=64, num_heads=4, num_layers=2, card=32)
    torch.manual_seed(0)
    reference = builders.get_lm_model(config).eval()
    ours = build_lm({"num_codebooks": 4, "cardinality": 32, "dim": 64, "num_heads": 4,
                     "num_layers": 2, "ffn_dim": 256,
                     "fuser": {"cross": ["description"], "cross_mask": False}}).eval()
    ours.load_state_dict({key: value for key, value in reference.state_dict().items()
                          if not key.startswith("condition_provider.")})
    sequence = torch.randint(0, 33, (2, 4, 10))
    mask = torch.arange(5) < torch.tensor([[3], [2]])
    condition = torch.randn(2, 5, 64) * mask.unsqueeze(-1)
    with torch.no_grad():
        expected = reference(sequence, [], condition_tensors={
            "description": (condition, mask.int())})
        got = ours(sequence, {"description": Conditioning(condition, mask)})
    return float((got - expected).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", help="write {state-dict key: shape} as JSON to this file")
    parser.add_argument("--parity", action="store_true",
                        help="compare a tiny LM's logits with audiotools' on the same weights")
    args = parser.parse_args()
    _stub_unused_imports()
    from audiocraft.models import builders
    lm = builders.get_lm_model(musicgen_small_config())
    parts = {name: sum(p.numel() for p in child.parameters())
             for name, child in lm.named_children()}
    print(json.dumps({"total": sum(p.numel() for p in lm.parameters()), "parts": parts,
                      "cross_attention": lm.transformer.layers[0].cross_attention is not None},
                     indent=1))
    if args.keys:
        with open(args.keys, "w") as file:
            json.dump({key: list(value.shape) for key, value in lm.state_dict().items()}, file,
                      indent=1)
    if args.parity:
        difference = tiny_parity()
        print(f"tiny LM, AudioCraft's weights in audiotools: max |logits difference| "
              f"{difference:.3g}")
        if difference > 1e-5:
            sys.exit(1)


if __name__ == "__main__":
    main()
