"""The text conditioner: a frozen T5 loaded with from_pretrained, its padding mask, the
cache, and the lazy import of transformers."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from audiotools.conditioning import ConditionerSet
from audiotools.errors import ConfigError
from tests.conditioning.conftest import cache_tiny_t5

TEXTS = ["string quartet playing chorale", "", "piano solo at calm bpm by bach music a"]


def _text_set(folder, **section) -> ConditionerSet:
    torch.manual_seed(0)
    return ConditionerSet({"prompt": {"type": "text", "model": str(folder), "max_length": 6,
                                      **section}}, dim=8).eval()


def test_importing_the_package_does_not_import_transformers():
    code = ("import sys, audiotools.conditioning; "
            "sys.exit('transformers' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_embeddings_and_the_tokenizer_padding_mask(tiny_t5):
    conditioners = _text_set(tiny_t5)
    text = conditioners["prompt"]
    out = conditioners.encode([{"prompt": value} for value in TEXTS])["prompt"]
    assert out.embeddings.shape == (3, 6, 8) and out.mask.dtype == torch.bool
    tokens = text.tokenizer(TEXTS, max_length=6, padding="max_length", truncation=True,
                            return_tensors="pt")
    assert torch.equal(out.mask, tokens["attention_mask"].bool())
    assert out.mask.sum(1).tolist() == [5, 1, 6]  # words + </s>; </s> alone; truncated
    assert not out.embeddings[~out.mask].any() and out.embeddings[out.mask].abs().sum() > 0
    again = conditioners.encode([{"prompt": value} for value in TEXTS])["prompt"]
    assert torch.equal(out.embeddings, again.embeddings)


def test_the_encoder_is_frozen_and_only_the_projection_trains(tiny_t5):
    conditioners = _text_set(tiny_t5).train()
    text = conditioners["prompt"]
    assert not text.encoder.training
    assert not any(parameter.requires_grad for parameter in text.encoder.parameters())
    assert set(conditioners.state_dict()) == {"conditioners.prompt.proj.weight",
                                              "conditioners.prompt.proj.bias"}
    assert conditioners.trainable_parameters() == list(text.proj.parameters())
    out = conditioners([{"path": "x.wav", "meta": {"prompt": TEXTS[0]}}])["prompt"]
    out.embeddings.sum().backward()
    assert text.proj.weight.grad is not None and text.proj.weight.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in text.encoder.parameters())


def test_the_cache_gives_the_same_outputs_bounded_and_without_encoding_again(tiny_t5):
    plain = _text_set(tiny_t5)
    cached = _text_set(tiny_t5, cache_size=2)
    cached["prompt"].proj.load_state_dict(plain["prompt"].proj.state_dict())
    calls = []
    encode = cached["prompt"]._encode
    cached["prompt"]._encode = lambda texts: calls.append(list(texts)) or encode(texts)
    values = [{"prompt": TEXTS[0]}, {"prompt": TEXTS[1]}, {"prompt": TEXTS[0]}]
    first = cached.encode(values)["prompt"]
    expected = plain.encode(values)["prompt"]
    torch.testing.assert_close(first.embeddings, expected.embeddings)
    assert torch.equal(first.mask, expected.mask)
    cached.encode(values)
    assert calls == [[TEXTS[0], TEXTS[1]]]  # each distinct text once, then from the cache
    cached.encode({"prompt": TEXTS[2]})
    assert list(cached["prompt"].cache) == [TEXTS[0], TEXTS[2]]  # least recently used went
    assert calls[-1] == [TEXTS[2]]


def test_a_reference_path_resolves(tiny_t5, monkeypatch):
    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tiny_t5.parent))
    conditioners = _text_set(f"//reference/{tiny_t5.name}")
    assert conditioners.encode({"prompt": "bach"})["prompt"].mask.sum() == 2


def test_a_missing_folder_or_model_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no folder at"):
        _text_set(tmp_path / "absent")
    import transformers

    def offline(*args, **kwargs):
        raise OSError("not in the local cache")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(ConfigError, match="model='t5-base'.*not in the local cache.*folder"):
        _text_set("t5-base")


def test_a_hub_name_loads_from_the_cache_and_is_never_downloaded(tmp_path, monkeypatch):
    """Not in the cache is an error at once (where the Hub is reachable too: nothing is
    downloaded; offline, asking it would retry for minutes)."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=f"model='t5-base': not in the Hugging Face cache at "
                                          f"{tmp_path / 'empty'}.*hf download t5-base"):
        _text_set("t5-base")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_tiny_t5(tmp_path, "t5-base")))
    conditioners = _text_set("t5-base")
    assert conditioners.encode({"prompt": "bach"})["prompt"].mask.sum() == 2
