"""Evaluation suites: names, the attack each one runs, and the default budgets.

==============  =====================================================================================
suite           what is measured
==============  =====================================================================================
``clean``       accuracy on the (threat model's) test images
``pgd20``       PGD-20, cross-entropy, L-inf eps (8/255, step 2/255 on CIFAR-size images)
``pgd20-lfc``   PGD-20 with the perturbation projected onto the bands below the boundary b at every step
``pgd20-hfc``   the same onto the bands at or above b (b: the 80/20 boundary of the evaluated images)
``cw``          PGD-20 on the CW margin loss, same budget
``aa``          AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square) — "autoattack-standard"
``aa-fast``     APGD-CE + APGD-T only, always labelled "autoattack-fast" (not AutoAttack)
``corruptions`` accuracy per corruption and severity on a ``-C`` set; Noise / Blur / Weather / Digital
                means and the overall mean
==============  =====================================================================================

Names are case-insensitive and ``_`` reads as ``-``. Accepted aliases (:data:`SUITE_ALIASES`):
``pgd-20`` = ``pgd20``, ``pgd-20-lfc`` = ``pgd20-lfc``, ``pgd-20-hfc`` = ``pgd20-hfc``,
``autoattack`` = ``aa``, ``aafast`` = ``aa-fast``. A bare ``pgd`` is refused: it does not say how many
steps.

The band suites (:data:`BAND_SUITES`; :mod:`freqtail.attacks.band`, docs/design.md "Robustness by
frequency band") split at the boundary band ``b`` of each threat model's evaluated test images (the
BaSS-converted ones for ``domain``): their 80/20 boundary over the corner bands
(:func:`freqtail.spectrum.summarize`), unless ``b`` is given (``--band-boundary``). Their records are
labelled ``pgd-20-ce-lfc`` / ``pgd-20-ce-hfc`` with the variant ``eps=8/255,band<b`` /
``eps=8/255,band>=b`` (:func:`band_variant`).

Every suite is one :class:`SuiteSpec` of :data:`SUITE_SPECS` (its metric name, the attack
configuration it builds from the budget, its record-id variant); the runner dispatches on that
table, never on the suite's name.

Budgets (paper §4.3): eps 8/255 with step 2/255 for CIFAR-size images; 4/255 with step 1/255 for
ImageNet-size images (the smaller image side at least :data:`freqtail.evaluate.budgets.IMAGENET_SIZE`;
:mod:`freqtail.evaluate.budgets`). A run whose config names its training budget is evaluated at that
budget unless ``--eps`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from freqtail.attacks import AUTOATTACK_VERSIONS, BandPGDConfig, PGDConfig
from freqtail.attacks.auto_attack import MAX_TARGET_CLASSES
from freqtail.attacks.band import band_label
from freqtail.errors import ConfigError
from freqtail.evaluate.budgets import Budget

#: Steps of the PGD suites.
PGD_STEPS = 20


@dataclass(frozen=True)
class AutoAttackSuiteConfig:
    """What an AutoAttack suite runs: the version (``standard`` / ``fast``) at the budget's eps.

    :meth:`to_dict` is what its records state in ``settings`` (besides the budget and seed).
    """

    version: str
    eps: float
    num_classes: int

    @property
    def name(self) -> str:
        return f"autoattack-{self.version}"

    def to_dict(self) -> dict[str, Any]:
        try:
            package = f"pyautoattack {package_version('pyautoattack')}"
        except PackageNotFoundError:  # pragma: no cover - the package is a dependency
            package = "pyautoattack (version unknown)"
        return {
            "attack": "autoattack",
            "name": self.name,
            "version": self.version,
            "attacks": list(AUTOATTACK_VERSIONS[self.version]),
            "package": package,
            "target_classes": min(MAX_TARGET_CLASSES, self.num_classes - 1),
        }


#: What a suite's attack is configured by (None: no attack).
AttackConfig = PGDConfig | BandPGDConfig | AutoAttackSuiteConfig | None


def _no_attack(spec: SuiteSpec, budget: Budget, boundary_band: int | None, num_classes: int) -> None:
    return None


def _pgd(spec: SuiteSpec, budget: Budget, boundary_band: int | None, num_classes: int) -> PGDConfig:
    return PGDConfig(eps=budget.eps, step_size=budget.step_size, steps=PGD_STEPS, loss=spec.loss)


def _band_pgd(spec: SuiteSpec, budget: Budget, boundary_band: int | None, num_classes: int) -> BandPGDConfig:
    if boundary_band is None:
        raise ConfigError(f"The band suite {spec.name} needs a boundary band; none was measured or given.")
    return BandPGDConfig(
        band=spec.band,
        boundary_band=boundary_band,
        eps=budget.eps,
        step_size=budget.step_size,
        steps=PGD_STEPS,
        loss=spec.loss,
    )


def _autoattack(
    spec: SuiteSpec, budget: Budget, boundary_band: int | None, num_classes: int
) -> AutoAttackSuiteConfig:
    return AutoAttackSuiteConfig(spec.autoattack_version, budget.eps, num_classes)


@dataclass(frozen=True)
class SuiteSpec:
    """One suite: the name of its number, the attack it builds and how its record id is varied.

    Attributes:
        name: the suite (:data:`SUITES`).
        metric: the name its number is reported under (record ids, tables).
        build: ``build(spec, budget, boundary_band, num_classes) -> config`` (:data:`AttackConfig`).
        robust: it attacks the model (its records carry a gradient-masking verdict).
        loss: the PGD loss (``ce`` / ``cw``) of the PGD suites.
        band: ``lfc`` / ``hfc`` for the band suites (they split at a boundary band), else None.
        autoattack_version: ``standard`` / ``fast`` for the AutoAttack suites.
    """

    name: str
    metric: str
    build: Callable[[SuiteSpec, Budget, int | None, int], AttackConfig] = _no_attack
    robust: bool = False
    loss: str = "ce"
    band: str | None = None
    autoattack_version: str | None = None

    def config(self, budget: Budget, boundary_band: int | None = None, num_classes: int = 10) -> AttackConfig:
        """The configuration of what this suite runs at ``budget`` (None for no attack)."""
        return self.build(self, budget, boundary_band, num_classes)

    def variant(self, eps_text: str, boundary_band: int | None = None) -> str:
        """The record-id variant: ``""`` without an attack, ``eps=8/255``, or for a band suite
        ``eps=8/255,band<7`` / ``eps=8/255,band>=7``."""
        if not self.robust:
            return ""
        if self.band is not None:
            return f"eps={eps_text},{band_label(self.band, boundary_band)}"
        return f"eps={eps_text}"


#: Suite name -> its :class:`SuiteSpec` (the one table the runner dispatches on).
SUITE_SPECS: dict[str, SuiteSpec] = {
    spec.name: spec
    for spec in (
        SuiteSpec("clean", "clean"),
        SuiteSpec("pgd20", f"pgd-{PGD_STEPS}-ce", _pgd, robust=True, loss="ce"),
        SuiteSpec("pgd20-lfc", f"pgd-{PGD_STEPS}-ce-lfc", _band_pgd, robust=True, loss="ce", band="lfc"),
        SuiteSpec("pgd20-hfc", f"pgd-{PGD_STEPS}-ce-hfc", _band_pgd, robust=True, loss="ce", band="hfc"),
        SuiteSpec("cw", f"pgd-{PGD_STEPS}-cw", _pgd, robust=True, loss="cw"),
        SuiteSpec("aa", "autoattack-standard", _autoattack, robust=True, autoattack_version="standard"),
        SuiteSpec("aa-fast", "autoattack-fast", _autoattack, robust=True, autoattack_version="fast"),
        SuiteSpec("corruptions", "corruptions"),
    )
}
#: Suites that attack the model (they get a gradient-masking check).
ROBUST_SUITES: tuple[str, ...] = tuple(name for name, spec in SUITE_SPECS.items() if spec.robust)
#: The band-restricted PGD suites and the band each one perturbs.
BAND_SUITES: dict[str, str] = {name: spec.band for name, spec in SUITE_SPECS.items() if spec.band}


def pgd_config(suite: str, budget: Budget) -> PGDConfig:
    """The :class:`~freqtail.attacks.PGDConfig` of a PGD suite (``pgd20`` or ``cw``)."""
    spec = SUITE_SPECS.get(suite)
    if spec is None or spec.build is not _pgd:
        raise ConfigError(f"Suite {suite!r} is not a PGD suite; PGD suites are pgd20 and cw.")
    return spec.config(budget)


def band_pgd_config(suite: str, budget: Budget, boundary_band: int) -> BandPGDConfig:
    """The :class:`~freqtail.attacks.BandPGDConfig` of a band suite (``pgd20-lfc`` or ``pgd20-hfc``):
    PGD-20, cross-entropy, the budget's eps and step, split at ``boundary_band``."""
    if suite not in BAND_SUITES:
        raise ConfigError(f"Suite {suite!r} is not a band suite; band suites are {', '.join(BAND_SUITES)}.")
    return SUITE_SPECS[suite].config(budget, boundary_band)


def band_variant(eps_text: str, suite: str, boundary_band: int) -> str:
    """The record-id variant of a band suite: ``eps=8/255,band<7`` or ``eps=8/255,band>=7``.

    Args:
        eps_text: the budget as ids write it (:func:`freqtail.evaluate.results.eps_label`), e.g. ``8/255``.
        suite: ``pgd20-lfc`` or ``pgd20-hfc``.
        boundary_band: the boundary band b.
    """
    return SUITE_SPECS[suite].variant(eps_text, boundary_band)


def metric_name(suite: str) -> str:
    """The name a suite's number is reported under (the attack's own name for the attacks).

    ``clean``, ``pgd-20-ce``, ``pgd-20-ce-lfc``, ``pgd-20-ce-hfc``, ``pgd-20-cw``,
    ``autoattack-standard``, ``autoattack-fast``, ``corruptions``.
    """
    return SUITE_SPECS[suite].metric
