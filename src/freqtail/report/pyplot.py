"""matplotlib's pyplot with the non-interactive Agg backend: the one place the report picks a backend.

Figures are written to files only; the backend must be chosen before ``matplotlib.pyplot`` is first
imported, so every figure module takes ``plt`` from here (``force=False`` keeps a backend the caller
chose already, e.g. in a notebook).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice, see the module docstring)

__all__ = ["plt"]
