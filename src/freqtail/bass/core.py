"""The one batched BaSS implementation: torch, CPU or CUDA, float32 or float64, differentiable.

Everything else in :mod:`freqtail.bass` (numpy, PIL, the v2 transform, the modules) calls
:func:`balance_spectrum_tensor`. The mathematics is in the package docstring; this module adds
how it is computed fast:

* The spectrum is the half-plane ``rfft2`` (columns ``v = 0 .. W//2`` of the unshifted FFT).
  The per-band weights are Hermitian-symmetric, so ``irfft2`` of the weighted half-spectrum equals
  ``real(ifft2(ifftshift(weighted fftshift(fft2(x)))))`` of the published full-plane algorithm.
* ``fftshift`` is never applied to data: the band of every unshifted rfft position is
  precomputed once per (H, W, device, dtype) in a :class:`~freqtail.spectrum.bands.BandLayout`,
  the band geometry the spectrum measurements use too.
* Band sums (and means) of the full plane come from the half plane by counting every rfft column
  whose conjugate partner is not stored (all but column 0 and, for even W, column W/2) twice.
* The degenerate rule is decided per channel on the (N * C, K - 1) profile table, and degenerate
  channels are restored from the input with one ``index_put_``: no per-channel Python loop.
* The published "maximum amplitude gets weight 1" rule: for a non-negative image the DC term is
  the maximum and sits alone in band 0, which is neither profiled nor re-weighted, so nothing needs
  doing. Only when some other position ties with or exceeds DC (flat or comb-like images, inputs
  with negative values) does the general path mask every position equal to the maximum, exactly as
  the published ``amplitude == max(amplitude)`` mask does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from freqtail.checks import check_choice, check_fraction, check_number
from freqtail.errors import FreqtailError, InputError
from freqtail.images import check_float_images
from freqtail.spectrum.bands import BandLayout, band_layout

#: Added to the complex spectrum before taking its amplitude, as the published code does (on the
#: 0..255 scale). It only matters for exactly-zero spectral coefficients.
SPECTRUM_EPSILON = 1e-8

#: Profiles the weights can be computed from.
PROFILES = ("amplitude", "power")


def check_strength(strength: float, *, error: type[FreqtailError] = InputError) -> float:
    """Validate a BaSS strength (a number in [0, 1]) and return it as a float.

    ``error`` is the class raised: InputError for a function argument, ConfigError for a setting.
    """
    return check_fraction(strength, "The BaSS strength", error=error)


def check_profile(profile: str) -> str:
    """Validate a BaSS profile name (one of :data:`PROFILES`)."""
    return check_choice(profile, PROFILES, "The BaSS profile")


def _amplitude(spectrum: torch.Tensor, epsilon: float, in_place: bool) -> torch.Tensor:
    """``|spectrum + epsilon|`` (real), computed on the real view: faster than complex ``abs``.

    ``in_place`` (nothing to differentiate) reuses one buffer instead of allocating three.
    """
    parts = torch.view_as_real(spectrum)
    real = parts[..., 0] + epsilon
    if in_place:
        return real.square_().addcmul_(parts[..., 1], parts[..., 1]).sqrt_()
    # sqrt's gradient at exactly 0 is inf, and inf * 0 = NaN; flooring the squared amplitude at
    # the tiniest float changes no value but keeps every gradient finite.
    squared = torch.addcmul(real * real, parts[..., 1], parts[..., 1])
    return squared.clamp_min(torch.finfo(squared.dtype).tiny).sqrt()


def _max_elsewhere(amplitude: torch.Tensor) -> torch.Tensor:
    """Per (N, C): the largest amplitude at any position other than DC (-inf if there is none)."""
    parts = [amplitude[..., 1:, :], amplitude[..., :1, 1:]]
    best = torch.full(amplitude.shape[:-2], -math.inf, dtype=amplitude.dtype, device=amplitude.device)
    for part in parts:
        if part.numel():
            best = torch.maximum(best, part.detach().amax(dim=(-2, -1)))
    return best


@dataclass
class _Spectral:
    spectrum: torch.Tensor  # complex (N, C, H, W//2+1), rfft2 of the input
    weights: torch.Tensor  # real (N, C, K+1): the factor applied to each band (1 where degenerate)
    degenerate: torch.Tensor  # bool (N, C): channels left unchanged
    tie_images: torch.Tensor  # int64 (S,): images where a non-DC position reaches the maximum amplitude
    tie_mask: torch.Tensor  # bool (S, C, H, W//2+1): the maximum positions of those images (factor 1)


def _band_sums(amplitude: torch.Tensor, layout: BandLayout, in_place: bool = False) -> torch.Tensor:
    """Full-plane band sums (N, C, K+1) of a half-plane (N, C, H, W//2+1) amplitude.

    ``in_place`` multiplies ``amplitude`` by the column multiplicities in place (it is consumed).
    """
    n, c, h, _ = amplitude.shape
    multiplicity = layout.multiplicity.view(h, -1)
    weighted = amplitude.mul_(multiplicity) if in_place else amplitude * multiplicity
    sums = torch.zeros(n * c, layout.num_bands, dtype=amplitude.dtype, device=amplitude.device)
    return sums.index_add(1, layout.band, weighted.reshape(n * c, -1)).view(n, c, -1)


def _spectral_weights(
    x: torch.Tensor, strength: float, profile: str, scale: float, layout: BandLayout
) -> _Spectral:
    """rfft2 of ``x`` and the per-band BaSS weights; see :func:`bass_weights` for the contract."""
    n, c, h, w = x.shape
    in_place = not (torch.is_grad_enabled() and x.requires_grad)
    spectrum = torch.fft.rfft2(x)
    amplitude = _amplitude(spectrum, SPECTRUM_EPSILON / scale, in_place)
    power = profile == "power"

    # The published rule "every maximum-amplitude position is left out of the profile and keeps
    # factor 1". DC (band 0) is the maximum of any non-negative image and band 0 is neither
    # profiled nor re-weighted, so only images where another position reaches DC need work.
    dc = amplitude[..., 0, 0].detach().clone()
    elsewhere = _max_elsewhere(amplitude)
    tie_images = ((elsewhere >= dc).any(1)).nonzero().flatten()
    tie_mask = torch.zeros((0, c, h, w // 2 + 1), dtype=torch.bool, device=x.device)
    tied = None
    if tie_images.numel():
        tied = amplitude.index_select(0, tie_images)
        peak = torch.maximum(dc, elsewhere).index_select(0, tie_images)[..., None, None]
        tie_mask = tied.detach() == peak
        tied = tied.masked_fill(tie_mask, 0.0)

    if power:
        amplitude = amplitude.square_() if in_place else amplitude * amplitude
    sums = _band_sums(amplitude, layout, in_place)
    if tied is not None:
        sums = sums.index_copy(0, tie_images, _band_sums(tied * tied if power else tied, layout))

    k_outer = layout.num_bands - 1
    # The profile p[k] of bands 1 .. K-1 on the 0..255 scale, (N*C, K-1): band means of |F|
    # (published) or band sums of |F|^2 (Eq. 1's AI, profile="power").
    if power:
        profile_values = sums[..., 1:k_outer] * (scale * scale)
    else:
        profile_values = sums[..., 1:k_outer] / layout.counts[1:k_outer] * scale
    profile_values = profile_values.reshape(n * c, -1)

    with torch.no_grad():
        logs = profile_values.log()
        trial = (logs / logs.sum(1, keepdim=True)) / (profile_values / profile_values.sum(1, keepdim=True))
        valid = (profile_values > 1.0).all(1) & torch.isfinite(trial).all(1) & (trial > 0).all(1)
        degenerate = ~valid
    if k_outer < 2:  # no band to re-weight (images of 3 x 3 pixels or fewer)
        degenerate = torch.ones(n * c, dtype=torch.bool, device=x.device)
    # Degenerate channels get a flat stand-in profile so that no NaN reaches the forward or the
    # backward pass; their factor is then set to exactly 1 (and their output to the input).
    safe = torch.where(degenerate[:, None], math.e, profile_values)
    logs = safe.log()
    weights = (logs / logs.sum(1, keepdim=True)) / (safe / safe.sum(1, keepdim=True))
    # Power: the spectrum is multiplied by sqrt(w), so that w multiplies the band's power.
    exponent = strength / 2.0 if power else strength
    if exponent != 1.0:
        weights = weights.pow(exponent)
    weights = weights.masked_fill(degenerate[:, None], 1.0)
    ones = torch.ones(n * c, 1, dtype=x.dtype, device=x.device)
    full = torch.cat([ones, weights, ones], dim=1) if k_outer >= 1 else ones.expand(n * c, layout.num_bands)
    return _Spectral(spectrum, full.view(n, c, -1), degenerate.view(n, c), tie_images, tie_mask)


def _prepare(
    x: torch.Tensor, strength: float, profile: str, scale: float
) -> tuple[torch.Tensor, torch.dtype]:
    check_strength(strength)
    check_profile(profile)
    check_number(scale, "The BaSS intensity scale", minimum=0, open_min=True)
    check_float_images(x, "BaSS input")
    work_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return x.to(work_dtype), work_dtype


def bass_weights(
    x: torch.Tensor, strength: float = 1.0, *, profile: str = "amplitude", scale: float = 255.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band BaSS factors of each image channel (Eq. 4), differentiable w.r.t. ``x``.

    Args:
        x: float (N, C, H, W); ``x * scale`` is on the 0..255 intensity scale.
        strength: exponent in [0, 1] applied to the weights (1 = published BaSS).
        profile: ``"amplitude"`` (published: band means of ``|F|``) or ``"power"`` (band sums of
            ``|F|^2``, Eq. 1's AI); see the package docstring.
        scale: multiplier taking ``x`` to 0..255 (255 for [0, 1] images, 1 for 0..255 values).

    Returns:
        ``(weights, degenerate)``: weights float (N, C, K+1), the factor multiplying the spectrum
        (the amplitude) in band k = 0..K: ``w[k] ** strength`` for ``"amplitude"``,
        ``w[k] ** (strength / 2)`` for ``"power"``, exactly 1 for bands 0 and K and for every band
        of a degenerate channel; degenerate bool (N, C), the channels left unchanged. A non-DC
        position that ties with the maximum amplitude also keeps factor 1; that per-position
        exception is not part of this per-band table.
    """
    x, _ = _prepare(x, strength, profile, scale)
    layout = band_layout(x.shape[-2], x.shape[-1], x.device, x.dtype)
    spectral = _spectral_weights(x, float(strength), profile, float(scale), layout)
    return spectral.weights, spectral.degenerate


def balance_spectrum_tensor(
    x: torch.Tensor,
    strength: float = 1.0,
    *,
    profile: str = "amplitude",
    scale: float = 255.0,
    per_channel: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced Spectrum Sampling of a float batch, on its device and dtype, differentiable.

    Args:
        x: float (N, C, H, W), finite; ``x * scale`` is on the 0..255 intensity scale (the log in
            Eq. 4 makes the result depend on the scale). Any H, W; any C (channels are independent).
        strength: exponent in [0, 1] applied to the weights; 1 = published BaSS, 0 = identity.
        profile: ``"amplitude"`` (published) or ``"power"`` (see the package docstring).
        scale: 255 for images in [0, 1] (default); 1 for float images holding 0..255 values.
        per_channel: return the degenerate mask per channel, (N, C), instead of per image, (N,).

    Returns:
        ``(out, degenerate)``: out has x's shape, device and dtype, clipped to [0, 255 / scale]
        (not rounded); a degenerate channel is returned exactly as it came in (gradient: identity)
        while the other channels of its image are transformed (see the package docstring for the
        rule). degenerate is bool (N,), True for images with at least one degenerate channel, or
        bool (N, C) with ``per_channel=True``.

    Raises:
        InputError: x is not a float (N, C, H, W) tensor, holds NaN/Inf, or an option is invalid.
    """
    original_dtype = x.dtype
    x, work_dtype = _prepare(x, strength, profile, scale)
    n, c, h, w = x.shape
    if float(strength) == 0.0:
        none = torch.zeros((n, c) if per_channel else (n,), dtype=torch.bool, device=x.device)
        return x.clone().to(original_dtype), none
    layout = band_layout(h, w, x.device, work_dtype)
    spectral = _spectral_weights(x, float(strength), profile, float(scale), layout)
    spectrum = spectral.spectrum
    weight_map = spectral.weights.reshape(-1, layout.num_bands).index_select(1, layout.band)
    weight_map = weight_map.view(spectrum.shape)
    tied = spectrum.index_select(0, spectral.tie_images) if spectral.tie_images.numel() else None
    if spectrum.requires_grad:
        weighted = spectrum * weight_map
    else:  # nothing to differentiate: re-use the spectrum's memory
        weighted = spectrum.mul_(weight_map)
    if tied is not None:  # maximum-amplitude positions keep factor 1
        patched = torch.where(spectral.tie_mask, tied, weighted.index_select(0, spectral.tie_images))
        weighted.index_copy_(0, spectral.tie_images, patched)
    out = torch.fft.irfft2(weighted, s=(h, w))
    out = out.clamp(0.0, 255.0 / scale) if spectrum.requires_grad else out.clamp_(0.0, 255.0 / scale)
    unchanged = spectral.degenerate.nonzero(as_tuple=True)  # (image, channel) indices
    if unchanged[0].numel():  # degenerate channels are returned exactly as they came in
        out.index_put_(unchanged, x[unchanged])
    degenerate = spectral.degenerate if per_channel else spectral.degenerate.any(1)
    return out.to(original_dtype), degenerate
