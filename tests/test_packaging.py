"""The package as a user gets it: a wheel built from this tree, installed elsewhere, runs the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_quick_demo_outside_the_source_tree(tmp_path):
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, text=True, cwd=tmp_path)
    (wheel,) = dist.glob("freqtail-*.whl")
    from freqtail import __version__

    assert wheel.name.startswith(f"freqtail-{__version__}-")  # the version has one home
    with zipfile.ZipFile(wheel) as archive:
        assert "freqtail/paper/tables.json" in archive.namelist()  # package data travels with the code
    site = tmp_path / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--target",
        str(site),
        str(wheel),
    ]
    subprocess.run(install, check=True, capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), FREQTAIL_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    where = subprocess.run(
        [sys.executable, "-c", "import freqtail; print(freqtail.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)  # the installed copy, not this source tree
    demo = subprocess.run(
        [str(site / "bin" / "freqtail"), "demo", "--quick", "--out", "demo"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (elsewhere / "demo" / "report.html").is_file() and "Key numbers" in demo.stdout
