"""The trust boundary of a folder freqtail reads: every path read from it stays inside it.

A run folder may come from someone else (an archive, a colleague's disk), and so may what it names:
a pointer's checkpoint name, a checkpoint's files, the ``checkpoints/`` and ``tensorboard/`` folders
training writes into, a figure the report copies into a shareable folder, a run name joined to
``--runs-dir``. :func:`inside` is the one rule for all of them: the path, with every symbolic link
followed and every ``..`` applied, must lie in the folder (itself resolved: where the user keeps a
folder, a link included, is the user's choice). A path leaving it is refused with one sentence that
names the path and where it points; links that stay inside are followed as usual.

Nothing here creates or reads a file; a path that does not exist yet is resolved as far as it exists
(so a link in its folders still counts).
"""

from __future__ import annotations

import os
from pathlib import Path

from freqtail.errors import FreqtailError


def inside(
    folder: str | os.PathLike,
    path: str | os.PathLike,
    what: str,
    *,
    error: type[FreqtailError] = FreqtailError,
) -> Path:
    """``folder / path``, refused unless it resolves to ``folder`` or a path under it.

    Args:
        folder: the folder whose contents are not trusted to stay in it (a run folder, its
            ``checkpoints/``, a checkpoint folder, ``--runs-dir``).
        path: a name read from the folder or given for it (``"step-00000012"``, ``"figures/x.png"``,
            a run name); relative to ``folder``. An absolute path is only accepted when it lies inside.
        what: the path's role, starting a sentence: ``"The best checkpoint"``, ``"The figure"``.
        error: the :class:`~freqtail.errors.FreqtailError` subclass raised (each caller's own:
            ``CheckpointError`` for checkpoints, ``ConfigError`` for a run folder to train in, ...).

    Returns:
        ``folder / path`` as given (not resolved, so messages keep the user's spelling).

    Raises:
        error: the path leaves the folder (``..``, an absolute path elsewhere, a symbolic link), or a
            symbolic link loop makes it unresolvable.
    """
    folder = Path(folder)
    candidate = folder / path
    try:
        root = folder.resolve()
        target = candidate.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop: RuntimeError before Python 3.13, then OSError
        raise error(f"{what} {candidate} cannot be resolved ({err}); it was not used.") from None
    if target == root or target.is_relative_to(root):
        return candidate
    raise error(
        f"{what} {candidate} points to {target}, outside {folder}; a folder's contents may not lead out "
        "of it (a symbolic link or '..'), so it was not used."
    )


def tree_inside(
    folder: str | os.PathLike,
    path: str | os.PathLike,
    what: str,
    *,
    error: type[FreqtailError] = FreqtailError,
) -> Path:
    """:func:`inside` for ``folder / path`` and for every file and folder under it (a missing path
    passes). Links are checked, not entered: one that stays inside leads to a path checked on its own.

    Returns:
        ``folder / path`` as given.
    """
    folder = Path(folder)
    top = inside(folder, path, what, error=error)
    if top.is_dir():
        # os.walk enters ``top`` even when it is a link (checked above); links below it are not
        # entered (followlinks=False) but checked as entries.
        for current, folders, files in os.walk(top):
            for name in (*folders, *files):
                inside(folder, (Path(current) / name).relative_to(folder), what, error=error)
    return top
