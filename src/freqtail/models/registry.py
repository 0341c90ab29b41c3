"""A timm-like registry of model factories: ``create_model(name, num_classes)``.

Each architecture module registers a factory with :func:`register_model`. A factory takes
``num_classes`` plus the keyword arguments ``image_size`` and ``in_channels`` (and any options of
its own) and returns a plain ``nn.Module`` mapping float ``(N, in_channels, H, W)`` to logits
``(N, num_classes)``. Names are matched case-insensitively, with ``_`` and ``-`` treated alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from freqtail.checks import check_int
from freqtail.errors import ConfigError
from freqtail.models.entry import COMMON_OPTIONS, ModelEntry
from freqtail.models.external import external_entry

if TYPE_CHECKING:
    from torch import nn


_REGISTRY: dict[str, ModelEntry] = {}
_LOOKUP: dict[str, str] = {}  # canonicalised name or alias -> registered name


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_model(
    name: str, *, aliases: tuple[str, ...] = (), summary: str = "", reference: str = ""
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers ``factory(num_classes, *, image_size, in_channels, **options)``.

    Example::

        @register_model("tiny-linear", summary="a linear classifier")
        def tiny_linear(num_classes, *, image_size, in_channels):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))

    Raises ``ValueError`` (a programming error, not a user error) if a name or alias is taken.
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        params = inspect.signature(factory).parameters
        missing = [opt for opt in COMMON_OPTIONS if opt not in params]
        if missing:
            raise ValueError(f"model factory {factory.__name__} must accept keyword options {missing}")
        entry = ModelEntry(
            _canonical(name), factory, tuple(_canonical(a) for a in aliases), summary, reference
        )
        for key in (entry.name, *entry.aliases):
            if key in _LOOKUP:
                raise ValueError(f"model name {key!r} is already registered for {_LOOKUP[key]!r}")
        _REGISTRY[entry.name] = entry
        for key in (entry.name, *entry.aliases):
            _LOOKUP[key] = entry.name
        return factory

    return decorator


def model_names(*, include_aliases: bool = False) -> list[str]:
    """Sorted canonical model names (plus aliases when ``include_aliases``)."""
    return sorted(_LOOKUP if include_aliases else _REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` for ``name`` or an alias; ``ConfigError`` listing valid names if unknown.

    ``timm:NAME`` and ``torchvision:NAME`` name any model those libraries build
    (:mod:`freqtail.models.external`).
    """
    if isinstance(name, str) and ":" in name:
        return external_entry(name)
    if not isinstance(name, str) or _canonical(name) not in _LOOKUP:
        raise ConfigError(
            f"Unknown model {name!r}; valid names are: {', '.join(model_names())}, or timm:NAME / "
            "torchvision:NAME for any model of those libraries."
        )
    return _REGISTRY[_LOOKUP[_canonical(name)]]


def canonical_model_name(name: str) -> str:
    """The registered name that ``name`` (any accepted spelling or alias) refers to."""
    return model_entry(name).name


def check_model_arguments(
    name: str, num_classes: int, image_size: int, in_channels: int, options: Mapping[str, object]
) -> ModelEntry:
    """Validate :func:`create_model`'s arguments without building anything; returns the model's entry.

    Option *values* are checked by the factory when the model is built.
    """
    entry = model_entry(name)
    for value, what in (
        (num_classes, "num_classes"),
        (image_size, "image_size"),
        (in_channels, "in_channels"),
    ):
        check_int(value, what, minimum=1, error=ConfigError)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        valid = ", ".join(entry.options) or "none"
        raise ConfigError(f"Model {entry.name!r} has no option {unknown[0]!r}; its options are: {valid}.")
    return entry


def create_model(
    name: str, num_classes: int, *, image_size: int = 32, in_channels: int = 3, **options: object
) -> nn.Module:
    """Build the registered architecture ``name`` with freshly initialised weights.

    Args:
        name: a name from :func:`model_names` or an alias (case and ``_``/``-`` do not matter).
        num_classes: number of output logits.
        image_size: side length in pixels of the inputs the model is meant for; every model pools
            globally so it runs at any size, but some choose their stem by it (``resnet50``).
        in_channels: channels of the input images (3 for RGB, 1 for grey).
        **options: architecture options listed by ``model_entry(name).options``.

    Returns:
        An ``nn.Module`` mapping float ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``.

    Raises:
        ConfigError: unknown name, unknown option, or a non-positive size.
    """
    entry = check_model_arguments(name, num_classes, image_size, in_channels, options)
    return entry.factory(
        int(num_classes), image_size=int(image_size), in_channels=int(in_channels), **options
    )


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (shared tensors counted once; buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
