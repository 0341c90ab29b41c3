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

from freqtail.lazy_exports import keep_exports, lazy_attributes

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "AUTOATTACK_VERSIONS": "auto_attack",
    "AutoAttackWarning": "auto_attack",
    "autoattack": "auto_attack",
    "BAND_ITERATION": "band",
    "BANDS": "band",
    "BandPGDConfig": "band",
    "band_pgd": "band",
    "band_projection": "band",
    "AttackResult": "common",
    "linf_distance": "common",
    "margin_loss": "common",
    "check_eps": "eps",
    "parse_eps": "eps",
    "MaskingReport": "masking",
    "gradient_masking_check": "masking",
    "LOSSES": "pgd",
    "PGDConfig": "pgd",
    "pgd": "pgd",
    "robust_accuracy": "pgd",
}

__all__ = sorted(_EXPORTS)

keep_exports(__name__, ("pgd",))  # the functions, not their submodules of the same name


# Lazy (PEP 562): the command line checks budgets (freqtail.attacks.eps) and takes the masking
# check's defaults (freqtail.attacks.masking_verdicts) before torch is imported, and importing either
# runs this package first.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
