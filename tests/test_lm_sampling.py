"""Token sampling and generation: temperature, top-k, top-p with a seeded generator,
classifier-free guidance in one doubled batch, and the generation loop over a pattern with the
KV cache, checked against a plain loop that reruns the full forward at every step."""
from __future__ import annotations

import pytest
import torch

from audiotools.conditioning.base import Conditioning
from audiotools.models.lm import build_lm
from audiotools.sampling.tokens import (
    doubled,
    generate,
    guide,
    null_conditions,
    sample_tokens,
)


def _lm(fuser=None, pattern=None):
    torch.manual_seed(0)
    section = {"num_codebooks": 3, "cardinality": 11, "dim": 32, "num_heads": 4,
               "num_layers": 2, "ffn_dim": 64, "fuser": fuser or {},
               "pattern": pattern or {"type": "delay"}}
    return build_lm(section).eval()


def _conditions(batch=2, seed=1) -> dict[str, Conditioning]:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.arange(4) < torch.tensor([3, 2, 4, 1][:batch]).unsqueeze(1)
    embeddings = 3 * torch.randn(batch, 4, 32, generator=generator) * mask.unsqueeze(-1)
    return {"text": Conditioning(embeddings, mask)}


def _seed(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _plain_greedy(lm, num_frames, conditions=None, prompt=None, cfg_scale=1.0,
                  unconditional=None):
    """Greedy generation without a cache: the full forward of every prefix, guidance from
    two separate forwards."""
    batch = 2 if conditions else 1
    codes = torch.full((batch, 3, num_frames), -1, dtype=torch.long)
    frames = 0 if prompt is None else prompt.shape[-1]
    if prompt is not None:
        codes[..., :frames] = prompt
    sequence, _ = lm.pattern.build(codes, lm.special_token)
    for step in range(lm.pattern.first_step(frames, num_frames), sequence.shape[-1]):
        logits = lm(sequence[..., :step], conditions)[:, :, -1]
        if cfg_scale != 1.0:
            uncond = lm(sequence[..., :step], unconditional)[:, :, -1]
            logits = uncond + (logits - uncond) * cfg_scale
        current = sequence[:, :, step]
        current.copy_(torch.where(current == -1, logits.argmax(-1), current))
    return lm.pattern.revert(sequence)


def test_greedy_and_top_k_1_take_the_most_likely_token():
    logits = torch.randn(4, 3, 11, generator=_seed(0))
    best = logits.argmax(-1)
    assert torch.equal(sample_tokens(logits, temperature=0), best)
    assert torch.equal(sample_tokens(logits, top_k=1, generator=_seed(1)), best)
    assert torch.equal(sample_tokens(logits, top_p=1e-6, generator=_seed(1)), best)


def test_a_tiny_temperature_is_greedy_and_one_samples_the_softmax_as_it_was():
    """logits / 1e-40 overflowed to inf - inf = NaN in the softmax (a traceback from
    multinomial); the most likely logit is now taken to 0 first."""
    logits = torch.randn(4, 3, 11, generator=_seed(0)) * 10
    assert torch.equal(sample_tokens(logits, temperature=1e-40, generator=_seed(1)),
                       logits.argmax(-1))
    flat = logits.reshape(-1, 11)
    expected = torch.multinomial(flat.softmax(-1), 1, generator=_seed(2)).view(4, 3)
    assert torch.equal(sample_tokens(logits, generator=_seed(2)), expected)


def test_a_seed_reproduces_tokens_and_another_seed_does_not():
    logits = torch.zeros(64, 50)
    first = sample_tokens(logits, generator=_seed(3))
    assert torch.equal(sample_tokens(logits, generator=_seed(3)), first)
    assert not torch.equal(sample_tokens(logits, generator=_seed(4)), first)
    assert first.shape == (64,) and first.dtype == torch.long


def test_top_k_and_top_p_restrict_the_candidates():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log().expand(4000, 4)
    assert set(sample_tokens(logits, top_k=2, generator=_seed(0)).tolist()) == {1, 3}
    # The nucleus of 0.7: 0.5 + 0.3 reach it, the rest is cut.
    assert set(sample_tokens(logits, top_p=0.7, generator=_seed(0)).tolist()) == {1, 3}
    assert set(sample_tokens(logits, top_p=0.85, generator=_seed(0)).tolist()) == {1, 2, 3}
    assert set(sample_tokens(logits, top_k=3, top_p=0.7, generator=_seed(0)).tolist()) == {1, 3}
    counts = torch.bincount(sample_tokens(logits, generator=_seed(0)), minlength=4) / 4000
    torch.testing.assert_close(counts, probs, atol=0.03, rtol=0)
    hot = sample_tokens(logits, temperature=0.2, generator=_seed(0))  # sharper: mostly the best
    assert (hot == 1).float().mean() > 0.9


@pytest.mark.parametrize("arguments, message", [
    ({"temperature": -0.5}, "temperature=-0.5"), ({"top_k": -1}, "top_k=-1"),
    ({"top_p": 0.0}, "top_p=0.0"), ({"top_p": 1.5}, "top_p=1.5")])
def test_sampling_arguments_out_of_range_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        sample_tokens(torch.zeros(2, 5), **arguments)
    with pytest.raises(ValueError, match=message):
        generate(_lm(), None, None, 4, **arguments)


@pytest.mark.parametrize("pattern", [{"type": "delay"}, {"type": "parallel"},
                                     {"type": "unroll"}, {"type": "coarse_first"}])
def test_cached_greedy_generation_equals_greedy_without_cache(pattern):
    lm = _lm(pattern=pattern)
    out = generate(lm, None, None, 5, temperature=0)
    assert out.shape == (1, 3, 5) and out.min() >= 0 and out.max() < 11
    assert torch.equal(out, _plain_greedy(lm, 5))


@pytest.mark.parametrize("fuser", [{"cross": ["text"]}, {"prepend": ["text"]},
                                   {"sum": ["text"]}])
def test_conditional_generation_equals_the_plain_loop(fuser):
    lm = _lm(fuser)
    conditions = _conditions()
    out = generate(lm, None, None, 6, conditions, temperature=0)
    assert torch.equal(out, _plain_greedy(lm, 6, conditions))
    assert not torch.equal(out, generate(lm, None, None, 6, _conditions(seed=5), temperature=0))


def test_top_k_1_generation_equals_greedy_and_seeds_reproduce():
    lm = _lm({"cross": ["text"]})
    conditions = _conditions()
    greedy = generate(lm, None, None, 6, conditions, temperature=0)
    assert torch.equal(generate(lm, None, None, 6, conditions, top_k=1, generator=_seed(5)),
                       greedy)
    sampled = generate(lm, None, None, 8, conditions, generator=_seed(7))
    assert torch.equal(generate(lm, None, None, 8, conditions, generator=_seed(7)), sampled)
    assert not torch.equal(generate(lm, None, None, 8, conditions, generator=_seed(8)), sampled)


def test_cfg_scale_1_is_the_conditional_model():
    lm = _lm({"cross": ["text"]})
    conditions = _conditions()
    plain = generate(lm, None, None, 6, conditions, generator=_seed(2))
    assert torch.equal(generate(lm, None, None, 6, conditions, cfg_scale=1.0,
                                unconditional=null_conditions(conditions),
                                generator=_seed(2)), plain)


def test_the_doubled_batch_gives_both_branches_of_guidance():
    lm = _lm({"cross": ["text"]})
    conditions = _conditions()
    null = null_conditions(conditions)
    sequence = torch.randint(0, 12, (2, 3, 7), generator=_seed(1))
    both = lm(torch.cat([sequence, sequence]), doubled(conditions, null))
    conditional, unconditional = lm(sequence, conditions), lm(sequence, null)
    torch.testing.assert_close(guide(both, 1.0), conditional, atol=1e-5, rtol=0)
    torch.testing.assert_close(guide(both, 3.0),
                               unconditional + 3 * (conditional - unconditional),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("fuser", [{"cross": ["text"]}, {"prepend": ["text"]}])
def test_guided_generation_equals_two_separate_forwards(fuser):
    lm = _lm(fuser)
    conditions = _conditions()
    negative = _conditions(seed=9)  # a negative prompt instead of the null condition
    for unconditional in (None, negative):
        out = generate(lm, None, None, 6, conditions, unconditional=unconditional,
                       cfg_scale=3.0, temperature=0)
        expected = _plain_greedy(lm, 6, conditions, cfg_scale=3.0,
                                 unconditional=unconditional or null_conditions(conditions))
        assert torch.equal(out, expected)
    assert not torch.equal(out, generate(lm, None, None, 6, conditions, temperature=0))


@pytest.mark.parametrize("pattern", [{"type": "delay"}, {"type": "unroll"},
                                     {"type": "coarse_first"}])
def test_a_prompt_is_kept_and_continued(pattern):
    lm = _lm({"cross": ["text"]}, pattern)
    conditions = _conditions()
    prompt = torch.randint(0, 11, (2, 3, 3), generator=_seed(4))
    out = generate(lm, None, prompt, 7, conditions, temperature=0)
    assert torch.equal(out[..., :3], prompt)
    assert torch.equal(out, _plain_greedy(lm, 7, conditions, prompt=prompt))
    assert torch.equal(generate(lm, None, out, 7, conditions), out)  # nothing left to do


def test_progress_callback_counts_the_sampled_steps():
    lm = _lm()
    calls = []
    generate(lm, lm.pattern, None, 5, callback=lambda step, total: calls.append((step, total)))
    total = lm.pattern.steps(5) - 1  # every step after the leading special one
    assert calls == [(step, total) for step in range(1, total + 1)]
    calls.clear()
    generate(lm, None, torch.zeros(1, 3, 2, dtype=torch.long), 5,
             callback=lambda step, total: calls.append((step, total)))
    assert calls[-1] == (total - 2, total - 2)  # the delay pattern resumes at step 1 + 2


def test_generation_arguments_are_checked_by_name():
    lm = _lm({"cross": ["text"]})
    conditions = _conditions()
    prompt = torch.zeros(2, 3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="prompt has 4 frames, more than num_frames=3"):
        generate(lm, None, prompt, 3, conditions)
    with pytest.raises(ValueError, match="codes must lie in \\[0, 11\\)"):
        generate(lm, None, prompt + 11, 6, conditions)
    with pytest.raises(ValueError, match="codes must lie in \\[0, 11\\)"):
        generate(lm, None, prompt - 1, 6, conditions)
    with pytest.raises(ValueError, match="prompt of shape"):
        generate(lm, None, prompt[:, :2], 6, conditions)
    with pytest.raises(ValueError, match="batch sizes disagree"):
        generate(lm, None, prompt[:1], 6, conditions)
    with pytest.raises(ValueError, match="cfg_scale=3.0"):
        generate(_lm(), None, None, 6, cfg_scale=3.0)
    with pytest.raises(ValueError, match="num_frames=0"):
        generate(lm, None, None, 0, conditions)


def test_generation_runs_in_eval_mode_and_restores_the_mode():
    lm = _lm()
    lm.train()
    lm.transformer.layers[0].dropout.p = 0.9  # would change every token in training mode
    greedy = generate(lm, None, None, 5, temperature=0)
    assert lm.training
    lm.transformer.layers[0].dropout.p = 0.0
    assert torch.equal(greedy, generate(lm, None, None, 5, temperature=0))
