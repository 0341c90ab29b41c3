"""What several test modules share about the test session (no tests here)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_session_folder(tmp_path_factory, name: str) -> Path:
    """A folder that every pytest-xdist worker of this session shares (this process's own temporary
    folder without xdist), created if absent. A session fixture that must run once for all workers
    builds its result there holding ``FileLock(folder.with_suffix(".lock"))`` and leaves a marker file
    last; the other workers wait on the lock and read the same folder (pytest-xdist's recipe)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder = root / name
    folder.mkdir(exist_ok=True)
    return folder
