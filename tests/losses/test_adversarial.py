"""GAN losses on hand-computed logits: each sub-discriminator counts the same whatever its
output size; feature matching plain and relative; float32 results; clear errors."""
from __future__ import annotations

import math

import pytest
import torch

from audiotools.errors import ConfigError
from audiotools.losses import (
    GAN_KINDS,
    GANLoss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    relativistic_discriminator_loss,
    relativistic_generator_loss,
)

# Two sub-discriminators with different output sizes (2 logits and 1 logit).
REAL = [torch.tensor([0.5, 2.0]), torch.tensor([[-1.0]])]
FAKE = [torch.tensor([-2.0, 0.0]), torch.tensor([[0.5]])]


def _softplus(value: float) -> float:
    return math.log1p(math.exp(value))


def test_hinge_losses_by_hand():
    # D1: real relu(0.5)=0.5, relu(-1)=0 -> 0.25; fake relu(-1)=0, relu(1)=1 -> 0.5.
    # D2: real relu(2)=2; fake relu(1.5)=1.5.  Mean over sub-discriminators.
    assert hinge_discriminator_loss(REAL, FAKE).item() == pytest.approx((0.75 + 3.5) / 2)
    assert hinge_generator_loss(FAKE).item() == pytest.approx((1.0 + -0.5) / 2)


def test_least_squares_losses_by_hand():
    # D1: real (0.25 + 1) / 2, fake (4 + 0) / 2; D2: real 4, fake 0.25.
    assert least_squares_discriminator_loss(REAL, FAKE).item() == pytest.approx(
        (0.625 + 2.0 + 4.0 + 0.25) / 2)
    # D1: (9 + 1) / 2; D2: 0.25.
    assert least_squares_generator_loss(FAKE).item() == pytest.approx((5.0 + 0.25) / 2)


def test_relativistic_losses_by_hand():
    d1 = (_softplus(-2.5) + _softplus(-2.0)) / 2
    assert relativistic_discriminator_loss(REAL, FAKE).item() == pytest.approx(
        (d1 + _softplus(1.5)) / 2)
    g1 = (_softplus(2.5) + _softplus(2.0)) / 2
    assert relativistic_generator_loss(REAL, FAKE).item() == pytest.approx(
        (g1 + _softplus(-1.5)) / 2)


def test_gan_loss_dispatches_by_kind():
    expected = {
        "hinge": (hinge_discriminator_loss(REAL, FAKE), hinge_generator_loss(FAKE)),
        "least_squares": (least_squares_discriminator_loss(REAL, FAKE),
                          least_squares_generator_loss(FAKE)),
        "relativistic": (relativistic_discriminator_loss(REAL, FAKE),
                         relativistic_generator_loss(REAL, FAKE)),
    }
    assert set(GAN_KINDS) == set(expected)
    for kind, (discriminator, generator) in expected.items():
        loss = GANLoss(kind)
        assert loss.discriminator(REAL, FAKE).item() == discriminator.item()
        assert loss.generator(REAL, FAKE).item() == generator.item()
    with pytest.raises(ConfigError, match="'wasserstein'.*hinge"):
        GANLoss("wasserstein")


def test_generator_gradient_is_split_evenly_between_sub_discriminators():
    fake = [logits.clone().requires_grad_() for logits in FAKE]
    hinge_generator_loss(fake).backward()
    assert torch.allclose(fake[0].grad, torch.full((2,), -0.25))  # -1 / 2 logits / 2 discs
    assert torch.allclose(fake[1].grad, torch.full((1, 1), -0.5))


def test_feature_matching_by_hand():
    real = [[torch.full((2, 3), 2.0), torch.full((4,), -1.0)], [torch.full((1, 5), 4.0)]]
    fake = [[torch.full((2, 3), 3.0), torch.full((4,), 1.0)], [torch.full((1, 5), 3.0)]]
    # Plain L1: D1 layers 1 and 2 -> mean 1.5; D2 -> 1; mean 1.25.
    assert feature_matching_loss(real, fake, relative=False).item() == pytest.approx(1.25)
    # Relative: each layer over mean |real| + eps.
    eps = 1e-3
    d1 = (1 / (2 + eps) + 2 / (1 + eps)) / 2
    assert feature_matching_loss(real, fake).item() == pytest.approx((d1 + 1 / (4 + eps)) / 2)
    assert feature_matching_loss(real, real).item() == 0.0


def test_losses_are_float32_from_bf16_logits():
    low = [logits.bfloat16() for logits in FAKE]
    real = [logits.bfloat16() for logits in REAL]
    for value in (hinge_generator_loss(low), hinge_discriminator_loss(real, low),
                  feature_matching_loss([real], [low])):
        assert value.dtype == torch.float32


def test_mismatched_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="2 real but 1 fake"):
        hinge_discriminator_loss(REAL, FAKE[:1])
    with pytest.raises(ValueError, match="same, non-zero number"):
        feature_matching_loss([[torch.ones(1)]], [[torch.ones(1), torch.ones(1)]])
    with pytest.raises(ValueError, match="at least one"):
        hinge_generator_loss([])

