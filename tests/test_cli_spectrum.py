"""Tests of ``freqtail spectrum``: in-process through freqtail.cli.main, plus real console-script runs."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from freqtail.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["spectrum", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("freqtail spectrum: error: ") and "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower()


@pytest.fixture(scope="module")
def images_file(tmp_path_factory, natural_crops) -> tuple[Path, np.ndarray]:
    images = natural_crops((20, 24), 3, seed=1)  # uint8 (48, 20, 24, 3)
    path = tmp_path_factory.mktemp("spectrum") / "images.npy"
    np.save(path, images)
    return path, images


def test_json_output_on_an_image_file(capsys, images_file):
    path, images = images_file
    code, out, err = run_cli(capsys, "--images", str(path), "--json", "--batch-size", "10")
    assert code == 0, err
    data = json.loads(out)
    for key in ("boundary_band", "boundary_fraction_nyquist", "boundary_fraction_corner", "lfc_power_share"):
        assert key in data
    for key in (
        "alpha",
        "alpha_r2",
        "entropy",
        "entropy_normalized",
        "pi",
        "num_images",
        "per_image_boundary",
    ):
        assert key in data
    assert data["num_images"] == len(images) and data["image_size"] == [20, 24] and data["ratio"] == 0.8
    assert str(path) in data["source"]
    pi = np.array(data["pi"])
    assert pi[0] == 0 and pi.sum() == pytest.approx(1.0) and len(pi) == math.isqrt(10**2 + 12**2) + 1
    b = data["boundary_band"]
    # the boundary obeys its definition on the reported pi
    assert pi[:b].sum() <= 0.8 + 1e-9 < pi[: b + 1].sum()
    assert data["lfc_power_share"] == pytest.approx(pi[:b].sum())
    assert data["boundary_fraction_nyquist"] == pytest.approx(b / 10)
    assert data["boundary_fraction_corner"] == pytest.approx(b / math.hypot(10, 12))
    nz = pi[pi > 0]
    assert data["entropy"] == pytest.approx(-(nz * np.log(nz)).sum())
    # the same as the library
    from freqtail.spectrum import summarize

    expected = summarize(images).to_dict()
    assert data["boundary_band"] == expected["boundary_band"]
    np.testing.assert_allclose(data["pi"], expected["pi"], rtol=1e-9)


def test_json_reports_the_inscribed_boundary(capsys, images_file):
    path, _ = images_file
    code, out, err = run_cli(capsys, "--images", str(path), "--json", "--ratio", "0.7")
    assert code == 0, err
    data = json.loads(out)
    pi = np.array(data["pi"])
    m = 10  # 20x24 images: min(20, 24) // 2
    assert data["inscribed_max_band"] == m
    inside = pi[: m + 1] / pi[: m + 1].sum()
    b = data["boundary_band_inscribed"]
    # Eq. 2 on the renormalised inscribed bands
    assert inside[:b].sum() <= 0.7 + 1e-9 < inside[: b + 1].sum()
    assert b <= data["boundary_band"]
    assert data["boundary_fraction_nyquist_inscribed"] == pytest.approx(b / 10)
    assert data["lfc_power_share_inscribed"] == pytest.approx(inside[:b].sum())
    assert data["inscribed_power_share"] == pytest.approx(pi[: m + 1].sum())


def test_text_reports_both_boundaries(capsys, tmp_path):
    # 16x16 images with known rings (see test_spectrum.test_summary_inscribed_boundary_on_known_rings):
    # non-DC power .36, .20, .12, .07 in bands 1-4 and .25 in band 9, beyond the inscribed band 8.
    # Corner: b = 9 (bands < 9 carry 75%). Inscribed: renormalised .48, .2667, ... -> b = 3, 74.7%.
    u = np.arange(16)[:, None]
    v = np.arange(16)[None, :]
    shares = {(1, 0): 0.36, (0, 2): 0.20, (3, 0): 0.12, (3, 3): 0.07, (7, 7): 0.25}
    x = 127.5 + sum(  # amplitudes add up to 108 < 127.5: no clipping
        50 * math.sqrt(a) * np.cos(2 * np.pi * (fu * u + fv * v) / 16) for (fu, fv), a in shares.items()
    )
    images = np.repeat(np.round(x).astype(np.uint8)[None, :, :, None], 3, axis=-1)  # (1, 16, 16, 3)
    path = tmp_path / "rings.npy"
    np.save(path, images)
    code, out, err = run_cli(capsys, "--images", str(path))
    assert code == 0, err
    assert "80/20 boundary band b = 9:" in out
    assert "inscribed bands only (k <= 8 = min(H, W) // 2" in out
    assert "boundary band b = 3 = 0.375 of the Nyquist radius" in out
    share = re.search(r"LFC power share ([0-9.]+)% of that power", out)
    assert share is not None and float(share.group(1)) == pytest.approx(74.7, abs=0.2)  # uint8 rounding

    checkerboard = np.repeat((np.add.outer(np.arange(8), np.arange(8)) % 2 * 255).astype(np.uint8), 3)
    path = tmp_path / "checkerboard.npy"
    np.save(path, checkerboard.reshape(1, 8, 8, 3))  # all non-DC power at (4, 4): band 5, beyond band 4
    code, out, err = run_cli(capsys, "--images", str(path))
    assert code == 0, err
    assert "boundary band b = 5:" in out and "0.0% of the non-DC power" in out
    assert "no boundary: these bands carry no power" in out
    code, out, err = run_cli(capsys, "--images", str(path), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["boundary_band_inscribed"] is None and data["inscribed_power_share"] == 0.0


def test_plot_marks_both_boundaries(capsys, images_file, tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from freqtail.report.spectrum_figures import plot_long_tail
    from freqtail.spectrum import summarize

    lines = []
    original = Axes.axvline

    def spy(self, x=0, *args, **kwargs):
        lines.append((float(x), kwargs.get("label")))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(Axes, "axvline", spy)
    path, images = images_file
    out_png = tmp_path / "tail.png"
    code, out, err = run_cli(
        capsys, "--images", str(path), "--plot", str(out_png), "--json", "--figure-format", "png"
    )
    assert code == 0, err
    data = json.loads(out)
    b, b_inscribed = data["boundary_band"], data["boundary_band_inscribed"]
    labels = {label: x for x, label in lines}
    # one line per boundary on each of the two panels
    assert labels[f"80/20 boundary b={b} (all bands)"] == b
    assert labels[f"80/20 boundary b={b_inscribed} (inscribed bands k<=10)"] == b_inscribed
    assert sum("inscribed" in (label or "") for _, label in lines) == 2

    # a summary dict saved before the inscribed keys existed still draws, with one boundary
    lines.clear()
    old = {k: v for k, v in summarize(images).to_dict().items() if "inscribed" not in k}
    plot_long_tail(old, tmp_path / "old.png", formats=("png",))
    assert sum("boundary" in (label or "") for _, label in lines) == 2
    assert not any("inscribed" in (label or "") for _, label in lines)


def test_ratio_moves_the_boundary_monotonically(capsys, images_file):
    path, _ = images_file
    bands = []
    for ratio in ("0.5", "0.8", "0.95"):
        code, out, err = run_cli(capsys, "--images", str(path), "--json", "--ratio", ratio)
        assert code == 0, err
        data = json.loads(out)
        assert data["ratio"] == float(ratio)
        bands.append(data["boundary_band"])
    assert bands[0] <= bands[1] <= bands[2] and bands[0] < bands[2]


def test_default_run_uses_bundled_photographs_and_prints_a_summary(capsys):
    code, out, err = run_cli(capsys)
    assert code == 0, err
    assert "bundled" in out and "no --images or --dataset given" in out
    for phrase in (
        "boundary band b =",
        "inscribed bands only (k <= 32",
        "Nyquist radius",
        "corner radius",
        "LFC power share",
        "alpha =",
        "R^2",
    ):
        assert phrase in out
    assert "spectral entropy" in out and "per-image boundary" in out and "skipped constant images" in out
    assert "256 images of 64x64" in out


def test_plot_writes_a_png_atomically(capsys, images_file, tmp_path):
    path, _ = images_file
    out_png = tmp_path / "figures" / "tail.png"
    code, out, err = run_cli(capsys, "--images", str(path), "--plot", str(out_png), "--figure-format", "png")
    assert code == 0, err
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(out_png.parent) == ["tail.png"]  # no temporary files left behind
    assert str(out_png) in out
    # By default every format, the suffix of --plot replaced by each.
    code, out, err = run_cli(
        capsys, "--images", str(path), "--plot", str(out_png.parent / "all.png"), "--json"
    )
    assert code == 0, err
    written = [out_png.parent / f"all.{fmt}" for fmt in ("png", "pdf", "svg")]
    assert json.loads(out)["plots"] == [str(file) for file in written]
    assert written[1].read_bytes()[:5] == b"%PDF-" and b"<svg" in written[2].read_bytes()[:1000]
    assert sorted(os.listdir(out_png.parent)) == ["all.pdf", "all.png", "all.svg", "tail.png"]


def test_dataset_option_calls_the_data_layer(capsys, monkeypatch, natural_crops):
    import freqtail.data

    calls = []

    def fake_iter_uint8_batches(name, split="train", root=None, batch_size=512):
        calls.append((name, split, root, batch_size))
        crops = natural_crops(16, 2, seed=3)
        yield from (crops[i : i + 8] for i in range(0, len(crops), 8))

    monkeypatch.setattr(freqtail.data, "iter_uint8_batches", fake_iter_uint8_batches, raising=False)
    code, out, err = run_cli(
        capsys,
        "--dataset",
        "cifar10",  # a registered name (an unknown one is refused before the data layer is asked)
        "--data-root",
        "/some/where",
        "--split",
        "test",
        "--batch-size",
        "8",
        "--json",
    )
    assert code == 0, err
    assert calls == [("cifar10", "test", "/some/where", 8)]
    data = json.loads(out)
    assert data["num_images"] == 32 and data["source"] == "dataset cifar10 (test split)"


def test_bad_files_exit_2_with_one_sentence(capsys, tmp_path):
    missing = tmp_path / "missing.npy"
    code, out, err = run_cli(capsys, "--images", str(missing))
    assert_one_line_error(code, out, err, "does not exist")

    truncated = tmp_path / "truncated.npy"
    np.save(truncated, np.zeros((4, 8, 8, 3), dtype=np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:150])
    code, out, err = run_cli(capsys, "--images", str(truncated))
    assert_one_line_error(code, out, err, str(truncated))

    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, out, err = run_cli(capsys, "--images", str(pickled))
    assert_one_line_error(code, out, err, "pickle")

    text = tmp_path / "text.npy"
    text.write_text("not an array\n")
    code, out, err = run_cli(capsys, "--images", str(text))
    assert_one_line_error(code, out, err, str(text))

    floats = tmp_path / "floats.npy"
    np.save(floats, np.zeros((2, 8, 8, 3), dtype=np.float32))
    code, out, err = run_cli(capsys, "--images", str(floats))
    assert_one_line_error(code, out, err, "uint8")

    channels_first = tmp_path / "nchw.npy"
    np.save(channels_first, np.zeros((2, 3, 8, 8), dtype=np.uint8))
    code, out, err = run_cli(capsys, "--images", str(channels_first))
    assert_one_line_error(code, out, err, "channels")

    constant = tmp_path / "constant.npy"
    np.save(constant, np.full((3, 8, 8, 3), 9, dtype=np.uint8))
    code, out, err = run_cli(capsys, "--images", str(constant))
    assert_one_line_error(code, out, err, "constant")


def test_bad_options_exit_2_with_one_sentence(capsys, images_file, tmp_path):
    path, _ = images_file
    for ratio in ("1.5", "0", "nan"):
        code, out, err = run_cli(capsys, "--images", str(path), "--ratio", ratio)
        assert_one_line_error(code, out, err, "ratio")
    code, out, err = run_cli(capsys, "--images", str(path), "--plot", str(tmp_path / "tail.xyz"))
    assert_one_line_error(code, out, err, "suffix")
    for formats in ("bmp", "", "png,tiff"):
        code, out, err = run_cli(capsys, "--images", str(path), "--figure-format", formats)
        assert_one_line_error(code, out, err, "--figure-format must be a non-empty comma-separated list")
    code, out, err = run_cli(capsys, "--data-root", str(tmp_path))
    assert_one_line_error(code, out, err, "--dataset")
    code, out, err = run_cli(capsys, "--images", str(path), "--batch-size", "0")
    assert_one_line_error(code, out, err, "batch-size")
    code, out, err = run_cli(capsys, "--images", str(path), "--device", "quantum")
    assert_one_line_error(code, out, err, "device")
    with pytest.raises(SystemExit) as exit_info:  # argparse: both sources at once
        main(["spectrum", "--images", str(path), "--dataset", "cifar10"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_console_script_end_to_end(images_file, tmp_path):
    path, images = images_file
    script = shutil.which("freqtail") or str(Path(sys.executable).parent / "freqtail")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [script, "spectrum", "--images", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_images"] == len(images)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    done = subprocess.run(
        [script, "spectrum", "--images", str(bad)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
