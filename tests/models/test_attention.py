"""The shared attention: the spelt-out bf16 route on CPU agrees with torch's SDPA, masks and
causality included, and everything else goes through SDPA untouched."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiotools.models import attention
from audiotools.models.attention import scaled_dot_product_attention, spelt_out


def _qkv(length: int = 9, source: int = 9, dtype: torch.dtype = torch.bfloat16,
         ) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    shapes = ((2, 3, length, 16), (2, 3, source, 16), (2, 3, source, 16))
    return tuple(torch.randn(shape, generator=generator).to(dtype) for shape in shapes)


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double() - reference.double()).norm() / reference.double().norm())


def test_route_is_cpu_bf16_with_small_scores(monkeypatch):
    q, k, _ = _qkv()
    assert spelt_out(q, k)
    assert not spelt_out(q.float(), k.float())
    monkeypatch.setattr(attention, "SPELT_OUT_MAX_SCORES", 2 * 3 * 9 * 9 - 1)
    assert not spelt_out(q, k)


@pytest.mark.parametrize("case", ["plain", "key mask", "causal", "causal cross", "mask+causal"])
def test_spelt_out_matches_sdpa_of_the_same_inputs(case):
    length, source = (5, 9) if case == "causal cross" else (9, 9)
    q, k, v = _qkv(length, source)
    mask = None
    if case in ("key mask", "mask+causal"):
        mask = torch.ones(2, 1, 1, source, dtype=torch.bool)
        mask[0, ..., 6:] = False
    causal = "causal" in case
    reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                               attn_mask=mask, is_causal=causal and mask is None)
    if case == "mask+causal":  # SDPA takes one or the other: the same constraint as one mask
        both = mask & torch.ones(length, source, dtype=torch.bool).tril()
        reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                                   attn_mask=both)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, length, 16)
    assert _relative_error(out, reference) < 1e-2
    if causal:  # the first query sees only the first key
        assert torch.allclose(out[:, :, 0].double(), v[:, :, 0].double(), atol=1e-2)


def test_a_query_that_may_attend_nothing_gets_zeros_as_from_sdpa():
    q, k, v = _qkv()
    mask = torch.ones(2, 1, 9, 9, dtype=torch.bool)
    mask[0, :, 4] = False
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    assert torch.equal(out[0, :, 4], torch.zeros_like(out[0, :, 4]))
    assert torch.equal(reference[0, :, 4], torch.zeros_like(reference[0, :, 4]))
    assert _relative_error(out, reference) < 1e-2
    leaves = tuple(part.requires_grad_() for part in (q, k, v))
    scaled_dot_product_attention(*leaves, attn_mask=mask).sum().backward()
    assert all(bool(part.grad.isfinite().all()) for part in leaves)


def test_spelt_out_gradients_match_sdpa():
    q, k, v = (part.requires_grad_() for part in _qkv())
    grad = torch.randn(2, 3, 9, 16, generator=torch.Generator().manual_seed(1))
    scaled_dot_product_attention(q, k, v).backward(grad.bfloat16())
    exact = tuple(part.detach().double().requires_grad_() for part in (q, k, v))
    F.scaled_dot_product_attention(*exact).backward(grad.double())
    for ours, theirs in zip((q, k, v), exact, strict=True):
        assert _relative_error(ours.grad, theirs.grad) < 2e-2


def test_dropout_applies_to_the_weights():
    q, k, v = _qkv()
    assert torch.equal(scaled_dot_product_attention(q, k, v, dropout_p=1.0),
                       torch.zeros_like(q))
    torch.manual_seed(0)
    dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert not torch.equal(dropped, scaled_dot_product_attention(q, k, v))


def test_other_inputs_go_through_sdpa_unchanged():
    q, k, v = _qkv(dtype=torch.float32)
    mask = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(2)) > 0.3
    mask[..., 0] = True
    assert torch.equal(scaled_dot_product_attention(q, k, v, attn_mask=mask),
                       F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
