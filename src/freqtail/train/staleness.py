"""Stale numbers: records measured on a checkpoint that the run's ``best`` / ``last`` pointer no longer
names.

A record of ``--which best`` stores the checkpoint folder it was measured on (``checkpoint.path``,
``checkpoint.epoch``). Training goes on after an evaluation (``train --resume``, or an evaluation
taken while training with ``--allow-training``): the pointer then moves to another checkpoint folder
and the old one is rotated away, but the record keeps its id (``best|...``) and would still read as
"the run's best". :func:`stale_checkpoints` finds such records by comparing each one's checkpoint
folder with the folder the run's pointer names now; results.md, ``freqtail compare`` and the report
mark them and give the command that measures them again.

Only records of ``best`` / ``last`` whose checkpoint folder lies in the run's own ``checkpoints/``
are judged: a record of a named checkpoint file, a foreign or RobustBench model, or one evaluated
from another folder (``evaluate FILE --out``) cannot go stale this way.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqtail.errors import CheckpointError
from freqtail.evaluate.compare import RunResults
from freqtail.evaluate.records import RecordId
from freqtail.runs.layout import RunLayout
from freqtail.train.checkpoint import WHICH, read_pointer


@dataclass(frozen=True)
class StaleCheckpoint:
    """The records of one checkpoint tag (``best`` / ``last``) measured on a folder the pointer has left.

    Attributes:
        which: ``"best"`` or ``"last"``.
        measured_epochs: the epochs the stale records were measured at (sorted; None: not recorded).
        current: the checkpoint folder the pointer names now; None when the run has no such pointer.
        current_epoch: that checkpoint's epoch (None: not recorded, or no pointer).
        record_ids: the stale records' ids, in their stored order.
        suites: the suites that wrote them (their ``suite`` fields), in first-seen order.
        n: the number of images they were measured on when all agree, else None.
    """

    which: str
    measured_epochs: tuple[int | None, ...]
    current: str | None
    current_epoch: int | None
    record_ids: tuple[str, ...]
    suites: tuple[str, ...]
    n: int | None

    def refresh_command(self, run_dir: str | os.PathLike) -> str:
        """The ``freqtail evaluate`` command that measures these numbers again on the current checkpoint."""
        parts = ["freqtail", "evaluate", str(run_dir), "--which", self.which]
        if self.suites:
            parts += ["--suite", ",".join(self.suites)]
        if self.n is not None:
            parts += ["--n", str(self.n)]
        return shlex.join(parts)

    def sentence(self, run_dir: str | os.PathLike) -> str:
        """One sentence: what is stale, why, and the command that refreshes it."""
        measured = ", ".join(_epoch_words(e) for e in self.measured_epochs)
        count = len(self.record_ids)
        numbers = "1 number" if count == 1 else f"{count} numbers"
        if self.current is None:
            now = f"the run has no {self.which} checkpoint any more"
        else:
            now = f"the run's {self.which} checkpoint is now {_epoch_words(self.current_epoch)}"
        was, them = ("was", "it") if count == 1 else ("were", "them")
        return (
            f"Stale: {numbers} of `{self.which}` {was} measured on the checkpoint of {measured}, but {now}; "
            f"measure {them} again with `{self.refresh_command(run_dir)}`."
        )


def _epoch_words(epoch: int | None) -> str:
    return "an unrecorded epoch" if epoch is None else f"epoch {epoch}"


def _pointer_target(checkpoints: Path, which: str) -> tuple[str | None, int | None] | None:
    """``(folder name, epoch)`` the pointer ``which`` names, ``(None, None)`` when there is no pointer,
    None when the pointer cannot be read (then nothing is judged)."""
    try:
        pointer = read_pointer(checkpoints, which)
    except CheckpointError:
        return None
    if pointer is None:
        return None, None
    return str(pointer["checkpoint"]), _int_or_none(pointer.get("epoch"))


def stale_checkpoints(
    run_dir: str | os.PathLike, records: Sequence[Mapping[str, Any]]
) -> list[StaleCheckpoint]:
    """The stale records of a run folder, grouped by checkpoint tag (``best`` first); empty when none.

    Args:
        run_dir: the run folder whose ``checkpoints/`` pointers are the truth.
        records: its ``results.json`` records (well-formed: :func:`freqtail.evaluate.records.check_shape`).
    """
    layout = RunLayout.of(run_dir)
    checkpoints = layout.checkpoints
    if not checkpoints.is_dir():
        return []
    home = checkpoints.resolve()
    found = []
    for which in WHICH:
        target = _pointer_target(checkpoints, which)
        if target is None:
            continue
        current_name, current_epoch = target
        stale = []
        for record in records:
            info = record.get("checkpoint") or {}
            if RecordId.of(record).checkpoint != which or info.get("which") != which:
                continue
            path = info.get("path")
            if not isinstance(path, str) or Path(path).parent != home:
                continue
            if Path(path).name != current_name:
                stale.append(record)
        if stale:
            sizes = {_int_or_none((r.get("data") or {}).get("n")) for r in stale}
            epochs = {_int_or_none((r.get("checkpoint") or {}).get("epoch")) for r in stale}
            found.append(
                StaleCheckpoint(
                    which=which,
                    measured_epochs=tuple(sorted(epochs, key=_none_first)),
                    current=current_name,
                    current_epoch=current_epoch,
                    record_ids=tuple(str(r["id"]) for r in stale),
                    suites=tuple(dict.fromkeys(str(r["suite"]) for r in stale if r.get("suite"))),
                    n=next(iter(sizes)) if len(sizes) == 1 else None,
                )
            )
    return found


def stale_ids(stale: Sequence[StaleCheckpoint]) -> frozenset[str]:
    """Every stale record id of :func:`stale_checkpoints`'s result."""
    return frozenset(i for entry in stale for i in entry.record_ids)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _none_first(value: int | None) -> tuple[int, int]:
    return (0, 0) if value is None else (1, value)


def with_staleness(run: RunResults) -> RunResults:
    """``run`` with the stale notes and ids of its folder (``run.path``: a run folder or its
    ``results.json``) filled in, for :func:`freqtail.evaluate.compare.compare_runs`."""
    path = Path(run.path)
    folder = path if path.is_dir() else path.parent
    stale = stale_checkpoints(folder, run.records)
    return dataclasses.replace(
        run, stale_notes=tuple(entry.sentence(folder) for entry in stale), stale_ids=stale_ids(stale)
    )
