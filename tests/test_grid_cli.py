"""``freqtail reproduce`` and ``freqtail grid``: real cells on the embedded data at the smoke scale.

Every run trains and evaluates for real (one epoch of a tiny small-cnn, tiny evaluations): the t1
smoke cells end to end in this process, a custom grid with ``--jobs 2`` launcher processes, and the
refusals of bad input (one sentence, exit 2, no traceback). A launcher killed or stopped by Ctrl-C is
a process forked from this one (tests/forked.py).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import freqtail.workflows.grid_run as grid_run
from forked import Forked, forked_cli
from freqtail.cli import main
from freqtail.paper import published_value
from freqtail.workflows.grid_scale import SMOKE_EVALUATION, describe_scale, scale_spec
from freqtail.workflows.grid_spec import GridSpec
from test_grid_support import one_sentence_error

#: Four Table 1 cells of CIFAR-10 and ResNet-18: PGD-AT and TRADES, each without and with BaSS.
T1_FOUR = "t1-cifar10-resnet18-[pt]*"
T1_NAMES = [
    "t1-cifar10-resnet18-pgd-at",
    "t1-cifar10-resnet18-pgd-at-bass",
    "t1-cifar10-resnet18-trades",
    "t1-cifar10-resnet18-trades-bass",
]
#: What each of T1_NAMES is in Table 1: (method, BaSS).
T1_ROWS = [("PGD-AT", False), ("PGD-AT", True), ("TRADES", False), ("TRADES", True)]

TINY_GRID = """\
set:
  dataset: embedded
  model: small-cnn
  model_options: {width: 4}
  epochs: 1
  train_subset: 128
  test_subset: 32
  batch_size: 64
  device: cpu
  progress: false
axes: {seed: [0, 1, 2]}
suites: [clean]
evaluation: {n: 32}
"""


def _status(folder: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["grid", "status", str(folder), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_smoke_scale_keeps_names_objectives_bass_modes_and_suites_and_makes_the_rest_tiny():
    paper = GridSpec.family("t1")
    smoke = scale_spec(paper, "smoke")
    assert scale_spec(paper, "paper") is paper
    assert [c.name for c in smoke.cells()] == [c.name for c in paper.cells()]
    assert smoke.suites == paper.suites == ("clean", "pgd20", "aa")
    for big, small in zip(paper.cells(), smoke.cells(), strict=True):
        for key in ("objective", "bass", "gamma", "bass_strength", "bass_branch", "seed", "eps"):
            assert getattr(small.config, key) == getattr(big.config, key), (small.name, key)
        assert (small.config.dataset, small.config.model, small.config.epochs) == ("embedded", "small-cnn", 1)
    # CIFAR-10/100 x ResNet-18/WRN-34-10: four stand-ins, so no two cells train the same configuration
    assert len({c.config.model_options["width"] for c in smoke.cells()}) == 4
    assert smoke.evaluation_request().n == SMOKE_EVALUATION["n"]
    assert scale_spec(smoke, "smoke").digest() == smoke.digest()  # deterministic, idempotent
    lines = describe_scale(smoke, "smoke", T1_FOUR)
    assert lines[0] == "Scale smoke: 4 of 24 cells, suites clean, pgd20, aa."
    for family in ("t3", "t4", "fig3"):
        assert len(scale_spec(GridSpec.family(family), "smoke").cells()) == len(
            GridSpec.family(family).cells()
        )


@pytest.fixture(scope="module")
def t1_smoke(tmp_path_factory) -> tuple[Path, list[str], int, str]:
    """Four Table 1 cells (CIFAR-10, ResNet-18, PGD-AT and TRADES, without and with BaSS) run end to end
    at the smoke scale, uninterrupted: ``(grid folder, argv, exit code, printed)``."""
    out = tmp_path_factory.mktemp("t1") / "grid"
    argv = ["reproduce", "t1", "--scale", "smoke", "--out", str(out), "--only", T1_FOUR]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    return out, argv, code, printed.getvalue()


def _table_rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((folder / "table.csv").open(encoding="utf-8")))


def _correct(run: Path, record_id: str) -> np.ndarray:
    """The per-image correctness of one record of ``run``'s results.json, decoded from its stored form
    (``packbits-base64``: numpy's big-endian bit packing, then base64), shape (n,), bool."""
    records = json.loads((run / "results.json").read_text())["results"]
    stored = next(r for r in records if r["id"] == record_id)["per_image"]
    assert stored["encoding"] == "packbits-base64"
    packed = np.frombuffer(base64.b64decode(stored["correct"]), dtype=np.uint8)
    return np.unpackbits(packed, count=stored["n"]).astype(bool)


def _mcnemar_from_records(first: np.ndarray, second: np.ndarray) -> float:
    """The exact two-sided McNemar p-value from its definition: with b and c the discordant counts,
    min(1, 2 P[X <= min(b, c)]) for X ~ Binomial(b + c, 1/2); 1 when no image is discordant."""
    b, c = int(np.sum(first & ~second)), int(np.sum(~first & second))
    return 1.0 if b + c == 0 else min(1.0, 2 * scipy.stats.binom.cdf(min(b, c), b + c, 0.5))


#: The two tests that read the t1 smoke grid share one xdist worker, so the grid runs once.
T1_GROUP = pytest.mark.xdist_group("t1-smoke")


@T1_GROUP
def test_reproduce_t1_smoke_runs_four_cells_end_to_end_then_does_nothing(t1_smoke, capsys):
    out, argv, code, printed = t1_smoke
    assert code == 0
    assert printed.startswith("Scale smoke: 4 of 24 cells")
    for name in T1_NAMES:
        assert f"{name}: started" in printed and f"{name}: epoch 1/1" in printed  # lines name the cell
        results = json.loads((out / name / "results.json").read_text())
        assert results["results"], name
    status = _status(out, capsys)
    cells = {cell["name"]: cell for cell in status["cells"]}
    for name in T1_NAMES:
        assert cells[name]["state"] == "done" and cells[name]["attempts"] == 1
        assert cells[name]["epoch"] == cells[name]["epochs"] == 1 and cells[name]["test_acc"] is not None
    assert status["summary"] == {"total": 24, "done": 4, "running": 0, "failed": 0, "pending": 20}
    # the same command again: every chosen cell is done, nothing is trained
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "started" not in again and "4 of 24 cells done" in again
    assert [c["attempts"] for c in _status(out, capsys)["cells"] if c["name"] in T1_NAMES] == [1] * 4
    assert main(["grid", "status", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("t1-cifar10-resnet18-mart  pending  attempts 0") for line in lines)
    assert any(line.startswith(f"{T1_NAMES[0]}  done") and "epoch 1/1" in line for line in lines)
    assert lines[-1] == f"Grid {out}: 24 cells, 4 done, 0 running, 0 failed, 20 pending."
    # the table beside the paper's: the smoke cells stand beside their presets' published rows
    assert main(["grid", "table", str(out)]) == 0
    assert "Wrote" in capsys.readouterr().out
    rows = _table_rows(out)
    for name, (method, bass) in zip(T1_NAMES, T1_ROWS, strict=True):
        clean = next(r for r in rows if r["cell"] == name and r["column"] == "Clean")
        published = published_value(
            "table1", method=method, model="ResNet-18", dataset="CIFAR-10", bass=bass, column="Clean"
        )
        assert float(clean["published_percent"]) == pytest.approx(published)
        assert clean["state"] == "done" and 0 <= float(clean["measured_percent"]) <= 100
    # each BaSS row's paired test, computed again from the two cells' per-image correctness
    for baseline, name in ((T1_NAMES[0], T1_NAMES[1]), (T1_NAMES[2], T1_NAMES[3])):
        clean = next(r for r in rows if r["cell"] == name and r["column"] == "Clean")
        assert clean["baseline_cell"] == baseline and int(clean["paired_n"]) == 32
        expected = _mcnemar_from_records(
            _correct(out / baseline, "best|standard|clean|"), _correct(out / name, "best|domain|clean|")
        )
        assert float(clean["mcnemar_p"]) == pytest.approx(expected, rel=1e-6)
        assert float(clean["delta_ci_low_pp"]) <= float(clean["delta_pp"]) <= float(clean["delta_ci_high_pp"])
    assert any(r["state"] == "pending" for r in rows)
    assert (out / "table.md").is_file() and "\\toprule" in (out / "table.tex").read_text(encoding="utf-8")


def _gated_launcher(argv: list[str], gate: Path, victim: str) -> Forked:
    """``freqtail ARGV`` in a forked launcher process (tests/forked.py) whose training of the cell
    ``victim`` stops for good after the second step of its epoch, saying so in ``gate/holding``: a
    known point in the middle of that cell, where the test kills it with SIGKILL."""

    class Hold:
        def on_step(self, run):
            if run.step_in_epoch == 2:
                (gate / "holding").write_text(str(os.getpid()))
                while True:
                    time.sleep(0.05)

    def launch() -> int:
        original = grid_run.train_run

        def train_run(request):
            if request.run_dir.name == victim:
                request = dataclasses.replace(request, callbacks=[*request.callbacks, Hold()])
            return original(request)

        grid_run.train_run = train_run  # in the child only
        return main(argv)

    return Forked(launch)


@T1_GROUP
def test_a_launcher_killed_in_the_middle_of_a_cell_then_rerun_gives_the_uninterrupted_table(
    t1_smoke, tmp_path, capsys
):
    """The reference grid with its last cell not done yet (pending, its folder gone), that cell then
    killed in the middle of its training: the rerun gives the uninterrupted table. (Starting from the
    reference's other done cells keeps the test to one cell's work.)"""
    reference, argv, code, _ = t1_smoke
    assert code == 0
    out = tmp_path / "grid"
    argv = [str(out) if part == str(reference) else part for part in argv]
    victim = T1_NAMES[-1]
    shutil.copytree(reference, out)
    manifest = json.loads((out / "grid.json").read_text())
    row = next(row for row in manifest["cells"] if row["name"] == victim)
    row.update(
        state="pending", attempts=0, holder=None, timings={"started": None, "finished": None, "seconds": None}
    )
    (out / "grid.json").write_text(json.dumps(manifest))
    shutil.rmtree(out / victim)
    gate = tmp_path / "gate"
    gate.mkdir()
    launcher = _gated_launcher(argv, gate, victim)
    deadline = time.monotonic() + 600  # a bound for a broken build, not a race with the launcher
    while not (gate / "holding").exists():
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
        time.sleep(0.05)
    launcher.kill()
    launcher.communicate(timeout=60)
    states = {c["name"]: c["state"] for c in _status(out, capsys)["cells"] if c["name"] in T1_NAMES}
    assert states == dict(zip(T1_NAMES, ["done", "done", "done", "running"], strict=True))
    assert not (out / victim / "results.json").exists()  # killed in training: nothing evaluated yet
    # the same command again: the dead launcher's cell is taken over and both cells end done
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"Took over the grid cell {victim} from launcher" in printed
    assert f"{victim}: started" in printed
    assert not any(f"{name}: started" in printed for name in T1_NAMES[:-1])
    cells = {c["name"]: c for c in _status(out, capsys)["cells"]}
    assert [cells[name]["attempts"] for name in T1_NAMES] == [1, 1, 1, 2]
    assert _table_rows(out) == _table_rows(reference)
    markdown = (out / "table.md").read_text(encoding="utf-8").replace(str(out), "GRID")
    assert markdown.replace(str(reference), "GRID") == (reference / "table.md").read_text(
        encoding="utf-8"
    ).replace(str(reference), "GRID")


def test_two_launcher_processes_run_every_cell_of_a_grid_exactly_once(tmp_path, capsys):
    spec_file = tmp_path / "seeds.yaml"
    spec_file.write_text(TINY_GRID)
    out = tmp_path / "seeds"
    assert main(["grid", "run", str(spec_file), "--out", str(out), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    names = ["base-seed=0", "base-seed=1", "base-seed=2"]
    started = [line for line in printed.splitlines() if line.endswith(": started")]
    assert sorted(line.split("] ")[-1] for line in started) == [f"{n}: started" for n in names]
    assert all(line.startswith("[launcher ") for line in started)
    status = _status(out, capsys)
    assert [(c["name"], c["state"], c["attempts"]) for c in status["cells"]] == [
        (n, "done", 1) for n in names
    ]
    trained = sorted(p.parent.name for p in out.glob("*/metrics.jsonl"))
    assert trained == names
    for name in names:  # one epoch record each: trained once
        assert len((out / name / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_failing_cell_exits_1_naming_it_and_the_others_finish(tmp_path, capsys):
    spec_file = tmp_path / "broken.yaml"
    spec_file.write_text(
        TINY_GRID.replace("axes: {seed: [0, 1, 2]}", "axes: {seed: [0]}")
        + "cells:\n  - {name: missing-data, dataset: cifar10, data_root: "
        + json.dumps(str(tmp_path / "nothing-here"))
        + "}\n"
    )
    out = tmp_path / "broken"
    assert main(["grid", "run", str(spec_file), "--out", str(out), "--retries", "0"]) == 1
    captured = capsys.readouterr()
    assert "1 of 2 cells failed: missing-data (" in captured.err and "Traceback" not in captured.err
    cells = {c["name"]: c for c in _status(out, capsys)["cells"]}
    assert cells["base-seed=0"]["state"] == "done"
    assert cells["missing-data"]["state"] == "failed" and cells["missing-data"]["why"]


def _wait_until_running(folder: Path, process: Forked, cells: int, limit: float = 120.0) -> None:
    """Wait until ``cells`` cells of the grid are running (a deadline only against a hang)."""
    deadline = time.monotonic() + limit
    while True:
        assert process.poll() is None, process.communicate()
        manifest = folder / "grid.json"
        if manifest.is_file():
            try:
                rows = json.loads(manifest.read_text())["cells"]
            except (json.JSONDecodeError, KeyError):
                rows = []  # never: the file is written atomically
            if sum(row["state"] == "running" for row in rows) >= cells:
                return
        assert time.monotonic() < deadline, "the cells never started"
        time.sleep(0.05)


def test_ctrl_c_stops_every_launcher_exits_130_and_puts_the_cells_back(tmp_path, capsys):
    spec_file = tmp_path / "long.yaml"
    spec_file.write_text(
        TINY_GRID.replace("epochs: 1", "epochs: 1000").replace("seed: [0, 1, 2]", "seed: [0, 1]")
    )
    out = tmp_path / "long"
    process = forked_cli(["grid", "run", str(spec_file), "--out", str(out), "--jobs", "2"])
    _wait_until_running(out, process, cells=2)
    process.send_signal(signal.SIGINT)  # the parent launcher only: it stops its launcher processes
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "freqtail grid: interrupted."
    cells = _status(out, capsys)["cells"]
    assert [(c["state"], c["attempts"], c["host"]) for c in cells] == [("pending", 0, None)] * 2


@pytest.mark.parametrize(
    "argv, words",
    [
        (["reproduce", "t9", "--out", "{tmp}/x"], ("'t9'", "t1, t3, t4, fig3")),
        (["reproduce", "t1", "--out", "{tmp}/x", "--jobs", "0"], ("--jobs",)),
        (["reproduce", "t1", "--out", "{tmp}/x", "--scale", "huge"], ("'huge'", "paper, smoke")),
        (["reproduce", "t1", "--out", "{tmp}/x", "--only", "nothing*"], ("nothing*",)),
        (["grid", "status", "{tmp}"], ("not a grid folder",)),
        (["grid", "run", "{tmp}/bad.yaml", "--out", "{tmp}/x"], ("learning_rate",)),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, argv, words):
    (tmp_path / "bad.yaml").write_text("set: {epochs: 1}\naxes: {learning_rate: [0.1, 0.05]}\n")
    one_sentence_error(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv], *words)
    assert not (tmp_path / "x").exists()


def _grid_with_a_running_cell(tmp_path: Path) -> tuple[Path, str]:
    """A 3-cell grid whose first cell is claimed by this process and has trained 2 of 5 epochs in 2 s
    and 4 s (its metrics.jsonl written as the trainer writes it: one JSON record per epoch)."""
    from freqtail.workflows.grid_manifest import GridManifest

    spec = GridSpec.from_mapping({"set": {"epochs": 5}, "axes": {"seed": [0, 1, 2]}})
    folder = tmp_path / "grid"
    manifest = GridManifest.open(folder, spec)
    cell = manifest.claim("watcher-test")
    run_dir = manifest.layout.run_dir(cell.name)
    run_dir.mkdir(parents=True)
    lines = [
        json.dumps({"epoch": epoch, "test_acc": acc, "epoch_time": seconds})
        for epoch, acc, seconds in ((1, 0.25, 2.0), (2, 0.5, 4.0))
    ]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder, cell.name


def test_status_gives_the_training_time_left_at_the_measured_speed(tmp_path, capsys):
    folder, name = _grid_with_a_running_cell(tmp_path)
    status = _status(folder, capsys)
    first, *others = status["cells"]
    # mean epoch time (2 + 4) / 2 = 3 s, 5 - 2 = 3 epochs left: 9 s
    assert (first["name"], first["state"], first["epoch"], first["epochs"]) == (name, "running", 2, 5)
    assert first["seconds_per_epoch"] == pytest.approx(3.0) and first["seconds_left"] == pytest.approx(9.0)
    assert [cell["seconds_left"] for cell in others] == [None, None]  # nothing measured yet
    assert status["seconds_left"] == pytest.approx(9.0)
    assert main(["grid", "status", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "epoch 2/5, test_acc 0.5000, training left 9 s at 3.0 s/epoch" in lines[0]
    assert lines[-1].endswith("2 pending; about 9 s of training left in the cells that have started.")


def test_watch_refreshes_until_every_cell_is_settled_and_ctrl_c_stops_it(tmp_path, capsys):
    folder, _ = _grid_with_a_running_cell(tmp_path)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "freqtail.cli", "grid", "status", str(folder), "--json", "--watch", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        refreshes = [json.loads(watcher.stdout.readline()) for _ in range(3)]  # one object per line
        assert all(view["summary"]["running"] == 1 for view in refreshes)
    finally:
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 130 and "Traceback" not in err, err
    # a grid where nothing runs or waits: one view, exit 0
    done = tmp_path / "done"
    spec_file = tmp_path / "one.yaml"
    spec_file.write_text(TINY_GRID.replace("axes: {seed: [0, 1, 2]}", "axes: {seed: [0]}"))
    assert main(["grid", "run", str(spec_file), "--out", str(done)]) == 0
    capsys.readouterr()
    assert main(["grid", "status", str(done), "--watch", "0.05"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[-1].endswith("1 cells, 1 done, 0 running, 0 failed, 0 pending.")
