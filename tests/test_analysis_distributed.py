"""``freqtail sensitivity``, ``landscape`` and ``heatmap`` sharded over 2 gloo processes under
freqtail's torchrun launcher, against one process; errors under torchrun; the launcher's split of
its arguments.

One torchrun start runs every case (tests/analysis_worker.py): each start costs seconds on a loaded
CPU. Another analysis joins by adding its case to :func:`_cases` and its comparison below.
"""
# ruff: noqa: F811  (pytest fixtures imported from test_analysis_cli are parameters here)

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
from torch.distributed.run import get_args_parser

from freqtail.analysis import HeatmapResult, LandscapeResult, SensitivityResult
from freqtail.cli import main
from freqtail.train.torchrun import split_arguments
from test_analysis_cli import data_folder, run_dir  # noqa: F401

WORKER = Path(__file__).with_name("analysis_worker.py")
LAUNCHER = ["-m", "freqtail.train.torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
#: The float sums of sensitivity (mean sorted magnitude, band energy shares) are summed per rank and
#: then across ranks: one process's sums up to float64 rounding of that order.
FLOAT_SUMS = {"rtol": 1e-12, "atol": 0.0}

COMMON = ["--device", "cpu", "--json"]
SENSITIVITY = ["--n", "16", "--batch-size", "3", "--top", "0.2"]  # 6 global batches, the last short
HEATMAP = ["--n", "6", "--batch-size", "4", "--eps", "4", "--seed", "3"]  # 2 passes per frequency
LANDSCAPE = ["--n", "8", "--batch-size", "4", "--grid", "5", "--span", "0.5"]  # 25 points, 13 + 12


def _cases(run_dir, out: Path) -> dict[str, list[str]]:
    run = str(run_dir)
    blocked = out / "blocked"
    blocked.mkdir()
    (blocked / "figures").write_text("a file where the figures folder should be")
    return {
        "sensitivity": ["sensitivity", run, *SENSITIVITY, *COMMON, "--out", str(out / "sensitivity")],
        "heatmap": ["heatmap", run, *HEATMAP, *COMMON, "--out", str(out / "heatmap")],
        "landscape": ["landscape", run, *LANDSCAPE, *COMMON, "--out", str(out / "landscape")],
        # Refused by the options' checks, before any collective.
        "bad-option": ["sensitivity", run, "--top", "2", *COMMON, "--out", str(out / "bad-option")],
        # Found by rank 0 alone (it writes the files), before the work.
        "rank0-only": ["heatmap", run, "--n", "2", *COMMON, "--out", str(blocked)],
    }


def _launch(cases: dict[str, list[str]], out: Path) -> subprocess.CompletedProcess:
    spec = out / "cases.json"
    spec.write_text(json.dumps(cases))
    # PYTHONFAULTHANDLER: a rank that aborts (seen once: rank 0 ended by SIGABRT after every case,
    # "terminate called without an active exception") prints where its Python code was.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, *LAUNCHER, str(WORKER), str(spec), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _printed(out: Path, case: str, rank: int) -> tuple[int, str, str]:
    stem = out / f"{case}.rank{rank}"
    return (
        int(Path(f"{stem}.code").read_text()),
        Path(f"{stem}.out").read_text(),
        Path(f"{stem}.err").read_text(),
    )


@pytest.mark.slow
def test_two_processes_match_one_and_fail_together(run_dir, tmp_path, capsys):
    one = tmp_path / "one"
    assert main(["sensitivity", str(run_dir), *SENSITIVITY, *COMMON, "--out", str(one)]) == 0
    assert main(["heatmap", str(run_dir), *HEATMAP, *COMMON, "--out", str(one)]) == 0
    assert main(["landscape", str(run_dir), *LANDSCAPE, *COMMON, "--out", str(one)]) == 0
    capsys.readouterr()

    two = tmp_path / "two"
    two.mkdir()
    launched = _launch(_cases(run_dir, two), two)
    # The worker exits with its worst case's status (the refused ones: 2), and so does the launcher.
    assert launched.returncode == 2, launched.stderr[-3000:]
    assert "Traceback" not in launched.stderr

    for case in ("sensitivity", "heatmap", "landscape"):
        code, printed, errors = _printed(two, case, 0)
        assert code == 0 and errors == "", errors
        assert json.loads(printed)["world_size"] == 2  # rank 0 prints, once
        assert _printed(two, case, 1) == (0, "", "")  # rank 1 prints nothing
        written = json.loads((two / case / f"{case}.json").read_text())
        expected = json.loads((one / f"{case}.json").read_text())
        assert written["world_size"] == 2 and expected["world_size"] == 1
        assert written["indices"] == expected["indices"]

    # Sensitivity: every count and per-image quantity exactly, the float sums to rounding.
    a = SensitivityResult.load(one / "sensitivity.npz")
    b = SensitivityResult.load(two / "sensitivity" / "sensitivity.npz")
    assert (b.world_size, a.world_size) == (2, 1)
    assert (b.num_images, b.num_zero_gradient, b.boundary_band) == (
        a.num_images,
        a.num_zero_gradient,
        a.boundary_band,
    )
    assert a.num_images + a.num_zero_gradient == 16
    np.testing.assert_array_equal(b.top_band_counts, a.top_band_counts)
    # the radius of each chosen rank's coefficient, image by image, in image order
    np.testing.assert_array_equal(b.rank_radius_samples, a.rank_radius_samples)
    np.testing.assert_array_equal(b.rank_band_samples, a.rank_band_samples)
    np.testing.assert_allclose(b.mean_sorted_magnitude, a.mean_sorted_magnitude, **FLOAT_SUMS)
    np.testing.assert_allclose(b.band_energy_share, a.band_energy_share, **FLOAT_SUMS)
    spectrum_one = json.loads((one / "sensitivity.json").read_text())["spectrum"]
    spectrum_two = json.loads((two / "sensitivity" / "sensitivity.json").read_text())["spectrum"]
    assert spectrum_two["num_images"] == spectrum_one["num_images"] == 16
    assert spectrum_two["boundary_band"] == spectrum_one["boundary_band"] == a.boundary_band
    np.testing.assert_allclose(spectrum_two["pi"], spectrum_one["pi"], **FLOAT_SUMS)

    # Heat map: integer error counts summed exactly, so the map is one process's bit for bit.
    c = HeatmapResult.load(one / "heatmap.npz")
    d = HeatmapResult.load(two / "heatmap" / "heatmap.npz")
    assert (d.world_size, c.world_size) == (2, 1)
    assert np.array_equal(d.error_rate, c.error_rate) and d.clean_error == c.clean_error
    assert 0 < c.error_rate.mean() < 1  # a map that says something: some frequencies fool it, not all

    # Landscape: each point evaluated whole by one rank, the same batches in the same order: exact.
    e = LandscapeResult.load(one / "landscape.npz")
    f = LandscapeResult.load(two / "landscape" / "landscape.npz")
    assert (f.world_size, e.world_size) == (2, 1)
    for name in ("loss_lfc", "loss_hfc", "acc_lfc", "acc_hfc"):
        np.testing.assert_array_equal(getattr(f, name), getattr(e, name))
    assert e.loss_lfc.std() > 0  # the points differ: the grid measured something
    assert not list((two / "landscape").glob("landscape.partial*"))  # rank 0 removed the partials

    # Errors: the same one sentence on each rank, status 2, nothing written.
    for case, command, words in (
        ("bad-option", "sensitivity", "top fraction"),
        ("rank0-only", "heatmap", "figures folder"),
    ):
        for rank in (0, 1):
            code, printed, errors = _printed(two, case, rank)
            assert code == 2 and printed == "", (case, rank)
            assert errors.startswith(f"freqtail {command}: error: "), (case, rank, errors)
            assert errors.count("\n") == 1 and words in errors.lower(), (case, rank, errors)
    assert not (two / "bad-option").exists()
    assert not (two / "blocked" / "heatmap.json").exists()


@pytest.mark.parametrize(
    ("argv", "own", "script"),
    [
        (
            ["--standalone", "--nproc-per-node", "2", "-m", "freqtail.cli", "sensitivity", "R", "--n", "5"],
            ["--standalone", "--nproc-per-node", "2", "-m", "freqtail.cli"],
            ["sensitivity", "R", "--n", "5"],
        ),
        (  # --opt=value is one argument; --log would abbreviate torchrun's --log-dir
            ["--nproc_per_node=2", "--master-port", "29511", "train.py", "--log", "tensorboard"],
            ["--nproc_per_node=2", "--master-port", "29511", "train.py"],
            ["--log", "tensorboard"],
        ),
        (["--nnodes", "2"], ["--nnodes", "2"], []),  # no script: torchrun's parser says so
    ],
)
def test_the_launcher_leaves_the_scripts_arguments_to_the_script(argv, own, script):
    assert split_arguments(argv, get_args_parser()) == (own, script)


#: A landscape rank that, after its third point, writes its partial file, says so in
#: ``TEST_GATE/holding.rank<r>`` and waits there (for the Ctrl-C): a known point in the middle of the
#: work, so the test does not race the ranks on a busy machine.
GATED_RANK = """
import os
import sys
import time
from pathlib import Path

from freqtail.analysis import landscape
from freqtail.cli import main

gate, original = Path(os.environ["TEST_GATE"]), landscape.PartialWriter.unit_done
done = 0


def point_done(self, seconds):
    global done
    original(self, seconds)
    done += 1
    if done == 3:
        self.flush()
        (gate / f"holding.rank{os.environ['RANK']}").touch()
        while True:
            time.sleep(0.05)


landscape.PartialWriter.unit_done = point_done
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_with_130_and_the_rerun_resumes(run_dir, tmp_path, capsys):
    """A real Ctrl-C (SIGINT to the launcher, as a terminal sends it) while 2 ranks compute a
    landscape: every rank stops with status 130 and no traceback, the points done are kept in the
    ranks' partial files, and the same command then finishes from them with the uninterrupted
    landscape."""
    out, gate, script = tmp_path / "landscape", tmp_path / "gate", tmp_path / "gated_rank.py"
    gate.mkdir()
    script.write_text(GATED_RANK)
    argv = ["landscape", str(run_dir), "--n", "8", "--batch-size", "8", "--grid", "5", *COMMON]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TEST_GATE=str(gate))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, *LAUNCHER, str(script), *argv, "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300  # a bound for a broken build, not a race with the ranks
    while len(list(gate.glob("holding.rank*"))) < 2:  # both ranks have 3 points written and wait
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    assert len(list(out.glob("landscape.partial.rank*.npz"))) == 2
    process.send_signal(signal.SIGINT)
    printed, errors = process.communicate(timeout=300)
    assert process.returncode == 130, errors[-3000:]
    assert "Traceback" not in errors and "freqtail landscape: interrupted." in errors
    assert not (out / "landscape.json").exists()
    assert main([*argv, "--out", str(out)]) == 0  # one process now: it takes over the points both ranks did
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["world_size"] == 1 and resumed["grid"] == 5
    assert not list(out.glob("landscape.partial*"))
    assert main([*argv, "--out", str(tmp_path / "uninterrupted")]) == 0
    capsys.readouterr()
    resumed = LandscapeResult.load(out / "landscape.npz")
    uninterrupted = LandscapeResult.load(tmp_path / "uninterrupted" / "landscape.npz")
    for name in ("loss_lfc", "loss_hfc", "acc_lfc", "acc_hfc"):  # each point whole by one rank: exact
        np.testing.assert_array_equal(getattr(resumed, name), getattr(uninterrupted, name))
