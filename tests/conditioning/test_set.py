"""A set of conditioners: batch info -> conditions, CFG dropout, null and negative
conditions for guidance."""
from __future__ import annotations

import pytest
import torch

from audiotools.conditioning import ConditionerSet
from audiotools.errors import ConfigError


def _set(tiny_t5, *, joint_dropout: float = 0.0, dropout: float = 0.0) -> ConditionerSet:
    torch.manual_seed(0)
    return ConditionerSet({
        "prompt": {"type": "text", "model": str(tiny_t5), "key": "description",
                   "max_length": 8, "dropout": dropout},
        "seconds_total": {"type": "number", "min": 0, "max": 64, "features": 8},
        "ensemble": {"type": "options", "key": "ensemble", "dropout": dropout, "options": [
            "string quartet", "church organ", "accordion", "piano", "woodwind quintet",
            "brass quintet", "harpsichord", "guitar", "flute and piano"], "default": "piano"},
    }, dim=8, joint_dropout=joint_dropout)


def _assert_null(condition, rows) -> None:
    assert not condition.mask[rows].any() and not condition.embeddings[rows].any()


def test_a_batch_gives_each_conditioner_its_shape(tiny_t5, music_items):
    out = _set(tiny_t5).eval()(music_items)
    assert set(out) == {"prompt", "seconds_total", "ensemble"}
    assert out["prompt"].embeddings.shape == (4, 8, 8) and out["prompt"].mask.shape == (4, 8)
    assert out["seconds_total"].embeddings.shape == (4, 1, 8)
    assert out["ensemble"].mask.all()


def test_an_empty_batch_gives_empty_conditions(tiny_t5):
    out = _set(tiny_t5, dropout=0.5).train()([])
    assert out["prompt"].embeddings.shape == (0, 8, 8) and out["ensemble"].mask.shape == (0, 1)


def test_eval_mode_never_drops_and_is_deterministic(tiny_t5, music_items):
    conditioners = _set(tiny_t5, dropout=1.0, joint_dropout=1.0).eval()
    first, second = conditioners(music_items), conditioners(music_items)
    for name in first:
        assert first[name].mask.any(dim=1).all()
        assert torch.equal(first[name].embeddings, second[name].embeddings)


def test_dropout_rate_per_conditioner_and_dropped_items_equal_the_null(tiny_t5, music_items):
    conditioners = _set(tiny_t5, dropout=0.3).train()
    items = music_items * 100
    generator = torch.Generator().manual_seed(1)
    out = conditioners(items, generator=generator)
    null = conditioners.null(len(items))
    kept = conditioners.eval()(items)
    for name in ("prompt", "ensemble"):
        dropped = ~out[name].mask.any(dim=1)
        assert 0.22 < dropped.float().mean() < 0.38  # 400 draws at p = 0.3
        assert torch.equal(out[name].embeddings[dropped], null[name].embeddings[dropped])
        assert torch.equal(out[name].mask[dropped], null[name].mask[dropped])
        assert torch.equal(out[name].embeddings[~dropped], kept[name].embeddings[~dropped])
    assert out["seconds_total"].mask.all()  # no dropout configured
    prompt_dropped = ~out["prompt"].mask.any(dim=1)
    ensemble_dropped = ~out["ensemble"].mask.any(dim=1)
    assert not torch.equal(prompt_dropped, ensemble_dropped)  # independent draws
    again = conditioners.train()(items, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again["prompt"].mask, out["prompt"].mask)  # same seed, same drops


def test_joint_dropout_nulls_every_condition_of_an_item(tiny_t5, music_items):
    conditioners = _set(tiny_t5, joint_dropout=0.5).train()
    out = conditioners(music_items * 50, generator=torch.Generator().manual_seed(2))
    dropped = [~condition.mask.any(dim=1) for condition in out.values()]
    assert all(torch.equal(dropped[0], other) for other in dropped[1:])
    assert 0.38 < dropped[0].float().mean() < 0.62


def test_user_values_defaults_and_nulls(tiny_t5):
    conditioners = _set(tiny_t5).eval()
    out = conditioners.encode([{"prompt": "calm piano", "seconds_total": 8},
                               {"prompt": None, "seconds_total": 8, "ensemble": None}])
    assert out["prompt"].mask[0].sum() == 3
    _assert_null(out["prompt"], 1)
    _assert_null(out["ensemble"], 1)
    piano = conditioners["ensemble"].table.weight[3]
    assert torch.equal(out["ensemble"].embeddings[0, 0], piano)  # the configured default
    with pytest.raises(ConfigError, match=r"values\[0\] lack 'seconds_total', which has no "
                                          "default"):
        conditioners.encode({"prompt": "piano"})
    with pytest.raises(ConfigError, match=r"values\[0\] name 'promt': no such conditioner; "
                                          "conditioners: prompt, seconds_total, ensemble"):
        conditioners.encode({"promt": "piano", "seconds_total": 8})


def test_null_and_negative_conditions_for_guidance(tiny_t5):
    conditioners = _set(tiny_t5).eval()
    values = {"prompt": "calm piano", "seconds_total": 8, "ensemble": "piano"}
    condition = conditioners.encode([values, values])
    null = conditioners.null(2)
    for name in condition:
        assert null[name].embeddings.shape == condition[name].embeddings.shape
        _assert_null(null[name], slice(None))
    assert set(conditioners.unconditional(2)) == set(condition)
    negative = conditioners.unconditional(2, negative={"prompt": "noisy low quality"})
    expected = conditioners.encode([{**values, "prompt": "noisy low quality"}] * 2)
    assert torch.equal(negative["prompt"].embeddings, expected["prompt"].embeddings)
    _assert_null(negative["seconds_total"], slice(None))
    # Stable Audio's way: every value given, the prompt negated.
    full = conditioners.unconditional(2, negative={**values, "prompt": "noisy"})
    assert torch.equal(full["seconds_total"].embeddings, condition["seconds_total"].embeddings)


def test_gradients_reach_only_trainable_parameters(tiny_t5, music_items):
    conditioners = _set(tiny_t5).train()
    out = conditioners(music_items)
    sum(condition.embeddings.square().sum() for condition in out.values()).backward()
    trainable = conditioners.trainable_parameters()
    names = {name for name, _ in conditioners.named_parameters()}
    assert names == {"conditioners.prompt.proj.weight", "conditioners.prompt.proj.bias",
                     "conditioners.seconds_total.fourier.frequencies",
                     "conditioners.seconds_total.proj.weight",
                     "conditioners.seconds_total.proj.bias",
                     "conditioners.ensemble.table.weight"}
    assert all(parameter.grad is not None for parameter in trainable)
    assert all(parameter.grad is None
               for parameter in conditioners["prompt"].encoder.parameters())


def test_a_reserved_name_is_refused():
    with pytest.raises(ConfigError, match="conditioners.items: the name is reserved"):
        ConditionerSet({"items": {"type": "int", "min": 0, "max": 1}}, dim=4)
