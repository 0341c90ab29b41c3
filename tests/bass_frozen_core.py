"""A frozen copy of BaSS's tensor core as it was before the fixed-cost work of issue 19 (item 7).

tests/test_bass_frozen.py checks that :mod:`freqtail.bass.core` gives the same bits as this copy:
the other tests compare the float path with the published algorithm at a tolerance, which cannot
tell a last-bit change. Kept as it was (not to be optimised); delete it with that test when the
float path is allowed to change its bits (which also means bumping ``freqtail.bass.BASS_VERSION``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from freqtail.bass.core import check_profile, check_strength
from freqtail.checks import check_number
from freqtail.errors import InputError
from freqtail.images import check_float_images
from freqtail.spectrum.bands import BandLayout, band_layout

SPECTRUM_EPSILON = 1e-8
CHUNK_BYTES = 1 << 21


def _rfft2(x: torch.Tensor) -> torch.Tensor:
    """``torch.fft.rfft2`` of (N, C, H, W), the same for an image in any batch.

    MKL transforms a lone channel with other code than a batch of two or more, which differs in
    the last bit; a lone channel is transformed beside a copy of itself, so that no result depends
    on the batch (or chunk) it came in.
    """
    if x.shape[0] * x.shape[1] == 1:
        return torch.fft.rfft2(torch.cat([x, x]))[:1]
    return torch.fft.rfft2(x)


def _irfft2(spectrum: torch.Tensor, size: tuple[int, int], out: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.fft.irfft2(spectrum, s=size)``, the same for an image in any batch (see :func:`_rfft2`)."""
    if spectrum.shape[0] * spectrum.shape[1] == 1:
        result = torch.fft.irfft2(torch.cat([spectrum, spectrum]), s=size)[:1]
        return result if out is None else out.copy_(result)
    return torch.fft.irfft2(spectrum, s=size, out=out)


def _pow(values: torch.Tensor, exponent: float) -> torch.Tensor:
    """``values ** exponent`` of a (R, K) table, each element the same wherever it sits.

    torch computes the last elements of a contiguous tensor with a scalar ``pow`` that can differ
    in the last bit from its vectorised one (``log``, ``sqrt`` and arithmetic agree), which would
    make a channel's weights depend on its batch. Rows padded to a multiple of 64 values leave no
    scalar remainder.
    """
    rows, cols = values.shape
    padded = torch.ones(rows, -(-cols // 64) * 64, dtype=values.dtype, device=values.device)
    padded[:, :cols] = values
    return padded.pow(exponent)[:, :cols]


def _weighted_amplitude(
    spectrum: torch.Tensor, epsilon: float, multiplicity: torch.Tensor, in_place: bool
) -> torch.Tensor:
    """``m * |spectrum + epsilon|``, real (N, C, H, W//2+1), ``m`` the column multiplicity (H, W//2+1).

    Computed as ``sqrt(m**2 * ((re + epsilon)**2 + im**2))``: ``m`` is 1 or 2 and scaling by a power
    of 4 under a square root is exact, so this is ``m * |spectrum + epsilon|`` bit for bit, with the
    weighting folded into a pass that is needed anyway. ``in_place`` (nothing to differentiate)
    works in one buffer.
    """
    parts = torch.view_as_real(spectrum)
    squared_multiplicity = multiplicity * multiplicity
    if in_place:
        # Contiguous copies first: elementwise kernels are vectorised on contiguous operands only,
        # and the real and imaginary parts are interleaved (stride 2) in the complex spectrum.
        real = parts[..., 0].contiguous()
        imag = parts[..., 1].contiguous()
        return real.add_(epsilon).square_().addcmul_(imag, imag).mul_(squared_multiplicity).sqrt_()
    real = parts[..., 0] + epsilon
    squared = torch.addcmul(real * real, parts[..., 1], parts[..., 1]) * squared_multiplicity
    # sqrt's gradient at exactly 0 is inf, and inf * 0 = NaN; flooring the squared amplitude at
    # the tiniest float changes no value but keeps every gradient finite.
    return squared.clamp_min(torch.finfo(squared.dtype).tiny).sqrt()


@dataclass
class _Ties:
    images: torch.Tensor  # int64 (S,): images where a non-DC position reaches the maximum amplitude
    mask: torch.Tensor  # bool (S, C, H, W//2+1): their maximum-amplitude positions (factor 1)


@dataclass
class _Spectral:
    spectrum: torch.Tensor  # complex (N, C, H, W//2+1), rfft2 of the input
    weights: torch.Tensor  # real (N, C, K+1): the factor applied to each band (1 where degenerate)
    degenerate: torch.Tensor  # bool (N, C): channels left unchanged
    ties: _Ties | None  # None when no image has a tie (the usual case)


def _band_sums(values: torch.Tensor, layout: BandLayout) -> torch.Tensor:
    """Band sums (N*C, K+1) of half-plane values (N, C, H, W//2+1) already weighted by multiplicity."""
    rows = values.shape[0] * values.shape[1]
    sums = torch.zeros(rows, layout.num_bands, dtype=values.dtype, device=values.device)
    return sums.index_add_(1, layout.band, values.reshape(rows, -1))


def _ties(
    weighted: torch.Tensor, multiplicity: torch.Tensor, in_place: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The images where a non-DC position reaches the maximum amplitude of one of their channels.

    Args:
        weighted: real (N, C, H, W//2+1), ``m * |F + eps|`` (:func:`_weighted_amplitude`).
        multiplicity: (H, W//2+1), ``m`` (1 or 2).
        in_place: nothing to differentiate.

    Returns:
        None if there is no such image, else ``(images, amplitude, peak)``: int64 (S,) image
        indices; their amplitude ``|F + eps|`` (S, C, H, W//2+1), differentiable (DC set to 0 where
        ``in_place``: band 0 is neither profiled nor re-weighted); their per-channel maximum
        amplitude (S, C, 1, 1).
    """
    n, c, h, half = weighted.shape
    if h * half == 1:  # 1 x 1 images: DC alone
        return None
    if in_place:
        return _ties_in_place(weighted, multiplicity)
    amplitude = weighted / multiplicity  # exact: m is 1 or 2
    flat = amplitude.detach().view(n, c, h * half)
    dc = flat[..., 0]
    elsewhere = flat[..., 1:].amax(-1)
    tied = (elsewhere >= dc).any(1).nonzero().flatten()
    if not tied.numel():
        return None
    peak = torch.maximum(dc, elsewhere).index_select(0, tied)[..., None, None]
    return tied, amplitude.index_select(0, tied), peak


def _ties_in_place(
    weighted: torch.Tensor, multiplicity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """:func:`_ties` without autograd, in one reduction over ``weighted`` for a batch without ties.

    Sets the DC term of ``weighted`` to 0 (band 0 is neither profiled nor re-weighted). DC has
    ``m = 1`` and ``m |F| >= |F|`` elsewhere, so the images where ``m |F|`` reaches DC are a
    superset of the tied ones; ``|F|`` itself is computed for those candidates only.
    """
    n, c, h, half = weighted.shape
    flat = weighted.view(n, c, h * half)
    dc = flat[..., 0].clone()  # |F + eps| at DC (m = 1)
    flat.select(-1, 0).zero_()  # amplitudes are >= 0, so 0 is never above: one contiguous reduction
    candidates = (flat.amax(-1) >= dc).any(1).nonzero().flatten()
    if not candidates.numel():
        return None
    amplitude = weighted.index_select(0, candidates).div_(multiplicity)  # exact: m is 1 or 2
    dc = dc.index_select(0, candidates)
    elsewhere = amplitude.view(-1, c, h * half).amax(-1)
    tied = (elsewhere >= dc).any(1)
    if not bool(tied.any()):
        return None
    peak = torch.maximum(dc, elsewhere)[tied][..., None, None]
    return candidates[tied], amplitude[tied], peak


def _profile_weights(
    profile_values: torch.Tensor, degenerate: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 factors ``w = (ln p / sum ln p) / (p / sum p)`` of profiles (R, K-1), and the degenerate rows.

    A row is degenerate when a profile value is ``<= 1`` or a factor is not finite and positive.
    Given ``degenerate`` (the differentiable path), those rows get the flat stand-in profile ``e``
    instead: factor 1 and no NaN forward or backward.
    """
    if degenerate is not None:
        profile_values = torch.where(degenerate[:, None], math.e, profile_values)
    else:
        # With every p[k] > 1, ln p > 0 and the factors are positive; they are finite exactly when
        # sum p is (else p / sum p is 0 and a factor inf). So a row is degenerate exactly when the
        # sum of its profile, with every value <= 1 (or NaN) replaced by inf, is inf.
        profile_values = torch.where(profile_values > 1.0, profile_values, math.inf)
    logs = profile_values.log()
    total = profile_values.sum(1, keepdim=True)
    weights = (logs / logs.sum(1, keepdim=True)) / (profile_values / total)
    if degenerate is None:
        degenerate = total[:, 0] == math.inf
    return weights, degenerate


def _spectral_weights(
    x: torch.Tensor, strength: float, profile: str, scale: float, layout: BandLayout, check_finite: bool
) -> _Spectral:
    """rfft2 of ``x`` and the per-band BaSS weights; see :func:`bass_weights` for the contract.

    ``check_finite``: raise InputError if ``x`` holds NaN or Inf.
    """
    n, c, h, w = x.shape
    in_place = not (torch.is_grad_enabled() and x.requires_grad)
    spectrum = _rfft2(x)
    multiplicity = layout.multiplicity.view(h, -1)
    amplitude = _weighted_amplitude(spectrum, SPECTRUM_EPSILON / scale, multiplicity, in_place)
    power = profile == "power"

    # The published rule "every maximum-amplitude position is left out of the profile and keeps
    # factor 1". DC (band 0) is the maximum of any non-negative image and band 0 is neither
    # profiled nor re-weighted, so only images where another position reaches DC need work.
    found = _ties(amplitude, multiplicity, in_place)
    ties = None
    if found is not None:
        tie_images, tied, peak = found
        ties = _Ties(tie_images, tied.detach() == peak)
        tied = tied.masked_fill(ties.mask, 0.0)

    # Band sums of the full plane, from the half plane weighted by multiplicity: m |F| or m |F|^2.
    if power:  # m |F|^2 = (m |F|)^2 / m, exact
        amplitude = amplitude.square_().div_(multiplicity) if in_place else amplitude.square() / multiplicity
    sums = _band_sums(amplitude, layout)
    if ties is not None:  # their profiles leave the maximum-amplitude positions out
        tied = tied * tied * multiplicity if power else tied * multiplicity
        sums = sums.view(n, c, -1).index_copy(
            0, ties.images, _band_sums(tied, layout).view(-1, c, sums.shape[-1])
        )
        sums = sums.view(n * c, -1)

    k_outer = layout.num_bands - 1
    # The profile p[k] of bands 1 .. K-1 on the 0..255 scale, (N*C, K-1): band means of |F|
    # (published) or band sums of |F|^2 (Eq. 1's AI, profile="power").
    if power:
        profile_values = sums[:, 1:k_outer] * (scale * scale)
    else:
        profile_values = sums[:, 1:k_outer] / layout.counts[1:k_outer] * scale

    weights, degenerate = _profile_weights(profile_values if in_place else profile_values.detach())
    if k_outer < 2:  # no band to re-weight (images of 3 x 3 pixels or fewer)
        degenerate = torch.ones_like(degenerate)
    if check_finite:  # NaN or Inf spreads over its channel's spectrum: the channel is degenerate
        suspects = degenerate.nonzero().flatten()
        if suspects.numel() and not bool(torch.isfinite(x.view(n * c, -1).index_select(0, suspects)).all()):
            raise InputError("The BaSS input tensor contains NaN or infinite values.")
    if not in_place:
        # Differentiable: degenerate channels get a flat stand-in profile, so that no NaN reaches
        # the forward or the backward pass; their factor is then set to exactly 1.
        weights, _ = _profile_weights(profile_values, degenerate)
    # Power: the spectrum is multiplied by sqrt(w), so that w multiplies the band's power.
    exponent = strength / 2.0 if power else strength
    if exponent != 1.0:
        weights = _pow(weights, exponent)
    # Bands 0 and K, and every band of a degenerate channel, keep factor 1.
    full = torch.nn.functional.pad(weights, (1, layout.num_bands - 1 - weights.shape[1]), value=1.0)
    full = full.masked_fill(degenerate[:, None], 1.0)
    return _Spectral(spectrum, full.view(n, c, -1), degenerate.view(n, c), ties)


def _prepare(x: torch.Tensor, strength: float, profile: str, scale: float) -> torch.Tensor:
    """Validate the options and the shape and dtype of ``x``; return it contiguous, in float32/64.

    Whether ``x`` is finite is checked once its channels are known regular or degenerate (NaN
    and Inf make a channel degenerate), so that regular input costs no pass for it.
    """
    check_strength(strength)
    check_profile(profile)
    check_number(scale, "The BaSS intensity scale", minimum=0, open_min=True)
    check_float_images(x, "BaSS input", finite=False)  # finiteness: with the degenerate channels
    work_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    # Contiguous: MKL transforms other layouts (channels-last) with batch-dependent rounding.
    return x.to(work_dtype).contiguous()


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
    x = _prepare(x, strength, profile, scale)
    layout = band_layout(x.shape[-2], x.shape[-1], x.device, x.dtype)
    spectral = _spectral_weights(x, float(strength), profile, float(scale), layout, check_finite=True)
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
    x = _prepare(x, strength, profile, scale)
    strength, scale = float(strength), float(scale)
    n, c = x.shape[:2]
    # On a CPU, chunks small enough for the cache (results do not depend on the chunking).
    step = chunk_length(n, x.shape[1:].numel() * x.element_size()) if x.device.type == "cpu" else n
    if strength == 0.0:
        if not bool(torch.isfinite(x).all()):
            raise InputError("The BaSS input tensor contains NaN or infinite values.")
        out, degenerate = x.clone(), torch.zeros((n, c), dtype=torch.bool, device=x.device)
    elif step >= n:
        out, degenerate = balance_batch(x, strength, profile, scale)
    elif torch.is_grad_enabled() and x.requires_grad:  # autograd joins the chunks
        parts = [balance_batch(x[i : i + step], strength, profile, scale) for i in range(0, n, step)]
        out, degenerate = torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts])
    else:
        out = torch.empty_like(x)
        degenerate = torch.empty((n, c), dtype=torch.bool, device=x.device)
        for i in range(0, n, step):
            _, degenerate[i : i + step] = balance_batch(
                x[i : i + step], strength, profile, scale, out=out[i : i + step]
            )
    return out.to(original_dtype), (degenerate if per_channel else degenerate.any(1))


def chunk_length(n: int, image_bytes: int, most: int | None = None) -> int:
    """Images per chunk when BaSS splits ``n`` float images of ``image_bytes`` bytes each on a CPU.

    A batch of less than twice :data:`CHUNK_BYTES` is one chunk: halving it would pay a call's
    fixed work (about 0.1 ms) once more for little gain in cache. A larger batch is split in
    chunks of equal length (but the last) holding at most :data:`CHUNK_BYTES`, or one image.
    ``most`` caps the images per chunk.
    """
    most = min(n, most or n)
    if n * image_bytes >= 2 * CHUNK_BYTES:
        most = max(1, min(most, CHUNK_BYTES // int(image_bytes)))
    chunks = -(-n // most)
    return -(-n // chunks)


def balance_batch(
    x: torch.Tensor,
    strength: float,
    profile: str,
    scale: float,
    *,
    out: torch.Tensor | None = None,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BaSS of one batch as it is (no option checks, no chunking): the core of every entry point.

    Args:
        x: float32 or float64 (N, C, H, W); ``x * scale`` on the 0..255 scale.
        strength: in (0, 1]. profile: one of :data:`PROFILES`. scale: > 0.
        out: optional contiguous tensor of x's shape and dtype to write the result to (only
            without autograd).
        check_finite: raise InputError if ``x`` holds NaN or Inf (False where it cannot, as for
            values cast from uint8).

    Returns:
        ``(out, degenerate)``: out float (N, C, H, W) in x's dtype, clipped to [0, 255 / scale];
        degenerate bool (N, C).
    """
    x = x.contiguous()  # see _prepare
    n, c, h, w = x.shape
    layout = band_layout(h, w, x.device, x.dtype)
    spectral = _spectral_weights(x, strength, profile, scale, layout, check_finite)
    spectrum = spectral.spectrum
    weights = spectral.weights.view(n * c, -1)
    ties = spectral.ties
    tied = None if ties is None else spectrum.index_select(0, ties.images)
    if spectrum.requires_grad:
        weighted = spectrum * weights.index_select(1, layout.band).view(spectrum.shape)
    else:  # nothing to differentiate: re-use the spectrum's memory
        # One contiguous real multiply of the interleaved (re, im) pairs, each weight taken twice:
        # the same products as complex * real, without casting the weight map to complex.
        pairs = weights.index_select(1, layout.band.repeat_interleave(2))
        torch.view_as_real(spectrum).view(n * c, -1).mul_(pairs)
        weighted = spectrum
    if ties is not None:  # maximum-amplitude positions keep factor 1
        patched = torch.where(ties.mask, tied, weighted.index_select(0, ties.images))
        weighted.index_copy_(0, ties.images, patched)
    if spectrum.requires_grad:
        result = _irfft2(weighted, (h, w)).clamp(0.0, 255.0 / scale)
    else:
        result = _irfft2(weighted, (h, w), out).clamp_(0.0, 255.0 / scale)
    unchanged = spectral.degenerate.nonzero(as_tuple=True)  # (image, channel) indices
    if unchanged[0].numel():  # degenerate channels are returned exactly as they came in
        result.index_put_(unchanged, x[unchanged])
    return result, spectral.degenerate
