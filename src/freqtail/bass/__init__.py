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

**Degenerate channels** (defined behaviour where the published code breaks), decided per channel
as the published code decides: a channel is returned exactly as it came in (factor 1 on every
band) while the other channels of the same image are still transformed, when one of its profiled
bands has ``p[k] <= 1`` on the 0..255 scale (``ln p[k] <= 0``: Eq. 4's proportions stop being
positive; with the amplitude profile this covers constant, all-zero and near-black channels) or
when its weights are not all finite and positive. An image with no band to re-weight (K < 2:
images of at most 3 x 3 pixels) is returned unchanged in all its channels. The published code
agrees on flat channels: a constant channel of value v gets weights 1 and stays v (up to float
rounding), an all-zero channel stays 0 (every position ties for the maximum and keeps factor 1);
on near-black channels its weights are NaN or meaningless, and freqtail leaves them alone instead.
Every function reports degenerate *images* (True when at least one channel was left unchanged) and
can report the *channels* (bool (N, C) masks: ``bass_weights``, ``balance_spectrum_tensor(...,
per_channel=True)``, ``balance_spectrum(..., return_degenerate="channels")``,
``BaSSModule.last_degenerate_channels``); ``convert_uint8_images`` counts images and, with
``count_channels=True``, channels. On natural images none of this triggers and the output is the
published one (float64 paths: bit-identical up to rare 1-grey-level rounding).
NaN/Inf in a float input raises :class:`freqtail.errors.InputError`.

Beyond the paper, all optional: ``strength`` in [0, 1] uses ``w ** strength`` (1 = published,
0 = identity); any image size (odd, non-square) is supported; and ``profile="power"`` is Eq. 4
applied to the band power of Eq. 1. Its profile is the azimuthal *integral*
``AI[k] = sum over band k of |F|^2`` (a band sum, not a mean: ``AI[k] = n[k] * mean power`` with
``n[k]`` positions in band k; maximum-amplitude positions are left out, as in step 2), the weights
are ``w[k] = (ln AI[k] / sum_j ln AI[j]) / (AI[k] / sum_j AI[j])`` and the spectrum is multiplied
by ``sqrt(w[k])`` (``w[k] ** (strength / 2)``), because a factor m on F multiplies the band's
power by m^2. With strength 1 the integrated power of band k becomes
``AI'[k] = w[k] * AI[k] = ln AI[k] * (sum_j AI[j]) / (sum_j ln AI[j])``: proportional to
``ln AI[k]``, and the total power of bands 1..K-1 is unchanged. Since ``AI`` includes the ring
size, the result differs from a profile of mean power: a spectrum with flat mean power ``P`` is not
left alone, its band mean power becomes proportional to ``ln(n[k] P) / n[k]``, lower in bands with
more positions. Band sums of ``|F|^2``
are far above 1 on the 0..255 scale, so the ``<= 1`` rule only triggers on (nearly) flat channels.

Entry points (one implementation underneath, :func:`balance_spectrum_tensor`):

* :func:`balance_spectrum` — numpy uint8, float/uint8 torch tensors, PIL images;
* :func:`convert_uint8_images` — whole uint8 datasets in bounded memory;
* :class:`BaSS` — a ``torchvision.transforms.v2`` transform with probability ``p`` (the paper's gamma);
* :class:`BaSSModule` — a differentiable ``nn.Module`` for GPU pipelines and end-to-end attacks.
"""

from __future__ import annotations

from freqtail.bass.convert import balance_spectrum, convert_uint8_images
from freqtail.bass.core import PROFILES, SPECTRUM_EPSILON, balance_spectrum_tensor, bass_weights
from freqtail.spectrum.bands import BandLayout, band_layout

#: Version of BaSS's output: bump it whenever any conversion's result changes, so that cached
#: BaSS datasets (keyed on it by :mod:`freqtail.data.variants`) are rebuilt.
BASS_VERSION = "2"

# The transform and the module need torchvision (about 170 MiB of resident memory on import);
# they load on first use so that offline conversions (``freqtail bass``, the uint8 paths) stay lean
# (tests/test_bass.py::test_top_level_exports_are_lazy checks ``import freqtail.bass`` leaves
# torchvision out).
_LAZY = {"BaSS", "BaSSModule", "ROUND_MODES"}


def __getattr__(name: str):
    if name in _LAZY:
        from freqtail.bass import modules  # lazy on purpose: torchvision only when used (see above)

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
