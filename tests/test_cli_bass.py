"""`freqtail bass`: converts files, reports counts, refuses bad files with one sentence."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from freqtail.bass import balance_spectrum
from freqtail.cli import main


@pytest.fixture
def images(natural_crops):
    """Nine natural 32x32 crops plus one flat image (degenerate)."""
    crops = natural_crops(32, 1, seed=2)[:9]
    flat = np.full((1, 32, 32, 3), 90, dtype=np.uint8)
    return np.concatenate([crops, flat])


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_converts_a_file_and_reports_counts(tmp_path, images, capsys):
    source, target = tmp_path / "in.npy", tmp_path / "out" / "bass.npy"
    np.save(source, images)
    expected, degenerate = balance_spectrum(images, return_degenerate=True)
    code, out, err = run_cli(["bass", "--input", str(source), "--output", str(target)], capsys)
    assert code == 0
    np.testing.assert_array_equal(np.load(target), expected)
    n_degenerate = int(degenerate.sum())
    assert n_degenerate >= 1
    assert f"Converted {len(images)} images" in out
    n_channels = int(balance_spectrum(images, return_degenerate="channels")[1].sum())
    assert f"{n_degenerate} had a channel that hit the degenerate rule ({n_channels} channels" in out
    assert "BaSS" in err  # the progress bar


def test_an_image_with_one_flat_channel_counts_once(tmp_path, images, capsys):
    # The degenerate count is of images; the flat channel is copied, the others are converted.
    partial = images[:3].copy()
    partial[1, ..., 2] = 0
    source, target = tmp_path / "partial.npy", tmp_path / "partial_bass.npy"
    np.save(source, partial)
    expected, channels = balance_spectrum(partial, return_degenerate="channels")
    assert channels.tolist() == [[False] * 3, [False, False, True], [False] * 3]
    code, out, _ = run_cli(["bass", "--input", str(source), "--output", str(target), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["degenerate"] == 1 and report["degenerate_channels"] == 1
    converted = np.load(target)
    np.testing.assert_array_equal(converted, expected)
    assert (converted[1, ..., 2] == 0).all()
    assert not np.array_equal(converted[1, ..., :2], partial[1, ..., :2])


def test_json_strength_and_single_image(tmp_path, images, capsys):
    source, target = tmp_path / "one.npy", tmp_path / "one_bass.npy"
    np.save(source, images[0])
    code, out, _ = run_cli(
        ["bass", "--input", str(source), "--output", str(target), "--strength", "0.5", "--json"], capsys
    )
    assert code == 0
    report = json.loads(out)
    assert report["images"] == 1 and report["strength"] == 0.5 and report["degenerate"] == 0
    np.testing.assert_array_equal(np.load(target), balance_spectrum(images[0], strength=0.5))
    code, _, _ = run_cli(
        ["bass", "--input", str(source), "--output", str(target), "--strength", "0", "--chunk-size", "3"],
        capsys,
    )
    assert code == 0
    np.testing.assert_array_equal(np.load(target), images[0])


def _bad_files(tmp_path, images):
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, images)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    floats = tmp_path / "floats.npy"
    np.save(floats, images.astype(np.float32) / 255)
    four_channels = tmp_path / "rgba.npy"
    np.save(four_channels, np.zeros((2, 8, 8, 4), dtype=np.uint8))
    not_npy = tmp_path / "text.npy"
    not_npy.write_text("hello")
    return {
        "truncated": truncated,
        "pickled": pickled,
        "wrong dtype": floats,
        "wrong shape": four_channels,
        "not npy": not_npy,
        "missing": tmp_path / "missing.npy",
    }


@pytest.mark.parametrize("case", ["truncated", "pickled", "wrong dtype", "wrong shape", "not npy", "missing"])
def test_bad_files_exit_2_with_one_line(tmp_path, images, capsys, case):
    source = _bad_files(tmp_path, images)[case]
    target = tmp_path / "out.npy"
    code, out, err = run_cli(["bass", "--input", str(source), "--output", str(target)], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("freqtail bass: error: ")
    assert "Traceback" not in err and out == ""
    assert not target.exists()
    if case == "pickled":
        assert "pickled" in lines[0]


def test_mode_options_are_checked(tmp_path, images, capsys):
    source = tmp_path / "in.npy"
    np.save(source, images)
    code, _, err = run_cli(["bass", "--input", str(source)], capsys)
    assert code == 2 and "--output" in err
    code, _, err = run_cli(["bass", "--input", str(source), "--output", "x.npy", "--out", "dir"], capsys)
    assert code == 2 and "--dataset" in err
    for argv in (
        ["bass"],
        ["bass", "--input", str(source), "--dataset", "cifar10"],
        ["bass", "--input", str(source), "--output", "x.npy", "--strength", "1.5"],
        ["bass", "--input", str(source), "--output", "x.npy", "--chunk-size", "0"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


def test_dataset_mode_needs_out(capsys):
    code, _, err = run_cli(["bass", "--dataset", "cifar10"], capsys)
    assert code == 2 and "--out" in err


def test_dataset_mode_calls_write_bass_dataset(monkeypatch, tmp_path, capsys):
    calls = []

    def write_bass_dataset(name, root, out_dir, strength=1.0, progress=False):
        calls.append((name, root, out_dir, strength, progress))
        return {"images": 3, "degenerate": 0}

    fake = types.ModuleType("freqtail.data.bass_copies")
    fake.write_bass_dataset = write_bass_dataset
    monkeypatch.setitem(sys.modules, "freqtail.data.bass_copies", fake)
    argv = [
        "bass",
        "--dataset",
        "cifar10",
        "--data-root",
        "data",
        "--out",
        str(tmp_path),
        "--strength",
        "0.25",
    ]
    code, out, _ = run_cli([*argv, "--json"], capsys)
    assert code == 0
    assert calls == [("cifar10", "data", str(tmp_path), 0.25, True)]
    assert json.loads(out) == {"images": 3, "degenerate": 0}
    code, out, _ = run_cli(argv, capsys)
    assert (
        code == 0
        and "Converted 3 images of dataset cifar10" in out
        and "0 had a channel that hit the degenerate" in out
    )
