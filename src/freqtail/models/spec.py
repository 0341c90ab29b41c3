"""JSON-serialisable model specs, so a checkpoint can rebuild the exact model it was saved from.

A spec is a plain dict::

    {"format": "freqtail-model", "version": 1, "name": "resnet18", "num_classes": 10,
     "image_size": 32, "in_channels": 3, "options": {},
     "normalize": {"mean": [...], "std": [...]} or null,
     "bass_front": {"strength": 1.0, "round_mode": "straight-through"} or null}

``build_model_from_spec(spec)`` returns the :class:`~freqtail.models.wrappers.FreqtailModel` with
fresh weights; load the checkpoint's state dict into it.

A spec never asks for pretrained weights: a checkpoint's weights come from the checkpoint, and a spec
read from a file (a standalone ``model.safetensors`` from elsewhere) must not make freqtail download
anything. An ``options`` entry ``pretrained`` is refused here and in :func:`model_spec`; the trainer
asks for pretrained weights with :func:`build_model_from_spec`'s own ``pretrained`` argument.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from freqtail.checks import check_fraction
from freqtail.errors import ConfigError
from freqtail.models.registry import check_model_arguments, create_model
from freqtail.models.wrappers import FreqtailModel, bass_front, check_normalize

SPEC_FORMAT = "freqtail-model"
SPEC_VERSION = 1
_KEYS = (
    "format",
    "version",
    "name",
    "num_classes",
    "image_size",
    "in_channels",
    "options",
    "normalize",
    "bass_front",
)
BASS_FRONT_DEFAULTS = {"strength": 1.0, "round_mode": "straight-through"}


def _bass_front_spec(bass_front_choice: object) -> dict[str, Any] | None:
    if bass_front_choice is None or bass_front_choice is False:
        return None
    if bass_front_choice is True:
        return dict(BASS_FRONT_DEFAULTS)
    if isinstance(bass_front_choice, int | float):  # bools were handled above
        strength = check_fraction(bass_front_choice, "The BaSS front strength", error=ConfigError)
        return {**BASS_FRONT_DEFAULTS, "strength": strength}
    if isinstance(bass_front_choice, Mapping):
        return {**BASS_FRONT_DEFAULTS, **dict(bass_front_choice)}
    raise ConfigError(
        f"bass_front must be None, True, a strength in [0, 1] or a dict of BaSSModule options, "
        f"got {bass_front_choice!r}."
    )


def _refuse_pretrained(options: Mapping[str, object]) -> None:
    if "pretrained" in options:
        raise ConfigError(
            "A model spec never asks for pretrained weights (its options hold 'pretrained'), so that "
            "loading a model from a file never downloads; ask for them when training, with the config "
            "key pretrained (--set pretrained=true)."
        )


def _json_round_trip(value: object, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"The model spec's {what} must be JSON-serialisable ({err}).") from err


def model_spec(
    name: str,
    num_classes: int,
    image_size: int = 32,
    in_channels: int = 3,
    normalize: object = None,
    bass_front: object = None,
    *,
    options: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable description of a :class:`FreqtailModel` (see the module docstring).

    Args:
        name, num_classes, image_size, in_channels, options: as for :func:`create_model`
            (``options`` = the architecture's own keyword options).
        normalize: anything :func:`as_normalize` accepts; stored as explicit mean/std lists.
        bass_front: ``None``/``False`` (no front), ``True`` (defaults), a strength in [0, 1], or a
            dict of ``BaSSModule`` keyword options (defaults: strength 1, round_mode straight-through).

    Raises:
        ConfigError: unknown model or option, bad sizes or normalisation, non-JSON values, or a
            ``pretrained`` option (pretrained weights are never part of a spec).
    """
    options = _json_round_trip(dict(options or {}), "options")
    _refuse_pretrained(options)
    entry = check_model_arguments(name, num_classes, image_size, in_channels, options)
    norm = check_normalize(normalize, int(in_channels))
    return {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "name": entry.name,
        "num_classes": int(num_classes),
        "image_size": int(image_size),
        "in_channels": int(in_channels),
        "options": options,
        "normalize": None if norm is None else {"mean": list(norm.mean_values), "std": list(norm.std_values)},
        "bass_front": _json_round_trip(_bass_front_spec(bass_front), "bass_front"),
    }


def build_model_from_spec(
    spec: Mapping[str, Any], *, with_front: bool = True, pretrained: bool = False
) -> FreqtailModel:
    """Rebuild the :class:`FreqtailModel` a spec from :func:`model_spec` describes (fresh weights).

    ``with_front=False`` leaves the BaSS front out even if the spec has one (the state dict is the same).
    ``pretrained=True`` asks a ``timm:`` / ``torchvision:`` model's library for its pretrained weights
    (a download through the library's cache); it is never part of a spec, so that loading a
    checkpoint never downloads.

    Raises:
        ConfigError: not a freqtail model spec, a newer spec version, invalid contents, or options
            asking for pretrained weights (a spec never downloads).
    """
    if not isinstance(spec, Mapping) or spec.get("format") != SPEC_FORMAT:
        raise ConfigError("This is not a freqtail model spec (its 'format' is not 'freqtail-model').")
    if spec.get("version") != SPEC_VERSION:
        raise ConfigError(
            f"Model spec version {spec.get('version')!r} is not supported "
            f"(this freqtail reads version {SPEC_VERSION})."
        )
    missing = [key for key in _KEYS if key not in spec]
    extra = sorted(set(spec) - set(_KEYS))
    if missing or extra:
        raise ConfigError(f"The model spec is malformed (missing keys {missing}, unknown keys {extra}).")
    options = spec["options"]
    if not isinstance(options, Mapping):
        raise ConfigError(f"The model spec's options must be a mapping, got {options!r}.")
    _refuse_pretrained(options)
    backbone = create_model(
        spec["name"],
        spec["num_classes"],
        image_size=spec["image_size"],
        in_channels=spec["in_channels"],
        **options,
        **({"pretrained": True} if pretrained else {}),
    )
    front_options = _bass_front_spec(spec["bass_front"])
    front = bass_front(**front_options) if (with_front and front_options is not None) else None
    return FreqtailModel(backbone, normalize=spec["normalize"], front=front)
