"""TensorBoard event files of training runs (config key ``log: tensorboard``), read back with
TensorBoard's own readers (``EventAccumulator``, ``EventMultiplexer``) and compared with
``metrics.jsonl`` epoch by epoch: fresh runs, runs stopped and resumed, a run that died between an
epoch's events and its checkpoint, a grid, and the refusal without the package."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.util import tensor_util

import freqtail.train.trainer as trainer_module
from freqtail.cli import main
from freqtail.commands._launch import add_launch_arguments, child_arguments
from freqtail.train import load_config
from freqtail.train.config import config_differences
from freqtail.workflows.grid_spec import GridSpec, config_hash
from test_train_support import tiny_root, train  # noqa: F401

#: The scalars the issue asks for and the metrics.jsonl field each one must equal (written out here,
#: not imported, so that the test checks the module against the request).
EXPECTED = {
    "train/loss": "train_loss",
    "train/lr": "lr",
    "train/images_per_second": "images_per_second",
    "test/clean_accuracy": "test_acc",
    "test/robust_accuracy": "test_robust_acc",
}


def _config(root, **changes):
    values = {
        "dataset": "embedded",
        "data_root": str(root),
        "model": "small-cnn",
        "model_options": {"width": 4},
        "objective": "pgd-at",
        "attack_steps": 1,
        "robust_eval_examples": 8,
        "robust_eval_steps": 1,
        "eval_batch_size": 48,
        "batch_size": 32,
        "epochs": 2,
        "progress": False,
        "log": "tensorboard",
    }
    values.update(changes)
    return load_config(overrides=values)


def _quiet(message):
    pass


class StopAt:
    """Asks the trainer to stop after epoch ``epoch`` (1-based) or at step ``step`` of that epoch."""

    def __init__(self, epoch, step=None):
        self.epoch, self.step = epoch, step

    def on_step(self, trainer):
        if self.step is not None and trainer.epoch + 1 == self.epoch and trainer.step_in_epoch == self.step:
            trainer.request_stop()

    def on_epoch_end(self, trainer, record):
        if self.step is None and record["epoch"] == self.epoch:
            trainer.request_stop()


def _scalars(folder: Path, purge: bool = True) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` as TensorBoard reads the event files of ``folder``."""
    reader = EventAccumulator(str(folder), purge_orphaned_data=purge)
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_events_equal_metrics(run_dir: Path, epochs: int) -> None:
    """Each tag holds each epoch of metrics.jsonl that has its field, once, at step = epoch, with the
    record's value as float32 (the type TensorBoard stores)."""
    records = _records(run_dir)
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    scalars = _scalars(run_dir / "tensorboard")
    assert set(scalars) == set(EXPECTED)
    for tag, field in EXPECTED.items():
        expected = [(r["epoch"], np.float32(r[field])) for r in records if r.get(field) is not None]
        assert [(step, np.float32(value)) for step, value in scalars[tag]] == expected, tag


def test_each_epoch_writes_the_metrics_record_as_scalars_at_step_epoch(tiny_root, tmp_path):
    run = tmp_path / "run"
    result = train(_config(tiny_root, epochs=3, eval_every=2), run, log=_quiet)
    assert result.status == "complete"
    _assert_events_equal_metrics(run, 3)
    steps = {tag: [step for step, _ in values] for tag, values in _scalars(run / "tensorboard").items()}
    assert steps["train/loss"] == steps["train/lr"] == [1, 2, 3]
    # epoch 1 is not evaluated (eval_every 2; the last epoch always is): no test scalar at step 1
    assert steps["test/clean_accuracy"] == steps["test/robust_accuracy"] == [2, 3]
    # --force replaces the run: its old event files go with it
    train(_config(tiny_root, epochs=1), run, force=True, log=_quiet)
    _assert_events_equal_metrics(run, 1)
    # log: none writes no event files
    plain = tmp_path / "plain"
    train(_config(tiny_root, epochs=1, log="none"), plain, log=_quiet)
    assert not (plain / "tensorboard").exists()


def test_a_run_stopped_after_an_epoch_and_in_one_shows_each_epoch_once_after_resuming(tiny_root, tmp_path):
    run = tmp_path / "run"
    config = _config(tiny_root, epochs=3)
    assert train(config, run, log=_quiet, callbacks=[StopAt(1)]).status == "interrupted"
    assert [step for step, _ in _scalars(run / "tensorboard")["train/loss"]] == [1]
    stopped = train(config, run, resume=True, log=_quiet, callbacks=[StopAt(2, step=2)])
    assert stopped.status == "interrupted" and stopped.epochs_completed == 1  # in the middle of epoch 2
    assert train(config, run, resume=True, log=_quiet).status == "complete"
    assert len(list((run / "tensorboard").iterdir())) == 3  # one event file per start
    _assert_events_equal_metrics(run, 3)


class Died(BaseException):
    """The training process ending at a chosen point (as a kill would)."""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_that_died_around_an_epochs_checkpoint_shows_each_epoch_once(
    tiny_root, tmp_path, monkeypatch, when
):
    # "before": epoch 2's scalars are written, its checkpoint and metrics line are not (the resume
    # trains epoch 2 again); "after": its checkpoint is written, its metrics line is not (the resume
    # continues at epoch 3, so epoch 2's scalars must already be in the files).
    run = tmp_path / "run"
    config = _config(tiny_root, epochs=3)
    real_save = trainer_module.save_state

    def save_and_die(run_dir, parts, progress, **options):
        dies = progress.epoch == 2 and options.get("accumulator") is None
        if dies and when == "before":
            raise Died
        real_save(run_dir, parts, progress, **options)
        if dies:
            raise Died

    monkeypatch.setattr(trainer_module, "save_state", save_and_die)
    with pytest.raises(Died):
        train(config, run, log=_quiet)
    monkeypatch.setattr(trainer_module, "save_state", real_save)
    assert len(_records(run)) == 1
    assert [step for step, _ in _scalars(run / "tensorboard")["train/loss"]] == [1, 2]
    assert train(config, run, resume=True, log=_quiet).status == "complete"
    _assert_events_equal_metrics(run, 3)
    # "before": the files do hold epoch 2 twice; the resumed run's purge_step makes readers show it once
    unpurged = _scalars(run / "tensorboard", purge=False)["train/loss"]
    assert [step for step, _ in unpurged] == ([1, 2, 2, 3] if when == "before" else [1, 2, 3])


def test_log_is_a_runtime_key_and_a_run_started_without_it_resumes_with_it(tiny_root, tmp_path, capsys):
    config = _config(tiny_root, log="none")
    logged = config.replace(log="tensorboard")
    assert config_hash(logged) == config_hash(config) != config_hash(config.replace(seed=1))
    assert config_differences(config, logged) == []
    plain = GridSpec(overrides={"epochs": 2}, axes={"seed": [0, 1]})
    with_log = GridSpec(overrides={"epochs": 2, "log": "tensorboard"}, axes={"seed": [0, 1]})
    assert [c.name for c in with_log.cells()] == [c.name for c in plain.cells()]
    assert with_log.digest() == plain.digest()
    # a run started with log: none continues with log: tensorboard from its checkpoint
    run = tmp_path / "run"
    assert train(config, run, log=_quiet, callbacks=[StopAt(1)]).status == "interrupted"
    assert not (run / "tensorboard").exists()
    assert train(logged, run, resume=True, log=_quiet).status == "complete"
    records = _records(run)
    assert _scalars(run / "tensorboard")["train/loss"] == [(2, pytest.approx(records[1]["train_loss"]))]
    # the command-line option sets the key; a bad value is one sentence and exit 2
    capsys.readouterr()
    assert main(["train", "--log", "tensorboard", "--print-config"]) == 0
    assert "log: tensorboard" in capsys.readouterr().out.splitlines()
    assert main(["train", "--log", "tensorbord", "--print-config"]) == 2
    assert capsys.readouterr().err.strip() == (
        "freqtail train: error: Config key 'log' must be one of none, tensorboard, not 'tensorbord'."
    )


GRID = """\
axes: {seed: [0, 1]}
suites: [clean]
"""


def test_launcher_processes_get_the_log_option_and_a_bad_one_is_refused(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_launch_arguments(parser)
    args = parser.parse_args(["--out", "g", "--jobs", "2", "--log", "tensorboard"])
    child = child_arguments(args)
    assert child[child.index("--log") + 1] == "tensorboard"
    assert "--log" not in child_arguments(parser.parse_args(["--out", "g"]))
    spec = tmp_path / "grid.yaml"
    spec.write_text(GRID)
    capsys.readouterr()
    assert main(["grid", "run", str(spec), "--out", str(tmp_path / "grid"), "--log", "tb"]) == 2
    assert capsys.readouterr().err.strip() == (
        "freqtail grid: error: Config key 'log' must be one of none, tensorboard, not 'tb'."
    )
    assert not (tmp_path / "grid").exists()


def test_a_grid_started_without_log_resumes_with_it_and_each_cell_is_a_tensorboard_run(tmp_path, capsys):
    spec = tmp_path / "grid.yaml"
    spec.write_text(GRID)
    out = tmp_path / "grid"
    argv = ["grid", "run", str(spec), "--scale", "smoke", "--out", str(out)]
    assert main([*argv, "--only", "*seed=0*"]) == 0
    digest = json.loads((out / "grid.json").read_text())["digest"]
    assert main([*argv, "--log", "tensorboard"]) == 0  # the same grid: not refused as another one
    assert json.loads((out / "grid.json").read_text())["digest"] == digest
    assert not (out / "base-seed=0" / "tensorboard").exists()  # done before --log, not trained again
    # what `tensorboard --logdir GRID` loads: each cell trained with --log is a run named by its folder
    runs = EventMultiplexer()
    runs.AddRunsFromDirectory(str(out))
    runs.Reload()
    assert sorted(runs.Runs()) == ["base-seed=1/tensorboard"]
    records = _records(out / "base-seed=1")
    loss = runs.Tensors("base-seed=1/tensorboard", "train/loss")  # scalars as TensorBoard serves them
    assert [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in loss] == [
        (1, np.float32(records[0]["train_loss"]))
    ]


#: Runs the command lines of argv[1] (JSON) with the tensorboard package made unimportable, and
#: prints each one's exit code and stderr as JSON.
BLOCKED = """
import contextlib, io, json, sys
sys.modules["tensorboard"] = None  # `import tensorboard` raises ImportError, as without the package
from freqtail.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_without_the_package_log_tensorboard_is_refused_before_training(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text(GRID)
    grid = ["grid", "run", str(spec), "--scale", "smoke", "--out", str(tmp_path / "grid")]
    commands = [
        ["train", "--epochs", "1", "--log", "tensorboard", "--out", str(tmp_path / "run")],
        [*grid, "--log", "tensorboard"],
    ]
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, json.dumps(commands)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for (code, err), argv in zip(json.loads(done.stdout), commands, strict=True):
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"freqtail {argv[0]}: error: ") and lines[0].endswith(".")
        assert "install it with pip install 'freqtail[tensorboard]'" in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "grid").exists()  # nothing started


def test_writing_event_files_prints_nothing(tmp_path):
    script = (
        "import sys\n"
        "from freqtail.train.tensorboard_log import summary_writer_class\n"
        "writer = summary_writer_class()(log_dir=sys.argv[1])\n"
        "writer.add_scalar('train/loss', 1.5, 1)\n"
        "writer.close()\n"
    )
    env = dict(os.environ, PYTHONWARNINGS="always")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "events")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr[-2000:]
    assert _scalars(tmp_path / "events") == {"train/loss": [(1, 1.5)]}
