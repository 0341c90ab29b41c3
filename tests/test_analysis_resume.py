"""The Fourier heat map and the frequency sensitivity resume from per-rank partial files: real torchrun
processes, one killed with SIGKILL once its partial file holds units, then a one-process rerun that
computes only the missing units and equals the uninterrupted one-process result bit for bit."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import resume_worker as worker
from freqtail.analysis import fourier_heatmap, frequency_sensitivity
from freqtail.analysis._partials import partial_files
from freqtail.spectrum import SpectrumAccumulator
from landscape_worker import build_data, build_model

WORKER = Path(__file__).with_name("resume_worker.py")
#: 8x8 images: the conjugate half plane has 34 frequencies (one heat-map block each).
FREQUENCIES = 34
#: 16 images in global batches of 2.
BATCHES = 8


def _torchrun(kind: str, out: Path, processes: int, *options: str) -> subprocess.Popen:
    source = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": source, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "freqtail.train.torchrun", "--standalone", "--nnodes", "1"]
    command += ["--nproc-per-node", str(processes), str(WORKER), kind, str(out), *options]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _done_units(path: Path) -> int:
    try:
        with np.load(path) as saved:
            return int(saved["done"].sum())
    except (OSError, ValueError, KeyError):
        return 0


def _kill_rank_one_mid_run(kind: str, out: Path, hold_after: int = 2) -> list[np.ndarray]:
    """Start 2 processes, rank 1 holding after its ``hold_after``-th unit with its partial file written
    (tests/resume_worker.py), SIGKILL it there (torchrun then stops rank 0); the done masks of the
    partial files left, by rank."""
    first = _torchrun(kind, out, 2, "--hold-after", str(hold_after))
    rank1_file = out / f"{kind}.partial.rank1.npz"
    deadline = time.monotonic() + 120  # a bound for a broken build, not a race with the ranks
    while _done_units(rank1_file) == 0:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "rank 1 never saved a unit"
        time.sleep(0.02)
    os.kill(int((out / "pid.rank1").read_text()), signal.SIGKILL)
    log = first.communicate(timeout=120)[0]
    assert first.returncode != 0, log
    assert not list(out.glob("result.rank*.npz")), log  # nobody finished
    masks = []
    for path in partial_files(out / f"{kind}.partial.npz"):
        with np.load(path) as saved:
            masks.append(saved["done"].astype(bool))
    return masks


def _counting_model():
    """The workers' model and a list whose first item counts its forward passes."""
    model, forwards = build_model(), [0]
    model.register_forward_pre_hook(lambda module, inputs: forwards.__setitem__(0, forwards[0] + 1))
    return model, forwards


@pytest.mark.slow
def test_a_killed_heat_map_resumes_with_one_process_to_the_uninterrupted_map(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    masks = _kill_rank_one_mid_run("heatmap", out)
    # A fresh 2-process run deals the blocks (here single frequencies) out round robin.
    for rank, done in enumerate(masks):
        assert set(np.flatnonzero(done) % 2) <= {rank}
    survived = np.logical_or.reduce(masks)
    assert 0 < survived.sum() < FREQUENCIES

    # Other settings (another sign seed): the partial files are not this map's, everything is measured.
    kept = tmp_path / "kept"
    shutil.copytree(out, kept)
    model, forwards = _counting_model()
    fourier_heatmap(
        model,
        build_data(),
        eps=2.0,
        batch_size=worker.HEATMAP_BATCH,
        seed=6,
        partial_path=out / "heatmap.partial.npz",
    )
    assert forwards[0] == 1 + FREQUENCIES  # the clean pass and every frequency
    assert not partial_files(out / "heatmap.partial.npz")  # removed once the map was complete

    # The same settings: only the frequencies nobody saved are measured, the map is the uninterrupted one.
    shutil.rmtree(out)
    shutil.copytree(kept, out)
    model, forwards = _counting_model()
    resumed = worker.analyse("heatmap", model, out / "heatmap.partial.npz")
    assert forwards[0] == 1 + FREQUENCIES - survived.sum()
    assert not partial_files(out / "heatmap.partial.npz")
    alone = worker.analyse("heatmap", build_model())
    np.testing.assert_array_equal(resumed.error_rate, alone.error_rate)
    assert resumed.clean_error == alone.clean_error and resumed.world_size == 1
    assert 0 < alone.error_rate.mean() < 1  # a map with errors and hits, not a trivial one


@pytest.mark.slow
def test_a_killed_sensitivity_resumes_with_one_process_to_the_uninterrupted_result(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    masks = _kill_rank_one_mid_run("sensitivity", out)
    for rank, done in enumerate(masks):
        assert set(np.flatnonzero(done) % 2) <= {rank}
    survived = np.logical_or.reduce(masks)
    assert 0 < survived.sum() < BATCHES

    model, forwards = _counting_model()
    resumed = worker.analyse("sensitivity", model, out / "sensitivity.partial.npz")
    assert forwards[0] == BATCHES - survived.sum()  # one forward pass per global batch measured
    assert not partial_files(out / "sensitivity.partial.npz")
    alone = worker.analyse("sensitivity", build_model())
    # Every batch's contribution is added in batch order whoever computed it: equal bit for bit.
    for key in ("mean_sorted_magnitude", "band_energy_share", "top_band_counts", "rank_radius_samples"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(alone, key), err_msg=key)
    np.testing.assert_array_equal(resumed.spectrum.pi, alone.spectrum.pi)
    assert (resumed.num_images, resumed.boundary_band) == (alone.num_images, alone.boundary_band)
    assert alone.num_images == 16


def test_ctrl_c_keeps_the_finished_batches_and_other_settings_do_not_resume_them(tmp_path):
    """A KeyboardInterrupt in the third of four batches leaves the first two in the partial file; a run
    of another top fraction measures all four (the file is not its own), the same settings only the
    last two, with the uninterrupted result."""
    partial = tmp_path / "sensitivity.partial.npz"

    def interrupted(module, inputs):
        forwards[0] += 1
        if forwards[0] == 3:
            raise KeyboardInterrupt

    model, forwards = build_model(), [0]
    model.register_forward_pre_hook(interrupted)
    with pytest.raises(KeyboardInterrupt):
        frequency_sensitivity(model, build_data(), batch_size=4, partial_path=partial)
    (saved,) = partial_files(partial)
    with np.load(saved) as arrays:
        assert arrays["done"].tolist() == [True, True, False, False]
    kept = tmp_path / "kept.npz"
    shutil.copy(saved, kept)

    model, forwards = _counting_model()
    frequency_sensitivity(model, build_data(), batch_size=4, top_fraction=0.3, partial_path=partial)
    assert forwards[0] == 4 and not partial_files(partial)

    shutil.copy(kept, saved)
    model, forwards = _counting_model()
    resumed = frequency_sensitivity(model, build_data(), batch_size=4, partial_path=partial)
    assert forwards[0] == 2 and not partial_files(partial)
    alone = frequency_sensitivity(build_model(), build_data(), batch_size=4)
    np.testing.assert_array_equal(resumed.mean_sorted_magnitude, alone.mean_sorted_magnitude)
    np.testing.assert_array_equal(resumed.rank_band_samples, alone.rank_band_samples)
    np.testing.assert_array_equal(resumed.top_band_counts, alone.top_band_counts)


def test_batches_added_in_order_equal_one_stream_and_an_iterable_is_measured_whole(tmp_path):
    """The batch-by-batch sums equal one accumulator fed the same batches in order (the spectrum bit
    for bit); an iterable of batches (whose length is unknown before the pass) gives the same result
    and keeps no partial file."""
    images, labels = build_data()
    partial = tmp_path / "sensitivity.partial.npz"
    from_pair = frequency_sensitivity(build_model(), (images, labels), batch_size=4, partial_path=partial)
    stream = SpectrumAccumulator()
    for start in range(0, 16, 4):
        stream.update(images[start : start + 4])
    np.testing.assert_array_equal(from_pair.spectrum.pi, stream.result().pi)
    assert from_pair.spectrum.num_images == 16 and from_pair.boundary_band == stream.result().boundary_band

    batches = [(images[start : start + 4], labels[start : start + 4]) for start in range(0, 16, 4)]
    model, forwards = _counting_model()
    from_iterable = frequency_sensitivity(model, iter(batches), batch_size=4, partial_path=partial)
    assert forwards[0] == 4 and not partial_files(partial)
    for key in ("mean_sorted_magnitude", "band_energy_share", "top_band_counts", "rank_band_samples"):
        np.testing.assert_array_equal(getattr(from_iterable, key), getattr(from_pair, key), err_msg=key)
