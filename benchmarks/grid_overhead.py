"""What does the grid engine cost per cell, against running the same cells by hand?

Times, as whole processes on this machine, side by side in one run:

* **engine**: ``freqtail reproduce FAMILY --scale smoke --only PATTERN --out DIR`` (one launcher
  process: the manifest, the per-cell locks, train with resume, evaluate, the table after each cell);
* **by hand**: for each of the same cells, ``freqtail train --config CELL.yaml --out DIR/CELL`` and
  ``freqtail evaluate DIR/CELL --suite ... --n ... --batch-size ...`` (the cell's config and the grid's
  evaluation options, written out), one process each, as a user would type them.

The two are run in turn ``--repeats`` times (engine first in even rounds, by hand first in odd ones),
each into a fresh folder, so both see the same machine load; the median over rounds is printed:
seconds per cell for both, the ratio engine / by hand (of the medians, and the median of each round's
ratio) and the absolute overhead per cell (engine minus by hand, divided by the cells). After the
timed rounds the benchmark checks that both did the same work: every evaluation record (suite,
threat model, metric, correct of total) of every cell is equal.
The engine runs the cells in one process, so it pays the start-up (imports) once where by hand pays it
twice per cell: a ratio below 1 is that, not free bookkeeping. What the engine spends besides its
cells' training and evaluation is printed too: its wall time minus the seconds of its ``done in`` lines
(its start-up, the spec, the manifest and locks, the table after each cell).

Run: ``OMP_NUM_THREADS=1 python benchmarks/grid_overhead.py`` (default: the two Table 1 cells of
CIFAR-10, ResNet-18 and PGD-AT at smoke scale, 5 rounds; ``--only PATTERN``, ``--family``,
``--repeats N``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from freqtail.evaluate import EvaluationRequest
from freqtail.train.config import config_to_yaml
from freqtail.workflows.grid_scale import scale_spec
from freqtail.workflows.grid_spec import GridCell, GridSpec

CLI = [sys.executable, "-m", "freqtail.cli"]
#: The engine's line for a finished cell (freqtail.workflows.grid_run.run_grid).
DONE_LINE = re.compile(r"^\[\d+/\d+\] \S+: done in ([0-9.]+) s$", re.MULTILINE)


def evaluate_options(request: EvaluationRequest) -> list[str]:
    """The ``freqtail evaluate`` options that ask for what ``request`` asks (the smoke scale's fields)."""
    options = ["--suite", ",".join(request.suites), "--batch-size", str(request.batch_size)]
    if request.n is not None:
        options += ["--n", str(request.n)]
    corruption = request.corruption
    if "corruptions" in request.suites:
        if corruption.generate:
            options.append("--generate-c")
        if corruption.corruptions is not None:
            options += ["--corruptions", ",".join(corruption.corruptions)]
        if corruption.severities is not None:
            options += ["--severities", ",".join(map(str, corruption.severities))]
    return [*options, "--no-progress"]


def by_hand_commands(
    cells: list[GridCell], request: EvaluationRequest, configs: Path, out: Path
) -> list[list[str]]:
    """Per cell ``freqtail train`` of its config, then ``freqtail evaluate`` of its run folder."""
    commands = []
    for cell in cells:
        config_file = configs / f"{cell.name}.yaml"
        run = out / cell.name
        commands.append([*CLI, "train", "--config", str(config_file), "--out", str(run), "--no-progress"])
        commands.append([*CLI, "evaluate", str(run), *evaluate_options(request)])
    return commands


def timed(commands: list[list[str]], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of running ``commands`` one after another (each must exit 0), and their stdout."""
    started = time.perf_counter()
    printed = []
    for command in commands:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        printed.append(done.stdout)
    return time.perf_counter() - started, "".join(printed)


def cell_seconds(printed: str) -> float:
    """The seconds the engine's cells took inside it (its ``[i/n] NAME: done in S s`` lines)."""
    return sum(float(match) for match in DONE_LINE.findall(printed))


def records(run: Path) -> list[tuple]:
    """What a run folder's evaluation measured: ``(suite, threat model, metric, correct, total)``."""
    stored = json.loads((run / "results.json").read_text(encoding="utf-8"))["results"]
    rows = [(r["suite"], r["threat_model"], r["metric"], r.get("correct"), r.get("total")) for r in stored]
    return sorted(rows, key=repr)


def measure(family: str, only: str, repeats: int) -> dict:
    spec = scale_spec(GridSpec.family(family), "smoke")
    cells = spec.cells(only)
    request = spec.evaluation_request()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    engine_seconds, hand_seconds, outside = [], [], []
    with tempfile.TemporaryDirectory(prefix="grid-overhead-") as folder:
        root = Path(folder)
        configs = root / "configs"
        configs.mkdir()
        for cell in cells:
            (configs / f"{cell.name}.yaml").write_text(config_to_yaml(cell.config), encoding="utf-8")
        for round_index in range(repeats):
            engine_out, hand_out = root / f"engine-{round_index}", root / f"hand-{round_index}"
            engine = [
                [*CLI, "reproduce", family, "--scale", "smoke", "--only", only, "--out", str(engine_out)]
            ]
            hand = by_hand_commands(cells, request, configs, hand_out)
            pair = [("engine", engine), ("hand", hand)]
            for name, commands in pair if round_index % 2 == 0 else reversed(pair):
                seconds, printed = timed(commands, env)
                (engine_seconds if name == "engine" else hand_seconds).append(seconds)
                if name == "engine":
                    outside.append(seconds - cell_seconds(printed))
        same = all(
            records(root / f"engine-{r}" / cell.name) == records(root / f"hand-{r}" / cell.name)
            for r in range(repeats)
            for cell in cells
        )
    count = len(cells)
    pairs = [e / h for e, h in zip(engine_seconds, hand_seconds, strict=True)]
    engine_cell = statistics.median(engine_seconds) / count
    hand_cell = statistics.median(hand_seconds) / count
    return {
        "family": family,
        "only": only,
        "cells": [cell.name for cell in cells],
        "suites": list(spec.suites),
        "repeats": repeats,
        "engine_seconds": [round(s, 2) for s in engine_seconds],
        "by_hand_seconds": [round(s, 2) for s in hand_seconds],
        "engine_seconds_per_cell": round(engine_cell, 2),
        "by_hand_seconds_per_cell": round(hand_cell, 2),
        "ratio_engine_by_hand": round(engine_cell / hand_cell, 3),
        "ratio_per_round": [round(r, 3) for r in pairs],
        "ratio_median_of_rounds": round(statistics.median(pairs), 3),
        "overhead_seconds_per_cell": round(engine_cell - hand_cell, 2),
        "engine_outside_cells_seconds": round(statistics.median(outside), 2),
        "same_records": same,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="t1", help="t1, t3, t4 or fig3 (default t1)")
    parser.add_argument(
        "--only", default="*cifar10-resnet18-pgd-at*", help="cells to time (default the two PGD-AT cells)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.family, args.only, args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"Machine: {result['machine']}")
    print(
        f"Cells: {', '.join(result['cells'])} ({args.family} at smoke scale; suites "
        f"{', '.join(result['suites'])}); {args.repeats} interleaved rounds, medians."
    )
    print(
        f"engine  : {result['engine_seconds_per_cell']:7.2f} s per cell (rounds {result['engine_seconds']} s)"
    )
    print(
        f"by hand : {result['by_hand_seconds_per_cell']:7.2f} s per cell "
        f"(rounds {result['by_hand_seconds']} s)"
    )
    print(
        f"ratio engine / by hand {result['ratio_engine_by_hand']:.3f} (of the medians; median of the "
        f"rounds' ratios {result['ratio_median_of_rounds']:.3f}, rounds {result['ratio_per_round']}); "
        f"overhead {result['overhead_seconds_per_cell']:+.2f} s per cell"
    )
    print(
        f"engine time outside its cells' train + evaluate: {result['engine_outside_cells_seconds']:.2f} s "
        f"per run of {len(result['cells'])} cells (start-up, spec, manifest, locks, tables)"
    )
    print(
        "same evaluation records: " + ("yes" if result["same_records"] else "NO (the comparison is not fair)")
    )


if __name__ == "__main__":
    main()
