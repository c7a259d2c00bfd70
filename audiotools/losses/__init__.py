"""Reusable training losses for audio models, each unit-tested."""
from .adversarial import (
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
from .complex import CompressedSpectrumLoss
from .spectral import MultiResolutionSTFTLoss, SumAndDifferenceSTFTLoss, spectral_loss
from .time import l1_waveform_loss

__all__ = [
    "GAN_KINDS", "CompressedSpectrumLoss", "GANLoss", "MultiResolutionSTFTLoss",
    "SumAndDifferenceSTFTLoss",
    "feature_matching_loss", "hinge_discriminator_loss", "hinge_generator_loss",
    "l1_waveform_loss", "least_squares_discriminator_loss", "least_squares_generator_loss",
    "relativistic_discriminator_loss", "relativistic_generator_loss", "spectral_loss",
]
