"""Every option value a command can judge without data, weights or a model is refused before torch is
imported (docs/design.md, "Option checks before torch").

One fresh interpreter runs every case through :func:`freqtail.cli.main` in turn and reports, after
each, the exit code, what went to stderr and whether torch or torchvision had been imported. Each
sentence must be the one the option's owner says (computed here, in this process, by calling that
owner directly), so the early refusal is the library's own check, not a second copy of it.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from freqtail.analysis.constants import LANDSCAPE_BATCH, LANDSCAPE_IMAGES
from freqtail.checks import check_int, check_optional_int
from freqtail.cli import COMMAND_ORDER
from freqtail.data.catalog import canonical_name
from freqtail.data.corruptions.names import parse_corruptions, parse_severities
from freqtail.errors import FreqtailError
from freqtail.evaluate.request import EvaluationRequest
from freqtail.report.figure_formats import check_figure_formats
from freqtail.runs.existence import check_folder, check_grid_folder
from freqtail.spectrum.ratio import check_ratio
from freqtail.train.config import load_config
from freqtail.workflows.explain_options import (
    ExplainRequest,
    HeatmapOptions,
    LandscapeOptions,
    SensitivityOptions,
)
from freqtail.workflows.grid_scale import check_scale
from freqtail.workflows.grid_spec import GridSpec

#: Runs every case of argv[1] (a JSON list of argument lists) in this one process; prints one JSON list.
RUN_CASES = """
import contextlib, io, json, sys
from freqtail.cli import main
answers = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    answers.append({"code": code, "err": err.getvalue(),
                    "heavy": sorted({"torch", "torchvision"} & set(sys.modules))})
print(json.dumps(answers))
"""


def _said(check: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The sentence ``check(*args, **kwargs)`` refuses with."""
    with pytest.raises(FreqtailError) as refused:
        check(*args, **kwargs)
    return str(refused.value)


def _cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    """``(argv, the owner's sentence)`` for every refused option value of every command."""
    run = tmp_path / "run"
    run.mkdir()
    out = str(tmp_path / "out")
    bad_value, unknown_key = tmp_path / "bad-value.yaml", tmp_path / "unknown-key.yaml"
    bad_value.write_text("epochs: -1\n", encoding="utf-8")
    unknown_key.write_text("epochz: 3\n", encoding="utf-8")
    specs = {
        "base": "base: {}\n",
        "value": "set: {epochs: -1}\n",
        "suite": "axes: {lr: [0.1]}\nsuites: clean,nonsense\n",
        "analysis": "analyses: [{kind: landscape, grid: 0}]\n",
    }
    for name, text in specs.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    for name in ("a", "b"):  # compare reads nothing before it has checked its own options
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text("{}", encoding="utf-8")

    def request(**given: Any) -> str:
        return _said(EvaluationRequest.of, **given)

    def config(path: Path | None = None, **overrides: Any) -> str:
        return _said(load_config, path, overrides)

    r = str(run)
    landscape = {"n": LANDSCAPE_IMAGES, "batch_size": LANDSCAPE_BATCH}
    return [
        (["evaluate", r, "--suite", "clean,nonsense"], request(suites="clean,nonsense")),
        (["evaluate", r, "--suite", "pgd"], request(suites="pgd")),
        (["evaluate", r, "--threat-model", "nonsense"], request(threat_model="nonsense")),
        (["evaluate", r, "--eps", "8"], request(eps="8")),
        (["evaluate", r, "--step-size", "0"], request(step_size="0")),
        (["evaluate", r, "--severities", "9"], request(severities="9")),
        (["evaluate", r, "--corruptions", "nonsense"], request(corruptions="nonsense")),
        (["evaluate", r, "--n", "0"], request(n=0)),
        (["evaluate", r, "--batch-size", "0"], request(batch_size=0)),
        (["evaluate", r, "--seed", "-1"], request(seed=-1)),
        (["evaluate", r, "--masking-n", "-1"], request(masking_n=-1)),
        (["evaluate", r, "--masking-queries", "0"], request(masking_queries=0)),
        (["evaluate", r, "--num-workers", "-1"], request(num_workers=-1)),
        (["train", "--set", "epochs=-1"], config(epochs=-1)),
        (["train", "--epochs", "-1"], config(epochs=-1)),
        (["train", "--config", str(bad_value)], config(bad_value)),
        (["train", "--config", str(unknown_key)], config(unknown_key)),
        (["train", "--set", "nonsense=1"], config(nonsense=1)),
        (["train", "--objective", "nonsense"], config(objective="nonsense")),
        (["train", "--dataset", "nonsense"], config(dataset="nonsense")),
        (["train", "--set", "eps=8"], config(eps=8)),
        (["train", "--amp", "nonsense"], config(amp="nonsense")),
        (["train", "--out", " "], "The run folder --out must not be empty."),
        (
            ["corrupt", "--dataset", "embedded", "--out", out, "--corruptions", "fog,nonsense"],
            _said(parse_corruptions, "fog,nonsense"),
        ),
        (
            ["corrupt", "--dataset", "embedded", "--out", out, "--severities", "0"],
            _said(parse_severities, "0"),
        ),
        (["corrupt", "--dataset", "nonsense", "--out", out], _said(canonical_name, "nonsense")),
        (
            ["corrupt", "--dataset", "embedded", "--out", out, "--limit", "0"],
            _said(check_optional_int, 0, "--limit", minimum=1),
        ),
        (["bass", "--dataset", "nonsense", "--out", out], _said(canonical_name, "nonsense")),
        (
            ["bass", "--input", str(tmp_path / "images.npy")],
            "Give --output OUT.npy to say where the converted images go.",
        ),
        (["spectrum", "--ratio", "1"], _said(check_ratio, 1.0)),
        (["spectrum", "--batch-size", "0"], _said(check_int, 0, "--batch-size", minimum=1)),
        (
            ["spectrum", "--figure-format", "png,gif"],
            _said(check_figure_formats, "png,gif", "The figure formats --figure-format"),
        ),
        (["spectrum", "--dataset", "nonsense"], _said(canonical_name, "nonsense")),
        (["spectrum", "--split", "test"], "--data-root and --split only apply together with --dataset NAME."),
        (["sensitivity", r, "--top", "2"], _said(SensitivityOptions, top_fraction=2.0)),
        (
            ["sensitivity", r, "--figure-format", "gif"],
            _said(ExplainRequest, n=1, batch_size=1, figure_formats="gif"),
        ),
        (["landscape", r, "--span", "0"], _said(LandscapeOptions, span=0.0)),
        (["landscape", r, "--boundary", "-3"], _said(LandscapeOptions, boundary_band=-3)),
        (["landscape", r, "--figure-format", ""], _said(ExplainRequest, **landscape, figure_formats="")),
        (["heatmap", r, "--eps", "-1"], _said(HeatmapOptions, eps=-1.0)),
        (
            ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--labels", "x"],
            "--labels names 1 runs but 2 runs were given.",
        ),
        (["report", str(run), out], _said(check_folder, out)),
        (["download", "nonsense", "--data-root", out], _said(canonical_name, "nonsense")),
        *(
            (
                ["grid", "run", str(tmp_path / f"{name}.yaml"), "--out", out],
                _said(GridSpec.from_yaml, tmp_path / f"{name}.yaml"),
            )
            for name in specs
        ),
        (
            ["grid", "run", str(tmp_path / "base.yaml"), "--out", out, "--scale", "tiny"],
            _said(check_scale, "tiny"),
        ),
        (["grid", "status", out], _said(check_grid_folder, out)),
        (["grid", "table", out], _said(check_grid_folder, out)),
        (["grid", "report", out], _said(check_grid_folder, out)),
        (["reproduce", "t2", "--out", out], _said(GridSpec.family, "t2")),
        (["reproduce", "t1", "--out", out, "--seeds", "0,x"], _said(GridSpec.family, "t1", seeds="0,x")),
        (
            ["reproduce", "t1", "--out", out, "--launcher", "cluster"],
            "The launcher --launcher must be one of local, slurm, not 'cluster'.",
        ),
        (
            ["download", "imagenet", "--data-root", out],
            "freqtail can download cifar10, cifar100, tiny-imagenet, not 'imagenet'; ImageNet and "
            "Restricted-ImageNet must come from https://image-net.org.",
        ),
    ]


def test_every_option_a_command_can_judge_alone_is_refused_before_torch_is_imported(tmp_path):
    cases = _cases(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", RUN_CASES, json.dumps([argv for argv, _ in cases])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answers = json.loads(done.stdout)
    assert len(answers) == len(cases)
    for (argv, sentence), answer in zip(cases, answers, strict=True):
        assert answer == {"code": 2, "err": f"freqtail {argv[0]}: error: {sentence}\n", "heavy": []}, argv
    # every command but demo, whose options argparse alone judges (--threads)
    assert {argv[0] for argv, _ in cases} == set(COMMAND_ORDER) - {"demo"}


#: The packages whose ``__init__`` exports lazily (PEP 562), so that their torch-free modules load alone.
LAZY_PACKAGES = (
    "freqtail.analysis",
    "freqtail.attacks",
    "freqtail.data",
    "freqtail.data.corruptions",
    "freqtail.evaluate",
    "freqtail.spectrum",
    "freqtail.train",
    "freqtail.workflows",
)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_lazy_export_is_the_object_its_module_defines_whatever_was_imported_first(package):
    module = importlib.import_module(package)
    for name, source in module._EXPORTS.items():
        owner = importlib.import_module(source if "." in source else f"{package}.{source}")
        if (Path(module.__file__).parent / f"{name}.py").is_file():  # a submodule of the same name, loaded
            importlib.import_module(f"{package}.{name}")
        exported = getattr(importlib.import_module(package), name)
        assert exported is getattr(owner, name), f"{package}.{name}"
        assert not isinstance(exported, types.ModuleType), f"{package}.{name}"
    assert set(module.__all__) <= set(module._EXPORTS)
