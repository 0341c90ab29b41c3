"""PGD with perturbations restricted to a frequency band (docs/design.md, "Robustness by frequency band").

The paper argues that models are vulnerable through their high-frequency components; this attack
measures it directly. ``P_B`` is the hard FFT mask of :mod:`freqtail.spectrum` applied to each
channel of a perturbation: ``band="lfc"`` keeps the bands ``< b``, ``band="hfc"`` the bands ``>= b``
(:func:`freqtail.spectrum.low_pass` / :func:`~freqtail.spectrum.high_pass`; ``b`` usually the 80/20
boundary of the attacked images). With clean images ``x``, budget ``eps`` and step ``alpha``, per image:

    u ~ U[-eps, eps]^(C x H x W)                                    (u = 0 without a random start)
    delta_0     = clip(x + clamp(P_B(u), -eps, eps), 0, 1) - x
    delta_{t+1} = clip(x + clamp(P_B(delta_t + alpha * sign(g_t)), -eps, eps), 0, 1) - x,
                  g_t = grad_x loss(model(x + delta_t), y)

that is: signed-gradient step, projection of the whole perturbation onto the band, then onto the
L-inf ball, then into [0, 1]. The code computes ``clamp(x + P_B(delta + alpha * sign(g)),
max(x - eps, 0), min(x + eps, 1))``, the same point (per pixel, the ball and [0, 1] are intervals
that intersect). The returned example follows :func:`freqtail.attacks.pgd`'s rule (the first
misclassified iterate, else the one with the highest loss; later restarts attack only the images
not yet fooled).

The band projection comes first, so the perturbation that is returned lies in the band except for
what the last two clamps cut off: ``delta = p + (delta - p)`` with ``p = P_B(...)`` in the band, so
the out-of-band energy ``||P_out(delta)||^2 <= ||delta - p||^2`` (Parseval; ``P_out`` is an
orthogonal projection). When no clamp binds (images far from 0 and 1, a budget the projected steps
never reach), ``delta`` lies in the band up to float error.

Limits: ``P_B`` is the identity (no FFT) when the band holds every band (``hfc`` with ``b = 0``,
``lfc`` with ``b = K + 1``), so those attacks are plain PGD, bit for bit; it is zero when the band is
empty (``lfc`` with ``b = 0``, ``hfc`` with ``b = K + 1``), so those attacks return the clean images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from freqtail.attacks.common import (
    Classifier,
    check_attack_inputs,
    require_autograd,
    warn_if_training,
)
from freqtail.attacks.eps import check_eps
from freqtail.attacks.pgd import _check_schedule, _PGDSettings, check_drop_fooled, run_pgd
from freqtail.checks import check_choice, check_int
from freqtail.spectrum import high_pass, low_pass, num_bands

#: The two bands: "lfc" keeps the bands below the boundary b, "hfc" the bands at or above it.
BANDS: dict[str, str] = {"lfc": "bands < b", "hfc": "bands >= b"}
#: The exact iteration, as records store it (``settings["iteration"]``).
BAND_ITERATION = (
    "delta <- clip(x + clamp(P_band(delta + step * sign(grad)), -eps, eps), 0, 1) - x; "
    "random start delta = clip(x + clamp(P_band(U[-eps, eps]), -eps, eps), 0, 1) - x; "
    "P_band = hard FFT mask per channel (freqtail.spectrum.low_pass / high_pass)"
)


def check_band(band: str) -> str:
    """``"lfc"`` or ``"hfc"``, else one sentence naming both."""
    return check_choice(band, BANDS, "The frequency band")


def check_boundary(boundary_band: Any, image_size: tuple[int, int]) -> int:
    """The boundary band ``b`` as an int, checked against ``0 .. K + 1`` for H x W images.

    Raises:
        InputError: not an integer, or outside ``0 .. K + 1`` (``K + 1 = num_bands(H, W)``).
    """
    h, w = image_size
    return check_int(
        boundary_band, f"The band boundary for {h}x{w} images", minimum=0, maximum=num_bands(h, w)
    )


def band_label(band: str, boundary_band: int) -> str:
    """``band<7`` / ``band>=7``: the band in record ids and tables."""
    return f"band<{boundary_band}" if check_band(band) == "lfc" else f"band>={boundary_band}"


def keeps_every_band(band: str, boundary_band: int, image_size: tuple[int, int]) -> bool:
    """True when the band holds every band (P_B is the identity): hfc at b = 0, lfc at b = K + 1."""
    return boundary_band == 0 if band == "hfc" else boundary_band >= num_bands(*image_size)


def keeps_no_band(band: str, boundary_band: int, image_size: tuple[int, int]) -> bool:
    """True when the band is empty (P_B is zero): lfc at b = 0, hfc at b = K + 1."""
    return boundary_band == 0 if band == "lfc" else boundary_band >= num_bands(*image_size)


def band_projection(delta: torch.Tensor, boundary_band: int, band: str) -> torch.Tensor:
    """``P_B(delta)``: the part of each channel's spectrum in the band, back in pixel space.

    Args:
        delta: float (..., H, W) perturbations (any sign; (N, C, H, W) for a batch).
        boundary_band: ``b`` in ``0 .. K + 1``.
        band: ``"lfc"`` (bands ``< b``) or ``"hfc"`` (bands ``>= b``).

    Returns:
        float tensor shaped and typed like ``delta``: ``delta`` itself when the band holds every band,
        zeros when it holds none, else the inverse FFT of the hard-masked spectrum (the same masks as
        :func:`freqtail.spectrum.split_frequencies`, so ``P_lfc + P_hfc`` is the identity).
    """
    band = check_band(band)
    size = tuple(delta.shape[-2:])
    boundary_band = check_boundary(boundary_band, size)
    if keeps_every_band(band, boundary_band, size):
        return delta
    if keeps_no_band(band, boundary_band, size):
        return torch.zeros_like(delta)
    return (low_pass if band == "lfc" else high_pass)(delta, boundary_band)


def band_pgd(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    boundary_band: int,
    band: str,
    loss: str = "ce",
    random_start: bool = True,
    restarts: int = 1,
    generator: torch.Generator | int | None = None,
    drop_fooled: bool = True,
) -> torch.Tensor:
    """L-inf PGD whose perturbation is projected onto a frequency band at every step (module docstring).

    Args:
        model: float (N, C, H, W) in [0, 1] -> logits (N, K); in eval mode (the caller's job).
        x: float (N, C, H, W) clean images in [0, 1]; y: integer (N,) labels.
        eps, step_size: L-inf budget and step on the [0, 1] scale (8/255 and 2/255 on CIFAR).
        steps: number of steps (20 for PGD-20); 0 = the (projected) random start alone.
        boundary_band: ``b`` in ``0 .. K + 1`` for the images' H x W.
        band: ``"lfc"`` (perturb only bands ``< b``) or ``"hfc"`` (only bands ``>= b``).
        loss, random_start, restarts, generator: as :func:`freqtail.attacks.pgd`; the same seed
            draws the same ``u`` as plain PGD does.
        drop_fooled: as :func:`freqtail.attacks.pgd` (fooled images leave the batch; the projection
            is per image).

    Returns:
        float (N, C, H, W) on ``x``'s device and dtype, inside ``[x - eps, x + eps] ∩ [0, 1]``, each
        ``x_adv - x`` in the band up to what the clamps cut (module docstring).

    Raises:
        InputError: a bad budget, band, boundary or input (one sentence).

    Example:
        >>> x_adv = band_pgd(model.eval(), x, y, eps=8 / 255, step_size=2 / 255, steps=20,
        ...                  boundary_band=7, band="hfc", generator=0)
    """
    eps = check_eps(eps)
    step_size = check_eps(step_size, "step size")
    loss_fn = _check_schedule(steps, restarts, loss)
    check_drop_fooled(drop_fooled)
    band = check_band(band)
    x, y = check_attack_inputs(x, y)
    size = tuple(x.shape[-2:])
    boundary_band = check_boundary(boundary_band, size)
    if eps == 0 or keeps_no_band(band, boundary_band, size):
        return x.clone()
    require_autograd("Band-restricted PGD")
    warn_if_training(model, "Band-restricted PGD")
    project = None
    if not keeps_every_band(band, boundary_band, size):

        def project(point: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
            return start + band_projection(point - start, boundary_band, band)

    return run_pgd(
        model,
        x,
        y,
        eps=eps,
        step_size=step_size,
        steps=steps,
        loss_fn=loss_fn,
        random_start=random_start,
        restarts=restarts,
        generator=generator,
        project=project,
        drop_fooled=drop_fooled,
    )


@dataclass(frozen=True)
class BandPGDConfig(_PGDSettings):
    """Exact settings of a band-restricted PGD, recorded next to its numbers (``to_dict()``).

    ``band`` (``"lfc"`` / ``"hfc"``) and ``boundary_band`` are required; the rest defaults to PGD-20 at
    the paper's CIFAR budget (eps 8/255, step 2/255, CE, one restart).

    Example:
        >>> config = BandPGDConfig(band="hfc", boundary_band=7)
        >>> config.name, config.bands
        ('pgd-20-ce-hfc', 'band>=7')
        >>> x_adv = config(model, x, y, generator=0)
    """

    band: str
    boundary_band: int
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 20
    loss: str = "ce"
    restarts: int = 1
    random_start: bool = True

    def __post_init__(self) -> None:
        check_band(self.band)
        object.__setattr__(
            self, "boundary_band", check_int(self.boundary_band, "The band boundary", minimum=0)
        )
        self._check_pgd_fields()

    @property
    def name(self) -> str:
        """``pgd-<steps>-<loss>[-r<restarts>]-<band>``, e.g. ``pgd-20-ce-lfc``."""
        return f"{self._pgd_name}-{self.band}"

    @property
    def bands(self) -> str:
        """The band as record ids show it: ``band<7`` or ``band>=7``."""
        return band_label(self.band, self.boundary_band)

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON-ready values: the PGD keys, the band and the exact iteration."""
        return {
            "attack": "pgd",
            "name": self.name,
            "norm": "Linf",
            **asdict(self),
            "bands": self.bands,
            "iteration": BAND_ITERATION,
            "eps_255": round(self.eps * 255, 4),
            "step_size_255": round(self.step_size * 255, 4),
        }

    def __call__(
        self,
        model: Classifier,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | int | None = None,
    ) -> torch.Tensor:
        """:func:`band_pgd` with these settings."""
        return band_pgd(model, x, y, generator=generator, **asdict(self))
