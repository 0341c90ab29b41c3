"""Whether the paths a command was given exist: the first check of every command that opens runs.

These checks import nothing heavy (no torch, NumPy or matplotlib), so the commands call them before
they import the library: a mistyped run folder is one sentence in a fraction of a second instead of
after seconds of torch start-up. The library calls the same functions, so a path is refused with the
same sentence whoever reads it first.
"""

from __future__ import annotations

import os
from pathlib import Path

from freqtail.errors import CheckpointError, InputError
from freqtail.runs.layout import GRID_MANIFEST, GridLayout, RunLayout


def check_run_path(path: str | os.PathLike) -> Path:
    """``path`` (a run folder or a checkpoint, ``~`` expanded) if something is there.

    Raises:
        CheckpointError: nothing at ``path``.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"There is no run folder or checkpoint at {p}.")
    return p


def check_folder(path: str | os.PathLike) -> Path:
    """``path`` if it exists (a folder a report reads).

    Raises:
        InputError: nothing at ``path``.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"The folder {p} does not exist.")
    return p


def results_file(path: str | os.PathLike) -> Path:
    """The ``results.json`` that ``path`` names: the file itself, or the one in a run folder.

    Raises:
        InputError: there is no such file.
    """
    p = Path(path)
    if p.is_dir():
        p = RunLayout.of(p).results
    if not p.is_file():
        raise InputError(f"No results file at {p}; run `freqtail evaluate` on that run first.")
    return p


def check_grid_folder(path: str | os.PathLike) -> GridLayout:
    """The :class:`~freqtail.runs.layout.GridLayout` of ``path`` (``~`` expanded) if it holds a grid
    manifest (the ``--out`` folder of a grid run).

    Raises:
        InputError: no grid manifest in ``path``.
    """
    layout = GridLayout.of(path)
    if not layout.manifest.is_file():
        raise InputError(
            f"The folder {layout.folder} is not a grid folder (it has no {GRID_MANIFEST}); give the --out "
            "folder of 'freqtail grid run' or 'freqtail reproduce'."
        )
    return layout
