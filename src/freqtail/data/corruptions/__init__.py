"""The CIFAR-10-C common corruptions: 19 corruptions x 5 severities on uint8 image batches.

Hendrycks & Dietterich (ICLR 2019) define the corruptions; the severity parameters are the
CIFAR-specific ones of their generation script (hendrycks/robustness,
``ImageNet-C/create_c/make_cifar_c.py``). The implementation is freqtail's own, on SciPy,
scikit-image, OpenCV (``defocus_blur``, ``spatter``), Pillow, matplotlib and NumPy. Every
corruption computes in the original's float precision and truncates as its ``np.uint8(...)``
does, so the deterministic ones return the original's pixels; ``glass_blur`` and ``spatter``
repeat the original's arithmetic step by step, including its quirks (glass blur's "swap" copies;
spatter's OpenCV calls), so for the same random numbers they return the original's pixels.
Known differences from the original:

* ``frost`` blends synthetic frost textures instead of the original's frost photographs;
* ``motion_blur`` and ``snow`` reimplement ImageMagick's motion blur with NumPy (same kernel
  and sampling rule);
* the random numbers come from per-image NumPy generators, so no image is bit-identical to the
  published CIFAR-10-C, only equal in distribution.

Usage::

    from freqtail.data.corruptions import corrupt, CORRUPTIONS
    out = corrupt(images_uint8_nhwc, "gaussian_noise", severity=3, seed=0)
"""

from __future__ import annotations

from freqtail.lazy_exports import lazy_attributes

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "CATEGORIES": "names",
    "CORRUPTIONS": "names",
    "RANDOM_CORRUPTIONS": "names",
    "SEVERITIES": "names",
    "check_corruption_name": "names",
    "check_severity": "names",
    "corruption_names": "names",
    "parse_corruptions": "names",
    "parse_severities": "names",
    "MIN_SIDE": "apply",
    "corrupt": "apply",
}

__all__ = sorted(_EXPORTS)


# Lazy (PEP 562): the command line reads freqtail.data.corruptions.names before torch is imported,
# and importing that module runs this package first; corrupt() needs NumPy, SciPy, OpenCV and torch.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
