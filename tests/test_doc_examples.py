"""Every command example of the README, the guides and the ``--help`` texts parses, and runs.

The examples are read from the documents themselves (fenced code blocks) and from the parsers'
epilogs, so a new example is checked without a change here. Each one is first parsed by freqtail's
own parser; then, in document order in one folder per document (a guide's ``train`` makes the run its
``evaluate`` reads), it is run on small data at smoke settings: the quick demo's folder as
``runs/demo``, a 48-image CIFAR-10 in the official format under ``~/data``, and smaller ``--n``,
``--grid``, ``--limit`` and training steps (:func:`smoke_arguments`). What cannot run here (a
download, a Slurm cluster, GPUs, several machines, the full-scale grids) is named in :data:`NOT_RUN`
with the reason and the test that covers it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from freqtail.cli import build_parser, main
from freqtail.data.cifar import write_cifar_batches

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = (
    "README.md",
    "docs/design.md",
    *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs/guides").glob("*.md")),
)
_FENCE = re.compile(r"^\s*```(\w*)")
_STARTS = ("freqtail ", "python -m freqtail.", "torchrun ")


@dataclass(frozen=True)
class Example:
    """One command as a document or a help text writes it.

    source: "README.md:99" or "freqtail evaluate --help"; text: the command (continuations joined,
    comment dropped); argv: freqtail's own arguments (after ``freqtail`` or ``-m freqtail.cli``), or
    None for a module of its own (``python -m freqtail.X``); launcher: what comes before them.
    """

    source: str
    text: str
    argv: tuple[str, ...] | None
    launcher: tuple[str, ...]


def _split(source: str, text: str) -> Example:
    words = shlex.split(text, comments=True)
    if words[0] == "freqtail":
        return Example(source, text, tuple(words[1:]), ())
    if "freqtail.cli" in words:
        at = words.index("freqtail.cli")
        return Example(source, text, tuple(words[at + 1 :]), tuple(words[: at + 1]))
    return Example(source, text, None, tuple(words))


def _commands(lines: list[tuple[int, str]], where: str) -> list[Example]:
    """Commands of a code block: continuation lines joined, ``&&`` chains split."""
    found, pending, start = [], "", 0
    for number, line in lines:
        if not pending:
            if not line.strip().startswith(_STARTS):
                continue
            start = number
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        for part in pending.split(" && "):
            found.append(_split(f"{where}:{start}", part.strip()))
        pending = ""
    return found


def doc_examples() -> list[Example]:
    """Every command in a fenced ``bash`` block of :data:`DOCUMENTS` (the other blocks hold files,
    Python and diagrams)."""
    examples = []
    for name in DOCUMENTS:
        language, block = None, []
        for number, line in enumerate((REPO / name).read_text(encoding="utf-8").splitlines(), 1):
            fence = _FENCE.match(line)
            if fence and language is None:
                language, block = fence.group(1), []
            elif fence:
                if language == "bash":
                    examples += _commands(block, name)
                language = None
            elif language is not None:
                block.append((number, line))
    return examples


def _subparsers(parser: argparse.ArgumentParser, prefix: str):
    for action in parser._actions:  # argparse has no public way to list subcommands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _subparsers(sub, f"{prefix} {name}")


def help_examples() -> list[Example]:
    """The example lines every ``freqtail COMMAND --help`` ends with."""
    examples = []
    for prog, sub in _subparsers(build_parser(), "freqtail"):
        epilog = sub.epilog or ""
        if "example:" not in epilog:
            continue
        lines = [(0, line) for line in epilog.split("example:", 1)[1].splitlines()]
        examples += [e for e in _commands(lines, f"{prog} --help") if e.argv is not None]
    return examples


#: Examples this machine cannot run, by a pattern of their text: the reason and the test that runs
#: what they do. Everything else runs.
NOT_RUN = (
    (r"^freqtail download\b", "downloads a dataset (tests/test_cli_download.py serves one locally)"),
    (r"--robustbench\b|robustbench-", "downloads a RobustBench model (tests/test_models_external.py)"),
    (r"pretrained=true", "downloads pretrained weights (tests/test_train_pretrained.py)"),
    (r"--launcher slurm", "needs a Slurm cluster (tests/test_grid_slurm.py starts one)"),
    (r"--gpus\b|--nproc-per-cell", "needs GPUs (tests/test_grid_devices.py, tests/test_grid_torchrun.py)"),
    (
        r"^torchrun |freqtail\.train\.torchrun",
        "starts several processes (tests/test_*_distributed.py start 2)",
    ),
    (r"--compile\b", "torch.compile needs minutes on a CPU (tests/test_execution.py)"),
    (r"^freqtail demo(?!.*--quick)", "the full demo takes minutes (the quick demo runs, as runs/demo)"),
    (r"^freqtail demo --quick", "runs once as this module's runs/demo fixture"),
    (
        r"^freqtail reproduce|^freqtail grid run",
        "trains a whole grid (tests/test_grid_cli.py: reproduce t1 --scale smoke)",
    ),
    (
        r"^freqtail grid (status|table|report)",
        "reads a grid folder (tests/test_grid_cli.py, test_grid_report.py)",
    ),
    (r"downloaded/run", "shows a refusal (tests/test_trust_boundaries.py)"),
)


def not_run_reason(example: Example) -> str | None:
    text = " ".join(shlex.split(example.text, comments=True))
    return next((reason for pattern, reason in NOT_RUN if re.search(pattern, text)), None)


ALL_EXAMPLES = doc_examples() + help_examples()


def test_the_documents_have_examples_of_every_command():
    commands = {e.argv[0] for e in ALL_EXAMPLES if e.argv}
    assert {"spectrum", "bass", "corrupt", "train", "evaluate", "compare", "sensitivity"} <= commands
    assert {"landscape", "heatmap", "report", "demo", "grid", "reproduce", "download"} <= commands
    assert len(ALL_EXAMPLES) > 60


def _sources() -> list[str]:
    return sorted({e.source.rsplit(":", 1)[0] for e in ALL_EXAMPLES})


@pytest.mark.parametrize("document", _sources())
def test_every_example_parses(document):
    """Each example of ``document`` (a file or a help text) parses with freqtail's own parser."""
    for example in (e for e in ALL_EXAMPLES if e.source.rsplit(":", 1)[0] == document):
        if example.argv is None:  # python -m freqtail.X: the module exists
            module = example.launcher[example.launcher.index("-m") + 1]
            assert (REPO / "src" / Path(*module.split("."))).with_suffix(".py").is_file(), example.text
            continue
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                build_parser().parse_args(list(example.argv))
            except SystemExit as exit_:
                pytest.fail(
                    f"{example.source}: {example.text!r} does not parse: {stderr.getvalue()} ({exit_.code})"
                )


# --- running them --------------------------------------------------------------------------------

_SMALLER = {"--n": "8", "--num-images": "8", "--grid": "3", "--limit": "4", "--epochs": "1"}
_TRAIN_SMOKE = (
    "steps=1", "train_subset=16", "test_subset=16", "batch_size=8", "eval_batch_size=16",
    "robust_eval_examples=8", "attack_steps=1", "progress=false", "model=small-cnn",
    "model_options={width: 4}",
)  # fmt: skip


def smoke_arguments(argv: tuple[str, ...], home: Path) -> list[str]:
    """The example's arguments at smoke scale: ``~`` and ``/tmp`` inside the example's folder,
    :data:`_SMALLER` values, one training step of a width-4 small-cnn on 16 images, analyses and
    evaluations on 8 images."""
    words = [("./" + w[len("/tmp/") :]) if w.startswith("/tmp/") else w for w in argv]
    words = [w.replace("~", str(home)) for w in words]
    for index, word in enumerate(words[:-1]):
        if word in _SMALLER:
            words[index + 1] = _SMALLER[word]
    command = words[0]
    if command == "train" and "--list-keys" not in words:
        words += [part for setting in _TRAIN_SMOKE for part in ("--set", setting)]
    if command in ("evaluate", "sensitivity", "landscape", "heatmap") and "--n" not in words:
        words += ["--n", "8"]
    if command == "landscape" and "--grid" not in words:
        words += ["--grid", "3"]
    if command == "corrupt" and "--limit" not in words:
        words += ["--limit", "4"]
    return words


def _small_cifar10(root: Path, natural_crops) -> None:
    crops = natural_crops(32, 4, seed=3)[:48]
    labels = np.arange(len(crops)) % 10
    split = {"train": (crops[:32], labels[:32]), "test": (crops[32:], labels[32:])}
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_cifar_batches("cifar10", root, split, names)


@pytest.fixture(scope="module")
def example_home(tmp_path_factory, demo, natural_crops):
    """A home folder for the examples: ``runs/demo`` (a copy of the quick demo, its caches left
    out), ``data`` (a 48-image CIFAR-10), ``configs`` (the repository's presets) and the image
    arrays the examples name."""
    home = tmp_path_factory.mktemp("examples")
    folder, _, _ = demo
    shutil.copytree(folder, home / "runs" / "demo", ignore=shutil.ignore_patterns("eval-cache", "*-C"))
    _small_cifar10(home / "data", natural_crops)
    (home / "configs").symlink_to(REPO / "configs")
    images = natural_crops(32, 2, seed=1)
    for name in ("my_images.npy", "train_images.npy"):
        np.save(home / name, images)
    return home


def _documents_to_run() -> list[str]:
    return sorted({e.source.rsplit(":", 1)[0] for e in ALL_EXAMPLES if e.argv and not not_run_reason(e)})


@pytest.mark.parametrize("document", _documents_to_run())
def test_the_examples_run(document, example_home, tmp_path, monkeypatch):
    """In document order, in a copy of the home folder of its own: exit status 0 for every one."""
    home = tmp_path / "home"
    shutil.copytree(example_home, home, symlinks=True)
    monkeypatch.chdir(home)
    for example in ALL_EXAMPLES:
        if example.source.rsplit(":", 1)[0] != document or not example.argv or not_run_reason(example):
            continue
        argv = smoke_arguments(example.argv, home)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code == 0, (
            f"{example.source}: {example.text!r} ran as {argv} and ended {code}: {err.getvalue()[-600:]}"
        )


def test_what_does_not_run_is_named_with_its_reason():
    skipped = [e for e in ALL_EXAMPLES if not_run_reason(e)]
    ran = [e for e in ALL_EXAMPLES if e.argv and not not_run_reason(e)]
    assert skipped and len(ran) > len(skipped) / 2
    for pattern, _ in NOT_RUN:  # no rule outlives the examples it was written for
        assert any(re.search(pattern, " ".join(shlex.split(e.text, comments=True))) for e in ALL_EXAMPLES), (
            pattern
        )
