"""Shared helpers of the grid tests (no tests here): a tiny grid folder, and the check of a command's
one-sentence refusal.

The grid's cells are run folders whose ``results.json`` holds hand-made records with known per-image
bits (no training), their states set through the real :class:`GridManifest` API: five done cells
with results (a BaSS pair with its seed-1 twin, an AugMix cell with corruption numbers, a cell
without a published row), one running, one failed, one pending.
"""

from __future__ import annotations

import numpy as np
import pytest

from freqtail.cli import main
from freqtail.evaluate.corruption_eval import corruption_table_record
from freqtail.evaluate.records import PerImage, Record, RecordId
from freqtail.evaluate.results import write_results
from freqtail.runs.layout import RunLayout
from freqtail.workflows.grid_manifest import GridManifest
from freqtail.workflows.grid_spec import CellSpec, GridSpec

N = 40
INDICES = list(range(100, 100 + N))
BASE = "t1-cifar10-resnet18-pgd-at"
BASS = "t1-cifar10-resnet18-pgd-at-bass"
BASE_1, BASS_1 = f"{BASE}-seed=1", f"{BASS}-seed=1"
TRADES, MART = "t1-cifar10-resnet18-trades", "t1-cifar10-resnet18-mart"
AUGMIX = "t4-cifar10-wrn-40-2-augmix"
OWN = "own_cell"
T1 = dict(table="table1", model="ResNet-18", dataset="CIFAR-10")


def mask_of(correct: int, first: int = 0) -> np.ndarray:
    """N bools, True on ``correct`` images starting at ``first``."""
    bits = np.zeros(N, dtype=bool)
    bits[first : first + correct] = True
    return bits


def counted_record(threat: str, metric: str, mask: np.ndarray | None, correct: int | None = None) -> Record:
    """A counted record over INDICES; ``mask=None`` is an older record without per-image bits."""
    k = int(mask.sum()) if mask is not None else int(correct)
    variant = "" if metric == "clean" else "eps=8/255"
    return Record(
        id=RecordId("best", threat, metric, variant),
        suite=metric,
        metric=metric,
        threat_model=threat,
        data={"dataset": "cifar10", "n": N, "of": 10000, "indices": INDICES},
        correct=k,
        total=N,
        accuracy=k / N,
        per_image=None if mask is None else PerImage.of_mask(mask),
    )


# Clean: baseline correct on images 0..29 (30 of 40), BaSS on 5..39 (35): a = 25 both, b = 5 only the
# baseline, c = 10 only BaSS, d = 0.
RECORDS = {
    BASE: [
        counted_record("standard", "clean", mask_of(30)),
        counted_record("standard", "pgd-20-ce", None, correct=18),  # an older file: no per-image bits
        counted_record("standard", "autoattack-standard", mask_of(15)),
    ],
    BASS: [
        counted_record("domain", "clean", mask_of(35, first=5)),
        counted_record("domain", "pgd-20-ce", mask_of(22)),
        counted_record("domain", "autoattack-standard", mask_of(20, first=2)),
        counted_record("end-to-end", "clean", mask_of(3)),  # another threat model: never shown
    ],
    BASE_1: [counted_record("standard", "clean", mask_of(28))],
    BASS_1: [counted_record("domain", "clean", mask_of(33))],
    OWN: [counted_record("standard", "clean", mask_of(12))],
}


def corruption_record() -> Record:
    table = {"gaussian_noise": {3: (30, 40)}, "shot_noise": {3: (20, 40)}, "defocus_blur": {3: (36, 40)}}
    fields = corruption_table_record(table)
    data = {"dataset": "cifar10", "n": N, "of": 10000, "indices": INDICES}
    stored = {"id": "best|standard|corruptions|none", "metric": "corruptions", "threat_model": "standard"}
    return Record.from_dict({**stored, "data": data, **fields})


def table_spec() -> GridSpec:
    cells = [
        CellSpec(base=BASE),
        CellSpec(base=BASS),
        CellSpec({"seed": 1}, base=BASE),
        CellSpec({"seed": 1}, base=BASS),
        CellSpec(base=TRADES),
        CellSpec(base=MART),
        CellSpec(base=AUGMIX),
        CellSpec({"lr": 0.05}, name=OWN),
        CellSpec({"lr": 0.02}, name="own-pending"),
    ]
    return GridSpec(explicit=tuple(cells), suites=("clean",))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A grid folder: five done cells with results, one running, one failed, one pending."""
    folder = tmp_path_factory.mktemp("grid")
    manifest = GridManifest.open(folder, table_spec())
    records = {**RECORDS, AUGMIX: [counted_record("standard", "clean", mask_of(38)), corruption_record()]}
    for name, stored in records.items():
        assert manifest.claim("test", only={name}).name == name
        write_results(RunLayout.of(manifest.layout.run_dir(name)).results, stored)
        manifest.finish(name, 1.0)
    assert manifest.claim("test", only={MART}).name == MART
    manifest.fail(MART, "The GPU ran out of memory at 100% use & stopped.")
    assert manifest.claim("test", only={TRADES}).name == TRADES  # stays running
    yield folder
    manifest.release(TRADES)


def one_sentence_error(capsys, argv: list[str], *words: str) -> tuple[str, str]:
    """Run the command line ``argv`` in this process and check its refusal: exit 2, one line on stderr
    that starts with ``freqtail <command>: error:``, ends a sentence, names every one of ``words`` and
    holds no traceback. Returns ``(that line, what it printed on stdout)``."""
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"freqtail {argv[0]}: error: ") and lines[0].endswith("."), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0], captured.out
