"""A run folder may come from someone else: nothing in it reaches outside it or the network.

Each case is a real folder with real links in ``tmp_path``, run through ``freqtail.cli.main``: exit 2,
one sentence naming the path and where it points, and nothing outside the folder read or changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from safetensors.torch import save_file

import freqtail.train.checkpoint as checkpoint_module
from freqtail.cli import main
from freqtail.errors import CheckpointError, ConfigError, FreqtailError
from freqtail.models import build_model_from_spec, model_spec
from freqtail.runs.containment import inside, tree_inside
from freqtail.train.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from freqtail.workflows import load_model_from_run
from test_train_support import tiny_root  # noqa: F401

SPEC = model_spec("small-cnn", 16, options={"width": 4})  # the embedded dataset has 16 classes


def _write_run(folder: Path, steps=(1,)) -> Path:
    """A run folder with one real checkpoint per step (``last`` and ``best`` name the last step)."""
    state = build_model_from_spec(SPEC).state_dict()
    for step in steps:
        info = {"global_step": step, "epoch": step, "model_spec": SPEC}
        save_checkpoint(folder / "checkpoints", model_state=state, info=info, pointers=("last", "best"))
    (folder / "config.yaml").write_text("model: small-cnn\n")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (links not followed)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def _one_sentence_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.endswith("."), err
    return err


# ----------------------------------------------------------------------------- the rule itself
def test_inside_follows_links_that_stay_and_refuses_those_that_leave(tmp_path):
    run = tmp_path / "run"
    (run / "real").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (run / "inner").symlink_to(run / "real")
    (run / "outer").symlink_to(tmp_path / "elsewhere")
    (run / "loop").symlink_to(run / "loop")
    assert inside(run, "inner/x.png", "The figure") == run / "inner/x.png"
    assert inside(run, "real/../real", "The folder") == run / "real/../real"
    assert inside(run, ".", "The folder") == run / "."
    leaving = (("outer/x", tmp_path / "elsewhere/x"), ("../x", tmp_path / "x"), ("/etc", Path("/etc")))
    for name, where in leaving:
        with pytest.raises(ConfigError) as caught:
            inside(run, name, "The path", error=ConfigError)
        assert f"points to {where.resolve()}, outside {run};" in str(caught.value)
    with pytest.raises(FreqtailError, match="cannot be resolved"):
        inside(run, "loop", "The path")
    # A linked run folder is the user's choice: what it holds is measured against its target.
    (tmp_path / "alias").symlink_to(run)
    assert inside(tmp_path / "alias", "inner", "The folder") == tmp_path / "alias/inner"
    # A tree: every entry below is checked, a link inside it is refused where it leads out.
    (run / "real" / "deep").mkdir()
    assert tree_inside(run, "real", "The path") == run / "real"
    (run / "real" / "deep" / "leak").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FreqtailError, match=r"real/deep/leak points to .*elsewhere, outside"):
        tree_inside(run, "real", "The path")


# ----------------------------------------------------------------------------- evaluate: weights
def test_a_spec_read_from_a_file_never_asks_for_pretrained_weights(tmp_path, capsys, monkeypatch):
    """A standalone model.safetensors whose spec holds ``pretrained: true`` is refused before the library
    is asked for anything (``timm.create_model`` is where timm downloads)."""
    import timm

    calls = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: calls.append(k) or real(*a, **k))
    spec = model_spec("timm:test_efficientnet", 10)
    state = {k: v.contiguous() for k, v in build_model_from_spec(spec).state_dict().items()}
    assert calls == [{"pretrained": False, "num_classes": 10, "in_chans": 3}]
    # The same file with a sound spec loads, asking the library for fresh weights only.
    sound = tmp_path / "sound" / "model.safetensors"
    sound.parent.mkdir()
    metadata = {"format": CHECKPOINT_FORMAT, "version": "1"}
    save_file(state, str(sound), metadata={**metadata, "model_spec": json.dumps(spec)})
    load_model_from_run(sound)
    assert [call["pretrained"] for call in calls] == [False, False]

    tampered = tmp_path / "model.safetensors"
    spec["options"]["pretrained"] = True
    save_file(state, str(tampered), metadata={**metadata, "model_spec": json.dumps(spec)})
    assert main(["evaluate", str(tampered), "--suite", "clean"]) == 2
    err = _one_sentence_error(capsys)
    assert "never asks for pretrained weights" in err and str(tampered) in err
    assert [call["pretrained"] for call in calls] == [False, False]
    with pytest.raises(ConfigError, match="never asks for pretrained"):
        model_spec("timm:test_efficientnet", 10, options={"pretrained": True})


def _linked_best(run: Path, other: Path) -> str:
    """``best`` names the other run's checkpoint through a linked checkpoint folder."""
    (run / "checkpoints" / "step-00000009").symlink_to(other / "checkpoints" / "step-00000001")
    return "step-00000009"


@pytest.mark.parametrize(
    "case",
    [
        "dot-dot",
        "absolute",
        "linked checkpoint folder",
        "linked checkpoints/",
        "linked pointer",
        "linked file",
    ],
)
def test_evaluate_loads_no_weights_from_outside_the_run(tmp_path, capsys, monkeypatch, case):
    other = _write_run(tmp_path / "other")
    run = _write_run(tmp_path / "shared" / "run")
    load_model_from_run(run)  # the untampered folder loads
    before = _snapshot(other)
    checkpoints = run / "checkpoints"
    pointer = json.loads((checkpoints / "best.json").read_text())
    named = {
        "dot-dot": "../../../other/checkpoints/step-00000001",
        "absolute": str(other / "checkpoints" / "step-00000001"),
        "linked checkpoint folder": None,
        "linked checkpoints/": pointer["checkpoint"],
        "linked pointer": pointer["checkpoint"],
        "linked file": pointer["checkpoint"],
    }[case]
    if case == "linked checkpoint folder":
        named = _linked_best(run, other)
    if case == "linked checkpoints/":
        os.rename(checkpoints, run / "old-checkpoints")
        checkpoints.symlink_to(other / "checkpoints")
    if case == "linked pointer":
        (checkpoints / "best.json").unlink()
        (checkpoints / "best.json").symlink_to(other / "checkpoints" / "best.json")
    if case == "linked file":  # the checkpoint's own model file is a link to the other run's
        model = checkpoints / named / "model.safetensors"
        model.unlink()
        model.symlink_to(other / "checkpoints" / "step-00000001" / "model.safetensors")
    if case in ("dot-dot", "absolute", "linked checkpoint folder"):
        (checkpoints / "best.json").write_text(json.dumps({**pointer, "checkpoint": named}))
    reads = []
    for name in ("_read_json", "read_safetensors"):
        real = getattr(checkpoint_module, name)
        monkeypatch.setattr(checkpoint_module, name, lambda p, *a, _r=real: reads.append(p) or _r(p, *a))

    assert main(["evaluate", str(run), "--suite", "clean"]) == 2
    err = _one_sentence_error(capsys)
    assert f", outside {run / 'checkpoints' if case != 'linked checkpoints/' else run}" in err, err
    assert "points to " + str(tmp_path / "other") in err
    assert all(Path(p).resolve().is_relative_to(run.resolve()) for p in reads), reads
    assert _snapshot(other) == before


def test_resuming_never_uses_a_checkpoint_that_lists_a_file_outside_it(tmp_path):
    """``checkpoint.json`` names its files: one naming a path outside its folder is not complete."""
    run = _write_run(tmp_path / "run")
    info_path = run / "checkpoints" / "step-00000001" / "checkpoint.json"
    info = json.loads(info_path.read_text())
    (tmp_path / "secret").write_bytes(b"x" * 10)
    info["files"]["../../../secret"] = {"bytes": 10, "sha256": "0" * 64}
    info_path.write_text(json.dumps(info))
    problem = "is unsafe (checkpoint.json lists '../../../secret', which leads out of the checkpoint folder)"
    assert checkpoint_module.checkpoint_problem(info_path.parent) == problem
    choice = checkpoint_module.choose_resume_checkpoint(run / "checkpoints")
    assert (
        choice.folder is None
        and choice.problem == f"checkpoints/last.json names step-00000001, which {problem}"
    )


@pytest.mark.parametrize("name", ["results.json", "eval-cache", ".results.lock"])
def test_evaluate_writes_no_results_or_caches_outside_the_run(tmp_path, capsys, name):
    other = _write_run(tmp_path / "other")
    if name == "eval-cache":
        (other / name).mkdir()
    else:
        (other / name).write_text("{}")
    before = _snapshot(other)
    run = _write_run(tmp_path / "run")
    (run / name).symlink_to(other / name)
    assert main(["evaluate", str(run), "--suite", "clean", "--dataset", "embedded"]) == 2
    err = _one_sentence_error(capsys)
    assert f"The path {run / name} points to {(other / name).resolve()}, outside {run};" in err, err
    assert _snapshot(other) == before
    assert sorted(p.name for p in other.iterdir()) == sorted(["checkpoints", "config.yaml", name])


# ----------------------------------------------------------------------------- train
@pytest.mark.parametrize("case", ["checkpoints/ --force", "lock file", "checkpoint folder --resume"])
def test_training_never_writes_through_a_link_to_another_run(tmp_path, capsys, tiny_root, case):  # noqa: F811
    other = _write_run(tmp_path / "other")
    (other / "outside.lock").write_text("")
    before = _snapshot(other)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: small-cnn\n")
    argv = ["train", "--out", str(run), "--dataset", "embedded", "--data-root", str(tiny_root)]
    argv += ["--model", "small-cnn", "--set", "model_options={width: 4}", "--epochs", "1", "--no-progress"]
    if case == "checkpoints/ --force":
        (run / "checkpoints").symlink_to(other / "checkpoints")
        argv.append("--force")
        where = run / "checkpoints"
    elif case == "lock file":
        (run / ".freqtail-train.lock").symlink_to(other / "outside.lock")
        argv.append("--force")
        where = run / ".freqtail-train.lock"
    else:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "step-00000001").symlink_to(other / "checkpoints" / "step-00000001")
        argv.append("--resume")
        where = run / "checkpoints" / "step-00000001"
    assert main(argv) == 2
    err = _one_sentence_error(capsys)
    assert f"The path {where} points to {(tmp_path / 'other').resolve()}" in err, err
    assert f"outside {run};" in err
    assert _snapshot(other) == before
    assert sorted(p.name for p in run.iterdir()) == sorted(["config.yaml", where.relative_to(run).parts[0]])


@pytest.mark.parametrize("name", ["../../x", "../runs-sibling", "ABSOLUTE"])
def test_a_run_name_never_leaves_the_runs_folder(tmp_path, capsys, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a" / "runs").mkdir(parents=True)
    name = str(tmp_path / "absolute") if name == "ABSOLUTE" else name
    before = sorted(tmp_path.rglob("*"))
    argv = ["train", "--name", name, "--runs-dir", "a/runs", "--model", "small-cnn", "--epochs", "1"]
    assert main(argv) == 2
    err = _one_sentence_error(capsys)
    assert f"The run folder {Path('a/runs') / name} points to " in err and "outside a/runs;" in err
    assert sorted(tmp_path.rglob("*")) == before


# ----------------------------------------------------------------------------- report
@pytest.mark.parametrize("case", ["linked figure", "linked figures/", "linked sub-run"])
def test_the_report_copies_and_embeds_nothing_from_outside(tmp_path, capsys, case):
    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(b"\x89PNG\r\n\x1a\nSECRET")
    run = tmp_path / "shared" / "run"
    (run / "figures").mkdir(parents=True)
    (run / "config.yaml").write_text("model: small-cnn\nobjective: erm\n")
    out = tmp_path / "out"
    # The folder with its own figure reports, and the figure is copied beside report.md.
    (run / "figures" / "bass_examples.png").write_bytes(b"\x89PNG\r\n\x1a\nOWN")
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert (out / "figures" / "run-bass_examples.png").read_bytes().endswith(b"OWN")
    capsys.readouterr()

    target = run
    if case == "linked figure":
        (run / "figures" / "bass_examples.png").unlink()
        (run / "figures" / "bass_examples.png").symlink_to(secret)
        where = run / "figures" / "bass_examples.png"
    elif case == "linked figures/":
        (run / "figures" / "bass_examples.png").unlink()
        (run / "figures").rmdir()
        (run / "figures").symlink_to(secret.parent)
        (secret.parent / "bass_examples.png").symlink_to(secret)
        where = run / "figures"
    else:
        target = run.parent
        (run / "figures" / "bass_examples.png").unlink()
        (run.parent / "theirs").symlink_to(_write_run(tmp_path / "private" / "theirs"))
        where = run.parent / "theirs"
    out = tmp_path / "out2"
    assert main(["report", str(target), "--out", str(out)]) == 2
    err = _one_sentence_error(capsys)
    assert f"{where} points to {secret.parent.resolve()}" in err, err
    written = list(out.rglob("*")) if out.exists() else []
    assert [p for p in written if p.is_file() and b"SECRET" in p.read_bytes()] == []
    assert not (out / "report.md").exists()


def test_checkpoint_errors_name_the_pointer(tmp_path):
    """The library's own sentence (what ``evaluate`` prints): a ``CheckpointError`` naming the pointer."""
    run = _write_run(tmp_path / "run")
    (run / "checkpoints" / "last.json").write_text(
        json.dumps({"format": "freqtail-checkpoint-pointer", "checkpoint": "../.."})
    )
    with pytest.raises(CheckpointError, match=r"^The last checkpoint .* points to .*outside .*checkpoints;"):
        load_model_from_run(run, "last")
