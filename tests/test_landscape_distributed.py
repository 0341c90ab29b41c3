"""The loss landscape sharded over processes: which rank owns which point, the merge of every rank's
partial file, and real torchrun processes (one killed with SIGKILL in the middle of its points) whose
work three forked ranks finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import landscape_worker as worker
from forked import forked_ranks
from freqtail.analysis._landscape_points import (
    PointValues,
    owned_points,
    partial_files,
    rank_partial_path,
    read_partials,
    write_partial,
)

WORKER = Path(__file__).with_name("landscape_worker.py")
KEYS = ("loss_lfc", "loss_hfc", "acc_lfc", "acc_hfc", "nonfinite_lfc", "nonfinite_hfc")


def test_a_fresh_grid_is_dealt_out_by_point_index_and_a_rerun_deals_out_what_is_left():
    # Fresh 3 x 3 grid, 2 ranks: point p goes to rank p % 2.
    assert owned_points(np.arange(9), 0, 2).tolist() == [0, 2, 4, 6, 8]
    assert owned_points(np.arange(9), 1, 2).tolist() == [1, 3, 5, 7]
    # A rerun with 3 ranks and the points 1, 4, 5, 7, 8 left: every third of them.
    left = np.array([8, 1, 5, 4, 7])
    shares = [owned_points(left, rank, 3).tolist() for rank in range(3)]
    assert shares == [[1, 7], [4, 8], [5]]
    # One process does everything; more ranks than points leave some idle.
    assert owned_points(left, 0, 1).tolist() == [1, 4, 5, 7, 8]
    assert [owned_points(np.array([3]), rank, 2).tolist() for rank in range(2)] == [[3], []]


def _truth(points: int) -> PointValues:
    """Distinct values at every point (so a value taken from the wrong point shows)."""
    values = PointValues.empty(points)
    for p in range(points):
        values.set_point(p, 1.0 + p, p / points, 2.0 + p, 1 - p / points)
    return values


def _write_as_ranks(folder: Path, truth: PointValues, shares: list[list[int]], fingerprint: str) -> Path:
    partial = folder / "landscape.partial.npz"
    for rank, share in enumerate(shares):
        mine = PointValues.empty(truth.points)
        mine.take(truth, np.isin(np.arange(truth.points), share))
        write_partial(rank_partial_path(partial, rank), fingerprint, mine)
    return partial


def test_partial_files_of_two_or_three_ranks_merge_to_the_same_points(tmp_path):
    truth = _truth(25)
    done = [0, 1, 2, 3, 5, 8, 13, 21, 24]
    by_two = _write_as_ranks(tmp_path / "two", truth, [done[0::2], done[1::2]], "run")
    # Three ranks, overlapping shares (a point two ranks both hold has the same values).
    by_three = _write_as_ranks(tmp_path / "three", truth, [done[:4], done[3:7], done[6:]], "run")
    assert [p.name for p in partial_files(by_three)] == [f"landscape.partial.rank{r}.npz" for r in range(3)]
    for partial in (by_two, by_three):
        # Files of another run (other fingerprint), broken files and unrelated names are ignored.
        write_partial(rank_partial_path(partial, 7), "another run", truth)
        rank_partial_path(partial, 5).write_bytes(b"not a zip archive")
        (partial.parent / "landscape.partial.rankX.npz").write_bytes(b"")
        merged = read_partials(partial, "run", 25)
        assert np.flatnonzero(merged.done).tolist() == done
        expected = PointValues.empty(25)
        expected.take(truth, merged.done)
        np.testing.assert_array_equal(merged.flat(), expected.flat())
    assert read_partials(tmp_path / "nowhere" / "landscape.partial.npz", "run", 25).done.sum() == 0
    assert read_partials(by_two, "run", 36).done.sum() == 0  # another grid size: not this landscape


def _torchrun(out: Path, processes: int, *options: str) -> subprocess.Popen:
    source = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": source, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "freqtail.train.torchrun", "--standalone", "--nnodes", "1"]
    command += ["--nproc-per-node", str(processes), str(WORKER), str(out), *options]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _done_points(path: Path) -> int:
    try:
        with np.load(path) as saved:
            return int(saved["done"].sum())
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_ranks_killed_mid_landscape_resume_with_three_processes_to_the_one_process_landscape(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # Two processes, slowed down (a pause before every forward pass): SIGKILL rank 1 once its
    # partial file holds some points; torchrun then stops rank 0.
    first = _torchrun(out, 2, "--pause", "0.05")
    rank1_file = out / "landscape.partial.rank1.npz"
    deadline = time.monotonic() + 120
    while _done_points(rank1_file) == 0:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "rank 1 never saved a point"
        time.sleep(0.02)
    os.kill(int((out / "pid.rank1").read_text()), signal.SIGKILL)
    log = first.communicate(timeout=120)[0]
    assert first.returncode != 0, log
    assert not list(out.glob("result.rank*.npz")), log  # nobody finished

    # What survived: rank r of the fresh 2-process run computed only points p with p % 2 == r.
    survived = np.zeros(worker.GRID**2, dtype=bool)
    for rank, path in enumerate(partial_files(out / "landscape.partial.npz")):
        with np.load(path) as saved:
            assert set(np.flatnonzero(saved["done"]) % 2) <= {rank}
            survived |= saved["done"]
    assert 0 < survived.sum() < worker.GRID**2

    # The rerun, with another number of processes, computes only the points nobody saved (three
    # ranks forked from this process, tests/forked.py: a torchrun start costs seconds).
    ranks = forked_ranks(lambda: worker.main([str(out)]), 3)
    logs = [rank.communicate(timeout=180) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0, 0], logs
    computed = [json.loads((out / f"computed.rank{rank}.json").read_text())["points"] for rank in range(3)]
    assert sum(computed) == worker.GRID**2 - survived.sum()
    assert max(computed) - min(computed) <= 1  # the points left are shared evenly
    assert not partial_files(out / "landscape.partial.npz")  # rank 0 removed every rank's file

    # Every rank returns the whole landscape, equal bit for bit to one uninterrupted process's.
    alone = worker.landscape(worker.build_model())
    for rank in range(3):
        with np.load(out / f"result.rank{rank}.npz") as result:
            for key in KEYS:
                np.testing.assert_array_equal(result[key], getattr(alone, key), err_msg=key)
            assert int(result["world_size"]) == 3 and int(result["boundary_band"]) == alone.boundary_band
    assert alone.world_size == 1
