"""Checkpoint format and loader: round trips, pointers, pruning, corrupt / truncated / foreign files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from freqtail.errors import CheckpointError
from freqtail.models import build_model_from_spec, model_spec
from freqtail.train.checkpoint import (
    INFO_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    load_checkpoint,
    optimizer_state_from_parts,
    optimizer_state_to_parts,
    resolve_checkpoint,
    save_checkpoint,
)
from freqtail.workflows import load_model_from_run


def _spec(bass_front=None):
    return model_spec("small-cnn", 4, options={"width": 4}, normalize="cifar10", bass_front=bass_front)


def _trained_model_and_optimizer(seed=0):
    torch.manual_seed(seed)
    model = build_model_from_spec(_spec())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.rand(3, 3, 8, 8)).logsumexp(1).mean().backward()
        optimizer.step()
    return model, optimizer


def _save(run_dir, model, optimizer, step, epoch, pointers=("last",), extra=None):
    info = {"global_step": step, "epoch": epoch, "model_spec": _spec(), "config": {"dataset": "embedded"}}
    return save_checkpoint(
        run_dir / "checkpoints",
        model_state=model.state_dict(),
        info={**info, **(extra or {})},
        optimizer_state=optimizer.state_dict(),
        pointers=pointers,
    )


def test_round_trip_restores_weights_optimizer_and_info(tmp_path):
    model, optimizer = _trained_model_and_optimizer()
    folder = _save(tmp_path, model, optimizer, step=7, epoch=1, pointers=("last", "best"))
    assert sorted(p.name for p in folder.iterdir()) == sorted([INFO_FILE, MODEL_FILE, OPTIMIZER_FILE])

    loaded, info = load_model_from_run(tmp_path)
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert info["which"] == "best" and info["epoch"] == 1 and info["global_step"] == 7
    assert info["format"] == "freqtail-checkpoint" and info["data"]["dataset"] == "embedded"

    checkpoint = load_checkpoint(tmp_path, "last")
    fresh = build_model_from_spec(_spec())
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    fresh_optimizer.load_state_dict(checkpoint.optimizer_state())
    original = optimizer.state_dict()
    restored = fresh_optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]
    for pid, entries in original["state"].items():
        assert torch.equal(restored["state"][pid]["momentum_buffer"], entries["momentum_buffer"])


def test_optimizer_parts_split_tensors_from_json():
    state = {
        "state": {0: {"momentum_buffer": torch.ones(2), "step": 3}},
        "param_groups": [{"lr": 0.1, "params": [0]}],
    }
    tensors, rest = optimizer_state_to_parts(state)
    assert list(tensors) == ["state.0.momentum_buffer"]
    json.dumps(rest)  # the rest is plain JSON
    back = optimizer_state_from_parts(json.loads(json.dumps(rest)), tensors)
    assert back["state"][0]["step"] == 3 and torch.equal(back["state"][0]["momentum_buffer"], torch.ones(2))


def test_pointers_follow_and_unreferenced_checkpoints_are_pruned(tmp_path):
    model, optimizer = _trained_model_and_optimizer()
    first = _save(tmp_path, model, optimizer, step=10, epoch=1, pointers=("last", "best"))
    second = _save(tmp_path, model, optimizer, step=20, epoch=2, pointers=("last",))
    assert resolve_checkpoint(tmp_path, "best")[0] == first
    assert resolve_checkpoint(tmp_path, "last")[0] == second
    third = _save(tmp_path, model, optimizer, step=30, epoch=3, pointers=("last", "best"))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.json", "last.json", third.name]  # steps 10 and 20 are no longer named
    # every accepted way of naming the same checkpoint resolves to it
    for path in (third, third / INFO_FILE, third / MODEL_FILE, tmp_path / "checkpoints" / "last.json"):
        assert resolve_checkpoint(path)[0] == third


def test_missing_best_pointer_says_to_use_last(tmp_path):
    model, optimizer = _trained_model_and_optimizer()
    _save(tmp_path, model, optimizer, step=5, epoch=0, pointers=("last",))
    with pytest.raises(CheckpointError, match="no 'best' checkpoint yet.*'last'"):
        load_model_from_run(tmp_path)
    load_model_from_run(tmp_path, "last")


def test_truncated_and_corrupt_weights_are_refused(tmp_path):
    model, optimizer = _trained_model_and_optimizer()
    folder = _save(tmp_path, model, optimizer, step=1, epoch=1, pointers=("last", "best"))
    weights = folder / MODEL_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model_from_run(tmp_path)
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF  # same size, one byte of a tensor changed
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_model_from_run(tmp_path)
    load_model_from_run(tmp_path, verify=False)  # sizes still match; the caller opted out of hashing
    (folder / INFO_FILE).write_text('{"format": "freqtail-checkpoint", "vers')
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model_from_run(tmp_path)


def test_foreign_and_newer_files_are_refused(tmp_path):
    model, optimizer = _trained_model_and_optimizer()
    folder = _save(tmp_path, model, optimizer, step=1, epoch=1, pointers=("last", "best"))
    info = json.loads((folder / INFO_FILE).read_text())
    (folder / INFO_FILE).write_text(json.dumps({**info, "version": 99}))
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(folder)
    (folder / INFO_FILE).write_text(json.dumps({**info, "format": "someone-else"}))
    with pytest.raises(CheckpointError, match="not a freqtail checkpoint"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="not a freqtail checkpoint"):
        load_model_from_run(tmp_path)  # the run folder leads to the same foreign file
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="No freqtail checkpoint"):
        load_model_from_run(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no run folder"):
        load_model_from_run(tmp_path / "nowhere")


def test_foreign_state_dict_pt_loads_with_spec_only(tmp_path):
    model, _ = _trained_model_and_optimizer(seed=3)
    bare = tmp_path / "bare.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.backbone.state_dict().items()}}, bare)
    with pytest.raises(CheckpointError, match="spec="):
        load_model_from_run(bare)
    loaded, info = load_model_from_run(bare, spec=_spec())
    assert info["format"] == "foreign"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    wrong = model_spec("small-cnn", 4, options={"width": 8})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_model_from_run(bare, spec=wrong)


def test_pickled_code_is_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": Evil()}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model_from_run(path, spec=_spec())
    assert not marker.exists()


def test_standalone_model_file_carries_its_spec_and_front(tmp_path):
    model, optimizer = _trained_model_and_optimizer()
    info = {"global_step": 1, "epoch": 1, "model_spec": _spec(bass_front=True)}
    folder = save_checkpoint(tmp_path, model_state=model.state_dict(), info=info, pointers=("last",))
    copy = tmp_path / "copied.safetensors"
    copy.write_bytes((folder / MODEL_FILE).read_bytes())
    with_front, _ = load_model_from_run(copy)
    without, _ = load_model_from_run(copy, with_front=False)
    assert with_front.front is not None and without.front is None
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(without(x), model.eval()(x))
