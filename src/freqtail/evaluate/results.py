"""``results.json``: every number with the exact settings that produced it, merged across runs.

File layout::

    {"format": "freqtail-results", "version": 1, "updated": "2025-...Z",
     "results": [record, record, ...]}

A *record* is one number (or one corruption table) under one threat model. Every record has:

* ``id`` — ``"<checkpoint>|<threat model>|<metric>|<variant>"``, e.g. ``"best|domain|pgd-20-ce|eps=8/255"``;
  a new record replaces the stored one with the same id, every other stored record is kept;
* ``suite``, ``metric``, ``threat_model``, ``threat_model_setup`` (data, front, description);
* ``correct``, ``total``, ``accuracy`` (fraction in [0, 1]) — counts are exact integers;
* ``settings`` — the attack's exact configuration (eps, step, steps, loss, seed, package version, ...);
* ``data`` — dataset, split, BaSS conversion of the test data, ``n`` evaluated, ``of`` available,
  subset rule and seed;
* ``checkpoint`` — path, which (best / last), epoch, weights digest, training objective and BaSS mode;
* ``world_size``, ``seconds``, ``created``, ``freqtail_version``.

Corruption records add ``order``, ``per_corruption``, ``categories`` and ``mean`` (see
:mod:`freqtail.evaluate.corruption_eval`); gradient-masking records hold the check's report.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from freqtail.errors import InputError
from freqtail.io import atomic_write_json

RESULTS_FILE = "results.json"
RESULTS_MD = "results.md"
FORMAT = "freqtail-results"
FORMAT_VERSION = 1


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string (seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def eps_label(eps: float) -> str:
    """``8/255`` when eps is a whole number of grey levels, else the value (``0.01``)."""
    levels = eps * 255
    if abs(levels - round(levels)) < 1e-6:
        return f"{round(levels)}/255"
    return f"{eps:.6g}"


def record_id(checkpoint: str, threat_model: str, metric: str, variant: str = "") -> str:
    """The identity a record is merged on (see the module docstring)."""
    return "|".join([checkpoint, threat_model, metric, variant])


def empty_results() -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "updated": None, "results": []}


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``results.json`` (or a run folder holding one).

    Raises:
        InputError: missing, unreadable, damaged or not a freqtail results file (one sentence).
    """
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    if not p.is_file():
        raise InputError(f"No results file at {p}; run `freqtail evaluate` on that run first.")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"The results file {p} is damaged ({err}); move it away and evaluate again."
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("results"), list)
    ):
        raise InputError(f"The file {p} is not a freqtail results file (its 'format' is not '{FORMAT}').")
    if data.get("version") != FORMAT_VERSION:
        raise InputError(
            f"The results file {p} has version {data.get('version')!r}; this freqtail reads version "
            f"{FORMAT_VERSION}."
        )
    return data


def merge_records(existing: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Stored records updated with ``new``: same id -> replaced in place, new ids appended in order."""
    merged: dict[str, dict] = {}
    for record in existing:
        merged[str(record.get("id"))] = dict(record)
    for record in new:
        merged[str(record["id"])] = dict(record)
    return list(merged.values())


def write_results(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge ``records`` into the results file at ``path`` (created if missing), atomically.

    A damaged existing file is never overwritten: :class:`InputError` says so instead.

    Returns:
        the whole merged file content.
    """
    p = Path(path)
    data = load_results(p) if p.exists() else empty_results()
    data["results"] = merge_records(data["results"], records)
    data["updated"] = utc_now()
    atomic_write_json(p, data)
    return data


def find_record(records: Iterable[Mapping[str, Any]], record_id_: str) -> dict | None:
    """The record with id ``record_id_``, or None."""
    for record in records:
        if record.get("id") == record_id_:
            return dict(record)
    return None
