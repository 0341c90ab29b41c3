"""``freqtail demo``: the whole paper on the embedded dataset, end to end, with no data at hand.

Stages (each one line of progress with the elapsed time; finished stages are reused on a rerun):

1. **spectrum** — the frequency long tail of the training images (``spectrum.json``,
   ``figures/spectrum.png``);
2. **bass** — BaSS on every training image: degenerate count, the spectrum after BaSS, a before/after
   figure (``bass.json``, ``figures/bass_examples.png``);
3. **train** — a small CNN four times: ERM and PGD-AT, each without and with BaSS (``bass: dataset``,
   the paper's CIFAR10-B protocol), one run folder each (``erm/``, ``erm-bass/``, ``pgd-at/``,
   ``pgd-at-bass/``);
4. **evaluate** — clean, PGD-20, PGD-20 restricted to the LFC and to the HFC (the bands below / at or
   above each threat model's 80/20 boundary, measured on the evaluated images) and corruptions (a
   stated subset) on a seeded subset of the test set; BaSS runs under both threat models (``domain``
   and ``end-to-end``);
5. **explain** — frequency sensitivity, a small LFC/HFC loss landscape and a Fourier heat map of the two
   ERM models;
6. **report** — ``demo-summary.json`` (every run's key numbers with their settings; format
   ``freqtail-demo-summary``, :mod:`freqtail.report.key_numbers`), ``report.html`` and ``report.md``.

Everything is done by the library's own entry points (:func:`freqtail.workflows.training.train_run`,
:func:`freqtail.workflows.evaluate_run` and :func:`freqtail.workflows.explain` on a
:class:`freqtail.workflows.RunFolder`), so the demo's run folders are ordinary run folders. The console
shows one line per stage and one per training epoch; everything else goes to ``demo.log``.

Resuming: ``demo-state.json`` records the settings and the finished stages; a rerun skips those, the
trainer resumes an interrupted run from its checkpoint and the evaluation skips numbers already in
``results.json``. ``force=True`` deletes what the demo wrote and starts over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freqtail import __version__
from freqtail.bass import balance_spectrum
from freqtail.data import iter_uint8_batches
from freqtail.data.corruptions import parse_corruptions, parse_severities
from freqtail.data.registry import load_arrays
from freqtail.errors import ConfigError, InputError
from freqtail.evaluate import EvaluationRequest
from freqtail.formatting import percent
from freqtail.io import atomic_write_json
from freqtail.report.bass_figures import plot_bass_examples
from freqtail.report.build import build_report
from freqtail.report.collect import collect_run
from freqtail.report.key_numbers import (
    DEMO_SUMMARY_FORMAT,
    checkpoint_records,
    key_number_table,
    run_key_numbers,
)
from freqtail.report.spectrum_figures import plot_long_tail
from freqtail.runs import layout
from freqtail.runs.layout import RunLayout
from freqtail.spectrum import summarize
from freqtail.train import load_config
from freqtail.workflows.evaluation import evaluate_run
from freqtail.workflows.explain import (
    ExplainRequest,
    HeatmapAnalysis,
    LandscapeAnalysis,
    SensitivityAnalysis,
    explain,
)
from freqtail.workflows.run_folder import RunFolder
from freqtail.workflows.training import TrainRequest, train_run

__all__ = ["FULL", "QUICK", "DemoInterrupted", "DemoResult", "DemoSettings", "format_key_numbers", "run_demo"]

STATE_FILE = "demo-state.json"
LOG_FILE = "demo.log"
DATASET = "embedded"
DEMO_FORMAT = DEMO_SUMMARY_FORMAT
STATE_FORMAT = "freqtail-demo-state"
#: Files and folders the demo writes at the top of its folder (``force`` deletes only these).
OWN_FILES = (
    STATE_FILE,
    LOG_FILE,
    layout.DEMO_SUMMARY_FILE,
    layout.RESULTS_FILE,  # the summary of a demo of an older freqtail
    layout.REPORT_HTML,
    layout.REPORT_MD,
    *(RunLayout.of("").json(kind).name for kind in layout.DATA_FACTS),
)
OWN_FOLDERS = (layout.FIGURES_DIR,)


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo is. :data:`FULL` (about 5 minutes on 2 CPU cores) and :data:`QUICK` (under a
    minute; for tests and CI) are the two the command offers.

    Attributes:
        quick: the ``--quick`` settings (said so in the output and the report).
        width: small-cnn width.
        train_subset, test_subset: training images / per-epoch test images (None = all).
        erm_epochs, at_epochs: epochs of the ERM and the PGD-AT runs.
        attack_steps, at_step_size: PGD-AT's training attack (eps 8/255).
        robust_eval_examples, robust_eval_steps: the trainer's per-epoch robust accuracy.
        eval_n: test images evaluated (a seeded subset of the 1,600).
        masking_n, masking_queries: the gradient-masking check before PGD-20.
        corruptions, severities: the corruption subset (``freqtail evaluate`` syntax).
        sensitivity_n, landscape_n, landscape_grid, heatmap_n: sizes of the explanations.
        bass_examples: images in the BaSS figure.
    """

    quick: bool
    width: int
    train_subset: int | None
    test_subset: int | None
    erm_epochs: int
    at_epochs: int
    attack_steps: int
    at_step_size: str
    robust_eval_examples: int
    robust_eval_steps: int
    eval_n: int
    masking_n: int
    masking_queries: int
    corruptions: str
    severities: str
    sensitivity_n: int
    landscape_n: int
    landscape_grid: int
    heatmap_n: int
    bass_examples: int = 6

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FULL = DemoSettings(
    quick=False,
    width=16,
    train_subset=None,
    test_subset=None,
    erm_epochs=8,
    at_epochs=5,
    attack_steps=3,
    at_step_size="3/255",
    robust_eval_examples=256,
    robust_eval_steps=10,
    eval_n=500,
    masking_n=100,
    masking_queries=500,
    corruptions="all",
    severities="1,3,5",
    sensitivity_n=500,
    landscape_n=256,
    landscape_grid=9,
    heatmap_n=16,
)
QUICK = DemoSettings(
    quick=True,
    width=8,
    train_subset=1024,
    test_subset=256,
    erm_epochs=1,
    at_epochs=1,
    attack_steps=2,
    at_step_size="4/255",
    robust_eval_examples=64,
    robust_eval_steps=5,
    eval_n=64,
    masking_n=16,
    masking_queries=100,
    corruptions="all",
    severities="3",
    sensitivity_n=64,
    landscape_n=64,
    landscape_grid=5,
    heatmap_n=2,
)
#: The four training runs: folder, label, objective, BaSS mode.
RUNS = (
    ("erm", "ERM", "erm", None),
    ("erm-bass", "ERM + BaSS", "erm", "dataset"),
    ("pgd-at", "PGD-AT", "pgd-at", None),
    ("pgd-at-bass", "PGD-AT + BaSS", "pgd-at", "dataset"),
)
#: Runs the explanations (sensitivity, landscape, heat map) are computed for.
EXPLAINED = ("erm", "erm-bass")
PGD_EPS, PGD_STEP = "8/255", "2/255"


class DemoInterrupted(Exception):
    """Training stopped on Ctrl-C / SIGTERM after writing a checkpoint; a rerun continues it."""


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
def _prepare_folder(out: Path, settings: DemoSettings, force: bool) -> dict[str, Any]:
    """Check (or reset) ``out`` and return the demo state to continue from."""
    if out.exists() and not out.is_dir():
        raise InputError(f"The output path {out} is a file, not a folder.")
    state_path = out / STATE_FILE
    is_demo = state_path.is_file()
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
        is_demo = False
    fresh = {"format": STATE_FORMAT, "settings": settings.to_dict(), "stages": {}}
    if not is_demo:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(state_path, fresh)
        return fresh
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(
            f"The demo state {state_path} is damaged; pass --force to start the demo over."
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ConfigError(f"{state_path} is not a freqtail demo state; pass --force to start the demo over.")
    if state.get("settings") != settings.to_dict():
        other = "--quick" if (state.get("settings") or {}).get("quick") else "full"
        raise ConfigError(
            f"The folder {out} holds a demo with other settings ({other}); pass --force to start over or "
            "choose another --out."
        )
    state.setdefault("stages", {})
    return state


class _Stages:
    """Runs stages in order, prints one line per stage with the elapsed time, records finished ones."""

    def __init__(self, out: Path, state: dict[str, Any], total: int, echo: Callable[[str], None]) -> None:
        self.out = out
        self.state = state
        self.total = total
        self.echo = echo
        self.count = 0
        self.started = time.perf_counter()
        self.timings: list[dict[str, Any]] = []
        self.log = open(out / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.real_stderr = sys.stderr

    def close(self) -> None:
        self.log.close()

    def trainer_log(self, message: str) -> None:
        """The trainer's messages go to the log; stop requests are shown too."""
        self.log.write(message + "\n")
        self.log.flush()
        if "Ctrl-C" in message or "SIG" in message:
            print(message, file=self.real_stderr)

    def run(self, name: str, what: str, work: Callable[[], str], done: Callable[[], bool]) -> None:
        """Run ``work`` (returns a one-line summary) unless the state says it finished and ``done()``."""
        self.count += 1
        previous = self.state["stages"].get(name)
        if previous is not None and done():
            self.timings.append({"name": name, "what": what, "seconds": previous["seconds"], "reused": True})
            self._line(name, f"{previous.get('summary', what)} (reused from an earlier run)")
            return
        self.log.write(f"\n===== {name}: {what}\n")
        self.log.flush()
        start = time.perf_counter()
        with contextlib.redirect_stdout(self.log), contextlib.redirect_stderr(self.log):
            summary = work()
        seconds = time.perf_counter() - start
        self.state["stages"][name] = {"seconds": round(seconds, 2), "summary": summary}
        atomic_write_json(self.out / STATE_FILE, self.state)
        self.timings.append({"name": name, "what": what, "seconds": round(seconds, 2), "reused": False})
        self._line(name, f"{summary} ({seconds:.1f} s)")
        _pause_for_a_signal_after(name, self.echo)

    def _line(self, name: str, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        width = len(str(self.total))
        self.echo(f"[{_clock(elapsed)}] {self.count:>{width}}/{self.total} {name:<22} {text}")


#: Test hook: ``FREQTAIL_DEMO_PAUSE_AFTER="train erm"`` makes the demo wait for a signal once that stage
#: is finished and recorded, so that a test can interrupt it at a known point however busy the machine.
PAUSE_VARIABLE = "FREQTAIL_DEMO_PAUSE_AFTER"


def _pause_for_a_signal_after(stage: str, echo: Callable[[str], None]) -> None:
    if os.environ.get(PAUSE_VARIABLE) != stage:
        return

    echo(f"paused after {stage} ({PAUSE_VARIABLE}); waiting for a signal")
    signal.pause()  # Ctrl-C raises KeyboardInterrupt here, like anywhere else in the demo


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):2d}:{seconds % 60:04.1f}"


# ----------------------------------------------------------------------------- stages
def _spectrum_stage(out: Path) -> str:

    summary = summarize(iter_uint8_batches(DATASET, "train", batch_size=512))
    data = summary.to_dict()
    h, w = summary.image_size
    data["source"] = (
        f"the {summary.num_images} training images of the embedded dataset ({h}x{w}, 16 classes of "
        "photographs bundled with scikit-image)"
    )
    files = RunLayout.of(out)
    plot_long_tail(summary, files.figure("spectrum"), title=f"Long tail of {summary.num_images} images")
    atomic_write_json(files.json("spectrum"), data)
    return (
        f"80/20 boundary band {summary.boundary_band} ({summary.boundary_fraction_nyquist:.3f} of Nyquist): "
        f"LFC holds {100 * summary.lfc_power_share:.1f}% of the power, alpha {summary.alpha:.2f}"
    )


SPECTRUM_KEYS = ("boundary_band", "lfc_power_share", "entropy", "entropy_normalized", "alpha", "alpha_r2")


def _bass_stage(out: Path, settings: DemoSettings) -> str:

    images, labels, classes = load_arrays(DATASET, "train")
    outputs, masks = [], []
    for start in range(0, len(images), 512):
        converted, degenerate = balance_spectrum(
            np.ascontiguousarray(images[start : start + 512]), return_degenerate=True
        )
        outputs.append(converted)
        masks.append(np.asarray(degenerate, dtype=bool))
    converted, degenerate = np.concatenate(outputs), np.concatenate(masks)
    before, after = summarize(images), summarize(converted)
    # One image of evenly spaced classes, and one degenerate image (if any) to show the rule.
    count = settings.bass_examples
    chosen = [
        int(np.flatnonzero(labels == c)[0]) for c in np.linspace(0, len(classes) - 1, count).astype(int)
    ]
    if degenerate.any():
        chosen[-1] = int(np.flatnonzero(degenerate)[0])
    files = RunLayout.of(out)
    plot_bass_examples(images[chosen], files.figure("bass_examples"), max_images=count)
    n_degenerate = int(degenerate.sum())
    atomic_write_json(
        files.json("bass"),
        {
            "images": len(images),
            "degenerate": n_degenerate,
            "strength": 1.0,
            "source": f"the {len(images)} training images of the embedded dataset",
            "example_indices": chosen,
            "example_classes": [classes[int(labels[i])] for i in chosen],
            # pi (band proportions) lets the report compare both spectra at one boundary.
            "spectrum_before": {k: before.to_dict()[k] for k in (*SPECTRUM_KEYS, "pi")},
            "spectrum_after": {k: after.to_dict()[k] for k in (*SPECTRUM_KEYS, "pi")},
        },
    )
    return (
        f"{len(images)} images, {n_degenerate} with a degenerate channel (left unchanged); spectral entropy "
        f"{before.entropy:.2f} -> {after.entropy:.2f} nats, LFC share {100 * before.lfc_power_share:.1f}% -> "
        f"{100 * after.lfc_power_share:.1f}%"
    )


def train_config(settings: DemoSettings, objective: str, bass: str | None):
    """The :class:`freqtail.train.TrainConfig` of one demo run."""

    overrides: dict[str, Any] = {
        "dataset": DATASET,
        "model": "small-cnn",
        "model_options": {"width": settings.width},
        "objective": objective,
        "bass": bass,
        "epochs": settings.erm_epochs if objective == "erm" else settings.at_epochs,
        "train_subset": settings.train_subset,
        "test_subset": settings.test_subset,
        "batch_size": 128,
        "seed": 0,
        "progress": False,
    }
    if objective != "erm":
        overrides.update(
            eps=PGD_EPS,
            step_size=settings.at_step_size,
            attack_steps=settings.attack_steps,
            robust_eval_examples=settings.robust_eval_examples,
            robust_eval_steps=settings.robust_eval_steps,
        )
    return load_config(overrides=overrides)


class _EpochProgress:
    """Trainer callback: one console line per finished epoch (the demo's per-epoch progress)."""

    def __init__(self, echo: Callable[[str], None], name: str) -> None:
        self.echo, self.name = echo, name

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        text = f"epoch {record['epoch']}/{trainer.total_epochs}: loss {record['train_loss']:.3f}"
        if record.get("test_acc") is not None:
            text += f", test acc {100 * record['test_acc']:.1f}%"
        if record.get("test_robust_acc") is not None:
            text += f", robust acc {100 * record['test_robust_acc']:.1f}%"
        self.echo(f"{'':14}{self.name:<22} {text} ({record['epoch_time']:.1f} s)")


def _train_stage(run_dir: Path, settings: DemoSettings, objective: str, bass: str | None, log, echo) -> str:

    progress = _EpochProgress(echo, f"train {run_dir.name}")
    result = train_run(
        TrainRequest(
            train_config(settings, objective, bass), run_dir, resume=True, log=log, callbacks=[progress]
        )
    )
    if result.status == "interrupted":
        raise DemoInterrupted(f"Training {run_dir.name} stopped after step {result.global_step}.")
    last = result.history[-1] if result.history else {}
    text = f"{result.epochs_completed} epoch(s), test acc {100 * (last.get('test_acc') or 0):.1f}%"
    if last.get("test_robust_acc") is not None:
        text += f", robust acc {100 * last['test_robust_acc']:.1f}% (PGD-{settings.robust_eval_steps})"
    return text + (" (bass-dataset test set)" if bass else "")


def _evaluate_stage(run_dir: Path, settings: DemoSettings) -> str:
    run = RunFolder.open(run_dir)
    request = EvaluationRequest.of(
        # The band suites attack the same evaluated images, at each threat model's own 80/20 boundary.
        suites="clean,pgd20,pgd20-lfc,pgd20-hfc,corruptions",
        n=settings.eval_n,
        # No eps: every run's budget is 8/255 anyway (the paper default for 32x32 images, and PGD-AT's
        # training budget), and the records then name where it came from.
        step_size=PGD_STEP,
        generate_c=True,
        corruptions=settings.corruptions,
        severities=settings.severities,
        masking_n=settings.masking_n,
        masking_queries=settings.masking_queries,
        resume=True,
    )
    evaluate_run(run, request)
    parts = []
    records = _best(run.results())
    for row in run_key_numbers(run_dir.name, run_dir.name, records):
        parts.append(
            f"{row['threat_model']}: clean {_pct(row['clean'])}, PGD-20 {_pct(row['pgd20'])}"
            f"{_band_words(records, row['threat_model'])}, corruptions {_pct(row['corruptions_mean'])}"
        )
    return "; ".join(parts)


def _band_words(records: list[dict[str, Any]], threat_model: str) -> str:
    """`` (LFC 20.0%, HFC 23.0% at b = 6)``: a threat model's band-restricted PGD-20, or "" without it."""
    found = {
        r["metric"]: r
        for r in records
        if r.get("threat_model") == threat_model and r.get("metric") in ("pgd-20-ce-lfc", "pgd-20-ce-hfc")
    }
    if not found:
        return ""
    lfc, hfc = found.get("pgd-20-ce-lfc"), found.get("pgd-20-ce-hfc")
    boundary = next(iter(found.values()))["settings"].get("boundary_band")
    return (
        f" (LFC {_pct(lfc['accuracy'] if lfc else None)}, HFC {_pct(hfc['accuracy'] if hfc else None)} "
        f"at b = {boundary})"
    )


def _pct(value: Any) -> str:
    """A fraction as the demo's console lines write it (``52.7%``)."""
    return percent(value, 1, "%")


def _sensitivity_stage(run_dir: Path, settings: DemoSettings) -> str:
    request = ExplainRequest.default(SensitivityAnalysis, n=settings.sensitivity_n)
    data = explain(RunFolder.open(run_dir), SensitivityAnalysis(), request).data
    return (
        f"HFC share of the input gradient's energy {100 * data['hfc_energy_share']:.1f}% "
        f"(boundary band {data['boundary_band']}, {data['num_images']} images)"
    )


def _landscape_stage(run_dir: Path, settings: DemoSettings) -> str:
    analysis = LandscapeAnalysis(grid=settings.landscape_grid, span=1.0)
    request = ExplainRequest.default(LandscapeAnalysis, n=settings.landscape_n)
    data = explain(RunFolder.open(run_dir), analysis, request).data
    lfc, hfc = data["loss_lfc_range"], data["loss_hfc_range"]
    return (
        f"{data['grid']}x{data['grid']} grid: LFC loss {lfc[0]:.2f}..{lfc[1]:.2f}, "
        f"HFC loss {hfc[0]:.2f}..{hfc[1]:.2f}"
    )


def _heatmap_stage(run_dir: Path, settings: DemoSettings) -> str:
    request = ExplainRequest.default(HeatmapAnalysis, n=settings.heatmap_n)
    data = explain(RunFolder.open(run_dir), HeatmapAnalysis(), request).data
    return (
        f"{data['num_images']} images: mean error {100 * data['mean_error']:.1f}% over frequencies "
        f"(clean {100 * data['clean_error']:.1f}%)"
    )


# ----------------------------------------------------------------------------- aggregation
def _best(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the ``best`` checkpoint (the one every demo run is evaluated with)."""
    return checkpoint_records(records)


def _evaluation_summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's evaluation records without their bulky parts (settings, data and counts stay)."""
    keep = ("id", "metric", "threat_model", "accuracy", "correct", "total", "mean", "categories", "order")
    out = []
    for record in records:
        entry = {k: record[k] for k in keep if k in record}
        settings = record.get("settings") or {}
        entry["settings"] = {
            k: settings[k]
            for k in (
                "name",
                "eps_255",
                "step_size_255",
                "steps",
                "loss",
                "restarts",
                "seed",
                "severities",
                "origin",
            )
            if k in settings
        }
        entry["n"] = (record.get("data") or {}).get("n")
        if record.get("metric") == "gradient-masking":
            entry["state"] = record.get("state")
            entry["masked"] = record.get("masked")
            entry["summary"] = record.get("summary")
        elif isinstance(record.get("gradient_masking"), dict):
            entry["masking_state"] = record["gradient_masking"].get("state")
        out.append(entry)
    return out


def _corruption_words(settings: DemoSettings) -> str:

    names = parse_corruptions(settings.corruptions)
    levels = parse_severities(settings.severities)
    which = "all 19 corruptions" if len(names) == 19 else f"{len(names)} corruptions ({', '.join(names)})"
    return f"{which} at severity {', '.join(map(str, levels))} ({len(names) * len(levels)} cells)"


def aggregate(out: Path, settings: DemoSettings, timings: list[dict[str, Any]], total: float, load) -> dict:
    """The demo's summary (``demo-summary.json``): settings, stage timings, each run's key numbers."""

    runs, key_numbers = [], []
    for name, label, objective, bass in RUNS:
        artefacts = collect_run(out / name)
        records = _best(artefacts.records)
        rows = run_key_numbers(name, label, records)
        key_numbers += rows
        metrics = artefacts.metrics
        last = metrics[-1] if metrics else {}
        entry: dict[str, Any] = {
            "name": name,
            "label": label,
            "path": name,
            "objective": objective,
            "bass": bass,
            "config": train_config(settings, objective, bass).to_dict(),
            "training": {
                k: last.get(k)
                for k in ("epoch", "train_loss", "train_acc", "test_acc", "test_images", "test_robust_acc")
                if k in last
            }
            | {
                "robust_attack": last.get("robust_attack"),
                "seconds": sum(r.get("epoch_time", 0) for r in metrics),
            },
            "key_numbers": rows,
            "evaluation": _evaluation_summary(records),
        }
        for kind, keys in (
            ("sensitivity", ("num_images", "boundary_band", "hfc_energy_share", "top_hfc_share", "source")),
            (
                "landscape",
                ("grid", "span", "num_images", "boundary_band", "center", "loss_lfc_range", "loss_hfc_range"),
            ),
            (
                "heatmap",
                ("num_images", "eps", "clean_error", "mean_error", "max_error", "max_error_frequency"),
            ),
        ):
            data = getattr(artefacts, kind)
            if data is not None:
                entry[kind] = {k: data.get(k) for k in keys}
        runs.append(entry)
    facts = collect_run(out)
    spectrum, bass = facts.spectrum or {}, facts.bass or {}
    return {
        "format": DEMO_FORMAT,
        "version": 1,
        "quick": settings.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "freqtail_version": __version__,
        "settings": {
            "description": (
                f"small-cnn (width {settings.width}) on the embedded dataset (16 classes, 32x32): ERM for "
                f"{settings.erm_epochs} epoch(s) and PGD-AT ({settings.attack_steps} steps of "
                f"{settings.at_step_size}, eps {PGD_EPS}) for {settings.at_epochs} epoch(s), each without "
                "and with BaSS (bass=dataset: trained and tested on BaSS-converted images); "
                + (
                    f"{settings.train_subset} training images."
                    if settings.train_subset
                    else "all 6,400 training images."
                )
            ),
            "demo": settings.to_dict(),
            "dataset": DATASET,
            "test_images": 1600,
            "eval_n": settings.eval_n,
            "pgd": {"eps": PGD_EPS, "step_size": PGD_STEP, "steps": 20, "loss": "ce", "restarts": 1},
            "corruptions": {
                "names": settings.corruptions,
                "severities": settings.severities,
                "description": _corruption_words(settings),
            },
        },
        "timings": {"stages": timings, "total_seconds": round(total, 1), "load_average": load},
        "spectrum": {k: spectrum.get(k) for k in (*SPECTRUM_KEYS, "num_images", "source") if k in spectrum},
        "bass": {
            k: bass.get(k) for k in ("images", "degenerate", "spectrum_before", "spectrum_after") if k in bass
        },
        "runs": runs,
        "key_numbers": key_numbers,
    }


def format_key_numbers(rows: list[dict[str, Any]]) -> str:
    """The key-number table as aligned text (what ``freqtail demo`` prints; the report shows the same
    table, :func:`freqtail.report.key_numbers.key_number_table`)."""
    header, lines = key_number_table(rows, style="console")
    widths = [max(len(x) for x in column) for column in zip(header, *lines, strict=True)]
    out = []
    for index, row in enumerate([header, *lines]):
        cells = [
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  " + "  ".join(cells).rstrip())
        if index == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(out)


# ----------------------------------------------------------------------------- the entry point
def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


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
        DemoInterrupted: Ctrl-C / SIGTERM stopped a training run (its checkpoint is written).
        KeyboardInterrupt: Ctrl-C elsewhere (finished numbers are kept).
    """

    settings = settings or (QUICK if quick else FULL)
    console = sys.stdout  # stages redirect stdout to the log; progress lines still go here
    echo = echo or (lambda line: print(line, file=console, flush=True))
    out = Path(out)
    files = RunLayout.of(out)
    state = _prepare_folder(out, settings, force)
    explained = [(name, stage) for name in EXPLAINED for stage in ("sensitivity", "landscape", "heatmap")]
    total = 2 + 2 * len(RUNS) + len(explained) + 1
    load_start = _load()
    stages = _Stages(out, state, total, echo)
    try:
        stages.run(
            "spectrum",
            "long tail of the training images",
            lambda: _spectrum_stage(out),
            lambda: files.json("spectrum").is_file(),
        )
        stages.run(
            "bass",
            "BaSS on the training images",
            lambda: _bass_stage(out, settings),
            lambda: files.json("bass").is_file(),
        )
        for name, label, objective, bass in RUNS:
            run_dir = out / name
            epochs = settings.erm_epochs if objective == "erm" else settings.at_epochs
            stages.run(
                f"train {name}",
                f"train {label}, {epochs} epoch(s)",
                lambda run_dir=run_dir, objective=objective, bass=bass: _train_stage(
                    run_dir, settings, objective, bass, stages.trainer_log, echo
                ),
                lambda run_dir=run_dir: RunLayout.of(run_dir).metrics.is_file(),
            )
        for name, label, _, _ in RUNS:
            run_dir = out / name
            stages.run(
                f"evaluate {name}",
                f"evaluate {label}: clean, PGD-20 (+ LFC, HFC), corruptions on {settings.eval_n} images",
                lambda run_dir=run_dir: _evaluate_stage(run_dir, settings),
                lambda run_dir=run_dir: RunLayout.of(run_dir).results.is_file(),
            )
        work = {"sensitivity": _sensitivity_stage, "landscape": _landscape_stage, "heatmap": _heatmap_stage}
        for name, kind in explained:
            run_dir = out / name
            stages.run(
                f"{kind} {name}",
                f"{kind} of {name}",
                lambda run_dir=run_dir, kind=kind: work[kind](run_dir, settings),
                lambda run_dir=run_dir, kind=kind: RunLayout.of(run_dir).json(kind).is_file(),
            )
        summary = aggregate(
            out, settings, stages.timings, time.perf_counter() - stages.started, [load_start, _load()]
        )
        atomic_write_json(files.demo_summary, summary)
        start = time.perf_counter()
        with contextlib.redirect_stdout(stages.log), contextlib.redirect_stderr(stages.log):
            report = build_report([out])
        report_seconds = time.perf_counter() - start
        # The page shows the stages before it; the summary also gets the report's own time.
        stages.count += 1
        stages.timings.append(
            {"name": "report", "what": "report.html and report.md", "seconds": round(report_seconds, 2)}
        )
        seconds = time.perf_counter() - stages.started
        summary["timings"]["total_seconds"] = round(seconds, 1)
        atomic_write_json(files.demo_summary, summary)
        stages._line("report", f"{report.html} and {report.markdown} ({report_seconds:.1f} s)")
    finally:
        stages.close()
    return DemoResult(out, report.html, report.markdown, files.demo_summary, summary, seconds)
