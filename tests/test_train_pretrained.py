"""``pretrained: true`` for timm / torchvision models: asked of the library when a run starts, never
stored in the model spec, never asked when the run resumes or its checkpoint is loaded."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from freqtail.train import load_checkpoint, load_config
from freqtail.workflows import load_model_from_run
from test_train_support import tiny_root, train  # noqa: F401

MODEL = "timm:test_efficientnet"  # timm's 0.1 M-parameter test network


def _config(root, **changes):
    values = {
        "dataset": "embedded",
        "data_root": str(root),
        "model": MODEL,
        "objective": "erm",
        "batch_size": 16,
        "eval_batch_size": 48,
        "epochs": 2,
        "progress": False,
    }
    return load_config(overrides={**values, **changes})


class _StopAfterFirstEpoch:
    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 1:
            trainer.request_stop()


@pytest.fixture
def timm_calls(monkeypatch):
    """Every ``timm.create_model`` call's ``pretrained`` argument; a pretrained request gets fresh
    weights here instead of a download (whether the library can download is not this test's matter)."""
    import timm

    calls = []
    real = timm.create_model

    def create_model(name, pretrained=False, **options):
        calls.append(bool(pretrained))
        return real(name, pretrained=False, **options)

    monkeypatch.setattr(timm, "create_model", create_model)
    return calls


def test_pretrained_weights_are_asked_for_when_the_run_starts_only(tmp_path, tiny_root, timm_calls):
    config = _config(tiny_root, pretrained=True)
    run = tmp_path / "run"
    assert train(config, run, log=lambda m: None, callbacks=[_StopAfterFirstEpoch()]).status == "interrupted"
    assert timm_calls == [True]
    spec = load_checkpoint(run, "last").model_spec
    assert spec["name"] == MODEL and "pretrained" not in spec["options"]
    assert "pretrained" not in str(spec)
    assert "pretrained: true" in (run / "config.yaml").read_text()
    # Resuming rebuilds the architecture and takes the weights from the checkpoint.
    assert train(config, run, resume=True, log=lambda m: None).status == "complete"
    assert timm_calls == [True, False]
    load_model_from_run(run)
    assert timm_calls == [True, False, False]


def test_a_library_model_without_pretrained_never_touches_the_network(tmp_path, tiny_root, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    result = train(_config(tiny_root, epochs=1), tmp_path / "run", log=lambda m: None)
    assert result.status == "complete"
    spec = load_checkpoint(tmp_path / "run").model_spec
    assert spec["options"] == {} and "pretrained: false" in (tmp_path / "run" / "config.yaml").read_text()


@pytest.mark.slow
def test_asking_for_pretrained_weights_offline_is_one_sentence(tmp_path, tiny_root):
    # A new process, so that the hub's offline switch is read at import, and an empty hub cache.
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "th"))
    env["FREQTAIL_CACHE"] = str(tmp_path / "cache")
    command = [sys.executable, "-m", "freqtail.cli", "train", "--model", MODEL, "--set", "pretrained=true"]
    command += ["--dataset", "embedded", "--data-root", str(tiny_root), "--out", str(tmp_path / "run")]
    done = subprocess.run(command + ["--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("freqtail train: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(
        "freqtail train: error: timm could not build test_efficientnet (pretrained=True): "
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
