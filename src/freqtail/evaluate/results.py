"""``results.json``: every number with the exact settings that produced it, merged across runs.

File layout::

    {"format": "freqtail-results", "version": 1, "updated": "2025-...Z",
     "results": [record, record, ...]}

A *record* is one number (or one corruption table) under one threat model; its schema (the
fields, the id, the per-image bits) is owned by :mod:`freqtail.evaluate.records`
(:class:`~freqtail.evaluate.records.Record`, :class:`~freqtail.evaluate.records.RecordId`). This
module is the file: it reads ``results.json`` (checking every record's shape once, through
:meth:`Record.from_dict <freqtail.evaluate.records.Record.from_dict>`), merges new records into it
and writes it back atomically. In short, every record has:

* ``id`` — ``"<checkpoint>|<threat model>|<metric>|<variant>"``, e.g. ``"best|domain|pgd-20-ce|eps=8/255"``;
  a new record replaces the stored one with the same id, every other stored record is kept;
* ``suite``, ``metric``, ``threat_model``, ``threat_model_setup`` (data, front, description);
* ``correct``, ``total``, ``accuracy`` (fraction in [0, 1]) — counts are exact integers;
* ``settings`` — the exact configuration of what ran (eps, step, steps, loss, seed, package version, ...);
* ``data`` — dataset, split, BaSS conversion of the test data, ``n`` evaluated, ``of`` available,
  ``subset`` (the rule in words, :data:`freqtail.data.subsets.SUBSET_RULE`), ``subset_seed`` and
  ``indices`` (the sorted test-set indices of the evaluated images; corruption records say in
  ``indices_of`` what they index);
* ``checkpoint`` — path, which (best / last), epoch, weights digest, training objective and BaSS mode;
* ``world_size``, ``seconds``, ``created``, ``freqtail_version``;
* ``per_image`` — which of the ``indices`` were classified correctly, bit-packed (counted records;
  per corruption and severity for corruption records; absent in files of older versions).

Robust records (PGD-20, CW-20, AutoAttack) add ``gradient_masking``: the whole verdict of the
gradient-masking check that ran with them (``state``, ``judged``, ``images``, ``flags``, ``summary``,
``indices``, ...; :func:`freqtail.evaluate.masking_suite.masking_verdict`), so a later check, which replaces
the check's own record, never changes the verdict shown for an earlier number. Corruption records add
``order``, ``per_corruption``, ``categories`` and ``mean`` (see :mod:`freqtail.evaluate.corruption_eval`);
gradient-masking records hold the check's report.

Replacing a stored record with one measured on a different number (or set) of images is allowed, but
:func:`write_results` reports it (:func:`replacement_warnings`): a table row could otherwise mix image
counts silently.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from freqtail.errors import InputError
from freqtail.evaluate.records import Record, check_shape
from freqtail.io import atomic_write_json
from freqtail.runs.existence import results_file

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


def empty_results() -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "updated": None, "results": []}


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``results.json`` (or a run folder holding one).

    Raises:
        InputError: missing, unreadable, damaged or not a freqtail results file, or holding a record
            that is not a JSON object with an id (one sentence naming the file).
    """
    p = results_file(path)
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
    for record in data["results"]:
        check_shape(record, p)  # once, here: every reader relies on objects with an id
    return data


def load_records(path: str | os.PathLike) -> list[Record]:
    """The records of a ``results.json`` (or a run folder holding one) as :class:`Record` objects.

    Raises:
        InputError: as :func:`load_results`.
    """
    p = Path(path)
    return [Record.from_dict(record, p) for record in load_results(p)["results"]]


def as_dict(record: Record | Mapping[str, Any]) -> dict[str, Any]:
    """A record as the JSON object the file stores."""
    return record.to_dict() if isinstance(record, Record) else dict(record)


def merge_records(
    existing: Iterable[Mapping[str, Any] | Record], new: Iterable[Mapping[str, Any] | Record]
) -> list[dict]:
    """Stored records updated with ``new``: same id -> replaced in place, new ids appended in order."""
    merged: dict[str, dict] = {}
    for record in existing:
        stored = as_dict(record)
        merged[str(stored.get("id"))] = stored
    for record in new:
        stored = as_dict(record)
        merged[str(stored["id"])] = stored
    return list(merged.values())


def _images(record: Mapping[str, Any]) -> tuple[Any, Any]:
    data = record.get("data") or {}
    return data.get("n"), data.get("indices")


def replacement_warnings(
    existing: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]
) -> list[str]:
    """One sentence per record of ``new`` that replaces a stored number measured on other images (a
    different ``n``, or, both storing ``indices``, the same ``n`` of different images), and one per
    record that replaces a number measured with other ``settings`` (attack steps, step size, ...).

    Gradient-masking records are left out: they are no table's number, and every robust number keeps
    its own check's verdict.
    """
    stored = {str(record.get("id")): record for record in existing}
    messages = []
    for record in new:
        old = stored.get(str(record.get("id")))
        if old is None or record.get("metric") == "gradient-masking":
            continue
        (old_n, old_indices), (new_n, new_indices) = _images(old), _images(record)
        if old_n != new_n:
            messages.append(
                f"Replaced {record['id']} measured on {old_n} images with one measured on {new_n} images; "
                "other numbers of its table row may use the other count (the tables show n per column)."
            )
        elif old_indices is not None and new_indices is not None and list(old_indices) != list(new_indices):
            messages.append(
                f"Replaced {record['id']} with one measured on a different set of {new_n} images "
                "(another subset seed or subset rule); compare it with its row's other numbers with care."
            )
        changed = _changed_settings(old.get("settings"), record.get("settings"))
        if changed:
            messages.append(
                f"Replaced {record['id']} with one measured with other settings ({changed}); "
                "the stored number is gone, rerun with the old settings to get it back."
            )
    return messages


def _changed_settings(old: Any, new: Any) -> str:
    """``"step_size 0.00784 -> 0.0"``-style list of the settings two records share but disagree on."""
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return ""
    keys = [key for key in new if key in old and old[key] != new[key]]
    return ", ".join(f"{key} {old[key]!r} -> {new[key]!r}" for key in keys)


def write_results(
    path: str | os.PathLike,
    records: Iterable[Mapping[str, Any] | Record],
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Merge ``records`` into the results file at ``path`` (created if missing), atomically.

    A damaged existing file is never overwritten: :class:`InputError` says so instead.

    Args:
        path: the results file.
        records: the new records.
        warn: called with each :func:`replacement_warnings` sentence (a stored record replaced by one
            on a different number or set of images).

    Returns:
        the whole merged file content.
    """
    p = Path(path)
    data = load_results(p) if p.exists() else empty_results()
    records = [as_dict(record) for record in records]
    for record in records:
        check_shape(record, p)
    if warn is not None:
        for message in replacement_warnings(data["results"], records):
            warn(message)
    data["results"] = merge_records(data["results"], records)
    data["updated"] = utc_now()
    atomic_write_json(p, data)
    return data


def find_record(records: Iterable[Mapping[str, Any]], record_id_: Any) -> dict | None:
    """The record with id ``record_id_``, or None."""
    wanted = str(record_id_)
    for record in records:
        if record.get("id") == wanted:
            return dict(record)
    return None
