"""Threat models: which model and which test data each robustness number is measured on.

docs/design.md, "Threat models". Every result freqtail writes carries one of these names:

* ``standard`` — a model trained without BaSS, or with BaSS only as training augmentation
  (``bass="augment"``, or AugMix with a BaSS branch): raw test images, the model as trained (no
  BaSS front), the attacker perturbs raw pixels. Such a model is deployed on raw images, so this is
  its only threat model.
* ``domain`` — the paper's protocol for a model trained on the BaSS-converted dataset
  (``bass="dataset"``): the test set converted offline with BaSS (uint8, cached), the model without
  a front, the attacker perturbs BaSS images and eps is measured on them.
* ``end-to-end`` — the same model as it would be deployed: the differentiable BaSS front
  (``BaSSModule(round_mode="straight-through")``) inside the model, raw test images, the attacker
  perturbs raw pixels with eps measured on them; gradients flow through BaSS and through the uint8
  rounding (identity, straight-through).

A model whose spec already has a BaSS front (trained end-to-end with BaSS inside) is a BaSS model
too: both ``domain`` and ``end-to-end`` apply.

:class:`ThreatModel` is a ``str`` enum: its members compare equal to their names ("domain") and
serialise as them, so records and JSON files hold plain strings. User text is parsed once, by
:meth:`ThreatModel.parse` (one name) or :func:`resolve_threat_models` (a ``--threat-model`` choice).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from freqtail.errors import ConfigError
from freqtail.evaluate.threat_model_names import (
    DESCRIPTIONS,
    DOMAIN,
    END_TO_END,
    STANDARD,
    ThreatModel,
    applicable_threat_models,
    check_threat_model_choice,
)
from freqtail.models import FreqtailModel, bass_front


def _training_words(bass_mode: str | None) -> str:
    if bass_mode == "augment":
        return "with BaSS only as training augmentation (bass=augment) and is deployed on raw images"
    return "without BaSS"


def resolve_threat_models(
    requested: str | None, bass_mode: str | None, has_front: bool = False
) -> list[ThreatModel]:
    """Turn a ``--threat-model`` choice into the list of threat models to evaluate.

    Args:
        requested: ``None``/``"auto"`` (every applicable one), ``"both"`` (domain and end-to-end),
            or one name of :data:`THREAT_MODELS`.
        bass_mode, has_front: how the model was trained (see :func:`applicable_threat_models`).

    Raises:
        ConfigError: an unknown name, or one that does not apply to this model (one sentence that
            says why and what applies).
    """
    applicable = applicable_threat_models(bass_mode, has_front)
    choice = check_threat_model_choice(requested)
    if choice == "auto":
        return list(applicable)
    wanted = [DOMAIN, END_TO_END] if choice == "both" else [ThreatModel(choice)]
    for name in wanted:
        if name in applicable:
            continue
        if name == STANDARD:
            raise ConfigError(
                "The standard threat model does not apply to a model trained on BaSS data "
                "(bass=dataset): it never sees raw images; use domain, end-to-end or both."
            )
        raise ConfigError(
            f"The {name} threat model applies only to models trained on BaSS data (bass=dataset); "
            f"this model was trained {_training_words(bass_mode)}, so its only threat model is standard."
        )
    return wanted


@dataclass
class ThreatModelSetup:
    """The model and test data one threat model uses.

    Attributes:
        name: the threat model (:data:`THREAT_MODELS`).
        model: the classifier to evaluate, in eval mode (shares the weights of the loaded model).
        data_bass: ``None`` (raw test images) or ``"dataset"`` (the BaSS-converted test set).
        front: ``None`` or a description of the BaSS front inside ``model``.
        description: one line for tables and results.json.
    """

    name: ThreatModel
    model: nn.Module
    data_bass: str | None
    front: dict | None
    description: str

    def to_dict(self) -> dict:
        return {
            "name": self.name.value,
            "data_bass": self.data_bass,
            "front": self.front,
            "description": self.description,
        }


def threat_model_setup(
    model: nn.Module,
    threat_model: str | ThreatModel,
    *,
    bass_strength: float = 1.0,
    bass_profile: str = "amplitude",
) -> ThreatModelSetup:
    """Build the model view and say which test data a threat model uses.

    Args:
        model: a :class:`freqtail.models.FreqtailModel` (any other module is wrapped in one without
            normalisation). Its weights are shared, never copied; any front it has is replaced.
        threat_model: one of :data:`THREAT_MODELS`.
        bass_strength, bass_profile: the BaSS settings the model was trained with (the front uses
            them for ``end-to-end``).

    Returns:
        :class:`ThreatModelSetup` with the model in eval mode.

    Example:
        >>> setup = threat_model_setup(model, "end-to-end")
        >>> setup.data_bass, type(setup.model.front).__name__
        (None, 'BaSSModule')
    """
    threat_model = ThreatModel.parse(threat_model)
    if not isinstance(model, FreqtailModel):
        model = FreqtailModel(model)
    if threat_model == END_TO_END:
        front = bass_front(strength=bass_strength, round_mode="straight-through", profile=bass_profile)
        view = model.with_front(front)
        front_info = {
            "module": "BaSSModule",
            "strength": float(bass_strength),
            "profile": bass_profile,
            "round_mode": "straight-through",
        }
        data_bass = None
    else:
        view = model.without_front()
        front_info = None
        data_bass = "dataset" if threat_model == DOMAIN else None
    view.eval()
    return ThreatModelSetup(threat_model, view, data_bass, front_info, DESCRIPTIONS[threat_model])
