"""Safe file IO: atomic writes keep the old file on failure and use normal permissions."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from freqtail.errors import InputError
from freqtail.io import atomic_save_npy, atomic_write, atomic_write_json, load_npy


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})

    def failing(handle):
        handle.write(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_text().strip().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_files_get_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_save_npy(tmp_path / "x.npy", np.arange(3))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "bad.json", {"x": float("nan")})
    assert not (tmp_path / "bad.json").exists()


def test_load_npy_errors_are_one_sentence(tmp_path):
    good = atomic_save_npy(tmp_path / "good.npy", np.zeros((4, 4), np.uint8))
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(good.read_bytes()[:-5])
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path, word in [
        (tmp_path / "missing.npy", "does not exist"),
        (truncated, "truncated"),
        (pickled, "pickled"),
    ]:
        with pytest.raises(InputError, match=word) as info:
            load_npy(path, "image array")
        assert "\n" not in str(info.value)
    assert load_npy(good).shape == (4, 4)
