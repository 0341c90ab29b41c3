"""Wrappers that put input normalisation and an optional BaSS front around a backbone.

``FreqtailModel(backbone, normalize=..., front=...)`` computes ``backbone(normalize(front(x)))`` on
float images ``(N, C, H, W)`` in [0, 1]. The same trained backbone can be evaluated with and without
the front (``without_front()`` / ``with_front(module)`` return views that share its weights), and
the state dict holds the backbone's weights only, under ``backbone.*``, whatever the front and
normalisation: checkpoints load across all of these variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from freqtail.bass.modules import BaSSModule
from freqtail.errors import ConfigError, InputError

# Per-channel (mean, std) of the training sets, for inputs in [0, 1].
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _as_float_tuple(values: object, what: str) -> tuple[float, ...]:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    if isinstance(values, int | float) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ConfigError(
            f"normalisation {what} must be a number or a non-empty list of numbers, got {values!r}."
        )
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"normalisation {what} must contain finite numbers, got {values!r}.")
        out.append(float(value))
    return tuple(out)


class Normalize(nn.Module):
    """Per-channel standardisation ``(x - mean) / std``: float (N, C, H, W) -> same shape and dtype.

    ``mean`` and ``std`` have one value per channel, or one value for all channels; they are in the
    units of the input (for [0, 1] images, e.g. ``NORMALIZATIONS["cifar10"]``). They live in
    non-persistent buffers: they follow ``.to(device)`` but never appear in ``state_dict()``.
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        super().__init__()
        mean_values = _as_float_tuple(mean, "mean")
        std_values = _as_float_tuple(std, "std")
        if len(mean_values) != len(std_values):
            raise ConfigError(
                f"normalisation mean and std need the same length, "
                f"got {len(mean_values)} and {len(std_values)}."
            )
        if min(std_values) <= 0:
            raise ConfigError(f"normalisation std must be positive, got {std_values}.")
        self.mean_values = mean_values
        self.std_values = std_values
        shape = (1, len(mean_values), 1, 1)
        self.register_buffer("mean", torch.tensor(mean_values).reshape(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std_values).reshape(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = len(self.mean_values)
        if x.ndim != 4 or (channels != 1 and x.shape[1] != channels):
            raise InputError(
                f"Normalize expects float images (N, {channels}, H, W), got shape {tuple(x.shape)}."
            )
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={self.mean_values}, std={self.std_values}"


def as_normalize(normalize: object) -> Normalize | None:
    """Turn a user's normalisation choice into a :class:`Normalize` (or ``None`` for none).

    Accepts ``None``, a :class:`Normalize`, a name from ``NORMALIZATIONS`` ("cifar10", "cifar100",
    "imagenet"), a ``(mean, std)`` pair, or a mapping ``{"mean": ..., "std": ...}``.
    """
    if normalize is None or isinstance(normalize, Normalize):
        return normalize
    if isinstance(normalize, str):
        key = normalize.strip().lower().replace("_", "").replace("-", "")
        if key not in NORMALIZATIONS:
            raise ConfigError(
                f"Unknown normalisation {normalize!r}; valid names are: {', '.join(NORMALIZATIONS)}."
            )
        return Normalize(*NORMALIZATIONS[key])
    if isinstance(normalize, Mapping):
        if set(normalize) != {"mean", "std"}:
            raise ConfigError(
                f"a normalisation mapping needs exactly the keys 'mean' and 'std', got {sorted(normalize)}."
            )
        return Normalize(normalize["mean"], normalize["std"])
    if isinstance(normalize, Sequence) and len(normalize) == 2:
        return Normalize(normalize[0], normalize[1])
    raise ConfigError(
        f"normalize must be None, a preset name, a (mean, std) pair or a Normalize, got {normalize!r}."
    )


def check_normalize(normalize: object, in_channels: int) -> Normalize | None:
    """:func:`as_normalize`, and refuse statistics that do not fit ``in_channels`` input channels
    (one value per channel, or one for all), before any image reaches the model.

    Raises:
        ConfigError: see :func:`as_normalize`, or "normalisation has 2 values per statistic but the
            model takes 3 input channels; ...".
    """
    norm = as_normalize(normalize)
    if norm is not None and len(norm.mean_values) not in (1, in_channels):
        raise ConfigError(
            f"normalisation has {len(norm.mean_values)} values per statistic (mean {list(norm.mean_values)}) "
            f"but the model takes {in_channels} input channel(s); give one value per channel or one for all."
        )
    return norm


def bass_front(strength: float = 1.0, round_mode: str = "straight-through", **options: object) -> nn.Module:
    """The differentiable BaSS front: ``freqtail.bass.BaSSModule(strength=..., round_mode=..., **options)``.

    ``round_mode="straight-through"`` reproduces the uint8 truncation of offline BaSS in the forward
    value with an identity gradient, so end-to-end attacks see through it.
    """
    return BaSSModule(strength=strength, round_mode=round_mode, **options)


def _drop_front_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """state_dict() post-hook: the front's parameters and buffers are never saved."""
    for key in [k for k in state_dict if k.startswith(prefix + "front.")]:
        del state_dict[key]


def _supply_front_keys(
    module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors
) -> None:
    """load_state_dict() pre-hook: ignore any saved front state and keep the current front's own."""
    # torch hands this hook its own copy of the caller's dict, so editing it is safe.
    for key in [k for k in state_dict if k.startswith(prefix + "front.")]:
        del state_dict[key]
    if module.front is not None:
        for key, value in module.front.state_dict(keep_vars=True).items():
            state_dict[prefix + "front." + key] = value


class FreqtailModel(nn.Module):
    """``backbone(normalize(front(x)))``: float (N, C, H, W) in [0, 1] -> logits (N, num_classes).

    Args:
        backbone: any classifier, e.g. from :func:`freqtail.models.create_model`.
        normalize: ``None``, a preset name, ``(mean, std)`` or a :class:`Normalize`
            (see :func:`as_normalize`).
        front: ``None`` or a module applied to the raw input first, e.g. :func:`bass_front`. It must
            not hold trained weights: its parameters and buffers are never saved in ``state_dict()``.

    ``state_dict()`` keys are exactly the backbone's, prefixed ``backbone.``, so a state dict saved
    with or without a front or normalisation loads into any of these variants (strictly). To load a
    bare backbone's state dict, use ``model.backbone.load_state_dict(sd)``.
    """

    def __init__(
        self, backbone: nn.Module, *, normalize: object = None, front: nn.Module | None = None
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise ConfigError(f"backbone must be a torch.nn.Module, got {type(backbone).__name__}.")
        if front is not None and not isinstance(front, nn.Module):
            raise ConfigError(f"front must be None or a torch.nn.Module, got {type(front).__name__}.")
        self.backbone = backbone
        self.normalize = as_normalize(normalize)
        self.front = front
        # Module-level hooks (not closures) keep the model deep-copyable and picklable.
        if hasattr(self, "register_state_dict_post_hook"):
            self.register_state_dict_post_hook(_drop_front_keys)
        else:  # older torch: the same hook under its earlier, private name
            self._register_state_dict_hook(_drop_front_keys)
        if hasattr(self, "register_load_state_dict_pre_hook"):
            self.register_load_state_dict_pre_hook(_supply_front_keys)
        else:
            self._register_load_state_dict_pre_hook(_supply_front_keys, with_module=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise InputError(f"the model expects float images (N, C, H, W), got shape {tuple(x.shape)}.")
        if self.front is not None:
            x = self.front(x)
        if self.normalize is not None:
            x = self.normalize(x)
        return self.backbone(x)

    def with_front(self, front: nn.Module | None) -> FreqtailModel:
        """A view with ``front`` instead of the current one, sharing backbone (weights) and normalisation."""
        view = FreqtailModel(self.backbone, normalize=self.normalize, front=front)
        view.training = self.training
        if front is not None:
            front.train(self.training)
        return view

    def without_front(self) -> FreqtailModel:
        """A view without the front that shares this model's backbone (same weights) and normalisation."""
        return self.with_front(None)
