"""Experiment grids: the spec (cells, names, families), the manifest (claims, refusals) and the launcher.

The concurrency tests use real processes (forked from this one, tests/forked.py): two launchers
claiming from one manifest at once, and a launcher killed with SIGKILL in the middle of a cell (at a
known point: it waits on a gate file).
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from forked import Forked
from freqtail.errors import ConfigError, FreqtailError, InputError
from freqtail.locks import holder_path
from freqtail.runs.layout import GridLayout
from freqtail.train import load_config
from freqtail.train.presets import preset_configs
from freqtail.workflows.grid_manifest import CellRecord, CellState, GridManifest, GridSummary
from freqtail.workflows.grid_run import failure_sentence, run_grid
from freqtail.workflows.grid_spec import FAMILY_SUITES, CellSpec, GridSpec, config_hash
from freqtail.workflows.training import TrainRequest, train_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _seeds(*seeds: int, **extra) -> GridSpec:
    return GridSpec.from_mapping({"axes": {"seed": list(seeds)}, **extra})


# ------------------------------------------------------------------------------------------ spec
def test_product_cells_are_named_by_their_axis_values_first_axis_slowest():
    spec = GridSpec.from_mapping({"set": {"epochs": 2}, "axes": {"seed": [0, 1], "lr": [0.1, 0.05]}})
    cells = spec.cells()
    assert [c.name for c in cells] == [
        "base-seed=0-lr=0.1",
        "base-seed=0-lr=0.05",
        "base-seed=1-lr=0.1",
        "base-seed=1-lr=0.05",
    ]
    last = cells[-1]
    assert last.config == load_config(overrides={"epochs": 2, "seed": 1, "lr": 0.05})
    assert last.overrides == (("epochs", 2), ("seed", 1), ("lr", 0.05))  # typed, in order
    assert last.axis_values == (("seed", 1), ("lr", 0.05))
    assert last.config_hash == config_hash(last.config) and len(last.config_hash) == 64
    assert len({c.config_hash for c in cells}) == 4


def test_explicit_cells_and_product_plus_extra_cells():
    explicit = GridSpec(
        explicit=(
            CellSpec(overrides={"objective": "pgd-at", "eps": "4/255"}),
            CellSpec(base="t1-cifar10-resnet18-mart", name="mart", overrides={"epochs": 1}),
        )
    )
    first, mart = explicit.cells()
    assert first.name == "base-objective=pgd-at-eps=4_255"  # filesystem-safe
    assert first.config.eps_value == pytest.approx(4 / 255)
    assert mart.name == "mart"
    assert mart.config == load_config(CONFIGS / "t1-cifar10-resnet18-mart.yaml", ["epochs=1"])
    assert mart.base == "t1-cifar10-resnet18-mart"

    both = GridSpec.from_mapping(
        {"base": "t1-cifar10-resnet18-pgd-at", "axes": {"seed": [0, 1]}, "cells": [{"objective": "trades"}]}
    )
    assert [c.name for c in both.cells()] == [
        "t1-cifar10-resnet18-pgd-at-seed=0",
        "t1-cifar10-resnet18-pgd-at-seed=1",
        "t1-cifar10-resnet18-pgd-at-objective=trades",
    ]
    assert both.cells()[2].config.seed == 0 and both.cells()[2].config.objective == "trades"
    # the one-cell grid: the base itself
    assert [c.name for c in GridSpec().cells()] == ["base"]


def test_names_and_configurations_are_unique():
    with pytest.raises(ConfigError, match=r"^Two grid cells are both named twin; give one"):
        GridSpec(explicit=(CellSpec({"seed": 1}, name="twin"), CellSpec({"seed": 2}, name="twin")))
    with pytest.raises(
        ConfigError, match=r"^The grid cells base-seed=1 and again train the same configuration"
    ):
        GridSpec.from_mapping({"cells": [{"seed": 1}, {"seed": 1, "num_workers": 2, "name": "again"}]})
    with pytest.raises(ConfigError, match=r"lists a value twice"):
        _seeds(1, 1)
    with pytest.raises(ConfigError, match=r"^The grid cell name 'a/b' must start with a letter"):
        CellSpec(name="a/b")
    with pytest.raises(ConfigError, match=r"^The grid cell name 'a\\n' must start with a letter"):
        CellSpec(name="a\n")  # "$" of a match() would let the newline through
    with pytest.raises(ConfigError, match=r"^A grid cell may not be named grid.json"):
        CellSpec(name="grid.json")
    long = GridSpec.from_mapping({"axes": {"milestones": [list(range(1, 60))]}}).cells()[0]
    assert long.name.startswith("base-milestones=1,2,3,") and len(long.name) == 100
    assert long.name.endswith("-" + long.config_hash[:10])


def test_only_filters_cells_by_shell_pattern():
    spec = GridSpec.from_mapping({"axes": {"seed": [0, 1], "lr": [0.1, 0.05]}})
    assert [c.name for c in spec.cells("base-seed=1-*")] == ["base-seed=1-lr=0.1", "base-seed=1-lr=0.05"]
    assert [c.name for c in spec.cells("*lr=0.05")] == ["base-seed=0-lr=0.05", "base-seed=1-lr=0.05"]
    with pytest.raises(
        ConfigError, match=r"^No grid cell matches 'nope\*'; the cells are base-seed=0-lr=0.1, "
    ):
        spec.cells("nope*")


def test_a_bad_key_or_value_is_one_sentence_naming_the_key_and_the_cell():
    with pytest.raises(ConfigError) as info:
        GridSpec.from_mapping({"axes": {"lrr": [0.1, 0.2]}})
    assert str(info.value) == "Unknown config key 'lrr' in the grid cell base-lrr=0.1; did you mean 'lr'?"
    with pytest.raises(ConfigError) as info:
        GridSpec.from_mapping({"cells": [{"lr": 0.1}, {"lr": -1, "name": "bad"}]})
    assert str(info.value) == "In the grid cell bad: Config key 'lr' must be positive, not -1.0."
    with pytest.raises(
        ConfigError, match=r"^Unknown key 'axis' in the grid spec; valid keys are: base, set, "
    ):
        GridSpec.from_mapping({"axis": {"lr": [0.1]}})
    with pytest.raises(ConfigError, match=r"^Unknown suite 'pgd50'"):
        _seeds(0, suites="clean,pgd50")
    with pytest.raises(ConfigError, match=r"^The base 'no-such-preset' of the grid is neither a preset name"):
        GridSpec(base="no-such-preset")
    with pytest.raises(ConfigError, match=r"may not set resume"):
        _seeds(0, evaluation={"resume": False})


def test_t1_family_is_one_cell_per_preset_file_equal_to_load_config():
    spec = GridSpec.family("t1")
    cells = spec.cells()
    files = sorted(CONFIGS.glob("t1-*.yaml"))
    assert len(cells) == 24 == len(files)
    assert sorted(c.name for c in cells) == sorted(p.stem for p in files)
    for cell in cells:
        assert cell.config == load_config(CONFIGS / f"{cell.name}.yaml"), cell.name
    assert spec.suites == ("clean", "pgd20", "aa") and spec.family_name == "t1"
    assert "t1-cifar10-resnet18-pgd-at-bass" in {c.name for c in cells}


def test_every_family_has_its_presets_and_suites_and_unknown_ones_are_listed():
    counts = {name: len(GridSpec.family(name).cells()) for name in FAMILY_SUITES}
    assert counts == {"t1": 24, "t3": 4, "t4": 16, "fig3": 6}
    assert sum(counts.values()) == len(preset_configs())
    assert GridSpec.family("t4").suites == ("clean", "corruptions")
    assert GridSpec.family("fig3").suites == ("clean", "pgd20", "corruptions")  # and its eps sweep
    smoke = GridSpec.family("t3", overrides={"epochs": 1}, suites="clean")
    assert all(c.config.epochs == 1 for c in smoke.cells()) and smoke.suites == ("clean",)
    with pytest.raises(ConfigError) as info:
        GridSpec.family("t2")
    assert str(info.value) == "Unknown grid family 't2'; the families are t1, t3, t4, fig3."


def test_yaml_mapping_round_trip_and_digest(tmp_path):
    (tmp_path / "mine.yaml").write_text("epochs: 3\nlr: 0.05\n")
    (tmp_path / "grid.yaml").write_text(
        textwrap.dedent(
            """\
            base: mine.yaml
            set: {batch_size: 64}
            axes: {seed: [0, 1]}
            cells:
              - {name: cosine, schedule: constant}
            suites: [clean, pgd20]
            evaluation: {n: 100}
            """
        )
    )
    spec = GridSpec.from_yaml(tmp_path / "grid.yaml")
    assert [c.name for c in spec.cells()] == ["mine-seed=0", "mine-seed=1", "cosine"]
    assert spec.cells()[0].config == load_config(tmp_path / "mine.yaml", ["batch_size=64", "seed=0"])
    assert spec.evaluation_request().n == 100 and spec.evaluation_request().resume is True
    again = GridSpec.from_mapping(spec.to_mapping())
    assert again == spec and again.digest() == spec.digest()
    # runtime keys do not change what a grid computes; any computed key does
    assert _seeds(0, 1, set={"num_workers": 3}).digest() == _seeds(0, 1).digest()
    assert _seeds(0, 1, set={"epochs": 3}).digest() != _seeds(0, 1).digest()


# -------------------------------------------------------------------------------------- manifest
def test_manifest_round_trip_claims_and_states(tmp_path):
    spec = _seeds(0, 1, 2)
    manifest = GridManifest.open(tmp_path / "g", spec)
    data = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert data["format"] == "freqtail-grid" and data["version"] == 1 and data["digest"] == spec.digest()
    assert data["spec"] == spec.to_mapping()
    assert manifest.summary() == GridSummary(pending=3)

    first = manifest.claim("L1")
    second = manifest.claim("L1")
    assert (first.name, second.name) == ("base-seed=0", "base-seed=1")
    rows = {row.name: row for row in GridManifest.open(tmp_path / "g", spec).states()}
    row = rows["base-seed=0"]
    assert isinstance(row, CellRecord) and row.state is CellState.RUNNING and row.attempts == 1
    assert row.holder.launcher == "L1" and row.holder.pid == os.getpid() and row.holder.since.endswith("Z")
    assert row.run_dir == (tmp_path / "g" / "base-seed=0") and row.config_hash == first.config_hash

    manifest.finish(first, 1.5)
    manifest.fail(second, "It broke.")
    third = manifest.claim("L1")
    manifest.release(third)
    rows = {row.name: row for row in manifest.states()}
    assert rows["base-seed=0"].state is CellState.DONE and rows["base-seed=0"].timings.seconds == 1.5
    assert rows["base-seed=0"].timings.finished is not None and rows["base-seed=0"].holder is None
    assert rows["base-seed=1"].state is CellState.FAILED and rows["base-seed=1"].why == "It broke."
    assert rows["base-seed=2"].state is CellState.PENDING and rows["base-seed=2"].attempts == 0
    assert manifest.summary() == GridSummary(pending=1, done=1, failed=1)
    with pytest.raises(FreqtailError, match="was not claimed through this manifest"):
        manifest.finish(first, 1.0)
    # retries: a failed cell (1 attempt) is claimed again with retries=1, not with retries=0
    assert manifest.claim("L1", retries=0).name == "base-seed=2"
    assert manifest.claim("L1", retries=0) is None
    assert manifest.claim("L1", retries=1).name == "base-seed=1"


def test_a_cell_held_by_a_live_launcher_is_never_claimed_again(tmp_path):
    spec = _seeds(0, 1)
    one, two = GridManifest.open(tmp_path, spec), GridManifest.open(tmp_path, spec)
    assert one.claim("one").name == "base-seed=0"
    assert two.claim("two").name == "base-seed=1"
    assert one.claim("one") is None and two.claim("two") is None  # both running, both holders alive
    one.fail("base-seed=0", "It broke.")
    assert two.claim("two", retries=1).name == "base-seed=0"


def test_a_folder_holding_another_spec_is_refused_naming_the_first_difference(tmp_path):
    GridManifest.open(tmp_path, GridSpec.from_mapping({"axes": {"lr": [0.1, 0.05]}}))
    with pytest.raises(InputError) as info:
        GridManifest.open(tmp_path, GridSpec.from_mapping({"axes": {"lr": [0.1]}}))
    assert str(info.value) == (
        f"The grid in {tmp_path} has axis lr = [0.1, 0.05], this spec lr = [0.1]; "
        "choose another folder or run that grid's own spec."
    )
    with pytest.raises(InputError, match=r"sets no epochs, this spec epochs = 2;"):
        GridManifest.open(
            tmp_path, GridSpec.from_mapping({"set": {"epochs": 2}, "axes": {"lr": [0.1, 0.05]}})
        )
    with pytest.raises(InputError, match=r"runs the suites clean, this spec clean, pgd20;"):
        GridManifest.open(
            tmp_path, GridSpec.from_mapping({"axes": {"lr": [0.1, 0.05]}, "suites": "clean,pgd20"})
        )
    GridManifest.open(tmp_path, GridSpec.from_mapping({"axes": {"lr": [0.1, 0.05]}}))  # its own spec: fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"holds notes.txt but no grid manifest"):
        GridManifest.open(tmp_path / "other", _seeds(0))


def test_a_changed_base_file_is_named_as_a_cell_configuration_difference(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("epochs: 2\n")
    GridManifest.open(tmp_path / "g", _seeds(0, base=str(base)))
    base.write_text("epochs: 3\n")
    with pytest.raises(
        InputError,
        match=r"trains its cell base-seed=0 with another configuration than this spec "
        r"\(differing keys: epochs\)",
    ):
        GridManifest.open(tmp_path / "g", _seeds(0, base=str(base)))


# -------------------------------------------------------------------------------- real processes
def _launcher(folder: Path, markers: Path, gate: Path, cells: int, hold: str | None = None) -> Forked:
    """A launcher process (forked from this one, tests/forked.py) running a grid of ``cells`` seeds
    with a runner that leaves a marker file per run, once ``gate`` exists; it hangs in cell ``hold``."""
    spec = GridSpec.from_mapping({"axes": {"seed": list(range(cells))}})

    def runner(cell, run_dir):
        with open(markers / f"{cell.name}.{os.getpid()}.{time.monotonic_ns()}", "w") as handle:
            handle.write(cell.name)
        if cell.name == hold:
            (markers.parent / "reached").write_text(str(os.getpid()))
            while True:  # killed here
                time.sleep(0.01)
        time.sleep(0.02)

    def launch() -> None:
        while not gate.exists():  # both launchers start claiming together
            time.sleep(0.005)
        run_grid(spec, folder, cell_runner=runner, launcher_id=f"launcher-{os.getpid()}", log=None)

    return Forked(launch)


def _markers(folder: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in folder.iterdir():
        counts[path.read_text()] = counts.get(path.read_text(), 0) + 1
    return counts


def _wait_for(path: Path, process: Forked, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_two_launcher_processes_run_every_cell_exactly_once(tmp_path):
    cells = 12
    markers, gate = tmp_path / "markers", tmp_path / "go"
    markers.mkdir()
    spec = GridSpec.from_mapping({"axes": {"seed": list(range(cells))}})
    GridManifest.open(tmp_path / "grid", spec)  # created once; both launchers open it
    processes = [_launcher(tmp_path / "grid", markers, gate, cells) for _ in range(2)]
    gate.write_text("go")
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    assert _markers(markers) == {cell.name: 1 for cell in spec.cells()}
    rows = GridManifest.open(tmp_path / "grid", spec).states()
    assert all(row.state is CellState.DONE and row.attempts == 1 for row in rows)


def test_a_killed_launcher_leaves_a_stale_cell_that_the_next_run_takes_over(tmp_path):
    cells = 4
    markers, gate = tmp_path / "markers", tmp_path / "go"
    markers.mkdir()
    gate.write_text("go")
    spec = GridSpec.from_mapping({"axes": {"seed": list(range(cells))}})
    victim = _launcher(tmp_path / "grid", markers, gate, cells, hold="base-seed=2")
    _wait_for(tmp_path / "reached", victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    rows = {row.name: row.state for row in GridManifest.open(tmp_path / "grid", spec).states()}
    assert rows == {
        "base-seed=0": CellState.DONE,
        "base-seed=1": CellState.DONE,
        "base-seed=2": CellState.RUNNING,
        "base-seed=3": CellState.PENDING,
    }

    def runner(cell, run_dir):
        (markers / f"{cell.name}.again").write_text(cell.name)

    lines: list[str] = []
    outcome = run_grid(spec, tmp_path / "grid", cell_runner=runner, log=lines.append)
    assert outcome.finished == ("base-seed=3", "base-seed=2")  # pending first, then the stale one
    assert len(outcome.taken_over) == 1
    assert outcome.taken_over[0].startswith(
        f"Took over the grid cell base-seed=2 from launcher launcher-{victim.pid} "
    )
    assert outcome.taken_over[0].endswith("which ended without finishing it.")
    assert outcome.taken_over[0] in lines
    assert outcome.summary == GridSummary(done=4)
    counts = _markers(markers)
    assert counts == {"base-seed=0": 1, "base-seed=1": 1, "base-seed=2": 2, "base-seed=3": 1}
    stale = next(row for row in outcome.states if row.name == "base-seed=2")
    assert stale.attempts == 2 and stale.state is CellState.DONE


# -------------------------------------------------------------------------------------- launcher
def test_a_failing_cell_does_not_stop_the_others_and_is_retried_up_to_retries(tmp_path):
    spec = _seeds(0, 1, 2)
    calls: list[str] = []

    def runner(cell, run_dir):
        calls.append(cell.name)
        assert run_dir == tmp_path / cell.name and run_dir.is_dir()
        if cell.name == "base-seed=1":
            raise ValueError("bad luck\nsecond line")

    outcome = run_grid(spec, tmp_path, cell_runner=runner, retries=2, log=None)
    assert calls == ["base-seed=0", "base-seed=1", "base-seed=2", "base-seed=1", "base-seed=1"]
    assert outcome.finished == ("base-seed=0", "base-seed=2")
    assert outcome.failed == (("base-seed=1", "The cell raised ValueError: bad luck."),) * 3
    assert outcome.summary == GridSummary(done=2, failed=1)
    row = next(row for row in outcome.states if row.name == "base-seed=1")
    assert row.attempts == 3 and row.why == "The cell raised ValueError: bad luck."
    # the tries are spent: a rerun with the same retries does nothing, one more try runs it once
    calls.clear()
    assert run_grid(spec, tmp_path, cell_runner=runner, retries=2, log=None).finished == ()
    assert calls == []
    run_grid(spec, tmp_path, cell_runner=runner, retries=3, log=None)
    assert calls == ["base-seed=1"]
    assert (
        failure_sentence(ConfigError("Config key 'lr' must be positive."))
        == "Config key 'lr' must be positive."
    )


def test_only_runs_the_matching_cells(tmp_path):
    calls: list[str] = []
    outcome = run_grid(
        _seeds(0, 1, 2), tmp_path, cell_runner=lambda c, d: calls.append(c.name), only="*=1", log=None
    )
    assert calls == ["base-seed=1"] and outcome.summary == GridSummary(pending=2, done=1)


def test_ctrl_c_puts_the_current_cell_back_to_pending_and_it_resumes_next_time(tmp_path):
    spec = _seeds(0, 1)

    def interrupted(cell, run_dir):
        if cell.name == "base-seed=1":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(spec, tmp_path, cell_runner=interrupted, log=None)
    rows = {row.name: row for row in GridManifest.open(tmp_path, spec).states()}
    assert rows["base-seed=0"].state is CellState.DONE
    assert rows["base-seed=1"].state is CellState.PENDING and rows["base-seed=1"].attempts == 0
    assert not holder_path(GridLayout.of(tmp_path).cell_lock("base-seed=1")).exists()  # lock released
    outcome = run_grid(spec, tmp_path, cell_runner=lambda c, d: None, log=None)
    assert outcome.finished == ("base-seed=1",) and outcome.summary == GridSummary(done=2)


def test_run_grid_end_to_end_trains_and_evaluates_each_cell_then_does_nothing(tmp_path):
    spec = GridSpec.from_mapping(
        {
            "set": {
                "dataset": "embedded",
                "model": "small-cnn",
                "model_options": {"width": 4},
                "epochs": 2,
                "train_subset": 256,
                "test_subset": 64,
                "batch_size": 64,
                "device": "cpu",
                "progress": False,
            },
            "axes": {"seed": [0, 1]},
            "suites": ["clean"],
            "evaluation": {"n": 64},
        }
    )
    GridManifest.open(tmp_path / "grid", spec)
    partial = spec.cells()[0]  # a partial run, as a launcher stopped mid-cell leaves it

    class StopAfterTheFirstEpoch:
        def on_epoch_end(self, trainer, record):
            trainer.request_stop()

    stopped = train_run(
        TrainRequest(partial.config, tmp_path / "grid" / partial.name, callbacks=[StopAfterTheFirstEpoch()])
    )
    assert stopped.status == "interrupted" and stopped.epochs_completed == 1
    lines: list[str] = []
    first = run_grid(spec, tmp_path / "grid", log=lines.append)
    assert first.finished == ("base-seed=0", "base-seed=1") and first.failed == ()
    for cell in spec.cells():
        run = tmp_path / "grid" / cell.name
        assert json.loads((run / "results.json").read_text()), cell.name
        assert load_config(run / "config.yaml").seed == cell.config.seed
        epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2], cell.name  # the partial run continued from its checkpoint
    second = run_grid(spec, tmp_path / "grid", log=None)
    assert second.finished == () and second.failed == () and second.summary == GridSummary(done=2)
