"""The token LM's building blocks: interleaving patterns, the causal transformer with its KV
cache, conditions fused by cross-attention, prepending or sum, and the MusicGen-small preset
against AudioCraft's own parameter count."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from audiotools.conditioning import ConditionerSet
from audiotools.conditioning.base import Conditioning
from audiotools.errors import ConfigError
from audiotools.models.lm import (
    PATTERNS,
    CoarseFirstPattern,
    DelayPattern,
    ParallelPattern,
    UnrollPattern,
    build_lm,
    musicgen_small,
    musicgen_small_conditioners,
)

S = 99  # the special token of the hand-written layouts

# AudioCraft 1.3.0's own LMModel for MusicGen small (its config/model/lm/default.yaml,
# model_scale/small.yaml, musicgen_lm.yaml and conditioner/text2music.yaml, built by its
# builders.get_lm_model), T5 itself excluded (AudioCraft keeps it out of the parameters) but
# its 768 -> 1024 output projection counted: 420371456 =
#   emb 4 x 2049 x 1024 (8392704) + 24 layers x 16783360 (self- and cross-attention 4 x 1024^2
#   each, FFN 2 x 1024 x 4096, three LayerNorms 3 x 2048) + out_norm 2048
#   + linears 4 x 1024 x 2048 (8388608) + output_proj 768 x 1024 + 1024 (787456).
# Measured with `reference/audiocraft/bin/python scripts/audiocraft_lm_param_count.py` (the
# script's docstring says how to install AudioCraft beside the project).
AUDIOCRAFT_MUSICGEN_SMALL_PARAMETERS = 420_371_456

ALL_PATTERNS = [DelayPattern(3), DelayPattern(3, [0, 2, 5]), ParallelPattern(3),
                UnrollPattern(3), CoarseFirstPattern(3), CoarseFirstPattern(3, [0, 2]),
                DelayPattern(1), UnrollPattern(1), CoarseFirstPattern(1)]


def _codes(codebooks: int, frames: int) -> torch.Tensor:
    """Code (q, t) = 10 q + t + 1, two items (the second shifted by 50)."""
    one = (10 * torch.arange(codebooks).unsqueeze(1) + torch.arange(frames) + 1)
    return torch.stack([one, one + 50])


@pytest.mark.parametrize("pattern", ALL_PATTERNS, ids=lambda p: f"{p.name}{p.num_codebooks}")
@pytest.mark.parametrize("frames", [0, 1, 5])
def test_every_pattern_round_trips_and_masks_one_position_per_code(pattern, frames):
    codes = _codes(pattern.num_codebooks, frames)
    sequence, mask = pattern.build(codes, S)
    steps = pattern.steps(frames)
    assert sequence.shape == (2, pattern.num_codebooks, steps) and mask.shape == sequence.shape[1:]
    assert pattern.frames(steps) == frames
    assert torch.equal(pattern.revert(sequence), codes)
    assert mask.sum(dim=1).tolist() == [frames] * pattern.num_codebooks
    assert (sequence[:, ~mask] == S).all() and not (sequence[:, mask] == S).any()
    assert not mask[:, 0].any()  # the leading step holds no code: it predicts the first ones
    assert torch.equal(pattern.mask(frames), mask)


def test_delay_layout_written_out():
    codes = torch.tensor([[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]])
    sequence, mask = DelayPattern(3, [0, 1, 2]).build(codes, S)
    assert sequence[0].tolist() == [[S, 1, 2, 3, 4, S, S],
                                    [S, S, 5, 6, 7, 8, S],
                                    [S, S, S, 9, 10, 11, 12]]
    assert mask.int().tolist() == [[0, 1, 1, 1, 1, 0, 0],
                                   [0, 0, 1, 1, 1, 1, 0],
                                   [0, 0, 0, 1, 1, 1, 1]]
    assert DelayPattern(3).delays == [0, 1, 2]  # MusicGen's default: one step per codebook


def test_other_layouts_written_out():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]]])
    assert ParallelPattern(2).build(codes, S)[0][0].tolist() == [[S, 1, 2, 3], [S, 4, 5, 6]]
    assert UnrollPattern(2).build(codes, S)[0][0].tolist() == [[S, 1, S, 2, S, 3, S],
                                                              [S, S, 4, S, 5, S, 6]]
    assert CoarseFirstPattern(2).build(codes, S)[0][0].tolist() == [
        [S, 1, 2, 3, S, S, S], [S, S, S, S, 4, 5, 6]]
    assert CoarseFirstPattern(3, [0, 1]).build(torch.tensor([[[1, 2], [3, 4], [5, 6]]]),
                                              S)[0][0].tolist() == [
        [S, 1, 2, S, S, S], [S, S, S, 3, 4, S], [S, S, S, S, 5, 6]]


@pytest.mark.parametrize("pattern", ALL_PATTERNS, ids=lambda p: f"{p.name}{p.num_codebooks}")
def test_logits_are_realigned_with_the_codes_they_predict(pattern):
    """The output at step s predicts step s + 1: one-hot 'logits' of the next step's tokens,
    reverted, give back the codes."""
    codes = _codes(pattern.num_codebooks, 4)
    sequence, _ = pattern.build(codes, S)
    logits = nn.functional.one_hot(sequence[..., 1:], S + 1).float()
    assert torch.equal(pattern.revert_logits(logits, 4).argmax(-1), codes)
    with pytest.raises(ValueError, match="logits cover"):
        pattern.revert_logits(logits[:, :, :-1], 4)


def test_generation_starts_at_the_first_step_holding_an_unknown_frame():
    assert DelayPattern(4).first_step(0, 10) == 1
    assert DelayPattern(4).first_step(3, 10) == 4
    assert DelayPattern(2, [1, 3]).first_step(3, 10) == 5
    assert UnrollPattern(3).first_step(2, 5) == 7
    assert CoarseFirstPattern(2).first_step(2, 5) == 3
    assert set(PATTERNS) == {"delay", "parallel", "unroll", "coarse_first"}


def test_pattern_arguments_are_checked():
    with pytest.raises(ValueError, match="delays"):
        DelayPattern(3, [0, 1])
    with pytest.raises(ValueError, match="delays"):
        DelayPattern(2, [0, -1])
    with pytest.raises(ValueError, match="codes of shape"):
        DelayPattern(3).build(torch.zeros(1, 2, 4, dtype=torch.long), S)
    with pytest.raises(ValueError, match="unroll"):
        UnrollPattern(3).frames(5)


def _lm(fuser=None, **overrides):
    torch.manual_seed(0)
    section = {"num_codebooks": 3, "cardinality": 11, "dim": 32, "num_heads": 4,
               "num_layers": 2, "ffn_dim": 64, "fuser": fuser or {}, **overrides}
    return build_lm(section).eval()


def _condition(batch=2, tokens=4, dim=32, lengths=(3, 1), seed=1) -> Conditioning:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.arange(tokens) < torch.tensor(lengths).unsqueeze(1)
    embeddings = torch.randn(batch, tokens, dim, generator=generator)
    return Conditioning(embeddings * mask.unsqueeze(-1), mask)


def _sequence(batch=2, steps=9, seed=2) -> torch.Tensor:
    return torch.randint(0, 12, (batch, 3, steps), generator=torch.Generator().manual_seed(seed))


FUSERS = [None, {"cross": ["text"]}, {"prepend": ["text"]}, {"sum": ["text"]},
          {"cross": ["text"], "prepend": ["other"]}]


def _conditions(fuser) -> dict[str, Conditioning] | None:
    if not fuser:
        return None
    names = [name for names in fuser.values() if isinstance(names, list) for name in names]
    return {name: _condition(seed=index + 1) for index, name in enumerate(names)}


def test_shapes_and_names_follow_audiocraft():
    lm = _lm({"cross": ["text"]})
    logits = lm(_sequence(), _conditions({"cross": ["text"]}))
    assert logits.shape == (2, 3, 9, 11)
    assert lm.special_token == 11 and lm.emb[0].num_embeddings == 12
    layer = lm.transformer.layers[0]
    assert layer.self_attn.in_proj_weight.shape == (96, 32)
    assert {name for name, _ in layer.named_children()} == {
        "self_attn", "cross_attention", "norm_cross", "linear1", "linear2", "norm1", "norm2",
        "dropout"}
    assert _lm().transformer.layers[0].cross_attention is None


@pytest.mark.parametrize("fuser", FUSERS)
@pytest.mark.parametrize("positions", ["sin", "rope", "sin_rope"])
def test_kv_cache_decoding_gives_the_full_forward_logits(fuser, positions):
    lm = _lm(fuser, positional_embedding=positions)
    conditions, sequence = _conditions(fuser), _sequence()
    full = lm(sequence, conditions)
    state = lm.start_decoding(2, 9, conditions)
    chunks = [lm.decode(sequence[..., :4], state)]
    chunks += [lm.decode(sequence[..., step:step + 1], state) for step in range(4, 9)]
    torch.testing.assert_close(torch.cat(chunks, dim=2), full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="overflows the cache"):
        lm.decode(sequence[..., :1], state)


@pytest.mark.parametrize("fuser", FUSERS)
def test_a_future_token_does_not_change_past_logits(fuser):
    lm = _lm(fuser, positional_embedding="sin_rope")
    conditions, sequence = _conditions(fuser), _sequence()
    changed = sequence.clone()
    changed[:, :, 6] = (changed[:, :, 6] + 1) % 12
    before, after = lm(sequence, conditions), lm(changed, conditions)
    torch.testing.assert_close(before[:, :, :6], after[:, :, :6], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, :, 6:], after[:, :, 6:])


@pytest.mark.parametrize("method", ["cross", "prepend", "sum"])
def test_each_fuse_method_conditions_the_output_and_ignores_masked_tokens(method):
    lm = _lm({method: ["text"]})
    sequence, condition = _sequence(), _condition()
    logits = lm(sequence, {"text": condition})
    other = _condition(seed=7)
    assert not torch.allclose(lm(sequence, {"text": other}), logits)
    # Whatever the masked positions hold, they are not attended (nor averaged).
    noisy = Conditioning(condition.embeddings + 5.0 * (~condition.mask).unsqueeze(-1),
                         condition.mask)
    torch.testing.assert_close(lm(sequence, {"text": noisy}), logits, atol=1e-5, rtol=0)
    null = Conditioning(torch.zeros_like(condition.embeddings), torch.zeros_like(condition.mask))
    assert torch.isfinite(lm(sequence, {"text": null})).all()


def test_cross_mask_off_attends_padded_tokens_as_audiocraft_does():
    lm = _lm({"cross": ["text"], "cross_mask": False})
    sequence, condition = _sequence(), _condition()
    noisy = Conditioning(condition.embeddings + 5.0 * (~condition.mask).unsqueeze(-1),
                         condition.mask)
    assert not torch.allclose(lm(sequence, {"text": noisy}), lm(sequence, {"text": condition}))


def test_a_null_cross_condition_adds_nothing_without_biases():
    """A null condition's tokens are zeros: its keys and values are zero, so the
    cross-attention output is zero as in AudioCraft, and the logits equal those of a
    model whose cross-attention is switched off."""
    lm = _lm({"cross": ["text"]})
    sequence, condition = _sequence(), _condition()
    null = Conditioning(torch.zeros_like(condition.embeddings), torch.zeros_like(condition.mask))
    with torch.no_grad():
        for layer in lm.transformer.layers:
            layer.cross_attention.in_proj_weight[:32].normal_()  # queries do not matter
    plain = _lm()
    state = {key: value for key, value in lm.state_dict().items()
             if "cross_attention" not in key and "norm_cross" not in key}
    plain.load_state_dict(state)
    torch.testing.assert_close(lm(sequence, {"text": null}), plain(sequence), atol=1e-5,
                               rtol=0)


def test_conditions_must_match_the_fuser():
    lm = _lm({"cross": ["text"]})
    with pytest.raises(ValueError, match="missing"):
        lm(_sequence())
    with pytest.raises(ValueError, match="unknown: \\['extra'\\]"):
        lm(_sequence(), {"text": _condition(), "extra": _condition()})
    with pytest.raises(ValueError, match="expected \\(2, tokens, 32\\)"):
        lm(_sequence(), {"text": _condition(dim=16)})


def test_predict_aligns_logits_with_every_code():
    lm = _lm()
    codes = torch.randint(0, 11, (2, 3, 5), generator=torch.Generator().manual_seed(3))
    logits = lm.predict(codes)
    assert logits.shape == (2, 3, 5, 11)
    sequence, _ = lm.pattern.build(codes, lm.special_token)
    full = lm(sequence)
    # Code (q, t) of the delay pattern sits at step 1 + t + q, predicted by step t + q.
    for q in range(3):
        torch.testing.assert_close(logits[:, q], full[:, q, q:q + 5])
    loss = nn.functional.cross_entropy(logits.flatten(0, 2), codes.flatten())
    loss.backward()  # training: every parameter gets a gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lm.parameters())


def test_heads_init_embeddings_starts_each_head_as_its_codebooks_embedding_untied():
    """`heads_init: embeddings` copies each codebook's embedding (less the special token's
    row) into its head: at the start the model gives each codebook's previous code more
    probability than random heads do; the copies are parameters of their own."""
    codes = torch.randint(0, 11, (4, 3, 20), generator=torch.Generator().manual_seed(0))
    held = codes.repeat_interleave(2, dim=-1)  # every code held for two frames
    previous = {}
    for init in ("random", "embeddings"):
        lm = _lm(heads_init=init)
        with torch.no_grad():
            probabilities = lm.predict(held).softmax(-1)[..., 1:, :]
        previous[init] = probabilities.gather(-1, held[..., :-1, None]).mean().item()
    for embedding, linear in zip(lm.emb, lm.linears, strict=True):
        torch.testing.assert_close(linear.weight, embedding.weight[:11], rtol=0, atol=0)
        assert linear.weight.data_ptr() != embedding.weight.data_ptr()
    assert previous["embeddings"] > 1.5 * previous["random"]
    with pytest.raises(ConfigError, match="heads_init"):
        build_lm({"heads_init": "zeros"})


def test_config_is_checked_with_named_keys():
    with pytest.raises(ConfigError, match="pattern.delays"):
        build_lm({"num_codebooks": 4, "pattern": {"type": "delay", "delays": [0, 1]}})
    with pytest.raises(ConfigError, match="model.fuser"):
        build_lm({"fuser": {"cross": ["text"], "sum": ["text"]}})
    with pytest.raises(ConfigError, match="num_heads"):
        build_lm({"dim": 30, "num_heads": 4})
    with pytest.raises(ConfigError, match="valid types"):
        build_lm({"pattern": {"type": "zigzag"}})
    lm = _lm(pattern={"type": "coarse_first", "delays": [0, 1]})
    assert isinstance(lm.pattern, CoarseFirstPattern) and lm.pattern.delays == [0, 1]


def test_musicgen_small_has_audiocraft_parameter_count(monkeypatch):
    config = musicgen_small()
    assert (config.dim, config.num_layers, config.num_heads, config.ffn_dim) == (
        1024, 24, 16, 4096)
    assert (config.num_codebooks, config.cardinality, config.pattern.delays) == (
        4, 2048, [0, 1, 2, 3])
    assert config.fuser.cross == ["description"]
    assert not (config.bias_attn or config.bias_ff or config.bias_proj)
    # The T5-base encoder is frozen and not a parameter; stand in for it with its width.
    encoder = nn.Module()
    encoder.config = SimpleNamespace(d_model=768)
    monkeypatch.setattr("audiotools.conditioning.text.load_t5", lambda model: (None, encoder))
    with torch.device("meta"):
        lm = build_lm(config)
        conditioners = ConditionerSet(musicgen_small_conditioners(), dim=config.dim)
    count = sum(p.numel() for p in lm.parameters())
    count += sum(p.numel() for p in conditioners.trainable_parameters())
    assert count == AUDIOCRAFT_MUSICGEN_SMALL_PARAMETERS
