"""Adversarial attacks for honest robustness evaluation (docs/design.md, "Threat models").

* :func:`pgd` / :class:`PGDConfig` — L-inf PGD with cross-entropy or CW-margin loss, restarts, seeds;
* :func:`band_pgd` / :class:`BandPGDConfig` — the same PGD with its perturbation projected onto the
  bands below (``lfc``) or at or above (``hfc``) a boundary band at every step (:func:`band_projection`);
* :func:`robust_accuracy` — ``(correct, total)`` under any attack over tensors or a DataLoader;
* :func:`autoattack` — AutoAttack through ``pyautoattack==0.2.0`` ("autoattack-standard" or the
  clearly labelled "autoattack-fast"), resumable, with the package's sanity checks kept visible;
* :func:`gradient_masking_check` — PGD versus the gradient-free Square attack, a large-eps probe
  and a zero-gradient probe, reported in words;
* :func:`check_eps` / :func:`parse_eps` — budgets on the [0, 1] scale ("8/255"; 8 is refused).

All attacks take float (N, C, H, W) images in [0, 1] and a model that maps them to logits, already
in eval mode. For the end-to-end threat model, put the differentiable BaSS front inside the model
(``FreqtailModel(..., front=bass_front())``): eps is then measured on the raw pixels.
"""

from __future__ import annotations

from freqtail.attacks.auto_attack import AUTOATTACK_VERSIONS, AutoAttackWarning, autoattack
from freqtail.attacks.band import BAND_ITERATION, BANDS, BandPGDConfig, band_pgd, band_projection
from freqtail.attacks.common import AttackResult, linf_distance, margin_loss
from freqtail.attacks.eps import check_eps, parse_eps
from freqtail.attacks.masking import MaskingReport, gradient_masking_check
from freqtail.attacks.pgd import LOSSES, PGDConfig, pgd, robust_accuracy

__all__ = [
    "AUTOATTACK_VERSIONS",
    "BANDS",
    "BAND_ITERATION",
    "LOSSES",
    "AttackResult",
    "AutoAttackWarning",
    "BandPGDConfig",
    "MaskingReport",
    "PGDConfig",
    "autoattack",
    "band_pgd",
    "band_projection",
    "check_eps",
    "gradient_masking_check",
    "linf_distance",
    "margin_loss",
    "parse_eps",
    "pgd",
    "robust_accuracy",
]
