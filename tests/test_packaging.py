"""The package as a user gets it: a wheel built from this tree, installed elsewhere, imports every
module from there, reads its package data and runs a command through its entry point.

Every module is imported (not only those the demo uses), so a module or data file missing from the
wheel fails here; what the demo computes is tested on the source tree by test_demo.py."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
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

    def there(*command: str) -> subprocess.CompletedProcess:
        """``command`` run outside the source tree, with only the installed copy importable."""
        done = subprocess.run(command, capture_output=True, text=True, cwd=elsewhere, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    where = there(sys.executable, "-c", "import freqtail; print(freqtail.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(site)  # the installed copy, not this source tree
    every_module = there(sys.executable, "-c", IMPORT_EVERY_MODULE, str(site))
    imported, published = every_module.stdout.split()
    source_modules = {
        ".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "src" / "freqtail").rglob("*.py")
    }
    assert int(imported) == len(source_modules)  # every module of the tree travelled in the wheel
    from freqtail.paper import published_value

    assert float(published) == published_value(**TABLE1_CELL)  # the package data reads from there too
    # the bundled photographs' crops (the embedded dataset would add its 4 s synthesis to the test)
    spectrum = there(str(site / "bin" / "freqtail"), "spectrum", "--plot", "spectrum.png")
    assert spectrum.stdout.startswith("Frequency long tail of 256 images of 64x64 pixels")
    assert all((elsewhere / f"spectrum.{kind}").stat().st_size > 0 for kind in ("png", "pdf", "svg"))


TABLE1_CELL = dict(
    table="table1", method="PGD-AT", model="ResNet-18", dataset="CIFAR-10", bass=True, column="Clean"
)

#: Imports every module of the installed freqtail (argv[1] is where it was installed), checks each
#: comes from there, and prints how many there are and one published number read from the package data.
IMPORT_EVERY_MODULE = f"""
import importlib, pkgutil, sys
from pathlib import Path
import freqtail
from freqtail.paper import published_value
site = Path(sys.argv[1])
names = ["freqtail"] + [m.name for m in pkgutil.walk_packages(freqtail.__path__, "freqtail.")]
for name in names:
    module = importlib.import_module(name)
    assert Path(module.__file__).is_relative_to(site), module.__file__
print(len(names), published_value(**{TABLE1_CELL!r}))
"""
