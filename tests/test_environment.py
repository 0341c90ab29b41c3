"""Every evaluation record states what it was measured with: versions, torch threads, device."""

from __future__ import annotations

import json

import torch
import torchvision

import freqtail
from freqtail.cli import main
from freqtail.environment import KEYS, environment_text, measured_with, measurement_environment
from freqtail.evaluate.records import Record
from freqtail.evaluate.tables import results_markdown

CPU_ONE = {
    "freqtail": "0.1.0",
    "torch": "2.14.1",
    "torchvision": "0.29.1",
    "torch_threads": 1,
    "device": "cpu",
}


def test_the_environment_is_this_process_s():
    env = measurement_environment("cpu")
    assert tuple(env) == KEYS
    assert env == {
        "freqtail": freqtail.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }


def test_the_environment_reads_as_one_line_and_old_records_say_not_recorded():
    assert (
        environment_text(CPU_ONE) == "freqtail 0.1.0, torch 2.14.1, torchvision 0.29.1, 1 torch thread, cpu"
    )
    assert environment_text({**CPU_ONE, "torch_threads": 2}).endswith("2 torch threads, cpu")
    assert environment_text(None) == "not recorded"
    two = [{"environment": CPU_ONE}, {"environment": CPU_ONE}, {}]
    assert measured_with(two[:2]) == f"Measured with {environment_text(CPU_ONE)}."
    assert (
        measured_with(two)
        == f"Measured with: {environment_text(CPU_ONE)} (2 numbers); not recorded (1 number)."
    )


def test_a_record_keeps_its_environment_through_a_round_trip_and_older_ones_still_load():
    stored = {
        "id": "best|standard|clean|",
        "metric": "clean",
        "threat_model": "standard",
        "environment": CPU_ONE,
    }
    assert Record.from_dict(stored).environment == CPU_ONE and Record.from_dict(stored).to_dict() == stored
    older = {k: v for k, v in stored.items() if k != "environment"}
    assert Record.from_dict(older).environment is None and Record.from_dict(older).to_dict() == older


def test_evaluate_records_the_environment_and_results_md_and_the_console_show_it(tmp_path, capsys):
    run = tmp_path / "run"
    train = [
        "train",
        "--out",
        str(run),
        "--set",
        "model_options={width: 4}",
        "--set",
        "steps=1",
        "--set",
        "batch_size=8",
    ]
    assert (
        main([*train, "--set", "train_subset=16", "--set", "test_subset=16", "--set", "progress=false"]) == 0
    )
    assert main(["evaluate", str(run), "--suite", "clean", "--n", "8", "--no-progress"]) == 0
    line = f"Measured with {environment_text(measurement_environment('cpu'))}."
    assert line in capsys.readouterr().out.splitlines()  # the console says it too
    assert main(["sensitivity", str(run), "--n", "8", "--figure-format", "png"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == line
    records = json.loads((run / "results.json").read_text())["results"]
    assert records and all(r["environment"] == measurement_environment("cpu") for r in records)
    assert (
        f"Measured with {environment_text(measurement_environment('cpu'))}."
        in (run / "results.md").read_text()
    )
    older = [{k: v for k, v in r.items() if k != "environment"} for r in records]
    data = {"results": older}
    assert "Measured with not recorded." in results_markdown(data)
