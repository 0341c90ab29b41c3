"""``freqtail train`` on the command line: options, errors as one sentence, run folders, --resume."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from freqtail.cli import main
from freqtail.train.config import load_config
from freqtail.workflows.training import plan_run
from test_train_support import tiny_root  # noqa: F401

TINY = ["--model", "small-cnn", "--set", "model_options={width: 4}", "--batch-size", "16", "--no-progress"]


def _error(capsys, argv) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("freqtail train: error: ")
    return lines[0]


def test_unknown_names_list_the_valid_ones(capsys, tmp_path):
    out = ["--out", str(tmp_path / "run")]
    assert "valid names are: densenet-bc" in _error(capsys, ["train", "--model", "resnet-7", *out])
    assert "erm, pgd-at, trades, mart, augmix, augmix-bass" in _error(
        capsys, ["train", "--objective", "fgsm", *out]
    )
    assert "choose one of embedded, cifar10" in _error(capsys, ["train", "--dataset", "mnist", *out])
    assert "did you mean 'weight_decay'" in _error(capsys, ["train", "--set", "weight_decy=1", *out])
    assert "freqtail train --list-keys" in _error(capsys, ["train", "--set", "wd=1", *out])
    assert "does not exist" in _error(capsys, ["train", "--config", str(tmp_path / "nope.yaml"), *out])
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [0.1\n")
    assert "not valid YAML" in _error(capsys, ["train", "--config", str(broken), *out])
    assert "CUDA only" in _error(capsys, ["train", "--amp", "bf16", "--device", "cpu", *out])
    assert "key=value" in _error(capsys, ["train", "--set", "lr", *out])


def test_print_config_and_list_keys(capsys, tmp_path):
    assert main(["train", "--print-config", "--objective", "trades", "--set", "beta=3", "--epochs", "7"]) == 0
    text = capsys.readouterr().out
    assert "objective: trades\n" in text and "beta: 3.0\n" in text and "epochs: 7\n" in text
    assert main(["train", "--list-keys"]) == 0
    listing = capsys.readouterr().out
    for key in ("dataset", "bass", "gamma", "jsd_lambda", "robust_eval_examples", "num_workers"):
        assert f"\n{key} " in "\n" + listing


def test_train_resume_and_folder_protection(capsys, tmp_path, tiny_root):
    argv = ["train", "--data-root", str(tiny_root), "--epochs", "1", *TINY, "--out", str(tmp_path / "run")]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "complete" and result["epochs_completed"] == 1
    assert result["best"]["metric"] == "test_acc" and result["last"]["train_images"] == 96
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "metrics.jsonl").exists()
    assert "already holds this run; pass --resume" in _error(capsys, argv)
    assert "holds a different run (differing keys: lr)" in _error(capsys, [*argv, "--lr", "0.3", "--resume"])
    assert main([*argv, "--resume"]) == 0
    assert "already complete" in capsys.readouterr().err
    assert main([*argv, "--lr", "0.3", "--force"]) == 0
    assert "Run complete (1 epoch): best test_acc" in capsys.readouterr().out


def test_default_run_folder_names(capsys, tmp_path, tiny_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["train", "--data-root", str(tiny_root), "--epochs", "1", *TINY]
    assert main([*base, "--bass", "augment", "--gamma", "0.5"]) == 0
    assert (tmp_path / "runs" / "embedded-small-cnn-erm-bass-augment-0.5" / "config.yaml").exists()
    assert main([*base, "--name", "mine", "--runs-dir", "elsewhere"]) == 0
    assert (tmp_path / "elsewhere" / "mine" / "checkpoints" / "last.json").exists()
    capsys.readouterr()


def test_numbers_and_flow_mappings_reach_the_config(capsys, tmp_path):
    argv = ["train", "--print-config", "--set", "lr=1e-3", "--set", "epochs=1e9", "--set", "eps=8/255"]
    assert main([*argv, "--set", "model_options={width:16}", "--set", "weight_decay=5e-4"]) == 0
    text = capsys.readouterr().out
    for line in ("lr: 0.001", "epochs: 1000000000", "eps: 8/255", 'model_options: {"width": 16}'):
        assert f"\n{line}\n" in text, line
    assert "\nweight_decay: 0.0005\n" in text
    assert main(["train", "--print-config", "--set", "model_options={width: 16, norm: group}"]) == 0
    assert 'model_options: {"width": 16, "norm": "group"}' in capsys.readouterr().out
    assert main(["train", "--print-config", "--epochs", "1e3", "--lr", "1e-3", "--seed", "7.0"]) == 0
    text = capsys.readouterr().out
    assert "\nepochs: 1000\n" in text and "\nlr: 0.001\n" in text and "\nseed: 7\n" in text

    config = tmp_path / "c.yaml"
    config.write_text("lr: 1e-3\nweight_decay: 5e-4\nepochs: 1e2\nmodel_options: {width:8}\nbatch_size: 64\n")
    assert main(["train", "--print-config", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    for line in ("lr: 0.001", "weight_decay: 0.0005", "epochs: 100", 'model_options: {"width": 8}'):
        assert f"\n{line}\n" in text, line

    assert _error(capsys, ["train", "--print-config", "--set", "epochs=1.5"]) == (
        "freqtail train: error: Config key 'epochs' must be an integer, not 1.5."
    )


def test_ctrl_c_pressed_again_and_again_ends_like_the_first(tmp_path, tiny_root):
    """A real training process: Ctrl-C after its first checkpoint, then Ctrl-C every 50 ms until it
    exits (some land in the stopping step, some in the interpreter's teardown): status 130, no
    traceback, and the folder resumes."""
    run = tmp_path / "run"
    argv = ["train", "--data-root", str(tiny_root), "--epochs", "500", *TINY, "--out", str(run)]
    process = subprocess.Popen(
        [sys.executable, "-m", "freqtail.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    while process.poll() is None:
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
    out, err = process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Ctrl-C: stopping after this step" in err
    config = load_config(overrides=[f"data_root={tiny_root}", "epochs=500", "model=small-cnn"])
    config = config.replace(model_options={"width": 4}, batch_size=16, progress=False)
    assert plan_run(run, config, resume=True, force=False).mode == "resume"


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--name", "", "The run name --name must not be empty."),
        ("--name", " ", "The run name --name must not be empty."),
        ("--out", "", "The run folder --out must not be empty."),  # Path("") would be the current folder
        ("--name", "a\nb", "The run name --name 'a\\nb' holds the control character U+000A;"),
        ("--name", "red\x1b[31m", "holds the control character U+001B;"),
        ("--name", "a\u202eb", "holds the control character U+202E;"),  # a right-to-left override
    ],
)
def test_run_names_that_are_empty_or_hold_control_characters_are_one_sentence(
    capsys, tmp_path, option, value, words
):
    assert words in _error(capsys, ["train", option, value, "--runs-dir", str(tmp_path), "--set", "steps=1"])
    assert list(tmp_path.iterdir()) == []
