"""What a report shows and what it does not: the two lists the page's summary opens with.

Both lists are built from the material itself (the demo's key numbers, the runs' evaluation records
and their gradient-masking verdicts, the sections present and left out), so the summary never claims
more than the page holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from freqtail.attacks.masking_verdicts import STATE_MASKED, STATE_TOO_FEW
from freqtail.evaluate.records import RecordId
from freqtail.evaluate.tables import ADVERSARIAL_METRICS, BAND_METRICS, record_verdict
from freqtail.evaluate.threat_model_names import THREAT_MODELS
from freqtail.report.collect import RunArtefacts
from freqtail.report.key_numbers import (
    COUNT_KEYS,
    DEMO_CHECKPOINT,
    checkpoint_records,
    interval,
    run_key_numbers,
)
from freqtail.train.staleness import stale_ids

__all__ = ["does_not_show", "key_numbers_of_runs", "robust_records", "shows", "widest_interval"]

#: Metrics whose numbers are robust accuracies (each carries its own gradient-masking verdict).
ROBUST_METRICS = frozenset(m for m in (*ADVERSARIAL_METRICS, *BAND_METRICS) if m != "clean")


def key_numbers_of_runs(units: Sequence[RunArtefacts]) -> list[dict[str, Any]]:
    """The demo's key-number rows (:func:`freqtail.report.key_numbers.run_key_numbers`) for run folders
    that are no demo: per evaluated run, its ``best`` checkpoint's numbers (else those of the first
    checkpoint evaluated), stale numbers left out (their tables mark them)."""
    rows: list[dict[str, Any]] = []
    for unit in units:
        stale = stale_ids(unit.stale)
        fresh = [r for r in unit.records if "id" in r and r["id"] not in stale]
        tags = list(dict.fromkeys(RecordId.of(r).checkpoint for r in fresh))
        if not tags:
            continue
        tag = DEMO_CHECKPOINT if DEMO_CHECKPOINT in tags else tags[0]
        rows += run_key_numbers(unit.label, unit.label, checkpoint_records(fresh, tag), unit.metrics)
    return rows


def robust_records(units: Sequence[RunArtefacts]) -> list[Mapping[str, Any]]:
    """Every robust-accuracy record of ``units`` (PGD, CW, AutoAttack, PGD by band)."""
    return [r for u in units for r in u.records if r.get("metric") in ROBUST_METRICS]


def widest_interval(key_numbers: Sequence[Mapping[str, Any]]) -> tuple[float, int] | None:
    """``(width in percentage points, n)`` of the widest 95% interval among the key numbers, with the
    image count of its row; None when no key number has counts."""
    widest: tuple[float, int] | None = None
    for row in key_numbers:
        for counts_key in COUNT_KEYS.values():
            bounds = interval(row.get(counts_key))
            if bounds is None:
                continue
            width = 100.0 * (bounds[1] - bounds[0])
            if widest is None or width > widest[0]:
                widest = (width, row.get("n") or row[counts_key][1])
    return widest


def _threat_models(units: Sequence[RunArtefacts]) -> list[str]:
    present = {r.get("threat_model") for u in units for r in u.records}
    return [name for name in THREAT_MODELS if name in present]


def shows(
    units: Sequence[RunArtefacts],
    key_numbers: Sequence[Mapping[str, Any]],
    sections: Sequence[tuple[str, str]],
) -> list[str]:
    """Sentences on what the page holds. ``sections``: ``(title, anchor)`` of the detailed sections."""
    items = []
    if key_numbers:
        runs = list(dict.fromkeys(str(r.get("label") or r.get("run")) for r in key_numbers))
        sizes = sorted({r["n"] for r in key_numbers if isinstance(r.get("n"), int)})
        on = f" on n = {', '.join(map(str, sizes))} test images per number" if sizes else ""
        items.append(
            f"Clean, PGD-20 and mean corruption accuracy of {len(runs)} run(s) ({', '.join(runs)}) under "
            f"each of their threat models{on}, each with its 95% Wilson interval (the table above)."
        )
    else:
        evaluated = [u.label for u in units if u.records]
        if evaluated:
            items.append(
                f"Evaluation numbers of {len(evaluated)} run(s) ({', '.join(evaluated)}) under the threat "
                f"models {', '.join(f'`{t}`' for t in _threat_models(units))}, with their settings and "
                "image counts."
            )
    if sections:
        items.append(
            "Every table and figure with its settings, in the sections below (folded in the HTML page: "
            "click a title to open it)."
        )
    return items


def does_not_show(
    units: Sequence[RunArtefacts],
    key_numbers: Sequence[Mapping[str, Any]],
    quick: bool,
    has_missing: bool,
) -> list[str]:
    """Sentences on what the numbers cannot tell: the quick demo's scale, the intervals' width, the
    robust numbers without a gradient-masking verdict, and the parts no folder holds."""
    items = []
    if quick:
        items.append(
            "What the method achieves: the --quick demo trains one epoch on tiny subsets, so its numbers "
            "show that every step runs, nothing more."
        )
    widest = widest_interval(key_numbers)
    if widest is not None:
        items.append(
            f"Small differences: the widest interval spans {widest[0]:.1f} points (n = {widest[1]}); "
            "where two numbers' intervals overlap, these counts do not establish a difference."
        )
    robust = robust_records(units)
    states = [record_verdict(r)["state"] for r in robust]
    masked, too_few = states.count(STATE_MASKED), states.count(STATE_TOO_FEW)
    if masked:
        items.append(
            f"That every robust number is real: {masked} of {len(robust)} robust numbers (marked †) show "
            "possible gradient masking, so a stronger attack may lower them."
        )
    if too_few:
        items.append(
            f"That the robust numbers are free of gradient masking: {too_few} of {len(robust)} (marked ‡) "
            "were checked on too few correctly classified images for a verdict."
        )
    if has_missing:
        items.append("Parts no folder holds yet: see [Not in this report](#not-in-this-report).")
    return items
