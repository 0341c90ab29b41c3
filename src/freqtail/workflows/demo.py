"""``freqtail demo``: the whole paper on the embedded dataset, end to end, with no data at hand.

The demo folder is a grid folder: its four training runs are the cells of one
:class:`~freqtail.workflows.grid_spec.GridSpec` (:func:`demo_spec`), run by
:func:`~freqtail.workflows.grid_run.run_grid` like any other grid (one orchestration in the code
base), with two dataset-level steps before them and the report after. Steps, each one line of
progress with the elapsed time:

1. **spectrum** — the frequency long tail of the training images (``spectrum.json``,
   ``figures/spectrum.png``);
2. **bass** — BaSS on every training image: degenerate count, the spectrum after BaSS, a before/after
   figure (``bass.json``, ``figures/bass_examples.png``);
3. the grid's cells ``erm``, ``erm-bass``, ``pgd-at``, ``pgd-at-bass`` (ordinary run folders
   ``DIR/<cell>/``; the manifest ``DIR/grid.json``), each through the grid's cell pipeline
   (:func:`~freqtail.workflows.grid_run.run_cell`):

   * **train** — a small CNN with ERM or PGD-AT, without or with BaSS (``bass: dataset``, the paper's
     CIFAR10-B protocol);
   * **evaluate** — clean, PGD-20, PGD-20 restricted to the LFC and to the HFC (the bands below / at
     or above each threat model's 80/20 boundary, measured on the evaluated images) and corruptions (a
     stated subset) on a seeded subset of the test set; BaSS runs under both threat models
     (``domain`` and ``end-to-end``);
   * **sensitivity**, **landscape**, **heatmap** — frequency sensitivity, a small LFC/HFC loss
     landscape and a Fourier heat map of the two ERM models (the grid's explanation analyses);
4. **report** — ``demo-summary.json`` (every run's key numbers with their settings; format
   ``freqtail-demo-summary``, :mod:`freqtail.report.key_numbers`), ``report.html`` and ``report.md``.

The console shows one line per step and one per training epoch; everything else goes to ``demo.log``.
This module runs the steps; :mod:`~freqtail.workflows.demo_settings` holds the settings and the grid,
:mod:`~freqtail.workflows.demo_steps` the dataset-level steps and every step's line in words,
:mod:`~freqtail.workflows.demo_summary` the summary.

Resuming: the grid's manifest records each cell's state, so a rerun reuses every done cell, and the
cell Ctrl-C stopped continues where it was (the trainer from its checkpoint, the evaluation without the
numbers already in ``results.json``, explanations already written kept). The spectrum and BaSS steps
are reused when their JSON exists (BaSS: with the figure's image count of the settings), the summary
and report when nothing was computed and they exist with the same settings. ``force=True`` deletes
what the demo wrote and starts over.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqtail.errors import ConfigError, FreqtailError, InputError
from freqtail.io import atomic_write_json
from freqtail.progress import progress_to
from freqtail.report.build import build_report
from freqtail.runs import layout
from freqtail.runs.layout import GridLayout, RunLayout
from freqtail.workflows.demo_settings import (
    FULL,
    QUICK,
    RUNS,
    DemoSettings,
    demo_spec,
    train_config,
)
from freqtail.workflows.demo_steps import (
    CONSOLE_INDENT,
    EpochProgress,
    bass_step,
    bass_words,
    read_json,
    safe_words,
    spectrum_step,
    spectrum_words,
    step_what,
    step_words,
)
from freqtail.workflows.demo_summary import DEMO_FORMAT, aggregate, format_key_numbers
from freqtail.workflows.grid_manifest import CellRecord, CellState, GridManifest, read_states
from freqtail.workflows.grid_run import CellStep, cell_steps, run_cell, run_grid
from freqtail.workflows.grid_spec import GridSpec

__all__ = [
    "FULL",
    "QUICK",
    "RUNS",
    "DemoResult",
    "DemoSettings",
    "aggregate",
    "demo_spec",
    "format_key_numbers",
    "run_demo",
    "train_config",
]

LOG_FILE = "demo.log"
#: The stage record of a demo folder written before the demo ran on the grid engine (``--force``
#: deletes it; without ``--force`` such a folder is refused).
LEGACY_STATE_FILE = "demo-state.json"
#: Files and folders the demo writes at the top of its folder (``force`` deletes only these and the
#: run folders). The grid's lock keeps a holder record beside it (``<lock>.json``, :mod:`freqtail.locks`).
OWN_FILES = (
    LOG_FILE,
    LEGACY_STATE_FILE,
    layout.DEMO_SUMMARY_FILE,
    layout.RESULTS_FILE,  # the summary of a demo of an older freqtail
    layout.REPORT_HTML,
    layout.REPORT_MD,
    layout.GRID_MANIFEST,
    layout.GRID_LOCK,
    layout.GRID_LOCK + ".json",
    layout.GRID_TABLE_MD,
    layout.GRID_TABLE_CSV,
    layout.GRID_TABLE_TEX,
    layout.GRID_FIGURE_PNG,
    layout.GRID_FIGURE_SVG,
    *(RunLayout.of("").json(kind).name for kind in layout.DATA_FACTS),
)
OWN_FOLDERS = (layout.FIGURES_DIR, layout.GRID_CELL_LOCKS_DIR)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the folder, its files and the aggregated numbers.

    ``results`` is the demo's summary file (``demo-summary.json``); ``summary`` its content.
    """

    out: Path
    report_html: Path
    report_md: Path
    results: Path
    summary: dict[str, Any]
    seconds: float


# ----------------------------------------------------------------------------- the folder
def _grid_rows(out: Path) -> tuple[CellRecord, ...] | None:
    """The cells of the grid in ``out``, or None when it holds none (InputError: a damaged one)."""
    return read_states(out) if GridLayout.of(out).manifest.is_file() else None


def _settings_words(rows: tuple[CellRecord, ...]) -> str:
    """Which settings a demo grid's cells were trained with: ``--quick``, ``full`` or ``other``."""
    trained = {row.name: row.config_hash for row in rows}
    for words, settings in (("--quick", QUICK), ("full", FULL)):
        if trained == {cell.name: cell.config_hash for cell in demo_spec(settings).cells()}:
            return words
    return "other"


def _other_settings(out: Path, words: str) -> ConfigError:
    return ConfigError(
        f"The folder {out} holds a demo with other settings ({words}); pass --force to start over or "
        "choose another --out."
    )


def _prepare_folder(out: Path, settings: DemoSettings, force: bool) -> GridSpec:
    """Check (or reset) ``out``, make it the demo's grid folder and return the demo's grid."""
    spec = demo_spec(settings)
    if out.exists() and not out.is_dir():
        raise InputError(f"The output path {out} is a file, not a folder.")
    rows = _grid_rows(out)
    legacy = (out / LEGACY_STATE_FILE).is_file()
    is_demo = legacy or (rows is not None and [row.name for row in rows] == [run[0] for run in RUNS])
    if out.is_dir() and any(out.iterdir()) and not is_demo:
        raise ConfigError(
            f"The folder {out} is not empty and holds no freqtail demo; choose another --out (nothing was "
            "deleted)."
        )
    if is_demo and force:
        for name in OWN_FILES:
            (out / name).unlink(missing_ok=True)
        for name in (*OWN_FOLDERS, *(run[0] for run in RUNS)):
            shutil.rmtree(out / name, ignore_errors=True)
        rows, legacy = None, False
    if legacy:
        raise ConfigError(
            f"The folder {out} holds a demo of an older freqtail ({LEGACY_STATE_FILE}); pass --force to "
            "start it over or choose another --out."
        )
    if rows is not None and {r.name: r.config_hash for r in rows} != {
        c.name: c.config_hash for c in spec.cells()
    }:
        raise _other_settings(out, _settings_words(rows))
    out.mkdir(parents=True, exist_ok=True)
    try:
        # adopt: the folder is new, empty, or the demo's own (a user's files kept by --force stay).
        GridManifest.open(out, spec, adopt=True)
    except InputError:
        if rows is None:
            raise
        raise _other_settings(out, "other evaluation or explanation sizes") from None
    return spec


class _Console:
    """The demo's progress lines (one per step with the elapsed time) and its log file."""

    def __init__(
        self,
        out: Path,
        total: int,
        echo: Callable[[str], None],
        previous: dict[str, float | None],
        stale: Callable[[], None],
    ) -> None:
        self.total = total
        self.echo = echo
        self.previous = previous  # step name -> its seconds in an earlier summary of these settings
        self.stale = stale  # called once when the folder starts to change (its summary is then stale)
        self.count = 0
        self.computed = False  # whether this call changed the folder (computed a step, ran a cell)
        self.started = time.perf_counter()
        self.timings: list[dict[str, Any]] = []
        self.log = open(out / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.real_stderr = sys.stderr

    def close(self) -> None:
        self.log.close()

    def changing(self) -> None:
        """The folder is about to change: the summary and report will be written again."""
        if not self.computed:
            self.computed = True
            self.stale()

    def write(self, message: str) -> None:
        """One line into ``demo.log``."""
        self.log.write(message + "\n")
        self.log.flush()

    def trainer_log(self, message: str) -> None:
        """The trainer's messages go to the log; stop requests are shown too."""
        self.write(message)
        if "Ctrl-C" in message or "SIG" in message:
            print(message, file=self.real_stderr)

    def step(self, name: str, what: str, words: str, seconds: float | None, reused: bool) -> None:
        """The line of a finished (or reused) step; records its timing for the summary."""
        self.count += 1
        if reused:
            seconds = self.previous.get(name)
            text = f"{words} (reused from an earlier run)"
        else:
            self.changing()
            text = f"{words} ({seconds:.1f} s)"
        recorded = None if seconds is None else round(seconds, 2)
        self.timings.append({"name": name, "what": what, "seconds": recorded, "reused": reused})
        self.line(name, text)
        _pause_for_a_signal_after(name, self.echo)

    def line(self, name: str, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        width = len(str(self.total))
        self.echo(f"[{_clock(elapsed)}] {self.count:>{width}}/{self.total} {name:<22} {text}")

    @contextlib.contextmanager
    def into_log(self, heading: str):
        """Everything printed inside goes to ``demo.log``, under ``heading``."""
        self.write(f"\n===== {heading}")
        # Long work inside still shows on the console: a progress line at most every 10 s.
        lines = progress_to(lambda text: self.echo(" " * CONSOLE_INDENT + text))
        with contextlib.redirect_stdout(self.log), contextlib.redirect_stderr(self.log), lines:
            yield


#: Test hook: ``FREQTAIL_DEMO_PAUSE_AFTER="train erm"`` makes the demo wait for a signal once that step
#: is finished and its line printed, so that a test can interrupt it at a known point however busy the
#: machine.
PAUSE_VARIABLE = "FREQTAIL_DEMO_PAUSE_AFTER"


def _pause_for_a_signal_after(step: str, echo: Callable[[str], None]) -> None:
    if os.environ.get(PAUSE_VARIABLE) != step:
        return

    echo(f"paused after {step} ({PAUSE_VARIABLE}); waiting for a signal")
    signal.pause()  # Ctrl-C raises KeyboardInterrupt here, like anywhere else in the demo


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):2d}:{seconds % 60:04.1f}"


# ----------------------------------------------------------------------------- the steps
def _plain_step(
    console: _Console,
    name: str,
    what: str,
    work: Callable[[], None],
    output: Path,
    words: Callable[[dict[str, Any]], str],
    fits: Callable[[dict[str, Any]], bool] = lambda data: True,
) -> None:
    """A dataset-level step: reused when its JSON ``output`` exists and ``fits`` the settings, else run
    (its printing into the log); its line says ``words`` of the JSON."""
    data = read_json(output)
    reused = data is not None and fits(data)
    seconds = None
    if not reused:
        start = time.perf_counter()
        with console.into_log(f"{name}: {what}"):
            work()
        seconds = time.perf_counter() - start
        data = read_json(output) or {}
    console.step(name, what, safe_words(words, data), seconds, reused)


def _run_cells(out: Path, spec: GridSpec, settings: DemoSettings, console: _Console) -> None:
    """The grid's cells through :func:`run_grid` (done cells reused as a whole: their lines first).

    Raises:
        FreqtailError: a run failed (its sentence; a rerun retries it).
    """

    def line(step: CellStep) -> None:
        name = f"{step.step} {step.cell}"
        words = step_words(step.step, out / step.cell, settings)
        console.step(name, step_what(step.step, step.cell, settings), words, step.seconds, step.reused)

    rows = read_states(out)
    if any(row.state is not CellState.DONE for row in rows):
        # A cell left to run changes the numbers: the summary and report are written again.
        console.changing()
    for row in rows:
        if row.state is CellState.DONE:
            cell = spec.cell(row.name)
            for index, step in enumerate(cell_steps(cell, spec)):
                line(CellStep(cell.name, step, index, True, 0.0))

    def runner(cell, run_dir: Path) -> None:
        progress = EpochProgress(console.echo, f"train {cell.name}")
        run_cell(cell, run_dir, spec, log=console.trainer_log, callbacks=(progress,), on_step=line)

    # A failed run gets one more try per call of the demo (the manifest counts its attempts).
    retries = max((row.attempts for row in rows if row.state is CellState.FAILED), default=0)
    with console.into_log("the grid of the four runs"):
        outcome = run_grid(spec, out, cell_runner=runner, retries=retries, log=console.write)
    if outcome.failed:
        name, why = outcome.failed[0]
        raise FreqtailError(
            f"The demo's run {name} failed: {why} What it finished stays in {out / name}; run the same "
            "command again to retry it."
        )


# ----------------------------------------------------------------------------- the entry point
def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _earlier_summary(out: Path, settings: DemoSettings) -> dict[str, Any] | None:
    """The summary an earlier call wrote with these settings, or None."""
    data = read_json(RunLayout.of(out).demo_summary)
    if data is None or data.get("format") != DEMO_FORMAT:
        return None
    return data if (data.get("settings") or {}).get("demo") == settings.to_dict() else None


def _step_seconds(summary: dict[str, Any] | None) -> dict[str, float | None]:
    """Step name -> its seconds in an earlier summary (what a reused step reports again)."""
    stages = ((summary or {}).get("timings") or {}).get("stages") or []
    return {s["name"]: s.get("seconds") for s in stages if isinstance(s, dict) and "name" in s}


def run_demo(
    out: str | os.PathLike = "runs/demo",
    *,
    quick: bool = False,
    force: bool = False,
    settings: DemoSettings | None = None,
    echo: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo into ``out`` (see the module docstring) and return its files and numbers.

    Args:
        out: the demo folder (created; a non-empty folder that is not a demo is refused).
        quick: use :data:`QUICK` instead of :data:`FULL`.
        force: delete what an earlier demo wrote in ``out`` and start over.
        settings: other :class:`DemoSettings` (overrides ``quick``).
        echo: where the progress lines go (default: printed and flushed at once).

    Raises:
        ConfigError: ``out`` is not a demo folder, or holds a demo with other settings (without ``force``).
        KeyboardInterrupt: Ctrl-C / SIGTERM (a training run writes its checkpoint first; the run being
            done is put back and continues on the next call; finished numbers are kept).
        FreqtailError: a run failed (one sentence; the next call retries it).
    """

    settings = settings or (QUICK if quick else FULL)
    console_stream = sys.stdout  # steps redirect stdout to the log; progress lines still go here
    echo = echo or (lambda line: print(line, file=console_stream, flush=True))
    out = Path(out)
    files = RunLayout.of(out)
    spec = _prepare_folder(out, settings, force)
    earlier = _earlier_summary(out, settings)
    total = 2 + sum(len(cell_steps(cell, spec)) for cell in spec.cells()) + 1
    load_start = _load()
    # A summary on disk means "the report is the demo's and up to date": it is deleted as soon as the
    # folder starts to change and written again at the end.
    console = _Console(
        out, total, echo, _step_seconds(earlier), lambda: files.demo_summary.unlink(missing_ok=True)
    )
    try:
        _plain_step(
            console,
            "spectrum",
            "long tail of the training images",
            lambda: spectrum_step(out),
            files.json("spectrum"),
            spectrum_words,
        )
        _plain_step(
            console,
            "bass",
            "BaSS on the training images",
            lambda: bass_step(out, settings),
            files.json("bass"),
            bass_words,
            fits=lambda data: len(data.get("example_indices") or ()) == settings.bass_examples,
        )
        _run_cells(out, spec, settings, console)
        reports = (files.report_html, files.report_md)
        current = earlier is not None and files.demo_summary.is_file()
        if not console.computed and current and all(path.is_file() for path in reports):
            summary = earlier
            console.count += 1
            console.line("report", f"{files.report_html} and {files.report_md} (reused from an earlier run)")
            return DemoResult(
                out, *reports, files.demo_summary, summary, time.perf_counter() - console.started
            )
        summary = aggregate(
            out, settings, console.timings, time.perf_counter() - console.started, [load_start, _load()]
        )
        atomic_write_json(files.demo_summary, summary)
        start = time.perf_counter()
        with console.into_log("report: report.html and report.md"):
            report = build_report([out])
        report_seconds = time.perf_counter() - start
        # The page shows the steps before it; the summary also gets the report's own time.
        console.count += 1
        console.timings.append(
            {"name": "report", "what": "report.html and report.md", "seconds": round(report_seconds, 2)}
        )
        seconds = time.perf_counter() - console.started
        summary["timings"]["total_seconds"] = round(seconds, 1)
        atomic_write_json(files.demo_summary, summary)
        console.line("report", f"{report.html} and {report.markdown} ({report_seconds:.1f} s)")
    finally:
        console.close()
    return DemoResult(out, report.html, report.markdown, files.demo_summary, summary, seconds)
