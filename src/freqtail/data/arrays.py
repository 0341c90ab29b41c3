"""In-memory image datasets: uint8 (N, H, W, C) arrays plus integer labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from freqtail.errors import InputError
from freqtail.images import check_uint8_images


class ArrayDataset(Dataset):
    """A labelled image dataset held as a uint8 channels-last array.

    Items are ``(image, label)``: ``image`` is a float32 tensor (C, H, W) in [0, 1] after
    ``transform`` (applied to the uint8 (C, H, W) tensor, so torchvision.transforms.v2 operations
    see an image tensor), ``label`` a Python int.

    Args:
        images: uint8 (N, H, W, C); may be a read-only memory map.
        labels: int (N,) class indices in ``range(len(classes))``.
        classes: class names, index = label.
        transform: optional callable on a uint8 (C, H, W) tensor, returning uint8 or float.
        name: a short name for messages and reports.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        name: str = "dataset",
    ) -> None:
        images = check_uint8_images(images, what=f"{name} images", allow_single=False)
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise InputError(
                f"The {name} labels must be a 1-D array with one label per image "
                f"({len(images)} images, labels of shape {labels.shape})."
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"The {name} labels must be integers, not {labels.dtype}.")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise InputError(
                f"The {name} labels must lie in 0..{len(classes) - 1}, "
                f"but range over {labels.min()}..{labels.max()}."
            )
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        self.classes = list(classes)
        self.transform = transform
        self.name = name

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the stored images."""
        n, h, w, c = self.images.shape
        return (c, h, w)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.array(self.images[index], copy=True)).permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        if image.dtype == torch.uint8:
            image = image.to(torch.float32).div_(255.0)
        return image, int(self.labels[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float32 (N, C, H, W) in [0, 1] and labels (N,), without the transform."""
        x = torch.from_numpy(np.ascontiguousarray(self.images)).permute(0, 3, 1, 2).float().div_(255.0)
        return x, torch.from_numpy(self.labels)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        shape = f"({c}, {h}, {w})"
        return f"ArrayDataset(name={self.name!r}, n={len(self)}, shape={shape}, classes={self.num_classes})"
