"""How numbers are written for people: the one percent formatter of tables, reports and the demo.

Ground level (imports nothing of freqtail), so the evaluation tables, the report and the demo all use
the same rule.
"""

from __future__ import annotations

import numbers
from typing import Any

#: What a missing number is shown as.
MISSING = "–"


def percent(fraction: Any, digits: int = 2, suffix: str = "") -> str:
    """A fraction in percent: ``percent(0.5272) -> "52.72"``, ``percent(0.5272, 1, "%") -> "52.7%"``.

    None, booleans and anything that is not a real number give :data:`MISSING` (without the suffix).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        return MISSING
    return f"{100 * float(fraction):.{digits}f}{suffix}"


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "epoch")`` -> "1 epoch", ``count(3, "epoch")`` -> "3 epochs" (``plural`` for nouns
    whose plural is not noun + "s")."""
    return f"{number} {noun if number == 1 else (plural or noun + 's')}"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h`` or ``2.1 days``: a time left, rounded the way a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
