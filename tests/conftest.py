"""Shared test fixtures: small natural-image crops, an isolated cache folder and a Slurm cluster."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal

import numpy as np
import pytest
import torch
from filelock import FileLock

from freqtail.cli import main
from freqtail.data import embedded
from session_support import shared_session_folder

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


#: Costly fixtures shared by several tests -> the xdist group their users run in. A module fixture
#: is built once per worker that runs one of its tests, and the users of a session folder shared by
#: every worker (the demo) would wait on its lock side by side, each holding a worker and leaving a
#: core idle: in one group the fixture is built once and its users run one after another while the
#: other workers go on. The t1 smoke grid's and the embedded set's groups are marked in their modules.
SHARED_FIXTURE_GROUPS = {
    "demo": "quick-demo",
    "fig3_grid": "fig3-smoke",
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups off the marks
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``), every test that needs the Slurm cluster runs in one
    worker, so one run starts one cluster, and so does every user of a fixture in
    :data:`SHARED_FIXTURE_GROUPS`."""
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(pytest.mark.xdist_group("slurm"))
            continue
        groups = {SHARED_FIXTURE_GROUPS[name] for name in item.fixturenames if name in SHARED_FIXTURE_GROUPS}
        if len(groups) > 1:
            raise pytest.UsageError(f"{item.nodeid} uses fixtures of several xdist groups: {sorted(groups)}.")
        if groups and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(groups.pop()))


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


_BUILD_EMBEDDED_ARRAYS = embedded.build_embedded_arrays


@functools.cache
def _embedded_arrays_of(train_per_class: int, test_per_class: int) -> dict[str, np.ndarray]:
    arrays = _BUILD_EMBEDDED_ARRAYS(train_per_class, test_per_class)
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def _embedded_arrays_built_once(
    train_per_class: int = embedded.DEFAULT_TRAIN_PER_CLASS,
    test_per_class: int = embedded.DEFAULT_TEST_PER_CLASS,
) -> dict[str, np.ndarray]:
    """The embedded dataset's arrays, synthesised once per test process (about 4 s each time) and
    copied for each caller."""
    return {key: array.copy() for key, array in _embedded_arrays_of(train_per_class, test_per_class).items()}


@pytest.fixture(autouse=True)
def _embedded_synthesised_once(request, monkeypatch):
    """The embedded dataset is deterministic: tests in this process share its synthesis, while each
    test's own cache folder is still written (files, digests) and read by the library as always.
    The embedded dataset's own tests (its determinism, its rebuild) call the real builder."""
    if request.module.__name__ != "test_data_embedded":
        monkeypatch.setattr(embedded, "build_embedded_arrays", _embedded_arrays_built_once)


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
    cache folder)``. Tests read it (and copy it before changing anything). Under pytest-xdist its users
    share one worker (:data:`SHARED_FIXTURE_GROUPS`); the folder is shared by every worker
    (:func:`shared_session_folder`) all the same, so that the demo never runs twice in one session."""
    root = shared_session_folder(tmp_path_factory, "quick-demo")
    cache, out, outcome = root / "cache", root / "demo", root / "outcome.json"
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
