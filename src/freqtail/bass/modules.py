"""BaSS as a torchvision v2 transform (data pipelines) and as a differentiable nn.Module (models)."""

from __future__ import annotations

from typing import Any

import PIL.Image
import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2._utils import is_pure_tensor

from freqtail.bass.convert import balance_spectrum
from freqtail.bass.core import balance_spectrum_tensor, check_profile, check_strength
from freqtail.checks import check_choice, check_fraction
from freqtail.errors import InputError
from freqtail.images import check_float_images

#: ``BaSSModule(round_mode=...)`` choices.
ROUND_MODES = ("none", "straight-through")


class BaSS(Transform):
    """Balanced Spectrum Sampling as a ``torchvision.transforms.v2`` transform, applied with probability p.

    Works like other v2 transforms: on PIL images (L, RGB), ``tv_tensors.Image``/``Video`` and
    plain tensors treated as images; labels, boxes and masks pass through untouched. Tensors may
    be uint8 (..., C, H, W) (uint8 out, truncated as published) or float (..., C, H, W) in [0, 1]
    (float out, clipped). One random draw per call from torch's global RNG decides for the whole
    sample (seed with ``torch.manual_seed``), like ``RandomApply``.

    Args:
        p: probability of applying BaSS, the paper's gamma (1 = always).
        strength: exponent in [0, 1] applied to the BaSS weights (1 = published).
        profile: ``"amplitude"`` (published) or ``"power"``.

    Example:
        >>> from torchvision.transforms import v2
        >>> from freqtail.bass import BaSS
        >>> pipeline = v2.Compose([BaSS(p=0.5), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Video, PIL.Image.Image, is_pure_tensor)

    def __init__(self, p: float = 1.0, strength: float = 1.0, profile: str = "amplitude") -> None:
        super().__init__()
        self.p = check_fraction(p, "The BaSS probability p")
        self.strength = check_strength(strength)
        self.profile = check_profile(profile)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"apply": bool(torch.rand(1) < self.p)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"]:
            return inpt
        if isinstance(inpt, PIL.Image.Image):
            return balance_spectrum(inpt, self.strength, profile=self.profile)
        tensor = inpt.as_subclass(torch.Tensor)
        if tensor.ndim < 3:
            raise InputError(f"BaSS takes image tensors of shape (..., C, H, W), not {tuple(tensor.shape)}.")
        batch = tensor.reshape(-1, *tensor.shape[-3:])
        out = balance_spectrum(batch, self.strength, profile=self.profile).reshape(tensor.shape)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


class BaSSModule(nn.Module):
    """Differentiable BaSS on float (N, C, H, W) batches in [0, 1], on the input's device and dtype.

    Put it in front of a model (``nn.Sequential(BaSSModule(), model)``) so attacks differentiate
    through BaSS (the end-to-end threat model), or use it as on-device augmentation.

    Args:
        strength: exponent in [0, 1] applied to the BaSS weights (1 = published).
        p: probability that each sample of the batch is transformed (independently per sample,
            torch's global RNG on the input's device); 1 = every sample.
        round_mode: ``"none"`` returns the clipped float result; ``"straight-through"`` returns
            ``floor(255 * result) / 255`` (the uint8 truncation of the published pipeline) in the
            forward pass with the gradient of the unrounded result (identity through the rounding).
            Degenerate channels are returned unchanged (not rounded) in both modes.
        profile: ``"amplitude"`` (published) or ``"power"``.

    Attributes:
        last_degenerate: bool (N,) tensor of the images of the last batch with at least one
            channel left unchanged by the degenerate rule (False for samples not selected by p),
            or None before the first call.
        last_degenerate_channels: bool (N, C) tensor of those channels, or None before the first call.

    Example:
        >>> module = BaSSModule(round_mode="straight-through")
        >>> x = torch.rand(2, 3, 32, 32, requires_grad=True)
        >>> module(x).sum().backward()
    """

    def __init__(
        self, strength: float = 1.0, p: float = 1.0, round_mode: str = "none", profile: str = "amplitude"
    ) -> None:
        super().__init__()
        self.strength = check_strength(strength)
        self.p = check_fraction(p, "The BaSS probability p")
        self.round_mode = check_choice(round_mode, ROUND_MODES, "The BaSS round_mode")
        self.profile = check_profile(profile)
        self.last_degenerate: torch.Tensor | None = None
        self.last_degenerate_channels: torch.Tensor | None = None

    def _transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float (N, C, H, W) -> (out (N, C, H, W), degenerate channels bool (N, C))."""
        out, degenerate = balance_spectrum_tensor(x, self.strength, profile=self.profile, per_channel=True)
        if self.round_mode == "straight-through":
            rounded = torch.floor(out.detach() * 255.0) / 255.0
            rounded = torch.where(degenerate[:, :, None, None], out.detach(), rounded)
            out = out + (rounded - out.detach())
        return out, degenerate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) in [0, 1] -> float (N, C, H, W) in [0, 1]."""
        check_float_images(x, "BaSSModule input")
        n, c = x.shape[:2]
        if self.p >= 1.0:
            out, degenerate = self._transform(x)
        else:
            chosen = (torch.rand(n, device=x.device) < self.p).nonzero().flatten()
            degenerate = torch.zeros(n, c, dtype=torch.bool, device=x.device)
            out = x
            if chosen.numel():
                part, part_degenerate = self._transform(x.index_select(0, chosen))
                out = x.index_copy(0, chosen, part)
                degenerate = degenerate.index_copy(0, chosen, part_degenerate)
        self.last_degenerate_channels = degenerate
        self.last_degenerate = degenerate.any(1)
        return out

    def extra_repr(self) -> str:
        return (
            f"strength={self.strength}, p={self.p}, round_mode={self.round_mode!r}, profile={self.profile!r}"
        )
