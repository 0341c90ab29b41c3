"""Models researchers already use: timm / torchvision names, and RobustBench models from local weights.

Nothing here downloads: RobustBench architectures are built by the robustbench package with random
weights, saved in RobustBench's layout, and loaded back through freqtail's loading path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from freqtail.cli import main
from freqtail.errors import CheckpointError, ConfigError
from freqtail.models import build_model_from_spec, create_model, from_robustbench, model_spec

SMALL = "Ding2020MMA"  # the smallest single model of RobustBench's CIFAR-10 L-inf zoo (5.8 M parameters)


# ------------------------------------------------------------------------------------ timm, torchvision


@pytest.mark.parametrize("name", ["timm:resnet18", "torchvision:resnet18"])
def test_library_models_build_with_the_asked_outputs(name):
    model = create_model(name, 10, image_size=32).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    # A spec names them like any model and rebuilds the same architecture (fresh weights).
    rebuilt = build_model_from_spec(model_spec(name, 10, 32))
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())


def test_library_model_names_are_checked():
    with pytest.raises(ConfigError, match=r"timm has no model 'resnet1800'; did you mean timm:resnet18"):
        create_model("timm:resnet1800", 10)
    with pytest.raises(ConfigError, match="written timm:NAME or torchvision:NAME"):
        create_model("keras:resnet18", 10)
    with pytest.raises(ConfigError, match="takes 3-channel images"):
        create_model("torchvision:resnet18", 10, in_channels=1)
    grey = create_model("timm:resnet18", 10, in_channels=1).eval()
    assert grey(torch.rand(1, 1, 32, 32)).shape == (1, 10)


def test_pretrained_weights_are_only_fetched_when_asked(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is out of reach: asking must fail in one sentence
    create_model("timm:resnet18", 10)  # not asked: no download, no error
    with pytest.raises(ConfigError, match=r"timm could not build resnet18 \(pretrained=True\)"):
        create_model("timm:resnet18", 10, pretrained=True)


# ------------------------------------------------------------------------------------ RobustBench


@pytest.fixture(scope="module")
def robustbench_dir(tmp_path_factory):
    """RobustBench's layout with random weights for SMALL, saved the way RobustBench checkpoints are
    (a 'state_dict' wrapper, DataParallel 'module.' prefixes); returns (model dir, the network)."""
    from freqtail.models.external import _zoo

    torch.manual_seed(0)
    network = _zoo("cifar10", "Linf")[SMALL]["model"]().eval()
    folder = tmp_path_factory.mktemp("robustbench-models")
    target = folder / "cifar10" / "Linf" / f"{SMALL}.pt"
    target.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}}, target)
    return folder, network


def test_robustbench_model_loads_from_local_weights(robustbench_dir):
    folder, network = robustbench_dir
    model = from_robustbench(SMALL, "cifar10", "Linf", model_dir=folder)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), network(x))  # [0, 1] in, logits out, nothing added
    assert not model.training


def test_robustbench_problems_are_one_sentence(robustbench_dir, tmp_path, monkeypatch):
    folder, _ = robustbench_dir
    with pytest.raises(CheckpointError, match=rf"No weights for RobustBench's {SMALL} at .*never downloads"):
        from_robustbench(SMALL, model_dir=tmp_path)
    with pytest.raises(
        ConfigError, match=r"RobustBench has no Linf model 'Ding2020MM' for cifar10\. Did you mean"
    ):
        from_robustbench("Ding2020MM", model_dir=folder)
    with pytest.raises(ConfigError, match="no threat model 'Linf2'"):
        from_robustbench(SMALL, threat_model="Linf2", model_dir=folder)
    bad = tmp_path / "cifar10" / "Linf" / f"{SMALL}.pt"
    bad.parent.mkdir(parents=True)
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, bad)
    with pytest.raises(CheckpointError, match="do not fit RobustBench's"):
        from_robustbench(SMALL, model_dir=tmp_path)
    import importlib

    from freqtail.models.external import import_robustbench

    monkeypatch.setattr(importlib, "import_module", _refuse_robustbench(importlib.import_module))
    with pytest.raises(ConfigError, match=r"pip install 'freqtail\[robustbench\]'"):
        import_robustbench()


def test_the_command_line_hides_third_party_import_warnings(tmp_path):
    """A fresh process (imports warn once): the command line prints its one sentence alone. (That the
    library keeps Python's defaults is checked by the test of a foreign autoattack package, in its own
    fresh process.)"""
    command = [
        sys.executable,
        "-m",
        "freqtail.cli",
        "evaluate",
        "--robustbench",
        SMALL,
        "--dataset",
        "cifar10",
    ]
    command += ["--data-root", str(tmp_path), "--model-dir", str(tmp_path / "models")]
    cli = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2
    assert (
        cli.stderr.splitlines() == [cli.stderr.strip()] and "error: No weights for RobustBench" in cli.stderr
    )


_BESIDE_A_FOREIGN_AUTOATTACK = """
import sys

import autoattack as foreign  # imported first, as torchattacks' import does
import pyautoattack
import pyautoattack.state

from freqtail.models.external import import_robustbench

robustbench = import_robustbench()
assert robustbench.eval.AutoAttack is pyautoattack.AutoAttack, robustbench.eval.AutoAttack
state = robustbench.eval.EvaluationState
assert state.__module__ == "autoattack.state" and state.__qualname__ == "EvaluationState", state
assert sys.modules["autoattack"] is foreign and not hasattr(foreign, "state")  # put back for its owner
print("imported beside", foreign.__file__)
"""


def test_robustbench_imports_beside_a_foreign_autoattack_package(tmp_path):
    """torchattacks ships a top-level ``autoattack`` without ``autoattack.state``; with one like it
    first on the path, RobustBench still imports, on pyautoattack, and the foreign package stays.
    Imported as a library (a fresh process: imports warn once), robustbench shows setuptools' and
    torch's import warnings as Python would: only the command line silences them."""
    (tmp_path / "autoattack").mkdir()
    (tmp_path / "autoattack" / "__init__.py").write_text("class AutoAttack:\n    pass\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(
        [sys.executable, "-c", _BESIDE_A_FOREIGN_AUTOATTACK],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"imported beside {tmp_path / 'autoattack' / '__init__.py'}" in run.stdout
    assert "pkg_resources is deprecated" in run.stderr


def _refuse_robustbench(real):
    def import_module(name, *args):
        if name == "robustbench":
            raise ImportError("No module named 'robustbench'", name="robustbench")
        return real(name, *args)

    return import_module


@pytest.fixture(scope="module")
def tiny_cifar10(tmp_path_factory):
    """A CIFAR-10 folder with 40 test images of natural crops (no download)."""
    from freqtail.data.cifar import write_cifar_batches
    from freqtail.sample_photos import photo_crops

    crops = photo_crops(32, 4, seed=2)[:50]
    labels = np.arange(len(crops)) % 10
    root = tmp_path_factory.mktemp("cifar")
    classes = [f"class{i}" for i in range(10)]
    splits = {"train": (crops[:10], labels[:10]), "test": (crops[10:], labels[10:])}
    write_cifar_batches("cifar10", root, splits, classes)
    return root


def test_a_robustbench_model_is_evaluated_and_explained_into_a_run_like_folder(
    robustbench_dir, tiny_cifar10, tmp_path, capsys
):
    folder, _ = robustbench_dir
    out = tmp_path / "runs" / f"robustbench-{SMALL}"
    common = ["--robustbench", SMALL, "--dataset", "cifar10", "--data-root", str(tiny_cifar10)]
    common += ["--model-dir", str(folder), "--out", str(out)]
    fast = ["--n", "8", "--batch-size", "8", "--masking-n", "0", "--no-progress"]
    assert main(["evaluate", *common, "--suite", "clean,pgd20", *fast]) == 0
    records = json.loads((out / "results.json").read_text())["results"]
    assert {r["id"] for r in records} == {f"{SMALL}|standard|clean|", f"{SMALL}|standard|pgd-20-ce|eps=8/255"}
    assert records[0]["checkpoint"]["format"] == "robustbench" and records[0]["data"]["n"] == 8
    assert "selection not recorded" in (out / "results.md").read_text()
    assert main(["sensitivity", *common, "--n", "4", "--batch-size", "4"]) == 0
    assert json.loads((out / "sensitivity.json").read_text())["num_images"] == 4
    capsys.readouterr()
    # Beside a run: compare reads the folder like any other.
    assert main(["compare", str(out), str(out), "--labels", "a,b"]) == 0
    assert "| a | standard |" in capsys.readouterr().out


def test_robustbench_and_a_run_folder_are_exclusive(robustbench_dir, tmp_path, capsys):
    folder, _ = robustbench_dir
    assert main(["evaluate", str(tmp_path), "--robustbench", SMALL, "--model-dir", str(folder)]) == 2
    assert "either a run folder or --robustbench NAME" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "Give a run folder (or checkpoint), or --robustbench NAME." in capsys.readouterr().err
