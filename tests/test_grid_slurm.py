"""The grid's Slurm launcher against a real single-node Slurm cluster (tests/slurm_cluster.py).

Real processes, a real scheduler: ``freqtail reproduce t1 --scale smoke --launcher slurm --wait`` runs
its cells as one job array; a cell requeued with ``scontrol requeue`` in the middle of its training
resumes from its checkpoint and ends with exactly the weights, metrics and numbers of the same cell
trained by the local launcher; two ranks of one cell join one process group through the variables
:func:`freqtail.distributed.export_process_group` writes. The refusals (no submitit, no sbatch, bad
options) need no cluster.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import freqtail
from freqtail.cli import main
from freqtail.train import load_checkpoint
from freqtail.train.records import TIMING_KEYS
from freqtail.workflows.grid_manifest import GridManifest, read_states
from freqtail.workflows.grid_slurm import NO_SBATCH, NO_SUBMITIT, SlurmOptions
from freqtail.workflows.grid_spec import GridSpec
from test_grid_support import one_sentence_error

SOURCE = Path(freqtail.__file__).resolve().parents[1]
T1_PGD = "*cifar10-resnet18-pgd-at*"
T1_NAMES = ["t1-cifar10-resnet18-pgd-at", "t1-cifar10-resnet18-pgd-at-bass"]
#: One cell long enough to be caught in the middle of its training: 4 epochs of 32 steps.
LONG_GRID = """\
set:
  dataset: embedded
  model: small-cnn
  model_options: {width: 4}
  epochs: 4
  train_subset: 1024
  test_subset: 32
  batch_size: 32
  device: cpu
  progress: false
cells:
  - {name: long, seed: 3}
suites: [clean]
evaluation: {n: 32}
"""
#: A deadline against a hang only (the waits below end on observable states).
LIMIT = 300.0


@pytest.fixture()
def on_cluster(slurm_cluster, monkeypatch):
    """This process (and the jobs it submits, which inherit its environment) on the test cluster, with
    this checkout importable and one thread per process (the trainer is then bit-exact)."""
    for name, value in slurm_cluster.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PYTHONPATH", str(SOURCE))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return slurm_cluster


def _without_timing(records):
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in records]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- against the cluster
@pytest.mark.slurm
def test_a_smoke_grid_of_two_rank_cells_runs_as_one_job_array_with_its_jobs_and_logs_in_the_manifest(
    on_cluster, tmp_path, capsys
):
    out = tmp_path / "t1"
    argv = ["reproduce", "t1", "--scale", "smoke", "--out", str(out), "--only", T1_PGD, "--launcher", "slurm"]
    assert main([*argv, "--nproc-per-cell", "2", "--wait"]) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    submitted = next(line for line in printed.splitlines() if line.startswith("Submitted Slurm job "))
    array = submitted.split()[3].rstrip(":")
    assert f"an array of 2 tasks, one per cell ({', '.join(T1_NAMES)})" in submitted
    assert f"freqtail grid status {out}" in printed and "sacct" not in printed
    rows = {row.name: row for row in read_states(out)}
    for index, name in enumerate(T1_NAMES):
        row = rows[name]
        assert (row.state.value, row.attempts, row.holder) == ("done", 1, None)
        assert row.job is not None and row.job.job_id == f"{array}_{index}"
        assert row.job.stdout == out / ".slurm" / f"{array}_{index}_0_log.out"
        log = row.job.stdout.read_text()
        assert f"{name}: epoch 1/1" in log and f"{name}: done." in log  # it ran there, and only there
        # rank 1 of the cell's process group trained and evaluated with rank 0 (gloo on the CPU)
        assert "global_rank=0(2)" in log
        rank_one = (out / ".slurm" / f"{array}_{index}_1_log.out").read_text()
        assert f"{name}: rank 1 of 2 ended with rank 0." in rank_one and "global_rank=1(2)" in rank_one
        records = json.loads((out / name / "results.json").read_text())["results"]
        assert records and {record["world_size"] for record in records} == {2}  # evaluated by both ranks
        assert load_checkpoint(out / name, "last").info["world_size"] == 2  # trained by both ranks
    stored = json.loads((out / "grid.json").read_text())
    jobs = {cell["name"]: cell["job"] for cell in stored["cells"] if cell["job"] is not None}
    assert jobs == {
        name: {
            "scheduler": "slurm",
            "job_id": f"{array}_{index}",
            "stdout": f".slurm/{array}_{index}_0_log.out",
            "stderr": f".slurm/{array}_{index}_0_log.err",
        }
        for index, name in enumerate(T1_NAMES)
    }
    table = list(csv.DictReader((out / "table.csv").open(encoding="utf-8")))
    assert {r["state"] for r in table if r["cell"] in T1_NAMES} == {"done"}
    assert all(0 <= float(r["measured_percent"]) <= 100 for r in table if r["cell"] in T1_NAMES)
    assert main(["grid", "status", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.startswith(f"{T1_NAMES[1]}  done"))
    assert f"slurm job {array}_1, log {out}/.slurm/{array}_1_0_log.out" in line
    assert on_cluster.run("squeue", "--noheader", "--jobs", array).stdout.strip() == ""
    # the same command again: every chosen cell is done, nothing is submitted
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "Nothing to submit" in again and "Submitted" not in again


def _wait_until_mid_training(run_dir: Path, process: subprocess.Popen) -> None:
    """Wait until the cell's first epoch is recorded (its training is under way, 3 epochs to go)."""
    deadline = time.monotonic() + LIMIT
    while not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "metrics.jsonl").read_text().strip():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the cell's first epoch never ended"
        time.sleep(0.05)


@pytest.mark.slurm
def test_a_cell_requeued_in_the_middle_of_training_resumes_to_the_uninterrupted_weights(
    on_cluster, tmp_path, capsys
):
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG_GRID)
    out = tmp_path / "slurm"
    process = subprocess.Popen(
        [sys.executable, "-m", "freqtail.cli", "grid", "run", str(spec), "--out", str(out)]
        + ["--launcher", "slurm", "--wait"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_mid_training(out / "long", process)
        (row,) = read_states(out)
        assert row.state.value == "running" and row.job is not None
        on_cluster.run("scontrol", "requeue", row.job.job_id)
        # the same cell trained by the local launcher, while the requeued job waits to start again
        local = tmp_path / "local"
        assert main(["grid", "run", str(spec), "--out", str(local)]) == 0
        printed, err = process.communicate(timeout=LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "sacct" not in printed + err
    (row,) = read_states(out)
    assert (row.state.value, row.attempts) == ("done", 1)  # the stopped attempt was given back
    log = row.job.stdout.read_text()
    assert log.count("long: started") == 2 and "long: interrupted; it is pending again" in log, log
    assert "long: SIGTERM: stopping after this step" in log, log
    # it stopped inside an epoch (or at an epoch's end) and resumed exactly there
    stopped = re.search(r"long: Stopped at epoch (\d+), step (\d+) of", log)
    if stopped is not None:
        where = f"at epoch {stopped[1]}, step {stopped[2]} ("
    else:
        ended = re.search(r"long: Stopped after epoch (\d+);", log)
        assert ended is not None and int(ended[1]) < 4, log
        where = f"at epoch {int(ended[1]) + 1} ("
    assert f"long: Resuming {out / 'long'} {where}" in log, log
    assert "DUE TO JOB REQUEUE" in row.job.stderr.read_text()
    # exactly the uninterrupted cell: weights, optimiser state, every epoch record, the evaluated numbers
    resumed, reference = load_checkpoint(out / "long", "last"), load_checkpoint(local / "long", "last")
    for key, value in reference.model_state.items():
        assert torch.equal(resumed.model_state[key], value), key
    for pid, entries in reference.optimizer_state()["state"].items():
        assert torch.equal(
            resumed.optimizer_state()["state"][pid]["momentum_buffer"], entries["momentum_buffer"]
        )
    assert _without_timing(_records(out / "long")) == _without_timing(_records(local / "long"))
    assert len(_records(local / "long")) == 4

    def numbers(folder):
        records = json.loads((folder / "results.json").read_text())["results"]
        return [(r["id"], r["fingerprint"], r["correct"], r["total"], r["per_image"]) for r in records]

    assert numbers(out / "long") == numbers(local / "long") and numbers(local / "long")


@pytest.mark.slurm
def test_sbatch_refusing_the_array_is_one_sentence_naming_its_reason(on_cluster, tmp_path, capsys):
    out = tmp_path / "x"
    argv = ["reproduce", "t1", "--scale", "smoke", "--out", str(out), "--only", T1_PGD, "--launcher", "slurm"]
    line, _ = one_sentence_error(
        capsys, [*argv, "--slurm-partition", "nosuch"], "sbatch refused the grid's job array: "
    )
    assert "partition" in line.lower() and "sbatch: error" not in line, line  # sbatch's own reason, tidied
    assert {row.job for row in read_states(out)} == {None}  # nothing was recorded as submitted


# ------------------------------------------------------------------------------------ no cluster
def test_two_ranks_join_one_process_group_through_the_exported_variables(tmp_path):
    """What a Slurm task of a K-process cell does before training: export its place, then join."""
    script = tmp_path / "rank.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            from freqtail import distributed as D
            rank, port = int(sys.argv[1]), int(sys.argv[2])
            D.export_process_group(rank=rank, world_size=2, local_rank=rank, local_world_size=2,
                                   master_addr="127.0.0.1", master_port=port)
            context = D.init_distributed("cpu")
            total = D.all_reduce_sum([rank + 1.0], context)
            print(json.dumps([context.rank, context.world_size, context.backend, total]))
            D.shutdown(context)
            """
        )
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(SOURCE), "OMP_NUM_THREADS": "1"}
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(port)], env=env, stdout=subprocess.PIPE, text=True
        )
        for rank in (0, 1)
    ]
    outputs = [json.loads(rank.communicate(timeout=LIMIT)[0]) for rank in ranks]
    assert outputs == [[0, 2, "gloo", [3.0]], [1, 2, "gloo", [3.0]]]  # 1 + 2 on both ranks


def test_export_process_group_refuses_a_rank_outside_the_group(monkeypatch):
    from freqtail import distributed as D
    from freqtail.errors import ConfigError

    for name in D.GROUP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"^The process's rank must be an integer from 0 to 1, not 2\.$"):
        D.export_process_group(
            rank=2, world_size=2, local_rank=0, local_world_size=2, master_addr="h", master_port=29500
        )
    assert not any(name in os.environ for name in D.GROUP_VARIABLES)


def test_the_slurm_options_become_submitit_parameters():
    options = SlurmOptions(
        partition="gpu",
        time_minutes=90,
        gpus_per_task=1,
        cpus_per_task=8,
        array_parallelism=4,
        tasks_per_cell=2,
        extra={"account": "lab", "qos": "high"},
    )
    assert options.executor_parameters("freqtail-t1") == {
        "job_name": "freqtail-t1",
        "partition": "gpu",
        "time": 90,
        "ntasks_per_node": 2,
        "cpus_per_task": 8,
        "gpus_per_task": 1,
        "array_parallelism": 4,
        "additional_parameters": {"requeue": True, "account": "lab", "qos": "high"},
    }
    defaults = SlurmOptions().executor_parameters("g")
    assert (
        defaults["time"] is None and defaults["gpus_per_task"] is None and "array_parallelism" not in defaults
    )


def test_a_manifest_written_before_the_job_field_still_reads(tmp_path):
    spec = GridSpec.from_mapping({"axes": {"seed": [0, 1]}})
    GridManifest.open(tmp_path, spec)
    data = json.loads((tmp_path / "grid.json").read_text())
    for row in data["cells"]:
        del row["job"]
    (tmp_path / "grid.json").write_text(json.dumps(data))
    assert [(row.name, row.job) for row in read_states(tmp_path)] == [
        ("base-seed=0", None),
        ("base-seed=1", None),
    ]
    manifest = GridManifest.open(tmp_path, spec)
    assert manifest.claim("L1") is not None and read_states(tmp_path)[0].job is None  # a local claim


def test_without_submitit_the_slurm_launcher_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # the import system then refuses `import submitit`
    line, _ = one_sentence_error(
        capsys, ["reproduce", "t1", "--scale", "smoke", "--out", str(tmp_path / "x"), "--launcher", "slurm"]
    )
    assert line.endswith(NO_SUBMITIT) and "pip install 'freqtail[slurm]'" in line
    assert not (tmp_path / "x").exists()


def test_without_sbatch_on_path_the_slurm_launcher_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    line, _ = one_sentence_error(
        capsys, ["reproduce", "t1", "--scale", "smoke", "--out", str(tmp_path / "x"), "--launcher", "slurm"]
    )
    assert line.endswith(NO_SBATCH)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--launcher", "pbs"], ("--launcher", "local, slurm", "'pbs'")),
        (["--launcher", "slurm", "--slurm-time", "0"], ("time limit", "positive", "0")),
        (["--launcher", "slurm", "--slurm-gpus-per-task", "-1"], ("GPUs per Slurm task",)),
        (["--launcher", "slurm", "--slurm-array-parallelism", "0"], ("array parallelism",)),
        (["--launcher", "slurm", "--slurm-option", "account"], ("KEY=VALUE", "'account'")),
        (["--launcher", "slurm", "--slurm-option", "array=0-3"], ("array", "set by the launcher")),
        (["--launcher", "slurm", "--slurm-option", "A B=1"], ("'A B'", "not an option name")),
        (["--launcher", "slurm", "--jobs", "2"], ("--jobs", "--slurm-array-parallelism")),
        (["--launcher", "slurm", "--gpus", "0"], ("--gpus", "--slurm-gpus-per-task")),
    ],
)
def test_bad_launcher_options_are_one_sentence_and_exit_2(tmp_path, capsys, extra, words):
    one_sentence_error(
        capsys, ["reproduce", "t1", "--scale", "smoke", "--out", str(tmp_path / "x"), *extra], *words
    )
    assert not (tmp_path / "x").exists()
