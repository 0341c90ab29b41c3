"""The one batched BaSS implementation: torch, CPU or CUDA, float32 or float64, differentiable.

Everything else in :mod:`freqtail.bass` (numpy, PIL, the v2 transform, the modules) calls
:func:`balance_batch`, through :func:`balance_spectrum_tensor` for float input. The mathematics is
in the package docstring; this module adds how it is computed fast:

* The spectrum is the half-plane ``rfft2`` (columns ``v = 0 .. W//2`` of the unshifted FFT).
  The per-band weights are Hermitian-symmetric, so ``irfft2`` of the weighted half-spectrum equals
  ``real(ifft2(ifftshift(weighted fftshift(fft2(x)))))`` of the published full-plane algorithm.
* ``fftshift`` is never applied to data: the band of every unshifted rfft position is
  precomputed once per (H, W, device, dtype) in a :class:`~freqtail.spectrum.bands.BandLayout`,
  the band geometry the spectrum measurements use too.
* Band sums (and means) of the full plane come from the half plane by counting every rfft column
  whose conjugate partner is not stored (all but column 0 and, for even W, column W/2) twice; that
  multiplicity ``m`` is folded into the amplitude's square root (``sqrt(m^2 s) = m sqrt(s)``
  exactly), so one ``index_add`` gives the sums.
* The degenerate rule is decided per channel on the (N * C, K - 1) profile table, and degenerate
  channels are restored from the input with one ``index_put_``: no per-channel Python loop. NaN
  and Inf make their channel degenerate, so the finiteness check reads those channels only.
* The published "maximum amplitude gets weight 1" rule: for a non-negative image the DC term is
  the maximum and sits alone in band 0, which is neither profiled nor re-weighted, so nothing needs
  doing. One reduction finds the images where another position ties with or exceeds DC (flat or
  comb-like images, inputs with negative values); only those take the general path, which masks
  every position equal to the maximum, exactly as the published ``amplitude == max(amplitude)``.
* What every call needs besides the data (the band tables, the weight-pair index, and the
  numbers epsilon, scale, 1 and inf as 0-dim tensors) is built once per (H, W, device, dtype,
  scale) by :func:`_constants`: torch wraps a Python number in a new tensor on every op, which
  costs more than a small op itself, and on small batches these fixed costs are most of the time.
  For the same reason a call reads a tensor's attributes (shape, dtype, device, requires_grad)
  as few times as it can: in the sequence of a call each such read costs about 1 µs.
* Without autograd every pass after the FFT works in place, and on a CPU a batch is transformed
  in chunks of about :data:`CHUNK_BYTES`, which stay in cache. Every image's result is the same
  in any batch and any chunking, bit for bit: lone channels are transformed in pairs
  (:func:`_rfft2`) and ``pow`` is kept off torch's scalar remainder loop (:func:`_pow`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

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

#: Bytes of float input BaSS transforms at a time on a CPU (see :func:`chunk_length`; 2 MiB: 85
#: float64 or 170 float32 images of 32x32 RGB). A chunk's input, spectrum and temporaries then
#: stay in cache and its buffers are reused rather than mapped afresh. Measured best of 0.25 to
#: 16 MiB at 32x32, 128x128 and 224x224 (``benchmarks/bass_speed.py --sweep``). No result
#: depends on it.
CHUNK_BYTES = 1 << 21


def check_strength(strength: float, *, error: type[FreqtailError] = InputError) -> float:
    """Validate a BaSS strength (a number in [0, 1]) and return it as a float.

    ``error`` is the class raised: InputError for a function argument, ConfigError for a setting.
    """
    return check_fraction(strength, "The BaSS strength", error=error)


def check_profile(profile: str) -> str:
    """Validate a BaSS profile name (one of :data:`PROFILES`)."""
    return check_choice(profile, PROFILES, "The BaSS profile")


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


@dataclass(frozen=True)
class _Constants:
    """What every call on images of one (H, W, device, dtype, scale) reuses: tables and 0-dim scalars.

    A Python number in a torch op is wrapped in a fresh tensor on every call, which costs several
    times a small op itself; these 0-dim tensors hold the same values in the work dtype (the cast
    torch applies to a Python number), so every result is the same bit for bit.
    """

    dtype: torch.dtype
    device: torch.device
    layout: BandLayout
    multiplicity: torch.Tensor  # (H, W//2+1): m, 1 or 2
    squared_multiplicity: torch.Tensor  # (H, W//2+1): m^2
    pair_band: torch.Tensor  # int64 (2 * H * (W//2+1),): the band of each interleaved (re, im) value
    inner_counts: torch.Tensor  # (K-1,): full-plane positions in each profiled band 1 .. K-1
    epsilon: torch.Tensor  # 0-dim: SPECTRUM_EPSILON / scale
    scale: torch.Tensor  # 0-dim: scale
    squared_scale: torch.Tensor  # 0-dim: scale * scale
    one: torch.Tensor  # 0-dim: 1
    infinity: torch.Tensor  # 0-dim: inf


@lru_cache(maxsize=64)
def _constants(h: int, w: int, device: torch.device, dtype: torch.dtype, scale: float) -> _Constants:
    layout = band_layout(h, w, device, dtype)
    multiplicity = layout.multiplicity.view(h, -1)
    k_outer = layout.num_bands - 1

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=dtype, device=device)

    return _Constants(
        dtype=dtype,
        device=device,
        layout=layout,
        multiplicity=multiplicity,
        squared_multiplicity=multiplicity * multiplicity,
        pair_band=layout.band.repeat_interleave(2),
        inner_counts=layout.counts[1:k_outer].contiguous(),
        epsilon=scalar(SPECTRUM_EPSILON / scale),
        scale=scalar(scale),
        squared_scale=scalar(scale * scale),
        one=scalar(1.0),
        infinity=scalar(math.inf),
    )


def _weighted_amplitude(spectrum: torch.Tensor, constants: _Constants) -> torch.Tensor:
    """``m * |spectrum + epsilon|``, real (N, C, H, W//2+1), ``m`` the column multiplicity (H, W//2+1).

    Computed as ``sqrt(m**2 * ((re + epsilon)**2 + im**2))``: ``m`` is 1 or 2 and scaling by a power
    of 4 under a square root is exact, so this is ``m * |spectrum + epsilon|`` bit for bit, with the
    weighting folded into a pass that is needed anyway. Differentiable; see
    :func:`_amplitude_in_place` for the path without autograd.
    """
    parts = torch.view_as_real(spectrum)
    real = parts[..., 0] + constants.epsilon
    squared = torch.addcmul(real * real, parts[..., 1], parts[..., 1]) * constants.squared_multiplicity
    # sqrt's gradient at exactly 0 is inf, and inf * 0 = NaN; flooring the squared amplitude at
    # the tiniest float changes no value but keeps every gradient finite.
    return squared.clamp_min(torch.finfo(squared.dtype).tiny).sqrt()


def _amplitude_in_place(
    spectrum: torch.Tensor, constants: _Constants, buffer: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]:
    """:func:`_weighted_amplitude` and :func:`_ties` without autograd, in ``buffer``.

    Args:
        spectrum: complex (N, C, H, W//2+1).
        constants: the call's :class:`_Constants`.
        buffer: real (2, N, C, H, W//2+1), overwritten: the amplitude is ``buffer[0]``.

    Returns:
        ``(weighted, ties)``: ``m * |F + eps|`` with DC set to 0 (band 0 is neither profiled nor
        re-weighted), and what :func:`_ties` returns. The tie check reads the squared amplitude
        ``s = |F + eps|^2`` before it is weighted: the amplitudes compared are ``sqrt(s)``
        (``sqrt(m^2 s) / m`` exactly), and as sqrt is monotone the largest of them is the sqrt
        of the largest ``s``, so one reduction decides every channel exactly.
    """
    n, c, h, half = spectrum.shape
    # Contiguous operands: elementwise kernels are vectorised on contiguous operands only, and
    # the real and imaginary parts are interleaved (stride 2) in the complex spectrum.
    spectrum_real, spectrum_imag = torch.view_as_real(spectrum).unbind(-1)
    real, imag = buffer.unbind(0)
    torch.add(spectrum_real, constants.epsilon, out=real)
    imag.copy_(spectrum_imag)
    squared = real.square_().addcmul_(imag, imag)
    if h * half == 1:  # 1 x 1 images: DC alone
        return squared.sqrt_(), None
    flat = squared.view(n, c, h * half)
    dc_column = flat.select(-1, 0)
    dc = dc_column.sqrt()  # |F + eps| at DC (m = 1), a copy
    dc_column.zero_()  # s >= 0, so 0 is never above: one contiguous reduction
    elsewhere = flat.amax(-1).sqrt_()  # the largest |F + eps| elsewhere, (N, C)
    reaches = elsewhere >= dc
    weighted = squared.mul_(constants.squared_multiplicity).sqrt_()
    if not bool(reaches.any()):
        return weighted, None
    tied = reaches.any(1).nonzero().flatten()
    amplitude = weighted.index_select(0, tied).div_(constants.multiplicity)  # exact: m is 1 or 2
    peak = torch.maximum(dc, elsewhere).index_select(0, tied)[..., None, None]
    return weighted, (tied, amplitude, peak)


@dataclass
class _Ties:
    images: torch.Tensor  # int64 (S,): images where a non-DC position reaches the maximum amplitude
    mask: torch.Tensor  # bool (S, C, H, W//2+1): their maximum-amplitude positions (factor 1)


@dataclass
class _Spectral:
    spectrum: torch.Tensor  # complex (N, C, H, W//2+1), rfft2 of the input
    weights: torch.Tensor  # real (N * C, K+1): the factor applied to each band (1 where degenerate)
    degenerate: torch.Tensor  # bool (N, C): channels left unchanged
    any_degenerate: bool  # whether any channel is
    ties: _Ties | None  # None when no image has a tie (the usual case)
    buffer: torch.Tensor | None  # real (2, N, C, H, W//2+1), free for re-use (no autograd)


def _band_sums(values: torch.Tensor, constants: _Constants, rows: int) -> torch.Tensor:
    """Band sums (R, K+1) of half-plane values (N, C, H, W//2+1) already weighted by multiplicity.

    ``rows`` is R = N * C (known to the caller: asking a tensor its shape costs a call).
    """
    layout = constants.layout
    sums = torch.zeros(rows, layout.num_bands, dtype=constants.dtype, device=constants.device)
    return sums.index_add_(1, layout.band, values.view(rows, -1))


def _ties(
    weighted: torch.Tensor, multiplicity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The images where a non-DC position reaches the maximum amplitude of one of their channels.

    Args:
        weighted: real (N, C, H, W//2+1), ``m * |F + eps|`` (:func:`_weighted_amplitude`).
        multiplicity: (H, W//2+1), ``m`` (1 or 2).

    Returns:
        None if there is no such image, else ``(images, amplitude, peak)``: int64 (S,) image
        indices; their amplitude ``|F + eps|`` (S, C, H, W//2+1), differentiable (DC set to 0 on
        the path without autograd, :func:`_amplitude_in_place`: band 0 is neither profiled nor
        re-weighted); their per-channel maximum amplitude (S, C, 1, 1).
    """
    n, c, h, half = weighted.shape
    if h * half == 1:  # 1 x 1 images: DC alone
        return None
    amplitude = weighted / multiplicity  # exact: m is 1 or 2
    flat = amplitude.detach().view(n, c, h * half)
    dc = flat[..., 0]
    elsewhere = flat[..., 1:].amax(-1)
    tied = (elsewhere >= dc).any(1).nonzero().flatten()
    if not tied.numel():
        return None
    peak = torch.maximum(dc, elsewhere).index_select(0, tied)[..., None, None]
    return tied, amplitude.index_select(0, tied), peak


def _profile_weights(
    profile_values: torch.Tensor, constants: _Constants, degenerate: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 factors ``w = (ln p / sum ln p) / (p / sum p)`` of profiles (R, K-1), and the degenerate rows.

    A row is degenerate when a profile value is ``<= 1`` or a factor is not finite and positive.
    Given ``degenerate`` (the differentiable path), those rows get the flat stand-in profile ``e``
    instead: factor 1 and no NaN forward or backward.
    """
    if degenerate is not None:
        profile_values = torch.where(degenerate[:, None], math.e, profile_values)
        logs = profile_values.log()
        total = profile_values.sum(1, keepdim=True)
        return (logs / logs.sum(1, keepdim=True)) / (profile_values / total), degenerate
    # With every p[k] > 1, ln p > 0 and the factors are positive; they are finite exactly when
    # sum p is (else p / sum p is 0 and a factor inf). So a row is degenerate exactly when the
    # sum of its profile, with every value <= 1 (or NaN) replaced by inf, is inf (a sum of values
    # > 1 and +inf is never NaN nor -inf; isposinf is one op, isinf several).
    profile_values = torch.where(profile_values > constants.one, profile_values, constants.infinity)
    logs = profile_values.log()
    total = profile_values.sum(1, keepdim=True)
    weights = logs.div_(logs.sum(1, keepdim=True)).div_(profile_values.div_(total))
    return weights, total.view(-1).isposinf()


def _spectral_weights(
    x: torch.Tensor,
    strength: float,
    profile: str,
    constants: _Constants,
    check_finite: bool,
    differentiable: bool,
) -> _Spectral:
    """rfft2 of ``x`` and the per-band BaSS weights; see :func:`bass_weights` for the contract.

    ``check_finite``: raise InputError if ``x`` holds NaN or Inf. ``differentiable``: autograd
    records the call (``torch.is_grad_enabled() and x.requires_grad``); else it works in place.
    """
    n, c, h, w = x.shape
    layout = constants.layout
    in_place = not differentiable
    spectrum = _rfft2(x)
    multiplicity = constants.multiplicity
    # The published rule "every maximum-amplitude position is left out of the profile and keeps
    # factor 1". DC (band 0) is the maximum of any non-negative image and band 0 is neither
    # profiled nor re-weighted, so only images where another position reaches DC need work.
    if in_place:  # the amplitude and its temporaries live in one buffer, re-used afterwards
        buffer = torch.empty((2, n, c, h, w // 2 + 1), dtype=constants.dtype, device=constants.device)
        amplitude, found = _amplitude_in_place(spectrum, constants, buffer)
    else:
        buffer = None
        amplitude = _weighted_amplitude(spectrum, constants)
        found = _ties(amplitude, multiplicity)
    power = profile == "power"
    ties = None
    if found is not None:
        tie_images, tied, peak = found
        ties = _Ties(tie_images, tied.detach() == peak)
        tied = tied.masked_fill(ties.mask, 0.0)

    # Band sums of the full plane, from the half plane weighted by multiplicity: m |F| or m |F|^2.
    if power:  # m |F|^2 = (m |F|)^2 / m, exact
        amplitude = amplitude.square_().div_(multiplicity) if in_place else amplitude.square() / multiplicity
    sums = _band_sums(amplitude, constants, n * c)
    if ties is not None:  # their profiles leave the maximum-amplitude positions out
        tied = tied * tied * multiplicity if power else tied * multiplicity
        sums = sums.view(n, c, -1).index_copy(
            0, ties.images, _band_sums(tied, constants, tie_images.shape[0] * c).view(-1, c, sums.shape[-1])
        )
        sums = sums.view(n * c, -1)

    k_outer = layout.num_bands - 1
    # The profile p[k] of bands 1 .. K-1 on the 0..255 scale, (N*C, K-1): band means of |F|
    # (published) or band sums of |F|^2 (Eq. 1's AI, profile="power").
    inner = sums.narrow(1, 1, max(k_outer - 1, 0))
    if power:
        profile_values = inner * constants.squared_scale
    else:
        profile_values = torch.div(inner, constants.inner_counts).mul_(constants.scale)

    weights, degenerate = _profile_weights(profile_values if in_place else profile_values.detach(), constants)
    if k_outer < 2:  # no band to re-weight (images of 3 x 3 pixels or fewer)
        degenerate = torch.ones_like(degenerate)
    any_degenerate = bool(degenerate.any())
    if check_finite and any_degenerate:  # NaN or Inf spreads over its channel's spectrum
        suspects = degenerate.nonzero().flatten()
        if not bool(torch.isfinite(x.view(n * c, -1).index_select(0, suspects)).all()):
            raise InputError("The BaSS input tensor contains NaN or infinite values.")
    if not in_place:
        # Differentiable: degenerate channels get a flat stand-in profile, so that no NaN reaches
        # the forward or the backward pass; their factor is then set to exactly 1.
        weights, _ = _profile_weights(profile_values, constants, degenerate)
    # Power: the spectrum is multiplied by sqrt(w), so that w multiplies the band's power.
    exponent = strength / 2.0 if power else strength
    profiled = k_outer >= 2  # bands 1 .. K-1 are not empty
    if exponent != 1.0 and profiled:
        weights = _pow(weights, exponent)
    # Bands 0 and K, and every band of a degenerate channel, keep factor 1.
    if in_place:
        full = torch.ones(n * c, layout.num_bands, dtype=constants.dtype, device=constants.device)
        if profiled:
            full.narrow(1, 1, k_outer - 1).copy_(weights)
        if any_degenerate:
            full.masked_fill_(degenerate[:, None], 1.0)
    else:
        full = torch.nn.functional.pad(weights, (1, layout.num_bands - 1 - weights.shape[1]), value=1.0)
        full = full.masked_fill(degenerate[:, None], 1.0)
    return _Spectral(spectrum, full, degenerate.view(n, c), any_degenerate, ties, buffer)


def _prepare(x: torch.Tensor, strength: float, profile: str, scale: float) -> torch.Tensor:
    """Validate the options and the shape and dtype of ``x``; return it contiguous, in float32/64.

    Whether ``x`` is finite is checked once its channels are known regular or degenerate (NaN
    and Inf make a channel degenerate), so that regular input costs no pass for it.
    """
    check_strength(strength)
    check_profile(profile)
    check_number(scale, "The BaSS intensity scale", minimum=0, open_min=True)
    check_float_images(x, "BaSS input", finite=False)  # finiteness: with the degenerate channels
    if not _is_work_dtype(x.dtype):
        x = x.to(torch.float32)
    # Contiguous: MKL transforms other layouts (channels-last) with batch-dependent rounding.
    return x.contiguous()


def _is_work_dtype(dtype: torch.dtype) -> bool:
    """Whether BaSS computes in ``dtype`` itself (float32, float64) rather than in float32."""
    return dtype is torch.float32 or dtype is torch.float64


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
    constants = _constants(x.shape[-2], x.shape[-1], x.device, x.dtype, float(scale))
    differentiable = torch.is_grad_enabled() and x.requires_grad
    spectral = _spectral_weights(x, float(strength), profile, constants, True, differentiable)
    return spectral.weights.view(*x.shape[:2], -1), spectral.degenerate


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
    step = n
    if n > 1 and x.is_cpu:
        step = chunk_length(n, x.nbytes // n)
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
    if not _is_work_dtype(original_dtype):
        out = out.to(original_dtype)
    return out, (degenerate if per_channel else degenerate.any(1))


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
    constants = _constants(h, w, x.device, x.dtype, scale)
    differentiable = torch.is_grad_enabled() and x.requires_grad
    spectral = _spectral_weights(x, strength, profile, constants, check_finite, differentiable)
    spectrum = spectral.spectrum
    weights = spectral.weights
    ties = spectral.ties
    tied = None if ties is None else spectrum.index_select(0, ties.images)
    if differentiable:
        weighted = spectrum * weights.index_select(1, constants.layout.band).view(spectrum.shape)
    else:  # nothing to differentiate: re-use the spectrum's memory
        # One contiguous real multiply of the interleaved (re, im) pairs, each weight taken twice:
        # the same products as complex * real, without casting the weight map to complex. The
        # weight map goes to the amplitude's buffer, free by now.
        pairs = torch.index_select(weights, 1, constants.pair_band, out=spectral.buffer.view(n * c, -1))
        torch.view_as_real(spectrum).view(n * c, -1).mul_(pairs)
        weighted = spectrum
    if ties is not None:  # maximum-amplitude positions keep factor 1
        patched = torch.where(ties.mask, tied, weighted.index_select(0, ties.images))
        weighted.index_copy_(0, ties.images, patched)
    # clamp keeps Python bounds: with tensor bounds it takes a general kernel, ~30x slower on a CPU.
    if differentiable:
        result = _irfft2(weighted, (h, w)).clamp(0.0, 255.0 / scale)
    else:
        result = _irfft2(weighted, (h, w), out).clamp_(0.0, 255.0 / scale)
    if spectral.any_degenerate:  # degenerate channels are returned exactly as they came in
        unchanged = spectral.degenerate.nonzero(as_tuple=True)  # (image, channel) indices
        result.index_put_(unchanged, x[unchanged])
    return result, spectral.degenerate
