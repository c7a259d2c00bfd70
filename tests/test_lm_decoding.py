"""Decoding fast paths of the token LM (benchmarks/lm_decoding.py measures them): the weight
layout `generate` decodes in, the cache attended up to the positions written, and `predict`
running each head on its own codebook's steps. Each gives what the plain path gives."""
from __future__ import annotations

import pytest
import torch

from audiotools.conditioning import Conditioning
from audiotools.models.lm import build_lm
from audiotools.sampling.tokens import generate


def _lm(**overrides):
    torch.manual_seed(0)
    section = {"num_codebooks": 3, "cardinality": 11, "dim": 32, "num_heads": 4,
               "num_layers": 2, "ffn_dim": 64, **overrides}
    return build_lm(section).eval()


def _sequence(steps: int = 10) -> torch.Tensor:
    return torch.randint(0, 12, (2, 3, steps), generator=torch.Generator().manual_seed(2))


def _condition():
    mask = torch.arange(4) < torch.tensor([[3], [1]])
    embeddings = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(1))
    return Conditioning(embeddings * mask.unsqueeze(-1), mask)


@pytest.mark.parametrize("bias", [False, True])
def test_the_decoding_layout_keeps_values_and_gives_the_same_logits(bias):
    lm = _lm(bias_proj=bias, bias_attn=bias, fuser={"cross": ["text"]})
    before = {key: value.clone() for key, value in lm.state_dict().items()}
    conditions = {"text": _condition()}
    sequence = _sequence()
    plain = lm(sequence, conditions)
    with torch.no_grad(), lm.decoding_layout():
        layer = lm.transformer.layers[0]
        for weight in (layer.self_attn.in_proj_weight, layer.linear1.weight,
                       layer.cross_attention.out_proj.weight):
            assert weight.stride(0) == 1  # stored transposed: column-major
        assert layer.linear2.weight.is_contiguous()  # more inputs than outputs: as stored
        heads, _ = lm._fused_heads
        assert all(linear.weight.untyped_storage().data_ptr()
                   == heads.untyped_storage().data_ptr() for linear in lm.linears)
        laid_out = lm(sequence, conditions)
    torch.testing.assert_close(laid_out, plain, atol=1e-5, rtol=0)
    after = lm.state_dict()
    assert all(torch.equal(after[key], value) for key, value in before.items())
    assert all(p.is_contiguous() for p in lm.parameters()) and lm._fused_heads is None


@pytest.mark.parametrize("chunks", [[1] * 10, [3, 2, 1, 4], [10]])
@pytest.mark.parametrize("fuser", [{}, {"prepend": ["text"]}])
def test_decoding_in_chunks_of_any_size_gives_the_full_forward(chunks, fuser):
    """Later chunks of several steps attend the cache through a causal mask, single steps
    every key written, a padded prefix through its mask."""
    lm = _lm(fuser=fuser, positional_embedding="sin_rope")
    conditions = {"text": _condition()} if fuser else None
    sequence = _sequence()
    full = lm(sequence, conditions)
    state = lm.start_decoding(2, 10, conditions)
    logits, start = [], 0
    for size in chunks:
        logits.append(lm.decode(sequence[..., start:start + size], state))
        start += size
    torch.testing.assert_close(torch.cat(logits, dim=2), full, atol=1e-5, rtol=0)


def test_generation_restores_the_layout_when_it_fails():
    lm = _lm()

    def stop(step: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(lm, None, None, 4, temperature=0.0, callback=stop)
    assert all(p.is_contiguous() for p in lm.parameters()) and lm._fused_heads is None


def test_predict_gives_the_realigned_forward_logits_and_their_gradients():
    lm = _lm(bias_proj=True).train()
    codes = torch.randint(0, 11, (2, 3, 6), generator=torch.Generator().manual_seed(3))
    sequence, _ = lm.pattern.build(codes, lm.special_token)
    reference = lm.pattern.revert_logits(lm(sequence[..., :-1]), codes.shape[-1])
    grads = torch.autograd.grad(reference.square().sum(), list(lm.parameters()))
    logits = lm.predict(codes)
    torch.testing.assert_close(logits, reference)
    for got, expected in zip(torch.autograd.grad(logits.square().sum(), list(lm.parameters())),
                             grads, strict=True):
        torch.testing.assert_close(got, expected)
