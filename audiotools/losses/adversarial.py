"""GAN losses over a multi-discriminator: every function takes one entry per sub-discriminator
(logits tensors, or lists of feature maps), averages within each entry, then averages the
entries, so each sub-discriminator counts the same whatever its output size (as EnCodec,
AudioCraft and stable-audio-tools do). Computed in float32, also under autocast.

Kinds: `hinge` (EnCodec, stable-audio-tools' default), `least_squares` (LSGAN, HiFi-GAN/DAC)
and `relativistic` (RpGAN, stable-audio-tools' `rpgan`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError

Logits = Sequence[torch.Tensor]
FeatureMaps = Sequence[Sequence[torch.Tensor]]


def _average(terms: list[torch.Tensor]) -> torch.Tensor:
    if not terms:
        raise ValueError("GAN losses need at least one sub-discriminator output.")
    return torch.stack(terms).mean()


def _pairs(real: Logits, fake: Logits) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real but {len(fake)} fake sub-discriminator outputs.")
    return [(r.float(), f.float()) for r, f in zip(real, fake, strict=True)]


def hinge_discriminator_loss(logits_real: Logits, logits_fake: Logits) -> torch.Tensor:
    """mean relu(1 - D(x)) + mean relu(1 + D(G(z))), averaged over sub-discriminators."""
    return _average([F.relu(1 - r).mean() + F.relu(1 + f).mean()
                     for r, f in _pairs(logits_real, logits_fake)])


def hinge_generator_loss(logits_fake: Logits) -> torch.Tensor:
    """-mean D(G(z)), averaged over sub-discriminators."""
    return _average([-f.float().mean() for f in logits_fake])


def least_squares_discriminator_loss(logits_real: Logits, logits_fake: Logits) -> torch.Tensor:
    """mean (1 - D(x))^2 + mean D(G(z))^2, averaged over sub-discriminators."""
    return _average([((1 - r) ** 2).mean() + (f ** 2).mean()
                     for r, f in _pairs(logits_real, logits_fake)])


def least_squares_generator_loss(logits_fake: Logits) -> torch.Tensor:
    """mean (1 - D(G(z)))^2, averaged over sub-discriminators."""
    return _average([((1 - f.float()) ** 2).mean() for f in logits_fake])


def relativistic_discriminator_loss(logits_real: Logits, logits_fake: Logits) -> torch.Tensor:
    """mean softplus(D(G(z)) - D(x)) (RpGAN), averaged over sub-discriminators."""
    return _average([F.softplus(f - r).mean() for r, f in _pairs(logits_real, logits_fake)])


def relativistic_generator_loss(logits_real: Logits, logits_fake: Logits) -> torch.Tensor:
    """mean softplus(D(x) - D(G(z))) (RpGAN), averaged over sub-discriminators."""
    return _average([F.softplus(r - f).mean() for r, f in _pairs(logits_real, logits_fake)])


def feature_matching_loss(features_real: FeatureMaps, features_fake: FeatureMaps,
                          relative: bool = True, eps: float = 1e-3) -> torch.Tensor:
    """L1 distance of the discriminator's feature maps on real and generated audio, averaged
    over the layers of each sub-discriminator, then over sub-discriminators.

    `relative` divides each layer's L1 by the mean |real feature| (+ eps), EnCodec's
    normalisation (stable-audio-tools' `normalize_losses`); without it, plain L1 (its default).
    """
    if len(features_real) != len(features_fake):
        raise ValueError(f"{len(features_real)} real but {len(features_fake)} fake "
                         "sub-discriminator feature lists.")
    per_discriminator = []
    for layers_real, layers_fake in zip(features_real, features_fake, strict=True):
        if len(layers_real) != len(layers_fake) or not layers_real:
            raise ValueError("Each sub-discriminator needs the same, non-zero number of real "
                             f"and fake feature maps (got {len(layers_real)} and "
                             f"{len(layers_fake)}).")
        distances = []
        for real, fake in zip(layers_real, layers_fake, strict=True):
            real, fake = real.float(), fake.float()
            distance = (fake - real).abs().mean()
            if relative:
                distance = distance / (real.abs().mean() + eps)
            distances.append(distance)
        per_discriminator.append(torch.stack(distances).mean())
    return _average(per_discriminator)


_DISCRIMINATOR_LOSSES: dict[str, Callable[[Logits, Logits], torch.Tensor]] = {
    "hinge": hinge_discriminator_loss,
    "least_squares": least_squares_discriminator_loss,
    "relativistic": relativistic_discriminator_loss,
}
_GENERATOR_LOSSES: dict[str, Callable[[Logits, Logits], torch.Tensor]] = {
    "hinge": lambda real, fake: hinge_generator_loss(fake),
    "least_squares": lambda real, fake: least_squares_generator_loss(fake),
    "relativistic": relativistic_generator_loss,
}
GAN_KINDS = tuple(_DISCRIMINATOR_LOSSES)


class GANLoss:
    """The discriminator and generator losses of one kind, both called with (real, fake)
    logits, so a solver switches kind from its config alone."""

    def __init__(self, kind: str = "hinge"):
        if kind not in GAN_KINDS:
            raise ConfigError(f"GAN loss kind {kind!r} is unknown; use one of {list(GAN_KINDS)}.")
        self.kind = kind

    def discriminator(self, logits_real: Logits, logits_fake: Logits) -> torch.Tensor:
        return _DISCRIMINATOR_LOSSES[self.kind](logits_real, logits_fake)

    def generator(self, logits_real: Logits, logits_fake: Logits) -> torch.Tensor:
        """Hinge and least squares read only the fake logits; RpGAN needs both."""
        return _GENERATOR_LOSSES[self.kind](logits_real, logits_fake)
