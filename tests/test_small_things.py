"""Small things a newcomer meets: DataLoader workers capped at the cores, counts with their plural,
negative values parsed like any other."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from freqtail.cli import main
from freqtail.data import loader_workers as workers
from freqtail.errors import CheckpointError
from freqtail.formatting import count
from freqtail.train.checkpoint import resolve_checkpoint
from freqtail.train.config import load_config
from freqtail.train.data import train_loader


def test_counts_take_the_plural_only_when_not_one():
    assert [count(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert count(1, "image") == "1 image" and count(5, "child", "children") == "5 children"


def test_workers_beyond_the_cores_are_capped_once_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(workers, "_said", set())
    assert workers.loader_workers(0) == 0 and workers.loader_workers(2) == 2
    assert capsys.readouterr().err == ""
    assert workers.loader_workers(4) == 2 and workers.loader_workers(4) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "num_workers 4 capped at 2" in err


def test_a_training_loader_asking_for_more_workers_than_cores_gets_the_cores(monkeypatch, recwarn):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(workers, "_said", set())
    config = load_config(overrides=["num_workers=4"])
    data = torch.utils.data.TensorDataset(
        torch.from_numpy(np.zeros((4, 3, 8, 8), np.float32)), torch.arange(4)
    )
    loader = train_loader(data, range(4), 2, config, pin_memory=False)
    assert loader.num_workers == 1
    assert not [
        w for w in recwarn if "worker processes" in str(w.message)
    ]  # torch's own warning is not raised


@pytest.mark.parametrize("value", ["-8/255", "-0.1", "-1e-3"])
def test_a_negative_budget_reaches_its_check_and_gets_one_sentence(value, capsys, tmp_path):
    assert main(["evaluate", str(tmp_path), "--eps", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err and f"must be >= 0, not '{value}'" in err


def test_an_unknown_short_option_is_still_an_option(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "nowhere", "-x"])
    assert "unrecognized arguments: -x" in capsys.readouterr().err


def test_the_demo_computes_with_one_thread_unless_asked(monkeypatch):
    from freqtail.workflows.threads import DEMO_THREADS, use_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    before = torch.get_num_threads()
    try:
        assert DEMO_THREADS == 1 and use_threads(DEMO_THREADS) == 1 and torch.get_num_threads() == 1
        assert (
            use_threads("all") == 3 and torch.get_num_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"
        )
        assert use_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_demo_thread_count_is_one_sentence(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--threads", value])
    assert exit_.value.code == 2 and "--threads" in capsys.readouterr().err


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_forecast_is_said_once_after_three_measured_steps_from_their_pace():
    from freqtail.train.forecast import StepForecast

    clock = _Clock()
    forecast = StepForecast(first_step=10, total_steps=10 + 4 + 96, clock=clock)
    lines = []
    for step in range(11, 20):
        clock.now += 1000.0 if step == 11 else 50.0  # the first step (caches, compiling) is left out
        lines.append(forecast.after_step(step))
    assert lines[:3] == [None, None, None] and all(line is None for line in lines[4:])
    assert lines[3] == "Measured 50.00 s a step: about 80 min for the 96 steps left."


def test_train_says_what_it_trains_before_the_first_step(tmp_path, capsys):
    argv = ["train", "--dataset", "embedded", "--epochs", "2", "--out", str(tmp_path / "run")]
    argv += ["--set", "model_options={width: 4}", "--set", "train_subset=64", "--set", "batch_size=16"]
    assert main([*argv, "--set", "test_subset=16", "--set", "progress=false"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"Training small-cnn with erm on embedded: 2 epochs of 4 steps (batch 16), 8 of 8 steps to go, "
        f"{count(torch.get_num_threads(), 'torch thread')} on cpu."
    )
    assert err[1].startswith("Measured ") and err[1].endswith(" for the 4 steps left.")


#: Each command given a path that does not exist, and the sentence it must answer with.
MISSING_PATHS = {
    ("evaluate", "{missing}"): "There is no run folder or checkpoint at {missing}.",
    ("sensitivity", "{missing}"): "There is no run folder or checkpoint at {missing}.",
    ("landscape", "{missing}"): "There is no run folder or checkpoint at {missing}.",
    ("heatmap", "{missing}"): "There is no run folder or checkpoint at {missing}.",
    ("report", "{missing}"): "The folder {missing} does not exist.",
    (
        "compare",
        "{missing}",
        "{missing}",
    ): "No results file at {missing}; run `freqtail evaluate` on that run first.",
}

#: Runs every command of MISSING_PATHS in one fresh process and reports whether torch got imported.
REFUSE_WITHOUT_TORCH = """
import contextlib, io, json, sys
from freqtail.cli import main
cases = json.loads(sys.argv[1])
answers = []
for argv in cases:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    answers.append([code, err.getvalue()])
print(json.dumps({"answers": answers, "torch": "torch" in sys.modules}))
"""


def test_a_missing_run_path_is_refused_before_torch_is_imported(tmp_path):
    """The path check comes first: a mistyped run folder is answered without torch's seconds of
    start-up (the library's own check gives the same sentence when it reads the path)."""
    import json
    import subprocess
    import sys

    missing = str(tmp_path / "no-such-run")
    cases = [[part.format(missing=missing) for part in argv] for argv in MISSING_PATHS]
    done = subprocess.run(
        [sys.executable, "-c", REFUSE_WITHOUT_TORCH, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["torch"] is False
    for (argv, sentence), (code, err) in zip(MISSING_PATHS.items(), result["answers"], strict=True):
        assert code == 2
        assert err == f"freqtail {argv[0]}: error: {sentence.format(missing=missing)}\n"
    # the library, reading the same path after torch is imported, says the same
    with pytest.raises(CheckpointError) as refused:
        resolve_checkpoint(missing)
    assert str(refused.value) == MISSING_PATHS[("evaluate", "{missing}")].format(missing=missing)


def test_a_power_law_fit_is_shown_with_its_r2_and_called_poor_below_one_half():
    from freqtail.report.build import POOR_FIT_R2, alpha_text

    assert alpha_text(1.8744, 0.9712) == "1.874 (R² 0.971)"
    assert "poor fit" not in alpha_text(1.87, POOR_FIT_R2)
    poor = alpha_text(0.586, 0.08)
    assert poor.startswith("0.586 (R² 0.080: a poor fit") and poor.endswith("alpha says little)")
    assert "poor" not in alpha_text(None, None)  # an older spectrum without a fit


def test_the_heat_map_uses_a_perceptually_uniform_colormap():
    import matplotlib

    from freqtail.report.analysis_figures import HEATMAP_COLORMAP

    # matplotlib's perceptually uniform sequential maps (lightness rises monotonically)
    assert HEATMAP_COLORMAP in {"viridis", "plasma", "inferno", "magma", "cividis"}
    lightness = matplotlib.colormaps[HEATMAP_COLORMAP](np.linspace(0, 1, 64))[:, :3] @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(lightness) > 0)
