"""matplotlib's pyplot with the non-interactive Agg backend: the one place the report picks a backend.

Figures are written to files only; the backend must be chosen before ``matplotlib.pyplot`` is first
imported, so every figure module takes ``plt`` from here (``force=False`` keeps a backend the caller
chose already, e.g. in a notebook). :func:`save_figure` writes a figure in several formats at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice, see the module docstring)

from freqtail.io import atomic_path  # noqa: E402
from freqtail.report.figure_formats import DEFAULT_FIGURE_FORMATS, figure_files  # noqa: E402

__all__ = ["VECTOR_STYLE", "plt", "save_figure"]

#: rcParams in force while a figure is saved: text stays text (SVG ``<text>``, PDF TrueType fonts
#: rather than Type 3 glyph drawings), and SVG element ids come from a fixed salt instead of a random
#: one, so that the same figure gives the same bytes.
VECTOR_STYLE = {"svg.fonttype": "none", "pdf.fonttype": 42, "svg.hashsalt": "freqtail"}
#: Per-format ``savefig`` metadata: no creation date, so a rerun writes identical files.
_METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {}}


def save_figure(
    fig, path: str | os.PathLike, formats: Sequence[str] = DEFAULT_FIGURE_FORMATS, dpi: int = 120
) -> list[Path]:
    """Write ``fig`` once per format, each file atomically, then close it (also on failure).

    Args:
        fig: a matplotlib Figure.
        path: the figure's name; its ``.png``/``.pdf``/``.svg`` suffix (or none) is replaced by each
            format's (:func:`freqtail.report.figure_formats.figure_files`).
        formats: names from :data:`freqtail.report.figure_formats.FIGURE_FORMATS`.
        dpi: resolution of the PNG (and of any raster image inside a vector file).

    Returns:
        The files written, in the order of ``formats``.
    """
    try:
        files = figure_files(path, formats)
        with matplotlib.rc_context(VECTOR_STYLE):
            for file in files:
                fmt = file.suffix.lstrip(".")
                with atomic_path(file) as tmp:
                    fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    finally:
        plt.close(fig)
    return files
