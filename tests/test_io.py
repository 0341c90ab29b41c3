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


def _npy_with_header(path, header: str, data: bytes = b"") -> None:
    """A version-1.0 .npy file with ``header`` as its dictionary text, padded as the format asks."""
    text = header.encode("latin1")
    text += b" " * ((-(10 + len(text) + 1)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data)


@pytest.mark.parametrize(
    ("header", "word"),
    [
        ("{'descr': '|u1', 'fortran_order': False, 'shape': (2,3)), }", "damaged .npy header"),  # TokenError
        ("{'descr': '|u1', 'fortran_order': False, 'shape': (2, x), }", "damaged .npy header"),
        ("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000,), }", "truncated"),  # 1 TB
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", "describes 24 bytes"),
    ],
)
@pytest.mark.parametrize("mmap", [False, True])
def test_load_npy_refuses_a_damaged_header_in_one_sentence(tmp_path, header, word, mmap):
    path = tmp_path / "damaged.npy"
    _npy_with_header(path, header, data=b"\0" * 6)
    with pytest.raises(InputError, match=word) as info:
        load_npy(path, "image array", mmap=mmap)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_load_npy_refuses_an_unknown_format_version(tmp_path):
    good = atomic_save_npy(tmp_path / "good.npy", np.arange(4, dtype=np.uint8))
    damaged = tmp_path / "version.npy"
    damaged.write_bytes(good.read_bytes()[:6] + b"\x09\x00" + good.read_bytes()[8:])
    with pytest.raises(InputError, match="format version 9.0"):
        load_npy(damaged)
    np.testing.assert_array_equal(load_npy(good), np.arange(4))
