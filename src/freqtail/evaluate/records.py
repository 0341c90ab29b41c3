"""The schema of one ``results.json`` record: its identity (:class:`RecordId`) and fields (:class:`Record`).

This module is the one owner of a record's shape; :mod:`freqtail.evaluate.results` (the file:
load, merge, write) and every reader (tables, compare, the report, the command line, the demo) go
through it, and nothing splits an id string by position.

A record's id is ``"<checkpoint>|<threat model>|<metric>|<variant>"`` on disk (e.g.
``"best|domain|pgd-20-ce|eps=8/255"``); :meth:`RecordId.parse` reads it into named parts and
``str(record_id)`` writes exactly that text back.

Per-image correctness (``per_image``): a counted record says which of its images were classified
correctly (robust records: correct on the clean *and* the adversarial image), one bool per image of
``data["indices"]`` in that order, packed with :func:`numpy.packbits` (big bit order, numpy's
default) and written as ASCII base64::

    "per_image": {"encoding": "packbits-base64", "n": 40, "correct": "v/8A..."}

A corruption record has one such bit string per corruption and severity instead, over the images
``data["indices"]`` names (``indices_of`` says what they index)::

    "per_image": {"encoding": "packbits-base64", "n": 40, "cells": {"shot_noise": {"3": "..."}}}

Files written before the field existed load unchanged (:meth:`Record.correct_mask` is then None).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from freqtail.errors import InputError

#: Joins the parts of a record id on disk.
ID_SEPARATOR = "|"
#: The one encoding of per-image bits (:func:`pack_mask`).
PER_IMAGE_ENCODING = "packbits-base64"


@dataclass(frozen=True)
class RecordId:
    """What a record is a number of; records are merged on it (a new record replaces the same id).

    Attributes:
        checkpoint: which weights ("best", "last", a file name).
        threat_model: "standard", "domain" or "end-to-end".
        metric: the number's name ("clean", "pgd-20-ce", "corruptions", "gradient-masking", ...).
        variant: the budget and band ("eps=8/255", "eps=8/255,band<7"), the corruption order, or "".
    """

    checkpoint: str
    threat_model: str
    metric: str
    variant: str = ""

    def __post_init__(self) -> None:
        for name in ("checkpoint", "threat_model", "metric", "variant"):
            value = getattr(self, name)
            text = str(getattr(value, "value", value))  # a ThreatModel member reads as its name
            if ID_SEPARATOR in text:
                raise InputError(
                    f"The {name.replace('_', ' ')} {text!r} of a record id holds {ID_SEPARATOR!r}, which "
                    "separates the id's parts; choose a name without it."
                )
            object.__setattr__(self, name, text)

    @classmethod
    def parse(cls, text: Any) -> RecordId:
        """Read ``"<checkpoint>|<threat model>|<metric>|<variant>"``.

        Raises:
            InputError: not a string of exactly four ``|``-separated parts (one sentence).
        """
        parts = text.split(ID_SEPARATOR) if isinstance(text, str) else []
        if len(parts) != 4:
            raise InputError(
                f"The record id {text!r} is not '<checkpoint>|<threat model>|<metric>|<variant>' "
                f"(four parts joined by {ID_SEPARATOR!r}); the results file was not written by freqtail "
                "evaluate or was edited."
            )
        return cls(*parts)

    @classmethod
    def of(cls, record: Record | Mapping[str, Any]) -> RecordId:
        """The id of a :class:`Record` or of a stored record (a JSON object with an ``id``)."""
        if isinstance(record, Record):
            return record.id
        return cls.parse(record.get("id"))

    def __str__(self) -> str:
        return ID_SEPARATOR.join([self.checkpoint, self.threat_model, self.metric, self.variant])


def pack_mask(mask: Any) -> str:
    """Bools (n,) -> ASCII base64 of their :func:`numpy.packbits` bytes (big bit order)."""
    bits = np.asarray(mask, dtype=bool).reshape(-1)
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack_mask(text: str, n: int) -> np.ndarray:
    """The ``n`` bools :func:`pack_mask` wrote into ``text``.

    Raises:
        InputError: not base64, or bits for another number of images (one sentence).
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError):
        raise InputError("The per-image bits of a record are not base64 text; evaluate it again.") from None
    if len(raw) != (int(n) + 7) // 8:
        raise InputError(
            f"The per-image bits of a record hold {8 * len(raw)} bits, not the {n} its images need; "
            "evaluate it again."
        )
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=int(n)).astype(bool)


@dataclass(frozen=True)
class PerImage:
    """Which images of a record were classified correctly (see the module docstring).

    Attributes:
        n: images per bit string (``data["n"]``).
        correct: the bits of a counted record (None for a corruption record).
        cells: corruption record: corruption -> severity (text) -> bits.
        encoding: :data:`PER_IMAGE_ENCODING`.
    """

    n: int
    correct: str | None = None
    cells: dict[str, dict[str, str]] | None = None
    encoding: str = PER_IMAGE_ENCODING

    @classmethod
    def of_mask(cls, mask: Any) -> PerImage:
        bits = np.asarray(mask, dtype=bool).reshape(-1)
        return cls(n=int(bits.shape[0]), correct=pack_mask(bits))

    @classmethod
    def of_cells(cls, n: int, masks: Mapping[str, Mapping[Any, Any]]) -> PerImage:
        cells = {
            str(name): {str(severity): pack_mask(bits) for severity, bits in row.items()}
            for name, row in masks.items()
        }
        return cls(n=int(n), cells=cells)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerImage:
        if data.get("encoding") != PER_IMAGE_ENCODING:
            raise InputError(
                f"A record's per-image bits use the encoding {data.get('encoding')!r}; this freqtail reads "
                f"{PER_IMAGE_ENCODING!r}."
            )
        return cls(
            n=int(data.get("n", 0)),
            correct=data.get("correct"),
            cells=None if data.get("cells") is None else {k: dict(v) for k, v in data["cells"].items()},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"encoding": self.encoding, "n": self.n}
        if self.correct is not None:
            out["correct"] = self.correct
        if self.cells is not None:
            out["cells"] = {name: dict(row) for name, row in self.cells.items()}
        return out


#: The JSON type every typed field of a stored record has when present and not null: what the tables,
#: comparisons and the report read without looking again. ``int`` excludes ``bool``.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,),
    "fingerprint": (str,),
    "freqtail_version": (str,),
    "created": (str,),
    "threat_model_setup": (Mapping,),
    "settings": (Mapping,),
    "data": (Mapping,),
    "checkpoint": (Mapping,),
    "environment": (Mapping,),
    "gradient_masking": (Mapping,),
    "per_image": (Mapping,),
    "world_size": (int,),
    "correct": (int,),
    "total": (int,),
    "clean_correct": (int,),
    "accuracy": (int, float),
    "clean_accuracy": (int, float),
    "seconds": (int, float),
    "check_warnings": (list,),
}
#: Fields every record written by ``freqtail evaluate`` has (readers index them directly).
_REQUIRED_TEXT = ("metric", "threat_model")
_JSON_TYPE_NAMES = {
    str: "a string",
    Mapping: "a JSON object",
    int: "an integer",
    float: "a number",
    list: "a list",
}


def check_shape(data: Any, source: str | os.PathLike | None = None) -> None:
    """Check that a stored record is a JSON object with a well-formed id, a ``metric`` and a
    ``threat_model``, and that each typed field present has its JSON type (what every reader relies on).

    Raises:
        InputError: one sentence naming the file ``source`` and the record.
    """
    where = f"The results file {source}" if source is not None else "A results file"
    again = "move it away and evaluate again"
    if not isinstance(data, Mapping):
        raise InputError(f"{where} holds a record that is not a JSON object; {again}.")
    if "id" not in data:
        raise InputError(f"{where} holds a record without an id; {again}.")
    try:
        RecordId.parse(data["id"])
    except InputError as err:
        raise InputError(f"{where}: {err}") from None
    for key in _REQUIRED_TEXT:
        if not isinstance(data.get(key), str):
            raise InputError(f"{where} holds record {data['id']!r} without a {key} string; {again}.")
    for key, kinds in _FIELD_TYPES.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise InputError(
                f"{where} holds record {data['id']!r} whose {key!r} is not {_JSON_TYPE_NAMES[kinds[-1]]} "
                f"({value!r:.60}); {again}."
            )


#: Stored key -> Record attribute, in the order records are written.
_BASE_KEYS = {
    "suite": "suite",
    "metric": "metric",
    "threat_model": "threat_model",
    "threat_model_setup": "threat_model_setup",
    "settings": "settings",
    "data": "data",
    "checkpoint": "checkpoint",
    "world_size": "world_size",
    "fingerprint": "fingerprint",
    "freqtail_version": "version",
    "environment": "environment",
}
_COUNT_KEYS = ("correct", "total", "accuracy", "clean_correct", "clean_accuracy", "check_warnings")
_LATE_KEYS = ("seconds", "created", "gradient_masking")


@dataclass
class Record:
    """One number (or one corruption table) under one threat model, as ``results.json`` stores it.

    Attributes:
        id: :class:`RecordId` (``"id"`` on disk).
        suite, metric, threat_model: the suite that ran, its number's name, the threat model.
        threat_model_setup: data, front and description of the threat model.
        settings: the exact configuration of what ran (attack config, seed, execution, ...).
        data: the test data and the evaluated images (``n``, ``of``, ``subset``, ``subset_seed``,
            ``indices``).
        checkpoint: facts about the weights (path, which, epoch, digest, objective, BaSS mode).
        world_size: processes that measured it.
        fingerprint: digest of checkpoint, data, settings and threat model (``--resume`` compares it).
        version: the freqtail version (``"freqtail_version"``).
        environment: what it was measured with (:func:`freqtail.environment.measurement_environment`:
            versions, torch thread count, device); None in files written before it was recorded.
        correct, total, accuracy: the counts (accuracy = correct / total); clean_correct,
            clean_accuracy: the clean counts of robust records; check_warnings: AutoAttack's.
        seconds, created: how long it took and when it finished.
        gradient_masking: the whole verdict of the gradient-masking check of a robust number.
        per_image: :class:`PerImage` (None in files written before it existed).
        extras: the suite's own fields: a corruption record's table (``order``, ``per_corruption``,
            ``categories``, ``mean``, ``cells``, ...), a gradient-masking record's report (``report``,
            ``state``, ``masked``, ``flags``, ``summary``); kept in their stored order.
    """

    id: RecordId
    suite: str | None = None
    metric: str | None = None
    threat_model: str | None = None
    threat_model_setup: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    world_size: int | None = None
    fingerprint: str | None = None
    version: str | None = None
    environment: dict[str, Any] | None = None
    correct: int | None = None
    total: int | None = None
    accuracy: float | None = None
    clean_correct: int | None = None
    clean_accuracy: float | None = None
    check_warnings: list[str] | None = None
    seconds: float | None = None
    created: str | None = None
    gradient_masking: dict[str, Any] | None = None
    per_image: PerImage | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: Typed keys a stored record held as JSON null (written back as null, so a round trip is exact).
    nulls: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike | None = None) -> Record:
        """A stored record, its shape checked once.

        Args:
            data: one entry of ``results.json``'s ``results``.
            source: the file it came from (named in the error).

        Raises:
            InputError: not a JSON object, no id, or a malformed id (one sentence naming the file).
        """
        check_shape(data, source)
        where = f"The results file {source}" if source is not None else "A results file"
        try:
            rid = RecordId.parse(data["id"])
            per_image = None if data.get("per_image") is None else PerImage.from_dict(data["per_image"])
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
        known = {"id", "per_image", *_BASE_KEYS, *_COUNT_KEYS, *_LATE_KEYS}
        values = {attr: data.get(key) for key, attr in _BASE_KEYS.items()}
        values.update({key: data.get(key) for key in (*_COUNT_KEYS, *_LATE_KEYS)})
        extras = {key: value for key, value in data.items() if key not in known}
        nulls = frozenset(key for key in known if key in data and data[key] is None)
        return cls(id=rid, per_image=per_image, extras=extras, nulls=nulls, **values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``results.json`` stores (the keys present: unset fields are left out)."""
        out: dict[str, Any] = {"id": str(self.id)}

        def put(key: str, value: Any) -> None:
            if value is not None or key in self.nulls:
                out[key] = value

        for key, attr in _BASE_KEYS.items():
            put(key, getattr(self, attr))
        for key in _COUNT_KEYS:
            put(key, getattr(self, key))
        out.update(self.extras)
        for key in _LATE_KEYS:
            put(key, getattr(self, key))
        put("per_image", None if self.per_image is None else self.per_image.to_dict())
        return out

    def replace(self, **changes: Any) -> Record:
        return dataclasses.replace(self, **changes)

    @property
    def indices(self) -> list[int] | None:
        """The evaluated images (``data["indices"]``), or None when not stored."""
        return None if not self.data or self.data.get("indices") is None else list(self.data["indices"])

    def correct_mask(self) -> np.ndarray | None:
        """Bool (n,): which images of ``data["indices"]`` were classified correctly (in that order);
        None when the record has no per-image bits (an older file, or a corruption record)."""
        if self.per_image is None or self.per_image.correct is None:
            return None
        return unpack_mask(self.per_image.correct, self.per_image.n)

    def cell_mask(self, corruption: str, severity: int | str) -> np.ndarray | None:
        """A corruption record's bits of one corruption and severity (None when not stored)."""
        cells = None if self.per_image is None else self.per_image.cells
        bits = (cells or {}).get(corruption, {}).get(str(severity))
        return None if bits is None else unpack_mask(bits, self.per_image.n)
