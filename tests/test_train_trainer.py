"""The trainer: resume equals an uninterrupted run bit for bit, run-folder rules, checkpoints, workers."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from freqtail.errors import ConfigError
from freqtail.train import load_checkpoint, load_config
from freqtail.train.checkpoint import LAST_EPOCH
from freqtail.train.records import TIMING_KEYS
from freqtail.workflows import load_model_from_run
from test_train_support import tiny_root, train  # noqa: F401


def _config(root, **changes):
    values = {
        "dataset": "embedded",
        "data_root": str(root),
        "model": "small-cnn",
        "model_options": {"width": 4},
        "objective": "pgd-at",
        "attack_steps": 1,
        "robust_eval_examples": 16,
        "robust_eval_steps": 2,
        "eval_batch_size": 32,
        "batch_size": 16,
        "epochs": 3,
        "lr": 0.05,
        "schedule": "piecewise",
        "milestones": [2],
        "progress": False,
    }
    values.update(changes)
    return load_config(overrides=values)


def _quiet(message):
    pass


class StopAt:
    """Callback that asks the trainer to stop at (epoch index, step) or after an epoch."""

    def __init__(self, epoch, step=None):
        self.epoch, self.step = epoch, step

    def on_step(self, trainer):
        if self.step is not None and trainer.epoch == self.epoch and trainer.step_in_epoch == self.step:
            trainer.request_stop()

    def on_epoch_end(self, trainer, record):
        if self.step is None and record["epoch"] == self.epoch:
            trainer.request_stop()


def _without_timing(history):
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def _assert_same_run(a, b):
    first, second = load_checkpoint(a, "last"), load_checkpoint(b, "last")
    assert first.model_state.keys() == second.model_state.keys()
    for key, value in first.model_state.items():
        assert torch.equal(value, second.model_state[key]), key
    opt_a, opt_b = first.optimizer_state(), second.optimizer_state()
    for pid, entries in opt_a["state"].items():
        assert torch.equal(entries["momentum_buffer"], opt_b["state"][pid]["momentum_buffer"])
    assert _without_timing(first.info["history"]) == _without_timing(second.info["history"])
    lines_a = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    lines_b = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    assert _without_timing(lines_a) == _without_timing(lines_b) == _without_timing(first.info["history"])
    assert first.info["best"] == second.info["best"]


_SELECT_ON_VAL = {"selection": "val", "val_subset": 12}


@pytest.mark.parametrize(
    ("objective", "stop", "extra"),
    [
        ("pgd-at", StopAt(1), {}),
        ("pgd-at", StopAt(1, step=2), {}),
        ("augmix-bass", StopAt(1, step=3), {}),
        ("trades", StopAt(2), {}),
        ("pgd-at", StopAt(1, step=2), _SELECT_ON_VAL),
        ("augmix-bass", StopAt(1), _SELECT_ON_VAL),
        ("pgd-at", StopAt(1, step=2), {"data_pipeline": "loader", "bass": "augment", "gamma": 0.5}),
        ("pgd-at", StopAt(1, step=2), {"channels_last": True}),
        ("trades", StopAt(1), {"channels_last": True}),
    ],
    ids=[
        "pgd-at-after-epoch-1",
        "pgd-at-mid-epoch-2",
        "augmix-bass-mid-epoch-2",
        "trades-after-epoch-2",
        "pgd-at-select-on-val-mid-epoch-2",
        "augmix-bass-select-on-val-after-epoch-1",
        "pgd-at-loader-pipeline-bass-augment-mid-epoch-2",
        "pgd-at-channels-last-mid-epoch-2",
        "trades-channels-last-after-epoch-1",
    ],
)
def test_stop_and_resume_equals_uninterrupted_training(tmp_path, tiny_root, objective, stop, extra):
    config = _config(tiny_root, objective=objective, **extra)
    reference = train(config, tmp_path / "reference", log=_quiet)
    assert reference.status == "complete" and reference.epochs_completed == 3

    interrupted = train(config, tmp_path / "resumed", log=_quiet, callbacks=[stop])
    assert interrupted.status == "interrupted"
    finished = train(config, tmp_path / "resumed", resume=True, log=_quiet)
    assert finished.status == "complete" and finished.global_step == reference.global_step
    _assert_same_run(tmp_path / "reference", tmp_path / "resumed")
    again = train(config, tmp_path / "resumed", resume=True, log=_quiet)
    assert again.status == "already-complete"


def test_selection_on_val_chooses_best_on_held_out_images_and_says_so(tmp_path, tiny_root):
    config = _config(tiny_root, epochs=3, selection="val", val_subset=12, robust_eval_examples=8)
    result = train(config, tmp_path / "run", log=_quiet)
    history = result.history
    assert all(r["train_images"] == 80 for r in history)  # 96 - 12 held out, drop_last at batch 16
    assert all(r["val_images"] == 12 and r["val_robust_examples"] == 8 for r in history)
    assert all(r["test_images"] == 48 and r["robust_examples"] == 8 for r in history)  # test still logged
    values = [r["val_robust_acc"] for r in history]
    assert result.best["metric"] == "val_robust_acc" and result.best["value"] == max(values)
    assert result.best["epoch"] == values.index(max(values)) + 1  # ties keep the earlier epoch
    selected = {"rule": "best", "split": "val", "n": 8, "metric": "val_robust_acc"}
    best, last = load_checkpoint(tmp_path / "run", "best"), load_checkpoint(tmp_path / "run", "last")
    assert best.info["selected_on"] == selected
    pointers = {
        w: json.loads((tmp_path / "run" / "checkpoints" / f"{w}.json").read_text()) for w in ("best", "last")
    }
    assert pointers["best"]["selected_on"] == selected
    assert (
        pointers["last"]["selected_on"]
        == LAST_EPOCH
        == {
            "rule": "last-epoch",
            "split": None,
            "n": None,
            "metric": None,
        }
    )
    if best.path != last.path:  # the last epoch did not improve: its checkpoint is no selection
        assert last.info["selected_on"] == LAST_EPOCH
    assert load_model_from_run(tmp_path / "run")[1]["selected_on"] == selected
    assert load_model_from_run(tmp_path / "run", "last")[1]["selected_on"] == LAST_EPOCH
    clean = train(config.replace(objective="erm"), tmp_path / "erm", log=_quiet)
    assert clean.best["metric"] == "val_acc"
    assert load_checkpoint(tmp_path / "erm").info["selected_on"]["n"] == 12


def test_workers_do_not_change_the_result(tmp_path, tiny_root):
    config = _config(tiny_root, objective="erm", epochs=1, data_pipeline="loader")  # workers: loader only
    train(config, tmp_path / "zero", log=_quiet)
    train(config.replace(num_workers=2), tmp_path / "two", log=_quiet)
    _assert_same_run(tmp_path / "zero", tmp_path / "two")


def test_run_folder_is_protected(tmp_path, tiny_root):
    config = _config(tiny_root, objective="erm", epochs=1)
    run = tmp_path / "run"
    train(config, run, log=_quiet)
    with pytest.raises(ConfigError, match="already holds this run.*--resume"):
        train(config, run, log=_quiet)
    with pytest.raises(ConfigError, match=r"different run \(differing keys: lr\)"):
        train(config.replace(lr=0.01), run, resume=True, log=_quiet)
    # runtime keys may change on resume
    assert train(config.replace(num_workers=1), run, resume=True, log=_quiet).status == "already-complete"
    result = train(config.replace(lr=0.01), run, force=True, log=_quiet)
    assert result.status == "complete" and "lr: 0.01" in (run / "config.yaml").read_text()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no freqtail run"):
        train(config, tmp_path / "other", log=_quiet)
    # resume of a folder without a checkpoint starts fresh
    assert train(config, tmp_path / "new", resume=True, log=_quiet).status == "complete"


def test_best_checkpoint_reproduces_its_recorded_metrics(tmp_path, tiny_root):
    config = _config(tiny_root, objective="erm", epochs=3, lr=0.1)
    result = train(config, tmp_path / "run", log=_quiet)
    model, info = load_model_from_run(tmp_path / "run")  # best by test_acc for erm
    assert info["best"]["metric"] == "test_acc" and info["best"]["epoch"] == info["epoch"]
    assert info["selected_on"] == {"rule": "best", "split": "test", "n": 48, "metric": "test_acc"}
    record = result.history[info["epoch"] - 1]
    assert record["best"] and info["best"]["value"] == max(r["test_acc"] for r in result.history)
    from freqtail.data import build_dataset

    test = build_dataset("embedded", "test", tiny_root)
    x, y = test.tensors()
    with torch.no_grad():
        accuracy = int((model(x).argmax(1) == y).sum()) / len(y)
    assert accuracy == pytest.approx(record["test_acc"], abs=1e-12)
    assert info["model_spec"]["normalize"] is not None and info["model_spec"]["bass_front"] is None


def test_adversarial_runs_pick_best_by_robust_accuracy_and_record_the_attack(tmp_path, tiny_root):
    result = train(_config(tiny_root, epochs=1), tmp_path / "run", log=_quiet)
    record = result.history[0]
    assert result.best["metric"] == "test_robust_acc"
    assert record["robust_examples"] == 16 and 0.0 <= record["test_robust_acc"] <= record["test_acc"] + 0.5
    assert record["robust_attack"].startswith("pgd-2-ce eps=8/255 step=2/255")
    assert record["test_data"] == "original"


def test_bass_dataset_run_records_the_bass_front_for_end_to_end_use(tmp_path, tiny_root):
    result = train(
        _config(tiny_root, objective="erm", epochs=1, bass="dataset"), tmp_path / "run", log=_quiet
    )
    assert result.history[0]["test_data"] == "bass-dataset"
    end_to_end, info = load_model_from_run(tmp_path / "run")
    domain, _ = load_model_from_run(tmp_path / "run", with_front=False)
    assert end_to_end.front is not None and domain.front is None
    assert info["data"]["bass"] == "dataset"


def test_steps_mode_stops_at_the_step_count(tmp_path, tiny_root):
    result = train(
        _config(tiny_root, objective="erm", steps=8, schedule="cosine"), tmp_path / "run", log=_quiet
    )
    assert result.global_step == 8 and result.epochs_completed == 2  # 6 steps per epoch, then 2
    assert [r["global_step"] for r in result.history] == [6, 8]
    assert result.history[-1]["lr"] == pytest.approx(0.05 * 0.5 * (1 + np.cos(np.pi * 7 / 8)))


def test_a_diverging_run_stops_with_one_sentence_and_keeps_its_checkpoint(tmp_path, tiny_root):
    from freqtail.errors import FreqtailError

    class Explode:
        def on_epoch_end(self, trainer, record):
            for group in trainer.optimizer.param_groups:
                group["lr"] = float("nan")
            trainer.lr_at = lambda step: float("inf")

    config = _config(tiny_root, objective="erm", epochs=2)
    with pytest.raises(FreqtailError, match=r"training loss became nan .*lower the\s+learning rate"):
        train(config, tmp_path / "run", log=_quiet, callbacks=[Explode()])
    assert load_checkpoint(tmp_path / "run", "last").info["epoch"] == 1


def _plain_keys_only(state):
    return not any(
        key.startswith(("_orig_mod.", "model.", "module.")) or "._orig_mod." in key for key in state
    )


def test_execution_options_change_how_a_run_runs_not_its_checkpoints(tmp_path, tiny_root):
    # channels_last is a runtime key: a run may resume with another value. It continues within float
    # rounding of the uninterrupted run (bit for bit only with the same value, tested above).
    fast = _config(tiny_root, channels_last=True)
    reference = train(fast, tmp_path / "reference", log=_quiet)
    train(fast, tmp_path / "switched", log=_quiet, callbacks=[StopAt(1)])
    switched = train(fast.replace(channels_last=False), tmp_path / "switched", resume=True, log=_quiet)
    assert switched.status == "complete" and switched.global_step == reference.global_step
    first, second = (
        load_checkpoint(tmp_path / "reference", "last"),
        load_checkpoint(tmp_path / "switched", "last"),
    )
    assert first.model_state.keys() == second.model_state.keys() and _plain_keys_only(first.model_state)
    assert _without_timing(first.info["history"][:1]) == _without_timing(second.info["history"][:1])
    for a, b in zip(first.info["history"], second.info["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
    assert "channels_last: true" in (tmp_path / "switched" / "config.yaml").read_text()
    # The checkpoint of a channels-last run is a plain model's: it loads without the option and runs
    # as the trained one does.
    model, _ = load_model_from_run(tmp_path / "reference", "last")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()
    from freqtail.models import ExecutionOptions, build_model_from_spec, prepare_model

    trained = build_model_from_spec(first.model_spec, with_front=False)
    trained.load_state_dict(first.model_state)
    trained = prepare_model(trained.eval(), ExecutionOptions(channels_last=True))
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        plain_logits, fast_logits = model(x), trained(x)
    assert float((plain_logits - fast_logits).abs().max()) <= 1e-5 * float(plain_logits.abs().max())


@pytest.mark.slow
def test_compiled_training_resumes_bit_for_bit_and_matches_eager(tmp_path, tiny_root):
    # torch.compile on the CPU (a C++ compiler; the first compilation takes tens of seconds): the
    # training forward, the PGD-AT attack and the evaluation run compiled, channels-last.
    compiled = _config(tiny_root, compile=True, channels_last=True)
    reference = train(compiled, tmp_path / "reference", log=_quiet)
    interrupted = train(compiled, tmp_path / "resumed", log=_quiet, callbacks=[StopAt(1, step=2)])
    assert interrupted.status == "interrupted"
    train(compiled, tmp_path / "resumed", resume=True, log=_quiet)
    _assert_same_run(tmp_path / "reference", tmp_path / "resumed")
    assert _plain_keys_only(load_checkpoint(tmp_path / "reference", "last").model_state)
    eager = train(_config(tiny_root), tmp_path / "eager", log=_quiet)
    for a, b in zip(eager.history, reference.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert abs(b["test_acc"] - a["test_acc"]) * b["test_images"] <= 1
        assert abs(b["test_robust_acc"] - a["test_robust_acc"]) * b["robust_examples"] <= 1
