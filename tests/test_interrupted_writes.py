"""Writes killed at a chosen point leave nothing behind and never block the rerun.

A real ``freqtail`` process, forked from the test's, is SIGKILLed inside the write of one file
(between writing its temporary file and moving it into place: ``os.replace`` of that file name, the
n-th time), as ``kill -9`` or a power cut would; the rerun, in-process, must succeed and sweep the
temporary file the kill left.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freqtail.cli import main
from freqtail.io import leftover_temporaries, sweep_leftover_temporaries
from kill_support import killed_at_write

pytestmark = pytest.mark.slow

TINY = ["--model", "small-cnn", "--set", "model_options={width: 4}", "--batch-size", "32", "--no-progress"]


def _temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if ".tmp" in p.name)


def test_leftovers_are_only_those_of_the_named_file(tmp_path):
    target = tmp_path / "results.json"
    mine = [tmp_path / ".results.json.ab12cd_9.tmp.json", tmp_path / ".results.json.zz99zz00.tmp.json"]
    others = [tmp_path / ".results.md.ab12cd_9.tmp.md", tmp_path / ".results.json.short.tmp.json"]
    others += [tmp_path / "results.json.ab12cd_9.tmp.json"]  # not hidden: not a temporary of atomic_path
    for path in mine + others:
        path.write_text("partial")
    assert leftover_temporaries(target) == sorted(mine)
    assert sweep_leftover_temporaries([target]) == sorted(mine)
    assert sorted(tmp_path.iterdir()) == sorted(others)


def test_a_kill_inside_each_write_of_training_and_evaluation_is_swept_and_the_rerun_goes_on(tmp_path, capsys):
    run = tmp_path / "run"
    train = [
        "train",
        "--epochs",
        "2",
        *TINY,
        "--set",
        "train_subset=96",
        "--set",
        "test_subset=32",
        "--out",
        str(run),
    ]

    # config.yaml, the first file of a run: the rerun with --resume starts afresh instead of refusing
    killed_at_write("config.yaml", 1, train)
    assert [name[:13] for name in _temporaries(run)] == [".config.yaml."]
    # the pointer last.json after the first epoch: its checkpoint folder is complete, the pointer not
    killed_at_write("last.json", 1, [*train, "--resume"])
    assert [name[:23] for name in _temporaries(run)] == ["checkpoints/.last.json."]
    # metrics.jsonl after the second epoch (resumed from the newest complete checkpoint)
    killed_at_write("metrics.jsonl", 1, [*train, "--resume"])
    assert any(name.startswith(".metrics.jsonl.") for name in _temporaries(run))
    assert main([*train, "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs_completed"] == 2
    assert _temporaries(run) == []

    evaluate = ["evaluate", str(run), "--which", "last", "--suite", "clean", "--n", "8", "--no-progress"]
    killed_at_write("results.json", 1, evaluate)
    assert [name[:14] for name in _temporaries(run)] == [".results.json."]
    assert main(evaluate) == 0
    capsys.readouterr()
    assert _temporaries(run) == []
    records = json.loads((run / "results.json").read_text())["results"]
    assert [record["metric"] for record in records] == ["clean"]
