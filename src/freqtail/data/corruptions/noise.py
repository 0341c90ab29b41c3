"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper), speckle.

Severity parameters are the CIFAR-10-C ones (hendrycks/robustness, make_cifar_c.py). Each
function maps uint8 (N, H, W, 3) plus one generator per image to uint8 (N, H, W, 3), computing
in float64 and truncating, as the original does.
"""

from __future__ import annotations

import numpy as np
from skimage.util import random_noise

from freqtail.data.corruptions._common import to_unit64, truncate_to_uint8

# Standard deviation of additive noise, in units of the [0, 1] intensity range.
GAUSSIAN_NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
# Photon count at full intensity: x' = Poisson(x * c) / c (fewer photons, more noise).
SHOT_NOISE_PHOTONS = (500, 250, 100, 75, 50)
# Fraction of values (pixels x channels) replaced by 0 or 1 with equal odds.
IMPULSE_NOISE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)
# Standard deviation of multiplicative noise: x' = x + x * N(0, c^2).
SPECKLE_NOISE_STD = (0.06, 0.10, 0.12, 0.16, 0.20)


def _standard_normal(rngs: list[np.random.Generator], shape: tuple[int, ...]) -> np.ndarray:
    return np.stack([rng.standard_normal(shape) for rng in rngs])


def gaussian_noise(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """x' = clip(x + N(0, c^2)) per pixel and channel, x in [0, 1]."""
    std = GAUSSIAN_NOISE_STD[severity - 1]
    x = to_unit64(images)
    return truncate_to_uint8(x + std * _standard_normal(rngs, images.shape[1:]))


def shot_noise(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """x' = Poisson(x * c) / c, x in [0, 1] (photon noise)."""
    photons = SHOT_NOISE_PHOTONS[severity - 1]
    x = to_unit64(images)
    counts = np.stack([rng.poisson(xi * photons) for rng, xi in zip(rngs, x, strict=True)])
    return truncate_to_uint8(counts / photons)


def impulse_noise(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Salt and pepper noise with scikit-image's ``random_noise(mode="s&p", amount=c)``."""
    amount = IMPULSE_NOISE_AMOUNT[severity - 1]
    x = to_unit64(images)
    noisy = np.stack(
        [random_noise(xi, mode="s&p", amount=amount, rng=rng) for rng, xi in zip(rngs, x, strict=True)]
    )
    return truncate_to_uint8(noisy)


def speckle_noise(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """x' = clip(x + x * N(0, c^2)), x in [0, 1] (noise proportional to intensity)."""
    std = SPECKLE_NOISE_STD[severity - 1]
    x = to_unit64(images)
    return truncate_to_uint8(x + x * (std * _standard_normal(rngs, images.shape[1:])))
