"""Balanced Spectrum Sampling (BaSS), paper §4.1, Eq. 4, exactly as the authors published it.

Per image and per channel, on the 0..255 intensity scale:

1. ``F = fftshift(fft2(x))`` and the amplitude ``A = |F + 1e-8|``.
2. Every position where ``A`` equals its maximum (DC for any non-negative image) is set to 0 in
   ``A`` for the profile and keeps factor 1.
3. Profile ``p[k]`` = mean of ``A`` over band ``k`` (band = ``floor`` of the distance to the centre
   ``(H//2, W//2)``), for ``k = 1 .. K-1``; band 0 (DC) and the outermost band ``K`` keep factor 1.
4. ``q[k] = ln p[k] / sum_j ln p[j]``, ``o[k] = p[k] / sum_j p[j]``, factor ``w[k] = q[k] / o[k]``.
   After re-weighting, band means are proportional to ``ln p[k]``: the long tail is flattened.
5. ``F *= w[band]``; ``x' = real(ifft2(ifftshift(F)))`` clipped to [0, 255]; uint8 output is
   truncated (``uint8(clip(x'))``). Float images in [0, 1] are scaled by 255 inside and back after,
   because the logarithm makes the result depend on the intensity scale.

**The base tau of Eq. 4 is not a parameter**: ``log_tau(a) = ln(a) / ln(tau)`` and the common
factor ``1 / ln(tau)`` cancels between the numerator and the denominator of ``q``, so every tau
gives the same image.

**Degenerate images** (defined behaviour where the published code breaks): an image is returned
unchanged, in all its channels, when in any channel a profiled band has a mean amplitude <= 1 on
the 0..255 scale (its log is <= 0: Eq. 4's proportions stop being positive; this covers constant,
black and near-black images), when the weights are not all finite and positive, or when the image
has no band to re-weight (K < 2: images of at most 3 x 3 pixels). Every function reports which
images were degenerate, and conversions count them. On natural images none of this triggers and
the output is the published one (float64 paths: bit-identical up to rare 1-grey-level rounding).
NaN/Inf in a float input raises :class:`freqtail.errors.InputError`.

Beyond the paper, all optional: ``strength`` in [0, 1] uses ``w ** strength`` (1 = published,
0 = identity); ``profile="power"`` builds the profile from ``|F|^2`` and multiplies the spectrum
by ``sqrt(w)``, so that band *powers* become proportional to the log of the original band powers
(Eq. 4 read literally on power); any image size (odd, non-square) is supported.

Entry points (one implementation underneath, :func:`balance_spectrum_tensor`):

* :func:`balance_spectrum` — numpy uint8, float/uint8 torch tensors, PIL images;
* :func:`convert_uint8_images` — whole uint8 datasets in bounded memory;
* :class:`BaSS` — a ``torchvision.transforms.v2`` transform with probability ``p`` (the paper's gamma);
* :class:`BaSSModule` — a differentiable ``nn.Module`` for GPU pipelines and end-to-end attacks.
"""

from __future__ import annotations

from freqtail.bass.convert import balance_spectrum, convert_uint8_images
from freqtail.bass.core import (
    PROFILES,
    SPECTRUM_EPSILON,
    BandLayout,
    balance_spectrum_tensor,
    band_layout,
    bass_weights,
)

#: Version of BaSS's output: bump it whenever any conversion's result changes, so that cached
#: BaSS datasets (keyed on it by :mod:`freqtail.data.variants`) are rebuilt.
BASS_VERSION = "1"

# The transform and the module need torchvision (about 170 MiB of resident memory on import);
# they load on first use so that offline conversions stay lean.
_LAZY = {"BaSS", "BaSSModule", "ROUND_MODES"}


def __getattr__(name: str):
    if name in _LAZY:
        from freqtail.bass import modules

        return getattr(modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASS_VERSION",
    "PROFILES",
    "ROUND_MODES",
    "SPECTRUM_EPSILON",
    "BaSS",
    "BaSSModule",
    "BandLayout",
    "balance_spectrum",
    "balance_spectrum_tensor",
    "band_layout",
    "bass_weights",
    "convert_uint8_images",
]
