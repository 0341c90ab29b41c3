"""Shared test fixtures: small natural-image crops, an isolated cache folder and a Slurm cluster."""

from __future__ import annotations

import os
import signal

import pytest
import torch

# One torch thread here and in every process a test starts: the processes compute as this one does,
# and on a loaded 2-core machine several spinning OpenMP threads per process made torch up to ten
# times slower (a killed-launcher test took 270 s instead of 60).
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"
# A suite started in the background of a non-interactive shell inherits SIGINT ignored, and so would
# every process it starts: the Ctrl-C tests send a real SIGINT and need the terminal's default. A
# handler set here is reset to the default in the processes the tests exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups off the marks
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, every test that needs the Slurm cluster runs in one worker (``--dist
    loadgroup``), so one run starts one cluster."""
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(pytest.mark.xdist_group("slurm"))


def pytest_runtest_setup(item):
    """In an xdist worker under ``--dist loadgroup``, fail a grouped test whose group did not take: xdist
    marks a grouped test by a ``@GROUP`` suffix of its node id, which pytest 9.2 silently drops, and
    then the demo and the Slurm cluster would start once per worker."""
    grouped = item.get_closest_marker("xdist_group") is not None
    if grouped and os.environ.get("PYTEST_XDIST_WORKER") and item.config.getvalue("loadgroup"):
        if "@" not in item.nodeid:
            pytest.fail(
                f"pytest-xdist's loadgroup did not group this test under pytest {pytest.__version__}: "
                "install the pytest version pyproject.toml's dev extra names.",
                pytrace=False,
            )


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own freqtail cache so tests never share or pollute ~/.cache."""
    monkeypatch.setenv("FREQTAIL_CACHE", str(tmp_path_factory.mktemp("freqtail-cache")))


@pytest.fixture(scope="session")
def natural_crops():
    """``natural_crops(size, per_photo, seed=0)`` -> uint8 (N, H, W, 3) crops of bundled photos.

    ``size`` is an int (square) or an (H, W) tuple.
    """
    from freqtail.sample_photos import photo_crops

    return photo_crops


@pytest.fixture()
def small_embedded(tmp_path, natural_crops):
    """An embedded-layout folder with 32 train and 16 test natural 32x32 crops: ``(folder, arrays)``.

    None of the crops is BaSS-degenerate (seed 5), so conversions change every image.
    """
    import numpy as np

    from freqtail.data.embedded import class_names, write_embedded_folder

    crops = natural_crops(32, 3, seed=5)
    labels = np.arange(len(crops)) % len(class_names())
    arrays = {
        "train_images": crops[:32],
        "train_labels": labels[:32],
        "test_images": crops[32:],
        "test_labels": labels[32:],
    }
    return write_embedded_folder(tmp_path / "emb", arrays), arrays


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm cluster (tests/slurm_cluster.py), started once for the session and
    stopped at its end; the test is skipped, saying why, where it cannot start."""
    from slurm_cluster import ClusterUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except ClusterUnavailable as err:
        pytest.skip(f"no Slurm cluster: {err}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The quick demo, run once per test session through the command line; ``(folder, printed output,
    cache folder)``. Tests read it (and copy it before changing anything).

    Under pytest-xdist the first worker that needs it runs it in the session's shared temporary folder
    holding a file lock; the others wait on the lock and read the same folder (pytest-xdist's recipe
    for a session fixture that runs once), so its users need no worker of their own."""
    import contextlib
    import io
    import json

    from filelock import FileLock

    from freqtail.cli import main

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder every worker of this session shares
    root = root / "quick-demo"
    cache, out, outcome = root / "cache", root / "demo", root / "outcome.json"
    root.mkdir(exist_ok=True)
    with FileLock(str(root.with_suffix(".lock"))):
        if not outcome.is_file():
            printed = io.StringIO()
            # Session fixtures run before the per-test cache fixture: give this one its own cache.
            with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
                patch.setenv("FREQTAIL_CACHE", str(cache))
                code = main(["demo", "--quick", "--out", str(out)])
            outcome.write_text(json.dumps({"code": code, "printed": printed.getvalue()}))
    result = json.loads(outcome.read_text())
    assert result["code"] == 0, result["printed"]
    return out, result["printed"], cache
