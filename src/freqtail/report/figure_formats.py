"""Which file formats the analysis figures are written in, and the file each format goes to.

A figure is written once per format, ``figures/<kind>.<fmt>``: PNG for the HTML report and quick
looks, PDF and SVG as vector graphics for a paper. This module holds no matplotlib, so the command
line can check ``--figure-format`` at the door without loading it.

Example:
    >>> check_figure_formats("pdf, svg")
    ('pdf', 'svg')
    >>> [p.name for p in figure_files("figures/landscape.png", ("png", "pdf"))]
    ['landscape.png', 'landscape.pdf']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from freqtail.errors import FreqtailError, InputError

__all__ = ["DEFAULT_FIGURE_FORMATS", "FIGURE_FORMATS", "check_figure_formats", "figure_files"]

#: The formats a figure can be written in: one raster, two vector.
FIGURE_FORMATS = ("png", "pdf", "svg")
#: What the plot functions, ``ExplainRequest`` and ``--figure-format`` write unless told otherwise.
DEFAULT_FIGURE_FORMATS = FIGURE_FORMATS


def check_figure_formats(
    formats: str | Sequence[str], what: str = "The figure formats", *, error: type[FreqtailError] = InputError
) -> tuple[str, ...]:
    """Return ``formats`` as a tuple of distinct lower-case names of :data:`FIGURE_FORMATS`, in order.

    Args:
        formats: a sequence of names (``("png", "svg")``) or one comma-separated string (``"pdf,svg"``,
            as ``--figure-format`` gives it); case and spaces around the names do not matter, repeats
            are dropped.
        what: the subject of the error sentence.
        error: the exception class to raise.

    Raises:
        ``error``: "{what} must be a non-empty comma-separated list of png, pdf, svg, not 'bmp'."
    """
    names = formats.split(",") if isinstance(formats, str) else formats
    try:
        cleaned = [name.strip().lower() for name in names]
    except (AttributeError, TypeError):  # not iterable, or an item that is not a string
        cleaned = []
    valid = bool(cleaned) and all(name in FIGURE_FORMATS for name in cleaned)
    if not valid:
        allowed = ", ".join(FIGURE_FORMATS)
        raise error(f"{what} must be a non-empty comma-separated list of {allowed}, not {formats!r}.")
    return tuple(dict.fromkeys(cleaned))


def figure_files(path: str | os.PathLike, formats: Sequence[str]) -> list[Path]:
    """The file of each format for the figure named ``path``, in the order of ``formats``.

    ``path``'s suffix, if it is one of :data:`FIGURE_FORMATS`, is replaced by each format's
    (``figures/sensitivity.png`` -> ``.png``, ``.pdf``, ``.svg``); a path without a suffix gets each
    format's appended.

    Raises:
        InputError: ``path`` is a folder or has another suffix; ``formats`` is not a valid list.
    """
    formats = check_figure_formats(formats)
    path = Path(path)
    if path.is_dir():
        raise InputError(f"Cannot write a figure to {path}: it is a folder.")
    suffix = path.suffix.lower().lstrip(".")
    if suffix and suffix not in FIGURE_FORMATS:
        raise InputError(
            f"Cannot write a figure to {path}: its suffix must be .{', .'.join(FIGURE_FORMATS)} or none "
            "(each figure format replaces it)."
        )
    stem = path.with_suffix("") if suffix else path
    return [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
