"""The three threat models by name (:class:`ThreatModel`), which of them apply to a model's training
(:func:`applicable_threat_models`), and the parsing of a ``--threat-model`` choice
(:func:`check_threat_model_choice`); the model and data each one uses is
:mod:`freqtail.evaluate.threat_models`, whose docstring defines them.

Nothing here imports torch: the command line checks ``--threat-model`` with it before the library
loads (docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

from enum import Enum

from freqtail.errors import ConfigError


class ThreatModel(str, Enum):
    """The three threat models, in report order (see the module docstring)."""

    STANDARD = "standard"
    DOMAIN = "domain"
    END_TO_END = "end-to-end"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def description(self) -> str:
        """One line for tables and results.json."""
        return DESCRIPTIONS[self]

    @classmethod
    def parse(cls, text: str | ThreatModel) -> ThreatModel:
        """A threat model from its name; ``end2end``, ``e2e`` and ``_`` for ``-`` are accepted.

        Raises:
            ConfigError: not a threat model name (the sentence lists them).
        """
        if isinstance(text, cls):
            return text
        key = str(text).strip().lower().replace("_", "-")
        key = {"end2end": "end-to-end", "endtoend": "end-to-end", "e2e": "end-to-end"}.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise ConfigError(
                f"Unknown threat model {text!r}; choose one of {', '.join(m.value for m in cls)}."
            ) from None


STANDARD = ThreatModel.STANDARD
DOMAIN = ThreatModel.DOMAIN
END_TO_END = ThreatModel.END_TO_END
#: Every threat model, in report order.
THREAT_MODELS: tuple[ThreatModel, ...] = tuple(ThreatModel)
#: What ``--threat-model`` accepts besides the names: "auto" (all that apply) and "both".
THREAT_MODEL_CHOICES: tuple[str, ...] = ("auto", "both", *(m.value for m in ThreatModel))

DESCRIPTIONS: dict[ThreatModel, str] = {
    STANDARD: "raw test images, the model as trained (no BaSS front); eps on raw pixels",
    DOMAIN: "BaSS-converted test set (offline, uint8), model without the BaSS front; "
    "eps on BaSS images (the paper's protocol)",
    END_TO_END: "raw test images, differentiable BaSS front (straight-through uint8 rounding) inside "
    "the model; eps on raw pixels",
}


def trained_with_bass(bass_mode: str | None, has_front: bool = False) -> bool:
    """True for a model that sees BaSS images at test time: trained with ``bass="dataset"`` or a front."""
    return bass_mode == "dataset" or bool(has_front)


def applicable_threat_models(bass_mode: str | None, has_front: bool = False) -> tuple[ThreatModel, ...]:
    """The threat models that apply to a model trained with data mode ``bass_mode``.

    Args:
        bass_mode: the training data's BaSS mode: None, ``"augment"`` or ``"dataset"``.
        has_front: the model's spec has a BaSS front (it was trained with BaSS inside the model).

    Returns:
        ``("domain", "end-to-end")`` for BaSS models, ``("standard",)`` otherwise.
    """
    if bass_mode not in (None, "none", "augment", "dataset"):
        raise ConfigError(f"Unknown BaSS training mode {bass_mode!r}; use None, 'augment' or 'dataset'.")
    return (DOMAIN, END_TO_END) if trained_with_bass(bass_mode, has_front) else (STANDARD,)


def check_threat_model_choice(requested: str | ThreatModel | None) -> str:
    """A ``--threat-model`` choice in its one spelling: ``"auto"``, ``"both"`` or a threat model's name.

    ``None`` means ``"auto"``; names are parsed as :meth:`ThreatModel.parse` does (``e2e`` = ``end-to-end``).

    Raises:
        ConfigError: an unknown choice (one sentence listing :data:`THREAT_MODEL_CHOICES`).
    """
    choice = "auto" if requested is None else str(requested).strip().lower()
    if choice in ("auto", "both"):
        return choice
    try:
        return ThreatModel.parse(choice).value
    except ConfigError:
        raise ConfigError(
            f"Unknown threat model {requested!r}; choose one of {', '.join(THREAT_MODEL_CHOICES)}."
        ) from None
